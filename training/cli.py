"""`tiered train`: parse the command line, load the config, run the job (training/job.py).

    tiered train --quick --out /tmp/store                         a small family in seconds
    tiered train                                                  the default family (synthetic market)
    tiered train --source csv:../shared/data/ohlcv/FILE.csv       real candles
    tiered train --target volatility --horizon 10                 another target (see market/targets/)
    tiered train --tier-map fixed                                 route calm → M3 … crisis → M0, not learned
    tiered train --source bybit:BTCUSDT:60 --start 2024-01-01 --end 2024-06-01

torch is imported only when the job runs, so `tiered` stays usable on a serving install.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from market import targets  # numpy only: the command line lists the targets without importing torch


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="build the model family M0..M3 (needs the train extra)")
    p.add_argument("--config", type=Path, help="JSON file over the defaults (training/default.json)")
    p.add_argument("--source", help="synthetic | csv:PATH | bybit:SYMBOL:INTERVAL (default: synthetic)")
    p.add_argument("--start", help="bybit: first candle, ISO date/time (UTC) or epoch ms")
    p.add_argument("--end", help="bybit: end of the range (exclusive), ISO date/time (UTC) or epoch ms")
    p.add_argument("--target", help=f"what to predict: {', '.join(targets.names())} (default: return)")
    p.add_argument("--horizon", type=int, help="bars ahead (default: the target's own)")
    p.add_argument("--seed", type=int)
    p.add_argument("--tier-map", choices=("learned", "fixed"),
                   help="regime → tier map: learned on the validation split (default) or the fixed "
                        "calm → M3 … crisis → M0")
    p.add_argument("--out", type=Path, default=Path("models/store"),
                   help="model store (default models/store)")
    p.add_argument("--quick", action="store_true", help="a small, fast family for tests and smoke runs")
    p.set_defaults(handler=run_train)


def target_override(args: argparse.Namespace) -> dict[str, Any] | None:
    """--target NAME [--horizon K]: that target at K or its default horizon; --horizon K alone: the
    configured target at K."""
    if args.target is not None:
        return {"name": args.target, "horizon": args.horizon}
    return None if args.horizon is None else {"horizon": args.horizon}


def run_train(args: argparse.Namespace) -> int:
    from market.csvfile import parse_timestamp
    from market.errors import MarketError
    from models import scratch, store
    from training import config
    from training.errors import TrainingError

    try:
        cfg = config.load(args.config, quick=args.quick,
                          overrides={"source": args.source, "target": target_override(args),
                                     "seed": args.seed,
                                     "routing": {"tier_map": args.tier_map} if args.tier_map else None})
        start_ms = parse_timestamp(args.start) if args.start else 0
        end_ms = parse_timestamp(args.end) if args.end else 0
        if cfg.source.startswith("bybit:") and not (start_ms and end_ms):
            raise TrainingError("a bybit source needs --start and --end")
        store.check_writable(args.out)  # before the training, not after it
        temp = Path(tempfile.gettempdir())
        for path in [*store.sweep(args.out), *scratch.sweep(temp, scratch.TRAIN_PATTERNS)]:
            print(f"tiered train: removed {path}, left by a run that was killed", file=sys.stderr)
        from training import job  # torch: seconds to import, so after the checks

        job.run(cfg, args.out, start_ms=start_ms, end_ms=end_ms)
    except (TrainingError, MarketError, ValueError, store.StoreError) as exc:
        print(f"tiered train: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a store made read-only meanwhile: one line, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"tiered train: a write failed: {exc.strerror or exc}{where}; no partial family is left in "
              f"{args.out}",
              file=sys.stderr)
        return 1
    return 0
