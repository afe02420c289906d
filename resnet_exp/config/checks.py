"""The one-line range check every schema's `__post_init__` uses."""

from __future__ import annotations

from typing import Any


def require(condition: bool, field_name: str, value: Any, allowed: str) -> None:
    """Raise `ValueError("field=value: allowed")`; the validator prefixes the group."""
    if not condition:
        raise ValueError(f"{field_name}={value}: {allowed}")
