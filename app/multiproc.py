"""The Prometheus multiprocess directory: the one place that knows how several workers share metrics.

prometheus-client decides at import, from PROMETHEUS_MULTIPROC_DIR, whether a process writes its
values to files in that directory (one set per pid) instead of keeping them in memory; a scrape then
sums the files (`app/metrics.py`). So, before any worker starts:

  * `prepare(directory)` creates the directory, empties it (values of a previous run of the service
    must not be summed into this one: a restart is a counter reset, which Prometheus expects), and
    exports the variable for the workers to inherit;
  * `forget_dead_workers(directory)` removes the live gauges of workers that no longer run (their
    counters and histograms stay: what they served was served). Each worker calls it at startup and
    before every scrape, since a worker killed by the OS never says goodbye;
  * `leave(directory)` is a worker's own goodbye when it stops cleanly.
Whatever replaces the process model (issue 13) calls these three and nothing else changes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import multiprocess

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare(directory: Path) -> Path:
    """An empty directory for this run's workers, exported to them through the environment."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)
    # Read by prometheus-client at import in each worker process; nothing in this service reads it.
    os.environ[VARIABLE] = str(directory)
    return directory


def forget_dead_workers(directory: Path) -> None:
    for pid in _pids(directory):
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, str(directory))


def leave(directory: Path) -> None:
    multiprocess.mark_process_dead(os.getpid(), str(directory))


def _pids(directory: Path) -> set[int]:
    """Pids with live gauges in the directory (files are named `gauge_live<mode>_<pid>.db`)."""
    pids = set()
    for path in directory.glob("gauge_live*_*.db"):
        tail = path.stem.rsplit("_", 1)[-1]
        if tail.isdigit():
            pids.add(int(tail))
    return pids


def _alive(pid: int) -> bool:
    """Whether the process runs; a killed worker its parent has not reaped yet (a zombie) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: ask the kernel, which counts a zombie as alive
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # the state follows the command name in parentheses
