"""Run benchmarks and rewrite BENCHMARKS.md from their tables.

    python -m bench                   all of them, full size (make bench; tens of minutes on 2 cores)
    python -m bench serve routing     only these; the other sections come from their last full run
    python -m bench --render          no run: rewrite BENCHMARKS.md from the results saved last time
    python -m bench --quick           all of them, tiny (what the suite checks); BENCHMARKS.md left alone

Each section is rendered from the JSON its benchmark wrote to bench/results/, so the document always
shows the figures of a real, full run, with the command that reruns it; sections of the document that
no benchmark renders (measurements made once, by hand) are kept at its end as they are. bench/results/
is not in git: where a benchmark has no full result on this machine, its section is kept as the
document had it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, machine, write_result

NAMES = ("serve", "distill", "routing", "parity_curriculum", "hysteresis", "targets")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run, from {', '.join(NAMES)} (default all)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--render", action="store_true", help="run nothing; rewrite the document")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(NAMES)}")
    for name in [] if args.render else args.names or NAMES:
        run_one(name, args.quick, args.out)
    if args.quick:
        print(f"(quick run: {args.doc.name} left as it is)", file=sys.stderr)
        return 0
    previous = args.doc.read_text() if args.doc.exists() else ""
    args.doc.write_text(render(args.out, sections(previous)))
    print(f"wrote {args.doc}", file=sys.stderr)
    return 0


def run_one(name: str, quick: bool, out: Path) -> dict[str, Any]:
    module = importlib.import_module(f"bench.{name}")
    print(f"== python -m bench.{name}{' --quick' if quick else ''}", file=sys.stderr)
    started = time.perf_counter()
    result = module.run(quick, out)
    result["quick"] = quick
    result["seconds"] = time.perf_counter() - started
    write_result(name, result, out)
    print(module.markdown(result))
    return result


def sections(document: str) -> dict[str, str]:
    """The text of each `## name` section of a rendered document, heading included."""
    parts = re.split(r"^(?=## )", document, flags=re.MULTILINE)
    return {part.split(None, 2)[1]: part.rstrip("\n") + "\n" for part in parts if part.startswith("## ")}


def render(out: Path, kept: dict[str, str] | None = None) -> str:
    m = machine()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# Benchmarks\n",
        f"Rendered by `python -m bench` on {when} at commit `{m['commit']}` from the results of each "
        "benchmark's last full run (`bench/results/*.json`, which also record the machine).\n",
        f"Machine: {m['cpu'] or 'unknown CPU'}, {m['cores']} cores, {m['memory_gib']} GiB; Python "
        f"{m['python']}, numpy {m['numpy']}, onnxruntime {m['onnxruntime']}.\n",
        "`make bench` reruns them all; each section's command reruns one and rewrites its section.\n",
    ]
    for name in NAMES:
        path = out / f"{name}.json"
        result = json.loads(path.read_text()) if path.exists() else None
        if result is None or result.get("quick"):
            missing = f"## {name}\n\nNo full run recorded yet: `python -m bench {name}`.\n"
            parts.append((kept or {}).get(name, missing))
            continue
        module = importlib.import_module(f"bench.{name}")
        took = f", {result['seconds'] / 60:.1f} min" if "seconds" in result else ""
        ran = result.get("machine", {}).get("commit", "")
        command = result.get("command", f"python -m bench {name}")  # a benchmark run with options says so
        parts.append(f"## {name}\n\nCommand: `{command}` (commit `{ran}`{took}).\n\n"
                     f"{module.markdown(result)}\n")
    # Sections no benchmark renders (measurements made by hand, with their commands) are kept as written.
    parts += [text for name, text in (kept or {}).items() if name not in NAMES]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
