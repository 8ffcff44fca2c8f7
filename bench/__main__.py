"""Run every benchmark and rewrite BENCHMARKS.md from their tables.

    python -m bench            all four, full size (make bench; tens of minutes on 2 cores)
    python -m bench --quick    all four, tiny (what the suite checks)
    python -m bench serve      only the named ones
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys
import time
from pathlib import Path

from bench.common import RESULTS, ROOT, machine, write_result

NAMES = ("serve", "distill", "routing", "parity_curriculum")
COMMANDS = {name: f"python -m bench.{name}" for name in NAMES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run, from {', '.join(NAMES)} (default all)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(NAMES)}")
    names = args.names or list(NAMES)
    sections = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"== bench.{name}{' --quick' if args.quick else ''}", file=sys.stderr)
        started = time.perf_counter()
        result = module.run(args.quick, args.out)
        result["quick"] = args.quick
        write_result(name, result, args.out)
        seconds = time.perf_counter() - started
        body = module.markdown(result)
        print(body)
        command = COMMANDS[name] + (" --quick" if args.quick else "")
        sections.append(f"## {name}\n\nCommand: `{command}` ({seconds:.0f} s).\n\n{body}\n")
    if args.names or args.quick:
        print(f"(partial or quick run: {args.doc.name} left as it is)", file=sys.stderr)
        return 0
    args.doc.write_text(render(sections))
    print(f"wrote {args.doc}", file=sys.stderr)
    return 0


def render(sections: list[str]) -> str:
    m = machine()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        "# Benchmarks\n\n"
        f"Written by `make bench` (`python -m bench`) on {when}, commit `{m['commit']}`.\n\n"
        f"Machine: {m['cpu'] or 'unknown CPU'}, {m['cores']} cores, {m['memory_gib']} GiB; "
        f"Python {m['python']}, numpy {m['numpy']}, onnxruntime {m['onnxruntime']}.\n"
        "Each section's command reruns it alone and writes its JSON to `bench/results/`.\n\n"
    )
    return head + "\n".join(sections)


if __name__ == "__main__":
    sys.exit(main())
