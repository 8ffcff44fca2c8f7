"""The Bybit v5 client against replayed bodies: paging, open-candle drop, retries, errors, `tiered fetch`.

Bodies copy the recorded format in shared/data/bybit (string numbers, newest first, retCode and time
as strings in the ccxt captures and as integers from the real API); the transport is
`httpx.MockTransport`, so nothing here touches the network.
"""

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

import market.bybit
from cli import main
from market.bybit import BybitClient, bybit_interval, newest_is_open
from market.csvfile import read_candles
from market.errors import ExchangeError

RECORDED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "bybit"
HOUR, FIVE_MIN = 3_600_000, 300_000
DEC_1 = 1_733_011_200_000  # 2024-12-01T00:00:00Z

# Exactly the recorded ccxt capture ccxt_bybit_fetchOHLCV_linear_BTCUSDT_1h.httpResponse.json.
KLINE_BODY = {
    "retCode": "0", "retMsg": "OK",
    "result": {"symbol": "BTCUSDT", "category": "linear", "list": [
        ["1706637600000", "43376.1", "43474.1", "43264.8", "43352.8", "1575.305", "68345898.1407"],
        ["1706634000000", "43488", "43579.5", "43286.8", "43376.1", "3199.431", "138878389.2519"],
        ["1706630400000", "43350.7", "43492.5", "43204.5", "43488", "1341.261", "58117391.4117"],
    ]},
    "retExtInfo": {}, "time": "1706803708087",
}
# Exactly the recorded capture ccxt_bybit_fetchOrderBook_linear_BTCUSDT_limit2.httpResponse.json.
BOOK_BODY = {
    "retCode": "0", "retMsg": "OK",
    "result": {"s": "BTCUSDT", "b": [["42544.7", "172.404"], ["42544.5", "88.856"]],
               "a": [["42548", "108.998"], ["42548.2", "75.008"]],
               "ts": "1706803948569", "u": "342690", "seq": "429272667"},
    "retExtInfo": {}, "time": "1706803949068",
}


@pytest.mark.parametrize(("file", "body"), [
    ("ccxt_bybit_fetchOHLCV_linear_BTCUSDT_1h.httpResponse.json", KLINE_BODY),
    ("ccxt_bybit_fetchOrderBook_linear_BTCUSDT_limit2.httpResponse.json", BOOK_BODY),
])
def test_inline_bodies_are_the_recorded_captures(file, body):
    path = RECORDED / file
    if not path.is_file():
        pytest.skip(f"recorded bodies not present at {path}")
    assert json.loads(path.read_text()) == body


def kline_rows(first_ts: int, count: int, step: int) -> list[list[str]]:
    """`count` bars oldest first as the API writes them: [startTime, O, H, L, C, volume, turnover]."""
    rows = []
    for i in range(count):
        close = 100 + np.sin(i / 7) * 3
        o, c = f"{close - 0.2:.2f}", f"{close:.2f}"
        rows.append([str(first_ts + i * step), o, f"{close + 0.5:.2f}", f"{close - 0.7:.2f}", c,
                     f"{10 + i % 5}.125", "1234.5"])
    return rows


class FakeKlines:
    """Answers /v5/market/kline like the live API: bars in [start, end], newest first, at most `limit`."""

    def __init__(self, rows: list[list[str]], server_time: int | str, ret_code: object = 0) -> None:
        self.rows, self.server_time, self.ret_code = rows, server_time, ret_code
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        q = request.url.params
        start, end, limit = int(q["start"]), int(q["end"]), int(q["limit"])
        page = [r for r in reversed(self.rows) if start <= int(r[0]) <= end][:limit]
        return httpx.Response(200, json={
            "retCode": self.ret_code, "retMsg": "OK",
            "result": {"symbol": q["symbol"], "category": q["category"], "list": page},
            "retExtInfo": {}, "time": self.server_time})


