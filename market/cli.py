"""`tiered market` and `tiered fetch`.

    tiered market --bars 1000000 --seed 7 --out market.csv     write a synthetic market
    tiered market --bars 300000 --seed 7 --evaluate-detector    oracle R², simulator speed, detector scores
    tiered fetch --symbol BTCUSDT --interval 5 --start 2024-12-01 --end 2024-12-02 --out btc.csv
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np


def register(sub: Any) -> None:
    p = sub.add_parser("market", help="write a synthetic market to CSV or evaluate the regime detector")
    p.add_argument("--bars", type=int, default=300_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", help="CSV file to write (timestamp, OHLCV, taker-buy volume, book, truth)")
    p.add_argument("--evaluate-detector", action="store_true",
                   help="calibrate the detector on the first 70%% and score it on the rest")
    p.add_argument("--without-book", action="store_true",
                   help="evaluate the detector on candle estimates of spread and imbalance only")
    p.set_defaults(handler=run_market)

    f = sub.add_parser("fetch", help="download klines from Bybit's public v5 API into a CSV")
    f.add_argument("--symbol", required=True)
    f.add_argument("--interval", required=True, help="1,3,5,15,30,60,120,240,360,720,D,W,M")
    f.add_argument("--start", required=True, help="ISO date/time (UTC) or epoch ms")
    f.add_argument("--end", required=True, help="ISO date/time (UTC) or epoch ms, exclusive")
    f.add_argument("--category", default="linear", choices=["linear", "spot", "inverse"])
    f.add_argument("--out", required=True)
    f.set_defaults(handler=run_fetch)


def run_market(args: argparse.Namespace) -> int:
    from market.synthetic import REGIMES, simulate

    started = time.perf_counter()
    m = simulate(args.bars, args.seed)
    seconds = time.perf_counter() - started
    print(f"simulated {args.bars:,} bars (seed {args.seed}) in {seconds:.2f} s")
    print(f"oracle R² (true expectation vs realised next return): {m.oracle_r2():.4f}")
    shares = np.bincount(m.regime, minlength=len(REGIMES)) / len(m)
    print("regime shares: " + ", ".join(f"{r} {s:.1%}" for r, s in zip(REGIMES, shares, strict=True)))
    if args.out:
        write_synthetic_csv(m, args.out)
        print(f"wrote {args.out}")
    if args.evaluate_detector:
        evaluate_detector(m, use_book=not args.without_book)
    return 0


def write_synthetic_csv(m: Any, path: str) -> None:
    c = m.candles
    columns = {
        "timestamp": c.ts, "open": c.open, "high": c.high, "low": c.low, "close": c.close,
        "volume": c.volume, "taker_buy_volume": c.taker_buy_volume, "bid": m.bid, "ask": m.ask,
        "bid_size": m.bid_size, "ask_size": m.ask_size, "regime": m.regime,
        "expected_return": m.expected_return,
    }
    with open(path, "w") as f:
        f.write(",".join(columns) + "\n")
        np.savetxt(f, np.column_stack([np.asarray(v, dtype=np.float64) for v in columns.values()]),
                   delimiter=",", fmt=["%d", *["%.10g"] * 10, "%d", "%.6g"])


def evaluate_detector(m: Any, use_book: bool = True) -> None:
    from dataclasses import replace

    from market import dataset, regime, targets
    from market.sources import synthetic_source

    src = synthetic_source(len(m), m.seed)
    if not use_book:
        src = replace(src, book_spread_bps=None, book_imbalance=None)
    ds = dataset.build(src, targets.get("return"))  # the detector reads windows; any target will do
    signals = "book" if use_book else "candle estimates (no book)"
    print(f"\nspread and imbalance from: {signals}")
    print(f"thresholds (calibrated on {len(ds.train):,} training windows): {ds.thresholds.to_dict()}")
    for name, split in (("validation", ds.val), ("test", ds.test)):
        assert split.true_regime is not None
        cm = regime.confusion_matrix(split.true_regime, regime.detect(split.signals, ds.thresholds))
        print(f"\n{name}: balanced accuracy {regime.balanced_accuracy(cm):.3f} over {len(split):,} windows")
        print(format_confusion(cm))


def format_confusion(cm: np.ndarray) -> str:
    from market.regime import REGIMES

    head = "true \\ detected " + "".join(f"{r:>10}" for r in REGIMES) + "    recall"
    rows = [head]
    for i, r in enumerate(REGIMES):
        recall = cm[i, i] / max(cm[i].sum(), 1)
        rows.append(f"{r:<16}" + "".join(f"{v:>10,}" for v in cm[i]) + f"{recall:>10.3f}")
    return "\n".join(rows)


def run_fetch(args: argparse.Namespace) -> int:
    import sys

    from market.bybit import fetch_to_csv
    from market.errors import MarketError

    try:
        rows = fetch_to_csv(args.symbol, args.interval, args.start, args.end, args.out,
                            category=args.category)
    except (MarketError, ValueError) as exc:  # bad dates or interval, or the exchange said no
        print(f"tiered fetch: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {rows:,} closed candles starting in [{args.start}, {args.end}) to {args.out}")
    return 0
