"""`tiered train` (the training job lives in training/job.py; torch is imported only when it runs)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="build the model family M0..M3 (needs the train extra)")
    p.set_defaults(handler=lambda args: 0)