class Replay:
    """Answers each request with the next of a fixed list of responses."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0)


def client(handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float]) -> BybitClient:
    return BybitClient(transport=httpx.MockTransport(handler), sleep=sleeps.append)


def error_body(code: object, message: str) -> dict:
    return {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": 1706803708087}


def test_a_recorded_kline_body_parses_into_candles_oldest_first():
    replay = Replay(httpx.Response(200, json=KLINE_BODY))
    with client(replay, []) as bybit:
        c = bybit.klines("BTCUSDT", "60", 1706630400000, 1706637600000)
    assert c.ts.tolist() == [1706630400000, 1706634000000, 1706637600000]
    assert c.open.tolist() == [43350.7, 43488.0, 43376.1]
    assert c.close.tolist() == [43488.0, 43376.1, 43352.8] and c.volume[0] == 1341.261
    assert c.taker_buy_volume is None
    q = replay.requests[0].url.params
    assert (q["category"], q["symbol"], q["interval"], q["limit"]) == ("linear", "BTCUSDT", "60", "1000")


@pytest.mark.parametrize("ret_code", ["0", 0])
def test_paging_across_three_pages_yields_one_gap_free_series(ret_code):
    rows = kline_rows(DEC_1, 2500, FIVE_MIN)
    fake = FakeKlines(rows, server_time=DEC_1 + 3000 * FIVE_MIN, ret_code=ret_code)
    with client(fake, []) as bybit:
        c = bybit.klines("BTCUSDT", "5", DEC_1, DEC_1 + 2499 * FIVE_MIN)
    assert len(c) == 2500 and int(c.ts[0]) == DEC_1
    assert (np.diff(c.ts) == FIVE_MIN).all()
    assert len(fake.requests) == 3
    ends = [int(r.url.params["end"]) for r in fake.requests]
    assert ends[1:] == [DEC_1 + 1500 * FIVE_MIN - 1, DEC_1 + 500 * FIVE_MIN - 1]  # oldest startTime - 1


def test_klines_async_pages_in_a_worker_thread_and_gives_the_same_series():
    fake = FakeKlines(kline_rows(DEC_1, 1500, FIVE_MIN), server_time=DEC_1 + 3000 * FIVE_MIN)
    threads: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        threads.add(threading.current_thread().name)
        return fake(request)

    async def both() -> tuple:
        with client(handler, []) as bybit:
            later = await bybit.klines_async("BTCUSDT", "5", DEC_1, DEC_1 + 1499 * FIVE_MIN)
            return later, bybit.klines("BTCUSDT", "5", DEC_1, DEC_1 + 1499 * FIVE_MIN)

    later, now = asyncio.run(both())
    assert np.array_equal(later.ts, now.ts) and np.array_equal(later.close, now.close) and len(later) == 1500
    assert len(threads) == 2 and threading.main_thread().name in threads  # one call ran off the loop's thread


def test_overlapping_pages_are_deduplicated():
    class Overlapping(FakeKlines):  # a server that also returns the bar just after `end`
        def __call__(self, request):
            params = dict(request.url.params)
            params["end"] = str(int(params["end"]) + FIVE_MIN)
            return super().__call__(httpx.Request("GET", request.url.copy_with(params=params)))

    fake = Overlapping(kline_rows(DEC_1, 1500, FIVE_MIN), server_time=DEC_1 + 3000 * FIVE_MIN)
    with client(fake, []) as bybit:
        c = bybit.klines("BTCUSDT", "5", DEC_1, DEC_1 + 1499 * FIVE_MIN)
    assert len(c) == 1500 and (np.diff(c.ts) == FIVE_MIN).all()


def test_the_still_open_candle_is_dropped():
    rows = kline_rows(DEC_1, 3, HOUR)
    now = DEC_1 + 2 * HOUR + 25 * 60_000  # 25 minutes into the third hour
    with client(FakeKlines(rows, server_time=str(now)), []) as bybit:
        c = bybit.klines("BTCUSDT", "60", DEC_1, DEC_1 + 2 * HOUR)
    assert c.ts.tolist() == [DEC_1, DEC_1 + HOUR]


def test_rate_limit_10006_without_headers_is_retried_with_backoff_then_succeeds():
    replay = Replay(httpx.Response(200, json=error_body(10006, "Too many visits")),
                    httpx.Response(200, json=error_body("10006", "Too many visits!")),
                    httpx.Response(200, json=KLINE_BODY))
    sleeps: list[float] = []
    with client(replay, sleeps) as bybit:
        c = bybit.klines("BTCUSDT", "60", 1706630400000, 1706637600000)
    assert len(c) == 3 and len(replay.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_rate_limit_wait_follows_the_reset_header_when_present():
    limited = httpx.Response(200, json=error_body(10006, "Too many visits"),
                             headers={"X-Bapi-Limit-Reset-Timestamp": str(1706803708087 + 1500)})
    sleeps: list[float] = []
    with client(Replay(limited, httpx.Response(200, json=KLINE_BODY)), sleeps) as bybit:
        bybit.klines("BTCUSDT", "60", 1706630400000, 1706637600000)
    assert sleeps == [1.5]


@pytest.mark.parametrize("code", [10016, 10429])
def test_server_busy_codes_are_retried(code):
    sleeps: list[float] = []
    replay = Replay(httpx.Response(200, json=error_body(code, "busy")), httpx.Response(200, json=KLINE_BODY))
    with client(replay, sleeps) as bybit:
        assert len(bybit.klines("BTCUSDT", "60", 1706630400000, 1706637600000)) == 3
    assert sleeps == [0.5]


def test_a_persistent_parameter_error_raises_exchange_error_with_code_and_message():
    replay = Replay(httpx.Response(200, json=error_body("10001", "Not supported symbols")))
    sleeps: list[float] = []
    with client(replay, sleeps) as bybit, pytest.raises(ExchangeError) as e:
        bybit.klines("NOPEUSDT", "60", 1706630400000, 1706637600000)
    assert (e.value.code, e.value.message, e.value.endpoint) == (10001, "Not supported symbols",
                                                                 "/v5/market/kline")
    assert "10001" in str(e.value) and len(replay.requests) == 1 and sleeps == []


def test_retries_give_up_after_max_retries_naming_the_code():
    replay = Replay(*[httpx.Response(200, json=error_body(10006, "Too many visits"))] * 3)
    sleeps: list[float] = []
    bybit = BybitClient(transport=httpx.MockTransport(replay), sleep=sleeps.append, max_retries=2)
    with bybit, pytest.raises(ExchangeError) as e:
        bybit.orderbook("BTCUSDT")
    assert e.value.code == 10006 and "gave up after 3 tries" in str(e.value)
    assert sleeps == [0.5, 1.0]


@pytest.mark.parametrize("status", [429, 502])
def test_http_429_and_5xx_are_retried(status):
    sleeps: list[float] = []
    replay = Replay(httpx.Response(status, text="slow down"), httpx.Response(200, json=KLINE_BODY))
    with client(replay, sleeps) as bybit:
        assert len(bybit.klines("BTCUSDT", "60", 1706630400000, 1706637600000)) == 3
    assert sleeps == [0.5]


def test_http_403_ip_ban_pauses_long_before_one_more_try():
    sleeps: list[float] = []
    replay = Replay(httpx.Response(403, text="access too frequent"), httpx.Response(200, json=BOOK_BODY))
    with client(replay, sleeps) as bybit:
        bybit.orderbook("BTCUSDT")
    assert sleeps == [600.0]


def test_a_second_http_403_raises_after_the_single_long_pause():
    sleeps: list[float] = []
    replay = Replay(httpx.Response(403), httpx.Response(403))
    bybit = BybitClient(transport=httpx.MockTransport(replay), sleep=sleeps.append, ban_pause=42.0)
    with bybit, pytest.raises(ExchangeError) as e:
        bybit.orderbook("BTCUSDT")
    assert e.value.code == 403 and sleeps == [42.0]


def test_a_body_that_is_not_json_raises_exchange_error():
    with client(Replay(httpx.Response(200, text="<html>maintenance</html>")), []) as bybit, \
            pytest.raises(ExchangeError, match="not JSON"):
        bybit.orderbook("BTCUSDT")


@pytest.mark.parametrize("ret_code", ["0", 0])
def test_orderbook_parses_into_a_book_with_best_bid_below_best_ask(ret_code):
    replay = Replay(httpx.Response(200, json={**BOOK_BODY, "retCode": ret_code}))
    with client(replay, []) as bybit:
        book = bybit.orderbook("BTCUSDT", limit=2)
    assert book.bids[0].tolist() == [42544.7, 172.404] and book.asks[0].tolist() == [42548.0, 108.998]
    assert book.bids[0, 0] < book.asks[0, 0] and book.bids.shape == (2, 2)
    assert book.ts == 1706803948569
    assert replay.requests[0].url.params["limit"] == "2"


@pytest.mark.parametrize(("given", "sent"), [("5", "5"), ("D", "D"), ("5m", "5"), ("1h", "60"),
                                             ("4h", "240"), ("1d", "D"), ("1w", "W"), ("1M", "M")])
def test_intervals_are_sent_in_bybits_spelling(given, sent):
    assert bybit_interval(given) == sent


@pytest.mark.parametrize("bad", ["7", "2d", "5 min", ""])
def test_unknown_intervals_are_refused_with_the_valid_list(bad):
    with pytest.raises(ValueError, match="1, 3, 5, 15"):
        bybit_interval(bad)


def test_tiered_fetch_writes_a_csv_that_the_reader_reads_back(tmp_path, monkeypatch, capsys):
    rows = kline_rows(DEC_1 - 100 * FIVE_MIN, 500, FIVE_MIN)  # more history than asked for
    fake = FakeKlines(rows, server_time=DEC_1 + 500 * FIVE_MIN)
    monkeypatch.setattr(market.bybit, "default_client", lambda: client(fake, []))
    out = tmp_path / "BTCUSDT_5m.csv"
    with pytest.raises(SystemExit) as exit_info:
        main(["fetch", "--symbol", "BTCUSDT", "--interval", "5", "--start", "2024-12-01",
              "--end", "2024-12-02", "--out", str(out)])
    assert exit_info.value.code == 0
    assert "wrote 288 closed candles" in capsys.readouterr().out
    loaded = read_candles(out)
    assert len(loaded.candles) == 288 and loaded.gaps == []
    assert (int(loaded.candles.ts[0]), int(loaded.candles.ts[-1])) == (DEC_1, DEC_1 + 287 * FIVE_MIN)
    assert (loaded.symbol, loaded.interval) == ("BTCUSDT", "5m")
    assert loaded.candles.close[0] == float(rows[100][4])
    assert not list(tmp_path.glob("*.part"))


def test_tiered_fetch_reports_an_exchange_error_and_exits_2(tmp_path, monkeypatch, capsys):
    replay = Replay(httpx.Response(200, json=error_body(10001, "Not supported symbols")))
    monkeypatch.setattr(market.bybit, "default_client", lambda: client(replay, []))
    out = tmp_path / "nope.csv"
    with pytest.raises(SystemExit) as exit_info:
        main(["fetch", "--symbol", "NOPE", "--interval", "5", "--start", "2024-12-01",
              "--end", "2024-12-02", "--out", str(out)])
    assert exit_info.value.code == 2
    assert "retCode 10001: Not supported symbols" in capsys.readouterr().err
    assert not out.exists()


def test_a_network_failure_is_retried():
    calls: list[httpx.Request] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("connection reset", request=request)
        return httpx.Response(200, json=BOOK_BODY)

    sleeps: list[float] = []
    with client(flaky, sleeps) as bybit:
        assert bybit.orderbook("BTCUSDT").ts == 1706803948569
    assert len(calls) == 2 and sleeps == [0.5]


@pytest.mark.parametrize(("now", "interval", "open_"), [
    (1_000 + 59_999, None, True),  # the newest row started at 1,000 and lasts one step of the list: 60 s
    (1_000 + 60_000, None, False),  # closed exactly now
    (1_000 + 60_000, "60", True),  # an hourly candle is still forming
    (1_000 + 3_600_000, "60", False),
])
def test_the_newest_kline_is_open_until_its_start_plus_one_interval(now, interval, open_):
    starts = np.array([1_000, 1_000 - 60_000, 1_000 - 120_000], dtype=np.float64)  # newest first
    assert newest_is_open(starts, now, interval) is open_


def test_a_gap_in_the_list_does_not_lengthen_the_interval():
    starts = np.array([600_000, 540_000, 300_000, 240_000], dtype=np.float64)  # a gap below the newest two
    assert newest_is_open(starts, 600_000 + 60_000, None) is False


@pytest.mark.parametrize("starts", [[], [5.0], [np.nan, 1.0], [np.inf, 1.0], [-1.0, -2.0]])
def test_a_list_without_usable_start_times_has_no_open_candle(starts):
    assert newest_is_open(np.array(starts, dtype=np.float64), 10**12, None) is False
