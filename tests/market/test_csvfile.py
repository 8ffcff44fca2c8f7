"""The candle CSV reader: real exchange files, every layout and timestamp form, and every rejection."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from market.cli import write_synthetic_csv
from market.csvfile import Gap, guess_symbol, interval_name, read_candles
from market.errors import CandleFileError
from market.synthetic import simulate

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ohlcv"
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
FIVE_MIN = 300_000


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


def write(tmp_path: Path, text: str, name: str = "candles.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# Three 5-minute bars; OHLCV per bar. Layouts below render them with their own header and timestamps.
BARS = [(100.0, 101.0, 99.0, 100.5, 10.0), (100.5, 102.0, 100.0, 101.5, 12.0),
        (101.5, 101.6, 100.9, 101.0, 8.0)]
TAKER = [4.0, 7.0, 2.5]


def rows(stamp, *, taker=False, extra=(), sep=",", newest_first=False) -> str:
    out = []
    for i, (o, h, lo, c, v) in enumerate(BARS):
        fields = [stamp(T0 + i * FIVE_MIN), o, h, lo, c, v, *extra]
        if taker:
            fields += [TAKER[i]]
        out.append(sep.join(str(f) for f in fields))
    return "\n".join(reversed(out) if newest_first else out) + "\n"


def binance_row(t: int, scale: int = 1) -> str:
    o, h, lo, c, v = BARS[(t - T0) // FIVE_MIN]
    taker = TAKER[(t - T0) // FIVE_MIN]
    return f"{t * scale},{o},{h},{lo},{c},{v},{(t + FIVE_MIN - 1) * scale},1234.5,42,{taker},456.7,0"


LAYOUTS = {
    "binance header, taker_buy_base_asset_volume": (
        "open_time,open,high,low,close,volume,taker_buy_base_asset_volume\n" + rows(str, taker=True), True),
    "binance header, taker_buy_volume, timestamp": (
        "timestamp,open,high,low,close,volume,taker_buy_volume\n" + rows(str, taker=True), True),
    "binance header, taker_base_volume, ISO date": (
        "date,open,high,low,close,volume,taker_base_volume\n"
        + rows(lambda t: datetime.fromtimestamp(t / 1000, UTC).isoformat(), taker=True), True),
    "binance header spelled with capitals and spaces": (
        "Open time,Open,High,Low,Close,Volume,Close time\n" + rows(str, extra=["0"]), False),
    "bybit export, newest first": (
        "startTime,open,high,low,close,volume,turnover\n" + rows(str, extra=["999.5"], newest_first=True),
        False),
    "generic": ("timestamp,open,high,low,close,volume\n" + rows(str), False),
    "generic with semicolons": ("timestamp;open;high;low;close;volume\n" + rows(str, sep=";"), False),
    "headerless binance klines, ms": ("".join(binance_row(T0 + i * FIVE_MIN) + "\n" for i in range(3)), True),
    "headerless binance klines, µs": (
        "".join(binance_row(T0 + i * FIVE_MIN, 1000) + "\n" for i in range(3)), True),
    "headerless six columns": (rows(str), False),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_reader_reads_every_layout_into_the_same_candles(tmp_path, layout):
    text, has_taker = LAYOUTS[layout]
    loaded = read_candles(write(tmp_path, text))
    c = loaded.candles
    assert c.ts.tolist() == [T0, T0 + FIVE_MIN, T0 + 2 * FIVE_MIN]
    assert c.close.tolist() == [b[3] for b in BARS] and c.volume.tolist() == [b[4] for b in BARS]
    assert (c.taker_buy_volume is not None) == has_taker
    if c.taker_buy_volume is not None:
        assert c.taker_buy_volume.tolist() == TAKER
    assert loaded.interval == "5m" and loaded.gaps == []


STAMPS = {
    "ISO with Z": lambda t: datetime.fromtimestamp(t / 1000, UTC).isoformat().replace("+00:00", "Z"),
    "ISO with +00:00": lambda t: datetime.fromtimestamp(t / 1000, UTC).isoformat(),
    "ISO with fractional seconds": lambda t: datetime.fromtimestamp(t / 1000, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%f") + "Z",
    "ISO with another offset": lambda t: datetime.fromtimestamp(t / 1000 + 3600, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S+01:00"),
    "naive UTC string": lambda t: datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
    "naive string ending UTC": lambda t: datetime.fromtimestamp(t / 1000, UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC"),
    "epoch seconds": lambda t: str(t // 1000),
    "fractional epoch seconds": lambda t: f"{t / 1000:.3f}",
    "epoch ms": str,
    "epoch µs": lambda t: str(t * 1000),
    "epoch ns": lambda t: str(t * 1_000_000),
}


@pytest.mark.parametrize("form", STAMPS)
def test_reader_reads_every_timestamp_form_as_epoch_ms(tmp_path, form):
    loaded = read_candles(write(tmp_path, "timestamp,open,high,low,close,volume\n" + rows(STAMPS[form])))
    assert loaded.candles.ts.tolist() == [T0, T0 + FIVE_MIN, T0 + 2 * FIVE_MIN]
    assert loaded.candles.ts.dtype == np.int64


def test_reader_accepts_ms_and_µs_mixed_in_one_file(tmp_path):
    # Binance spot files switched from ms to µs on 2025-01-01; a concatenation holds both.
    text = binance_row(T0) + "\n" + binance_row(T0 + FIVE_MIN, 1000) + "\n" + binance_row(T0 + 2 * FIVE_MIN)
    assert read_candles(write(tmp_path, text)).candles.ts.tolist() == [T0, T0 + FIVE_MIN, T0 + 2 * FIVE_MIN]


@pytest.mark.parametrize("newest_first", [False, True])
def test_reader_returns_oldest_first_whatever_the_file_order(tmp_path, newest_first):
    text = "timestamp,open,high,low,close,volume\n" + rows(str, newest_first=newest_first)
    c = read_candles(write(tmp_path, text)).candles
    assert c.ts.tolist() == [T0, T0 + FIVE_MIN, T0 + 2 * FIVE_MIN]
    assert c.open.tolist() == [b[0] for b in BARS]  # every column turned with the timestamps


def test_reader_reports_missing_bars_as_gaps_instead_of_bridging_them(tmp_path):
    text = "timestamp,open,high,low,close,volume\n" + "".join(
        f"{T0 + i * FIVE_MIN},10,11,9,10,1\n" for i in (0, 1, 2, 5, 6, 8))
    loaded = read_candles(write(tmp_path, text))
    assert len(loaded.candles) == 6 and loaded.interval == "5m"
    assert loaded.gaps == [Gap(T0 + 2 * FIVE_MIN, T0 + 5 * FIVE_MIN, 2),
                           Gap(T0 + 6 * FIVE_MIN, T0 + 8 * FIVE_MIN, 1)]


@pytest.mark.parametrize(
    ("step_ms", "name"),
    [(60_000, "1m"), (900_000, "15m"), (3_600_000, "1h"), (14_400_000, "4h"), (86_400_000, "1d"),
     (604_800_000, "1w"), (31 * 86_400_000, "1M"), (1_000, "1s"), (0, "")],
)
def test_interval_is_named_from_the_step(step_ms, name):
    assert interval_name(step_ms) == name


@pytest.mark.parametrize(
    ("file", "symbol"),
    [("binance_ETHUSDT_5m_20241201.csv", "ETHUSDT"), ("data/btcusdt-quotes.csv", "BTCUSDT"),
     ("BTC-USDT_1h.csv", "BTCUSDT"), ("bitcoin.csv", ""), ("market.csv", "")],
)
def test_symbol_is_guessed_from_the_file_name(file, symbol):
    assert guess_symbol(file) == symbol


HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = f"{T0},10,11,9,10,1\n"
NEXT = f"{T0 + FIVE_MIN},10,11,9,10,1\n"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (HEADER + GOOD + f"{T0 + FIVE_MIN},10,11,9,abc,1\n", 3, "close 'abc' is not a number"),
        (HEADER + GOOD + f"{T0 + FIVE_MIN},10,11,9,nan,1\n", 3, "close 'nan' is not a finite number"),
        ("timestamp,open,high,low,close\n" + GOOD, 1, "missing column 'volume'"),
        (HEADER + GOOD + f"{T0 + FIVE_MIN},10,11,9,10\n", 3, "has 5 fields"),
        (HEADER + GOOD + f"{T0 + FIVE_MIN},10,10.5,9,11,1\n", 3,
         "high 10.5 is below max(open 10.0, close 11.0)"),
        (HEADER + GOOD + f"{T0 + FIVE_MIN},10,11,10.2,10.5,1\n", 3, "low 10.2 is above min(open 10.0"),
        (HEADER + GOOD + f"{T0 + FIVE_MIN},0,11,9,10,1\n", 3, "open 0.0 is not a positive price"),
        (HEADER + GOOD + f"{T0 + FIVE_MIN},10,11,-9,10,1\n", 3, "low -9.0 is not a positive price"),
        (HEADER + GOOD + f"{T0 + FIVE_MIN},10,11,9,10,-1\n", 3, "volume -1.0 is negative"),
        (HEADER + GOOD + NEXT + NEXT, 4, "repeats the timestamp of line 3"),
        (HEADER + GOOD + f"{T0 + 2 * FIVE_MIN},10,11,9,10,1\n" + NEXT + f"{T0 + 3 * FIVE_MIN},10,11,9,10,1\n",
         4, "is earlier than line 3"),
        # Oldest row last, so the file reads as newest first: line 3 now follows line 4.
        (HEADER + f"{T0 + 2 * FIVE_MIN},10,11,9,10,1\n" + NEXT + NEXT, 3, "repeats the timestamp of line 4"),
        (HEADER + GOOD + "\n\n" + "yesterday,10,11,9,10,1\n", 5, "timestamp 'yesterday' is neither"),
        (HEADER + GOOD + f"{T0 / 1000 + 300},10,11,9,10,1\n" + "nan,10,11,9,10,1\n", 4, "timestamp 'nan' is"),
        ("date,open,high,low,close,volume\n2024-01-01 00:00:00,10,11,9,10,1\nsoon,10,11,9,10,1\n", 3,
         "timestamp 'soon' is neither"),
        (HEADER, 1, "has a header but no candle rows"),
        ("", None, "is empty"),
        ("\n\n", None, "is empty"),
    ],
)
def test_reader_rejects_a_bad_file_naming_file_line_and_problem(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(CandleFileError) as e:
        read_candles(path)
    assert (e.value.path, e.value.line) == (str(path), line)
    assert words in e.value.problem
    assert str(path) in str(e.value) and (line is None or f"line {line}:" in str(e.value))


def test_a_synthetic_market_written_by_tiered_market_reads_back(tmp_path):
    m = simulate(500, seed=3)
    path = tmp_path / "market.csv"
    write_synthetic_csv(m, str(path))
    loaded = read_candles(path)
    assert np.array_equal(loaded.candles.ts, m.candles.ts)
    assert np.allclose(loaded.candles.close, m.candles.close, rtol=1e-9)
    assert loaded.candles.taker_buy_volume is not None
    assert loaded.interval == "1m" and loaded.gaps == []


REAL_FILES = [
    # file, rows, first bar, last bar, symbol, interval, gaps, has taker-buy volume
    ("binance_spot_BTCUSDT_1h_20220429_20250428.csv", 26_279, "2022-04-29 08:00", "2025-04-28 07:00",
     "BTCUSDT", "1h", [Gap(ms("2023-03-24 12:00"), ms("2023-03-24 14:00"), 1)], False),
    ("binance_ETHUSDT_5m_20241201_20241231_takerbuy.csv", 8_641, "2024-12-01 00:00", "2024-12-31 00:00",
     "ETHUSDT", "5m", [], True),
]


@pytest.mark.parametrize(("file", "n", "first", "last", "symbol", "interval", "gaps", "taker"), REAL_FILES)
def test_real_exchange_files_load_with_their_row_counts_and_ends(file, n, first, last, symbol, interval,
                                                                  gaps, taker):
    path = DATA / file
    if not path.is_file():
        pytest.skip(f"real data not present at {path}")
    loaded = read_candles(path)
    c = loaded.candles
    assert len(c) == n
    assert (int(c.ts[0]), int(c.ts[-1])) == (ms(first), ms(last))
    assert (loaded.symbol, loaded.interval, loaded.gaps) == (symbol, interval, gaps)
    assert (c.taker_buy_volume is not None) == taker
    c.validate()
