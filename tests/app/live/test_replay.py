"""`tiered serve --feed replay:FILE:SPEED`, as the README's demo runs it: the command follows a candle file
written by `tiered market`, streams a prediction for every bar after the window's history, says when the
file has ended, and ends open streams on SIGTERM; a feed it cannot follow stops it with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from cli import main
from tests.app.test_settings_and_cli import free_port, wait_ready

TIERED = Path(sys.executable).parent / "tiered"
BARS, WINDOW_BARS = 160, 60


def sse(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The events of an SSE stream as they arrive, each as its fields, until the stream ends."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            yield fields
            fields = {}


def symbols(base: str, wanted: Callable[[dict[str, Any]], bool], seconds: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        [found] = httpx.get(f"{base}/symbols", timeout=5.0).json()["symbols"]
        if wanted(found):
            return found
        time.sleep(0.05)
    raise AssertionError(f"/symbols never showed what was wanted; last: {found}")


@pytest.mark.slow
def test_serve_follows_a_replayed_file_and_streams_every_bar(quick_store, tmp_path, clean_env):
    subprocess.run([str(TIERED), "market", "--bars", str(BARS), "--seed", "7", "--out",
                    str(tmp_path / "market.csv")], check=True, capture_output=True, timeout=60)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TIERED_LIVE_WINDOW_BARS": str(WINDOW_BARS), "TIERED_LOG_LEVEL": "warning"}
    process = subprocess.Popen([str(TIERED), "serve", "--models", str(quick_store), "--port", str(port),
                                "--feed", f"replay:{tmp_path / 'market.csv'}:20"],
                               env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    events: list[dict[str, str]] = []
    try:
        wait_ready(f"{base}/healthz", process)
        # From event id 0: every bar kept, including any the replay handed out before this connected.
        with httpx.stream("GET", f"{base}/symbols/market/events", params={"last_event_id": "0"},
                          timeout=30.0) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            stream = sse(r)
            while sum("id" in e for e in events) < BARS - WINDOW_BARS:
                events.append(next(stream))
            summary = symbols(base, lambda s: s["state"]["status"] == "stopped")
            ready = httpx.get(f"{base}/readyz", timeout=5.0).json()
            process.send_signal(signal.SIGTERM)  # the open stream ends with `end`
            events += list(stream)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, stderr[-2000:]
    bars = [(int(e["id"]), json.loads(e["data"])) for e in events if "id" in e]
    ids = [i for i, _ in bars]
    assert len(ids) == BARS - WINDOW_BARS and np.all(np.diff(ids) == 60_000), "every bar after the history"
    for _, body in bars:
        assert body["symbol"] == "market" and isinstance(body["prediction"], float) and body["tier"]
        assert "order_flow" not in body["regime"]["estimated"], "the file has taker-buy volume"
    assert events[-1]["event"] == "end" and "stopping" in json.loads(events[-1]["data"])["reason"]
    assert summary["state"]["reason"].startswith("end of file") and summary["last_bar_ts"] == ids[-1]
    assert summary["counters"]["bars"] == BARS - WINDOW_BARS and summary["window_bars"] == WINDOW_BARS
    assert ready["status"] == "degraded" and ready["feeds"]["market"]["status"] == "stopped"


@pytest.mark.parametrize(("feed", "named"), [
    ("bybit:linear:BTCUSDT", "CATEGORY:SYMBOL:INTERVAL"),
    ("kraken:BTCUSD", "kraken"),
    ("replay:no-such-file.csv:10", "no-such-file.csv"),
    ("replay:{csv}:fast", "'fast'"),
])
def test_serve_stops_with_one_line_naming_a_feed_it_cannot_follow(quick_store, tmp_path, capsys, clean_env,
                                                                  feed, named):
    csv = tmp_path / "m.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n1704067200000,1,1,1,1,1\n1704067260000,1,1,1,1,1\n")
    with pytest.raises(SystemExit) as e:
        main(["serve", "--models", str(quick_store), "--feed", feed.format(csv=csv)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("tiered serve: --feed:") and named in err, err


def test_serve_refuses_two_feeds_on_one_symbol_unless_named(quick_store, capsys, clean_env):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--models", str(quick_store), "--feed", "bybit:linear:BTCUSDT:1",
              "--feed", "bybit:spot:BTCUSDT:1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "both follow BTCUSDT" in err and "--feed BTCUSDT-2=bybit:spot" in err
