"""Fixtures shared by the whole suite.

`quick_store` trains one real family with `tiered train --quick` into a temporary store, once per
test session; tests that need a family read it (and copy it when they want to damage it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import main


@pytest.fixture(scope="session")
def quick_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("store")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--quick", "--seed", "0", "--out", str(store)])
    assert exit_info.value.code == 0, f"tiered train --quick exited with {exit_info.value.code}"
    assert (store / "CURRENT").is_file(), f"tiered train --quick wrote no CURRENT into {store}"
    return store
