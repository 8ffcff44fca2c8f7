"""`tiered train` and where it writes (issue 13, point 7), as real processes: an `--out` that cannot be
written ends the command at once with one line naming the path and the problem (exit 2), not after the
whole training with a 40-line traceback; a write that fails in the middle (a full disk, here a file-size
limit) is one line too, leaving nothing half-written; a new run removes what killed runs of its own left
in the store and the temp directory, and nothing else."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models import scratch
from models.store import CURRENT

TIERED = str(Path(sys.executable).parent / "tiered")
CHECK_SECONDS = 10.0  # the checks import no torch: a second or two even on a busy machine
OLD = time.time() - 2 * scratch.LEGACY_STALE_SECONDS


def train(out: Path, tmp: Path, file_size_limit: int | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = {**os.environ, "TMPDIR": str(tmp)}  # the run's temp directory is the test's
    return subprocess.run([TIERED, "train", "--quick", "--seed", "0", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limit)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_an_out_below_a_file_is_refused_at_once_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    started = time.monotonic()
    done = train(tmp_path / "a-file" / "store", tmp_path, timeout=60)
    assert done.returncode == 2
    assert time.monotonic() - started < CHECK_SECONDS
    expected = f"tiered train: {tmp_path}/a-file/store cannot be created: Not a directory"
    assert one_line(done.stderr) == expected


def test_an_out_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    done = train(tmp_path / "a-file", tmp_path, timeout=60)
    assert done.returncode == 2
    assert one_line(done.stderr).startswith(f"tiered train: {tmp_path}/a-file is not a directory;")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory all the same")
def test_a_read_only_out_is_refused_in_one_line(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o555)
    done = train(store, tmp_path, timeout=60)
    assert done.returncode == 2
    assert one_line(done.stderr) == f"tiered train: {store} cannot be written: Permission denied"


def test_a_store_that_refuses_every_byte_is_refused_before_training(tmp_path: Path) -> None:
    """As a full disk would: the check writes a probe before anything is trained."""
    started = time.monotonic()
    done = train(tmp_path / "store", tmp_path, file_size_limit=0, timeout=60)
    assert done.returncode == 2
    assert time.monotonic() - started < CHECK_SECONDS
    assert one_line(done.stderr) == f"tiered train: {tmp_path}/store cannot be written: File too large"


@pytest.mark.slow
def test_a_write_failing_mid_run_is_one_line_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    store, temp = tmp_path / "store", tmp_path / "temp"
    temp.mkdir()
    done = train(store, temp, file_size_limit=1 << 20)  # the probe passes; M0's 2 MB export does not
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"tiered train: a write failed: File too large; no partial family is left in {store}"
    assert list(store.iterdir()) == []
    assert [p for p in temp.iterdir() if p.name.startswith("tiered-train")] == []  # torch keeps its own


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.slow
def test_a_new_run_removes_the_leftovers_of_killed_runs_and_nothing_else(tmp_path: Path) -> None:
    store, temp = tmp_path / "store", tmp_path / "temp"
    store.mkdir()
    temp.mkdir()
    dead, living = dead_pid(), os.getpid()
    family = "20260101T000000Z-synthetic-return1-s0-abc123"
    leftovers = [store / f".{family}.{dead}.k3j_x9q2", store / f".CURRENT.{dead}.a1b2c3d4",
                 store / f".{family}.q9w8e7r6",  # from before pids were in the names
                 temp / f"tiered-train-{dead}-zz11yy22"]
    kept = [store / f".{family}.{living}.k3j_x9q3",  # its writer is alive
            store / f".CURRENT.{dead}.fresh123",  # too recent: perhaps another machine's, still writing
            store / "notes.txt", store / ".hidden", store / f".CURRENT.{dead}.toolongname",
            temp / f"tiered-train-{living}-aa11bb22", temp / "tiered-train-notours", temp / "other"]
    for path in leftovers + kept:
        if path.name.startswith((".CURRENT", "notes", ".hidden")):
            path.write_text("x")
        else:
            path.mkdir()
            (path / "M0.onnx").write_bytes(b"partial")
        if "fresh" not in path.name:
            os.utime(path, (OLD, OLD))

    done = train(store, temp)

    assert done.returncode == 0, done.stderr
    assert [p for p in leftovers if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    for path in leftovers:
        assert f"tiered train: removed {path}, left by a run that was killed" in done.stderr
    assert (store / CURRENT).is_file()
