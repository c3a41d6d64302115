"""Fixtures of optimized modules: what XLA hands back after compiling ours.

    tools/hlo_check/run --optimize IN_DIR OUT_DIR

For every `IN_DIR/<name>.pb` (an HloModuleProto we lowered), compiles it for
one CPU device with jaxlib's XLA (via StableHLO, as jax does), and writes the
optimized module to `OUT_DIR/<name>.pb` (serialized HloModuleProto) and
`OUT_DIR/<name>.txt` (XLA's text of it, printed like check.py prints).
Modules that do not compile for one device (collectives across replicas) are
skipped with a note. `tests/hlo_print.rs` prints the `.pb` files with our
printer and compares with the `.txt`.
"""

import pathlib
import sys

from check import xla_module


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, out = pathlib.Path(argv[0]), pathlib.Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    xla = xla_module()
    client = xla.get_tfrt_cpu_client(asynchronous=False)
    opts = xla.HloPrintOptions()
    opts.print_operand_shape = False
    written = 0
    for pb in sorted(src.glob("*.pb")):
        try:
            mlir = xla.mlir.hlo_to_stablehlo(pb.read_bytes())
            exe = client.compile_and_load(mlir, client.devices()[:1], xla.CompileOptions())
        except Exception as e:  # XLA's status exceptions
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"optimize: skipping {pb.name}: {first}", file=sys.stderr)
            continue
        module = exe.hlo_modules()[0]
        (out / pb.name).write_bytes(module.as_serialized_hlo_module_proto())
        (out / pb.with_suffix(".txt").name).write_text(module.to_string(opts))
        written += 1
    print(f"optimize: wrote {written} optimized module(s) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
