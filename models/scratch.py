"""Scratch files and directories of the writers of a store, named so that a later run can tell its own
kind's leftovers from anything else, and remove those of runs that were killed.

A writer assembles a family in `<store>/.<family_id>.<pid>.<random>`, replaces CURRENT through
`<store>/.CURRENT.<pid>.<random>`, and `tiered train` keeps its exports in `<tmp>/tiered-train-<pid>-<random>`
until the family is written. A run killed in between (SIGKILL, the OOM killer, a power cut) leaves them
behind. `sweep` removes, in one directory, only the entries that match one of these patterns exactly and
whose writer is gone: its pid is no longer a process, and the entry has not changed for `STALE_SECONDS`
(a store shared between machines or containers sees other pid namespaces: an entry still being written
there changes within seconds). Entries of the same patterns without a pid, from before pids were added,
are removed once untouched for `LEGACY_STALE_SECONDS`. Nothing else is ever touched.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

STALE_SECONDS = 60.0
LEGACY_STALE_SECONDS = 3600.0
_RANDOM = r"[A-Za-z0-9_]{8}"  # tempfile's names: 8 characters from letters, digits and "_"
_FAMILY = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}?"  # lazy: a pid after it is read as the pid
STORE_PATTERNS = (re.compile(rf"^\.{_FAMILY}\.(?:(?P<pid>\d+)\.)?{_RANDOM}$"),  # a family being written
                  re.compile(rf"^\.CURRENT\.(?:(?P<pid>\d+)\.)?{_RANDOM}$"))  # CURRENT being replaced
TRAIN_PATTERNS = (re.compile(rf"^tiered-train-(?:(?P<pid>\d+)-)?{_RANDOM}$"),)


def family_prefix(family_id: str) -> str:
    return f".{family_id}.{os.getpid()}."


def current_prefix() -> str:
    return f".CURRENT.{os.getpid()}."


def train_prefix() -> str:
    return f"tiered-train-{os.getpid()}-"


def alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep(directory: Path, patterns: tuple[re.Pattern[str], ...], now: float | None = None) -> list[Path]:
    """Remove the leftovers of killed writers in `directory` (see the module docstring); the removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(directory.iterdir())
    except OSError:  # no directory yet, or not readable: nothing of ours to remove
        return []
    for entry in entries:
        match = next((m for p in patterns if (m := p.match(entry.name))), None)
        if match is None or not _abandoned(entry, match["pid"], now):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _abandoned(entry: Path, pid: str | None, now: float) -> bool:
    try:
        age = now - entry.lstat().st_mtime
    except OSError:
        return False
    if pid is None:
        return age > LEGACY_STALE_SECONDS
    return age > STALE_SECONDS and not alive(int(pid))
