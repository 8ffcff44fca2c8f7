"""The model families the serving and routing benchmarks measure: trained fresh with `tiered train` into a
temporary store, or read from a store given on the command line.

    tiered train --quick --out DIR                      what a --quick benchmark trains (seconds)
    tiered train --out DIR                              what a full benchmark trains (the default family)
    tiered train [--quick] --source csv:PATH --out DIR  a family of real candles (bench.routing)

`--models DIR` (and bench.routing's `--real-models DIR`) skip the training, which saves minutes when a
benchmark runs repeatedly: `tiered train --out /tmp/fam && python -m bench.serve --models /tmp/fam`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT
from models.manifest import Manifest
from models.store import load_current


@dataclass(frozen=True)
class Store:
    """A store whose CURRENT family a benchmark measures."""

    path: Path
    directory: Path  # the family CURRENT points at
    manifest: Manifest
    train_seconds: float | None  # None: the store was given, nothing was trained

    @classmethod
    def read(cls, path: Path, train_seconds: float | None = None) -> Store:
        directory, manifest = load_current(path)
        return cls(path, directory, manifest, train_seconds)

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        return {"family_id": m.family_id, "source": m.source, "target": m.target.model_dump(),
                "trained_here_seconds": self.train_seconds,
                "tiers": {t.name: {"layers": t.layers, "width": t.width, "params": t.params}
                          for t in m.tiers}}


def tiered() -> list[str]:
    """The `tiered` command of this interpreter's environment (the console script, else the module)."""
    script = Path(sys.executable).parent / "tiered"
    return [str(script)] if script.is_file() else [sys.executable, "-c", "import cli; cli.main()"]


def train(store: Path, quick: bool, source: str | None = None, extra: Sequence[str] = ()) -> float:
    """Run `tiered train` into `store` (with `extra` arguments, e.g. a target); its tables and progress go
    to stderr. Returns the wall seconds."""
    args = ["train", "--out", str(store), *(["--quick"] if quick else []),
            *(["--source", source] if source else []), *extra]
    print(f"bench: tiered {' '.join(args)}", file=sys.stderr)
    started = time.perf_counter()
    # stdout=2: the job's report table must not mix with the benchmark's own tables on stdout.
    subprocess.run([*tiered(), *args], cwd=ROOT, check=True, stdout=2)
    return time.perf_counter() - started


@contextmanager
def family_store(models: Path | None, quick: bool, source: str | None = None) -> Iterator[Store]:
    """`models` as it is, or a family trained for this run in a temporary store removed afterwards."""
    if models is not None:
        yield Store.read(models)
        return
    with tempfile.TemporaryDirectory(prefix="bench-family-") as tmp:
        seconds = train(Path(tmp), quick, source)
        yield Store.read(Path(tmp), seconds)


def store_options(argv: Sequence[str], real: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Split a benchmark's own options (`--models DIR`, `--real-models DIR ...`) from the shared ones."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--models", type=Path, default=None)
    if real:
        parser.add_argument("--real-models", type=Path, action="append", default=None)
    known, rest = parser.parse_known_args(list(argv))
    return {k: v for k, v in vars(known).items() if v is not None}, rest
