"""XLA's own check of simclr's HLO text printer.

For every directory given (default: hlo/), and every `<name>.hlo` in it:

1. XLA's HLO parser (`hlo_module_from_text` in jaxlib) must accept the text.
2. XLA re-prints the parsed module; that text must equal ours.
3. If `<name>.pb` (serialized HloModuleProto, what PJRT compiles) exists,
   XLA loads it (`HloModule.from_serialized_hlo_module_proto`) and prints
   it; that text must equal ours too.

Every `<name>.pb` without a `<name>.hlo` is an error (nothing to compare with).

XLA prints with its default `HloPrintOptions` except operand shapes, which
its dumps (`xla_dump_to`) also leave out, so metadata and backend_config are
printed. Normalization before comparing, the same on both sides:
* trailing whitespace and trailing blank lines are dropped;
* for the proto comparison only, `, replica_count=N` is removed from the
  header: the proto does not carry the replica count (it is compile
  configuration), so XLA prints a proto module without it;
* for the parse+print comparison only, a literal element `-0` is read as
  `0`: XLA's text parser drops the sign of negative zero (jaxlib 0.6.2),
  while XLA prints `-0` from a proto, as we do.
Nothing else is normalized: names, instruction order and attribute order
must be exactly XLA's.

Exit status: 0 when every file passes, 1 on any mismatch or rejection, 2 on
usage errors. Mismatches print a unified diff (--- XLA, +++ simclr).
"""

import difflib
import pathlib
import re
import sys


def xla_module():
    """The jaxlib extension that exposes XLA's HLO parser and printer."""
    errors = []
    for name in ("jaxlib._jax", "jax._src.lib._jax", "jaxlib.xla_extension"):
        try:
            mod = __import__(name, fromlist=["HloModule"])
        except ImportError as e:  # pragma: no cover - depends on the version
            errors.append(f"{name}: {e}")
            continue
        if hasattr(mod, "hlo_module_from_text") and hasattr(mod, "HloModule"):
            return mod
        errors.append(f"{name}: no hlo_module_from_text/HloModule")
    sys.exit("hlo_check: cannot find XLA's HLO parser in jaxlib:\n  " + "\n  ".join(errors))


def normalize(text, drop_replica_count=False, unsign_zero=False):
    lines = [line.rstrip() for line in text.splitlines()]
    if unsign_zero:
        lines = [re.sub(r"(?<=[({ ])-0(?=[,})])", "0", line) for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    if drop_replica_count and lines:
        lines[0] = re.sub(r", replica_count=\d+", "", lines[0])
    return "\n".join(lines) + "\n"


def diff(xla_text, our_text, what):
    return "".join(
        difflib.unified_diff(
            xla_text.splitlines(keepends=True),
            our_text.splitlines(keepends=True),
            fromfile=f"XLA: {what}",
            tofile="simclr printer",
        )
    )


def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    dirs = [pathlib.Path(a) for a in argv] or [pathlib.Path("hlo")]
    xla = xla_module()
    opts = xla.HloPrintOptions()
    opts.print_operand_shape = False

    failures = []
    checked = 0
    for d in dirs:
        if not d.is_dir():
            print(f"hlo_check: {d} is not a directory", file=sys.stderr)
            return 2
        texts = sorted(d.glob("*.hlo"))
        for pb in sorted(d.glob("*.pb")):
            if not pb.with_suffix(".hlo").exists():
                failures.append(f"{pb}: no {pb.with_suffix('.hlo').name} to compare with")
        if not texts:
            failures.append(f"{d}: no .hlo files")
        for path in texts:
            checked += 1
            ours = path.read_text()
            try:
                parsed = xla.hlo_module_from_text(ours)
            except Exception as e:  # XLA raises its own status exception types
                failures.append(f"{path}: XLA's HLO parser rejects it:\n{e}")
                continue
            reprinted = normalize(parsed.to_string(opts), unsign_zero=True)
            if reprinted != normalize(ours, unsign_zero=True):
                failures.append(
                    f"{path}: XLA parses it but prints it differently:\n"
                    + diff(reprinted, normalize(ours, unsign_zero=True), f"parse+print of {path.name}")
                )
            pb = path.with_suffix(".pb")
            if not pb.exists():
                continue
            try:
                loaded = xla.HloModule.from_serialized_hlo_module_proto(pb.read_bytes())
            except Exception as e:
                failures.append(f"{pb}: XLA cannot load the proto:\n{e}")
                continue
            from_proto = normalize(loaded.to_string(opts), drop_replica_count=True)
            mine = normalize(ours, drop_replica_count=True)
            if from_proto != mine:
                failures.append(
                    f"{pb}: XLA prints the proto differently from {path.name}:\n"
                    + diff(from_proto, mine, f"print of {pb.name}")
                )

    version = getattr(sys.modules.get("jaxlib.version"), "__version__", None)
    if version is None:
        try:
            import jaxlib.version as v

            version = v.__version__
        except ImportError:
            version = "?"
    if failures:
        print(f"hlo_check (jaxlib {version}): {len(failures)} problem(s)", file=sys.stderr)
        for f in failures:
            print("\n" + f, file=sys.stderr)
        return 1
    print(f"hlo_check (jaxlib {version}): {checked} module(s) parse and print identically in XLA")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
