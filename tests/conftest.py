"""Fixtures shared by the whole suite.

`quick_store` trains one real family with `tiered train --quick --tier-map fixed` into a temporary
store, once per test session; tests that need a family read it (and copy it when they want to damage
it). The fixed map sends every regime to a different tier, which the routing and fallback tests need;
the learned map is tested on families of its own (tests/training).
`store_copy` is a private copy of it to damage.
`client_for(store, **settings)` makes a real app over a store (`with client_for(...) as client:` runs
the lifespan), with `admin_token` configured. `free_port()` finds a loopback port for a server.
"""

from __future__ import annotations

import shutil
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# starlette prefers the httpx2 package for its TestClient and warns once, at import, when it finds
# httpx instead; the suite turns warnings into errors, so the import happens here, warned or not.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*install `httpx2` instead", category=UserWarning)
    from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from cli import main
from models.store import CURRENT, read_current

ADMIN_TOKEN = "a-test-admin-token-0123456789"
ClientFor = Callable[..., TestClient]


@pytest.fixture(scope="session")
def quick_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("store")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--quick", "--seed", "0", "--tier-map", "fixed", "--out", str(store)])
    assert exit_info.value.code == 0, f"tiered train --quick exited with {exit_info.value.code}"
    assert (store / "CURRENT").is_file(), f"tiered train --quick wrote no CURRENT into {store}"
    return store


@pytest.fixture(scope="session")
def admin_token() -> str:
    return ADMIN_TOKEN


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """`free_port()`: a TCP port on 127.0.0.1 that nothing listens on now."""
    return _free_port


@pytest.fixture(scope="session")
def client_for() -> ClientFor:
    """`with client_for(store, **settings) as client:` runs a fresh app, lifespan included."""
    def make(store: Path, raise_server_exceptions: bool = True, **overrides: Any) -> TestClient:
        values: dict[str, Any] = {"models_dir": store, "admin_token": ADMIN_TOKEN, "cors_origins": [],
                                  **overrides}
        return TestClient(create_app(Settings(**values)), raise_server_exceptions=raise_server_exceptions)
    return make


def copy_store(source: Path, store: Path) -> Path:
    """Copies the family CURRENT points at in `source`, and CURRENT, into `store`; its family directory."""
    family_id = read_current(source)
    store.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / family_id, store / family_id)
    shutil.copyfile(source / CURRENT, store / CURRENT)
    return store / family_id


@pytest.fixture()
def store_copy(quick_store: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the quick store to damage: (store, family directory)."""
    store = tmp_path / "store"
    return store, copy_store(quick_store, store)
