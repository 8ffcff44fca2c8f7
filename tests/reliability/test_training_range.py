"""Issue 13, point 5, against the real server: absurd windows (one bad tick with its high × 1e6, twelve
highs × 1e30) were answered 200 with a predicted log return of −9,485 and −4.5e28 and nothing to say
they were absurd. Now every answer says whether its window lies in the family's training range and
names the features that do not; with TIERED_OUT_OF_RANGE=refuse such a window is a 422 naming them,
and /metrics counts them per tier, summed over every worker.

tests/app/test_training_range.py pins the details (manifest, batches, margin, the Open Inference Protocol).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from market.features import FEATURE_NAMES

pytestmark = pytest.mark.slow

REQUESTS = 10  # refused requests spread over two workers


def spoiled(body: dict[str, Any], bars: int, factor: float) -> dict[str, Any]:
    """The window with the high of its last `bars` candles × factor: valid candles, absurd values."""
    body = copy.deepcopy(body)
    for candle in body["candles"][-bars:]:
        candle["high"] *= factor
    return body


@pytest.fixture(scope="module")
def calm(requests_by_regime: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return requests_by_regime["calm"][0]


@pytest.fixture(scope="module")
def flagging(quick_store: Path, serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with serve(quick_store, tmp_path_factory.mktemp("range") / "server.log") as server:
        yield server


def test_a_window_like_the_training_data_is_answered_as_inside(flagging: Any, calm: dict[str, Any]) -> None:
    r = httpx.post(f"{flagging.url}/predict", json=calm, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["out_of_range"] == {"inside": True, "out": []}


@pytest.mark.parametrize(("bars", "factor"), [(1, 1e6), (12, 1e30)], ids=["one tick x1e6", "twelve x1e30"])
def test_an_absurd_window_is_answered_with_the_features_out_of_range(flagging: Any, calm: dict[str, Any],
                                                                     bars: int, factor: float) -> None:
    r = httpx.post(f"{flagging.url}/predict", json=spoiled(calm, bars, factor), timeout=10)
    assert r.status_code == 200, r.text
    flag = r.json()["out_of_range"]
    assert flag["inside"] is False
    assert {"logrange_lag0", "volatility"} <= set(flag["out"]) <= set(FEATURE_NAMES)


def test_refusing_two_workers_answer_422_naming_the_features_and_count_them(
        quick_store: Path, serve: Any, tmp_path: Path, calm: dict[str, Any]) -> None:
    with serve(quick_store, tmp_path / "server.log", TIERED_WORKERS="2", TIERED_OUT_OF_RANGE="refuse") as s, \
            httpx.Client(base_url=s.url, timeout=10) as client:
        assert client.post("/predict", json=calm).status_code == 200
        answers = []
        for _ in range(REQUESTS):  # a new connection each: the supervisor's socket spreads them over workers
            answers.append(httpx.post(f"{s.url}/predict", json=spoiled(calm, 1, 1e6), timeout=10))
        tier = client.post("/regime", json=spoiled(calm, 1, 1e6)).json()["tier"]
        metrics = client.get("/metrics").text
    assert {a.status_code for a in answers} == {422}, answers[0].text
    error = answers[0].json()["error"]
    assert error["code"] == "out_of_training_range" and error["field"] == "candles"
    assert "logrange_lag0 = " in error["message"], error["message"]
    assert f'tiered_out_of_range_total{{action="refused",tier="{tier}"}} {float(REQUESTS)}' in metrics
