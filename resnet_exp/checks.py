"""The one-line check of a user value, shared by models/, data/ and the config schemas.

Pure Python (no torch, no Hydra). Messages read `key=value: what is allowed`; whoever knows the
group (`validate` for `data.`, `arch.`, ...; `ImageDataModule`) puts it in front of the key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TypeVar

from resnet_exp.errors import ConfigError

E = TypeVar("E", bound=Enum)


def require(condition: bool, key: str, value: object, allowed: str) -> None:
    """Raise `ConfigError("key=value: allowed")` (also a ValueError) unless `condition` holds."""
    if not condition:
        raise ConfigError(f"{key}={value}: {allowed}")


def parse_enum(enum: type[E], key: str, value: object) -> E:
    """`value` (a member or its string) as a member of `enum`, or the one-line error listing them."""
    if isinstance(value, enum):
        return value
    raw = value.value if isinstance(value, Enum) else value
    allowed = [m.value for m in enum]
    require(raw in allowed, key, raw, "must be one of " + ", ".join(allowed))
    return enum(raw)


@contextmanager
def in_group(group: str) -> Iterator[None]:
    """Name the config group in the key of a one-line error raised inside (`data.batch_size=0: ...`)."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(f"{group}.{exc}") from None
