"""`python -m app [--models DIR] [--host HOST] [--port PORT] [--workers N]`: the same as `tiered serve`."""

from __future__ import annotations

import argparse
import sys

from app.cli import register


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", *sys.argv[1:]])
    sys.exit(args.handler(args))


if __name__ == "__main__":
    main()
