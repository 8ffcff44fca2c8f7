"""The `tiered` command: one entry point, one subcommand per job.

    tiered market   write a synthetic market to CSV, or evaluate the regime detector on it
    tiered fetch    download candles from Bybit's public v5 API into a CSV
    tiered train    build a model family (needs the `train` extra: torch)
    tiered serve    serve the current family over HTTP
    tiered replay-log   recompute the decisions of a decision log and report mismatches

Each package registers its own subcommands and imports its heavy dependencies only when run, so the
service installs and runs without torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.cli import register as register_app
from market.cli import register as register_market
from training.cli import register as register_training


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiered", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_market(sub)
    register_training(sub)
    register_app(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.handler(args)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
