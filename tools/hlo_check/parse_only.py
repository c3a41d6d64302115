"""XLA's HLO parser on given text files, nothing else.

    tools/hlo_check/run --parse-only FILE [FILE ...]

Each FILE (for instance an `optimized.hlo.txt` written by
`simclr export_hlo`) must be accepted by XLA's HLO text parser
(`hlo_module_from_text` in jaxlib). Unlike check.py, the text is not
compared with XLA's own printing: optimized modules carry backend details
(`backend_config`, scheduling) that XLA may print differently from how a
plugin's newer XLA wrote them, and what matters here is that the text is
valid HLO.

Exit status: 0 when every file parses, 1 when one is rejected, 2 on usage
errors.
"""

import pathlib
import sys

from check import xla_module


def main(argv):
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    xla = xla_module()
    failures = []
    for a in argv:
        path = pathlib.Path(a)
        try:
            text = path.read_text()
        except OSError as e:
            failures.append(f"{path}: {e}")
            continue
        try:
            module = xla.hlo_module_from_text(text)
        except Exception as e:  # XLA raises its own status exception types
            failures.append(f"{path}: XLA's HLO parser rejects it:\n{e}")
            continue
        print(f"{path}: parses ({module.name})")
    if failures:
        print(f"hlo_check --parse-only: {len(failures)} file(s) rejected", file=sys.stderr)
        for f in failures:
            print("\n" + f, file=sys.stderr)
        return 1
    print(f"hlo_check --parse-only: {len(argv)} file(s) parse in XLA")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
