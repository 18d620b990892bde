"""Omitted versus null in partial updates: an omitted field stays as it is."""

from __future__ import annotations

import enum
from typing import Literal, TypeAlias, TypeVar

T = TypeVar("T")


class Unset(enum.Enum):
    UNSET = "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET = Unset.UNSET
Maybe: TypeAlias = T | Literal[Unset.UNSET] | None
