"""Where training data comes from: `synthetic`, `csv:PATH` or `bybit:SYMBOL:INTERVAL`."""

from __future__ import annotations

from pathlib import Path

from market.dataset import Source
from market.synthetic import simulate


def synthetic_source(bars: int, seed: int) -> Source:
    m = simulate(bars, seed)
    mid = (m.ask + m.bid) / 2.0
    return Source(
        kind="synthetic",
        candles=m.candles,
        symbol="SYNTH",
        interval="1m",
        book_spread_bps=(m.ask - m.bid) / mid * 1e4,
        book_imbalance=(m.bid_size - m.ask_size) / (m.bid_size + m.ask_size),
        true_regime=m.regime,
        expected_return=m.expected_return,
        sigma=m.sigma,
        detail={"seed": seed, "oracle_r2": m.oracle_r2()},
    )


def csv_source(path: str | Path) -> Source:
    from market.csvfile import read_candles

    loaded = read_candles(path)
    return Source(kind="csv", candles=loaded.candles, symbol=loaded.symbol, interval=loaded.interval,
                  detail={"file": Path(path).name, "gaps": len(loaded.gaps)})


def bybit_source(symbol: str, interval: str, start_ms: int, end_ms: int) -> Source:
    from market.bybit import BybitClient

    with BybitClient() as client:
        candles = client.klines(symbol, interval, start_ms, end_ms)
    return Source(kind="bybit", candles=candles, symbol=symbol, interval=interval)


def parse(spec: str, *, bars: int, seed: int, start_ms: int = 0, end_ms: int = 0) -> Source:
    """`synthetic` | `csv:PATH` | `bybit:SYMBOL:INTERVAL` → Source."""
    kind, _, rest = spec.partition(":")
    if kind == "synthetic" and not rest:
        return synthetic_source(bars, seed)
    if kind == "csv" and rest:
        return csv_source(rest)
    if kind == "bybit" and rest.count(":") == 1:
        symbol, interval = rest.split(":")
        return bybit_source(symbol, interval, start_ms, end_ms)
    raise ValueError(f"unknown source {spec!r}; use synthetic, csv:PATH or bybit:SYMBOL:INTERVAL")
