"""Fixtures for the service's tests: the real app over the quick family, request bodies cut from the
market the family was trained on, and damaged copies of the family.

Every client runs the app's lifespan (`with TestClient(create_app(settings)) as client`), so the
family is loaded, verified and warmed up exactly as in production.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient  # tests/conftest.py imported it first, past its warning

from market import targets
from market.dataset import Dataset, build
from market.regime import REGIMES, Thresholds, detect
from market.sources import synthetic_source
from market.synthetic import SyntheticMarket, simulate
from models.store import MANIFEST, read_current, set_current

Body = dict[str, Any]
MakeBody = Callable[..., Body]
ClientFor = Callable[..., TestClient]  # the fixture lives in tests/conftest.py


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TIERED_* variable from the caller's environment reaches the settings."""
    for name in [n for n in os.environ if n.startswith("TIERED_")]:
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture(scope="module")
def client(quick_store: Path, client_for: ClientFor) -> Iterator[TestClient]:
    """One app over the quick family, shared by a module's read-only tests."""
    with client_for(quick_store) as c:
        yield c


@pytest.fixture(scope="session")
def manifest_data(quick_store: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((quick_store / read_current(quick_store) / MANIFEST).read_text())
    return data


@pytest.fixture(scope="session")
def market(manifest_data: dict[str, Any]) -> SyntheticMarket:
    """The synthetic market the quick family was trained on, rebuilt from the manifest's source."""
    source = manifest_data["source"]
    return simulate(int(source["rows"]), int(source["seed"]))


@pytest.fixture(scope="session")
def dataset(manifest_data: dict[str, Any]) -> Dataset:
    source, target = manifest_data["source"], manifest_data["target"]
    rebuilt = synthetic_source(int(source["rows"]), int(source["seed"]))
    assert rebuilt.describe()["sha256"] == source["sha256"], "the rebuilt source is not the trained one"
    return build(rebuilt, targets.get(target["name"], target["horizon"]))


@pytest.fixture(scope="session")
def output_name(manifest_data: dict[str, Any]) -> str:
    """The family's output tensor: named after its target."""
    name: str = manifest_data["output"]["name"]
    return name


@pytest.fixture(scope="session")
def make_body(market: SyntheticMarket) -> MakeBody:
    """A /predict body: the n candles ending at bar `end` (inclusive), with their taker-buy volume as the
    training set had it, and, optionally, the book there."""
    def make(end: int = 1000, n: int = 48, book: bool = True, **extra: Any) -> Body:
        c = market.candles
        rows = [{"ts": int(c.ts[t]), "open": float(c.open[t]), "high": float(c.high[t]),
                 "low": float(c.low[t]), "close": float(c.close[t]), "volume": float(c.volume[t]),
                 "taker_buy_volume": float(c.taker_buy_volume[t])}
                for t in range(end - n + 1, end + 1)]
        body: Body = {"symbol": "SYNTH", "candles": rows, **extra}
        if book:
            body["book"] = {"bids": [[float(market.bid[end]), float(market.bid_size[end])]],
                            "asks": [[float(market.ask[end]), float(market.ask_size[end])]]}
        return body
    return make


def edit_manifest(family_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = family_dir / MANIFEST
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="session")
def manifest_editor() -> Callable[[Path, Callable[[dict[str, Any]], None]], None]:
    return edit_manifest


def new_family(family_dir: Path, family_id: str) -> Path:
    """A copy of the family under a new id, made CURRENT."""
    copy = family_dir.parent / family_id
    shutil.copytree(family_dir, copy)

    def rename(m: dict[str, Any]) -> None:
        m["family_id"] = family_id
    edit_manifest(copy, rename)
    set_current(family_dir.parent, family_id)
    return copy


@pytest.fixture(scope="session")
def family_maker() -> Callable[[Path, str], Path]:
    """`family_maker(family_dir, new_id)`: a copy of the family under a new id, made CURRENT."""
    return new_family


@pytest.fixture(scope="session")
def regime_ends(dataset: Dataset, manifest_data: dict[str, Any]) -> dict[str, int]:
    """For each regime, the end bar of one training window the detector puts in it."""
    found = detect(dataset.train.signals, Thresholds.from_dict(manifest_data["regime"]["thresholds"]))
    out = {}
    for k, name in enumerate(REGIMES):
        rows = np.flatnonzero(found == k)
        if rows.size:
            out[name] = int(dataset.train.ends[rows[rows.size // 2]])
    return out
