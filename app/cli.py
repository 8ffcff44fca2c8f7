"""`tiered serve`."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the current family over HTTP")
    p.set_defaults(handler=lambda args: 0)
