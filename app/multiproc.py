"""The Prometheus multiprocess directory: the one place that knows how several workers share metrics.

prometheus-client decides at import, from PROMETHEUS_MULTIPROC_DIR, whether a process writes its
values to files in that directory (one set per pid) instead of keeping them in memory; a scrape then
sums the files (`app/metrics.py`). The supervisor (`app/supervisor.py`) owns the directory:

  * `prepare(directory)` creates it, empties it (values of a previous run of the service must not be
    summed into this one: a restart is a counter reset, which Prometheus expects), and exports the
    variable for the workers, started after it, to inherit;
  * `mark_dead(directory, pid)` removes the live gauges of a worker the supervisor has reaped, whether
    it stopped, crashed or was killed by the OS (its counters and histograms stay: what it served was
    served).
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


def mark_dead(directory: Path, pid: int) -> None:
    multiprocess.mark_process_dead(pid, str(directory))
