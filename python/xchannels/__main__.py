"""python -m xchannels: command-line tools.

``python -m xchannels check MODULE...``: can each module be imported in an
own-GIL sub-interpreter (where Pool and Worker tasks run)? Exit status 0 if
all can, 1 if any cannot, 2 for bad usage.

``python -m xchannels info [--json]``: the version, the build, the Python,
and whether own-GIL sub-interpreters work here (for bug reports).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys

from xchannels._check import ModuleCheck, check_modules

# The child that checks one module, so that a crash ends only the child.
_CHILD = (
    "import json, sys\n"
    "from xchannels._check import check_modules\n"
    "print(json.dumps(check_modules([sys.argv[1]])[0]._asdict()))\n"
)


def _check_in_child(module: str) -> ModuleCheck:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, module], capture_output=True, text=True, timeout=300
    )
    if proc.returncode == 0:
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("{"):
                return ModuleCheck(**json.loads(line))
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        error = f"importing it crashed the process ({name})"
    else:
        error = f"the check process failed with exit status {proc.returncode}"
    return ModuleCheck(module, False, error, proc.stderr or None)


def _cmd_check(args: argparse.Namespace) -> int:
    results = [_check_in_child(m) for m in args.modules] if args.isolate else check_modules(args.modules)
    if args.json:
        print(json.dumps([r._asdict() for r in results], indent=2))
    else:
        width = max(len(r.module) for r in results)
        for r in results:
            if r.ok:
                print(f"{r.module:<{width}}  ok")
            else:
                print(f"{r.module:<{width}}  FAILS: {r.error}")
                if args.verbose and r.traceback:
                    print("    " + r.traceback.rstrip().replace("\n", "\n    "))
        failed = [r.module for r in results if not r.ok]
        if failed:
            print(
                f"\n{len(failed)} of {len(results)} module(s) cannot be imported in an own-GIL "
                "sub-interpreter, so xchannels.Pool and Worker tasks cannot use them; "
                "run such work in processes (multiprocessing) instead.",
                file=sys.stderr,
            )
    return 1 if any(not r.ok for r in results) else 0


def _cmd_info(args: argparse.Namespace) -> int:
    from xchannels._info import format_info, info

    facts = info()
    print(json.dumps(facts, indent=2) if args.json else format_info(facts))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xchannels", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check",
        help="check that modules import in an own-GIL sub-interpreter",
        description="Import each module in a fresh own-GIL sub-interpreter and report, per "
        "module, 'ok' or the exact error. Exit status 1 if any fails.",
    )
    check.add_argument("modules", nargs="+", metavar="MODULE")
    check.add_argument("-v", "--verbose", action="store_true", help="print the traceback of each failure")
    check.add_argument("--json", action="store_true", help="print the results as JSON")
    check.add_argument(
        "--no-isolate", dest="isolate", action="store_false",
        help="check in this process (faster; a module that crashes a sub-interpreter ends the check)",
    )
    check.set_defaults(func=_cmd_check)
    info = sub.add_parser(
        "info",
        help="print the version, the build and what this Python supports (for bug reports)",
        description="Print the xchannels version, how it was built, the Python, whether own-GIL "
        "sub-interpreters work here, and where the loaded module is.",
    )
    info.add_argument("--json", action="store_true", help="print it as JSON")
    info.set_defaults(func=_cmd_info)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
