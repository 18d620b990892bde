"""Keyset paging: cursors the server made and can recognise, and page bounds."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from identity.security.derive import ServerSecret
from identity.services.errors import DomainError

T = TypeVar("T")
MAX_PAGE = 100


class InvalidPage(DomainError):
    """`first` out of bounds, or a cursor this server did not make."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_next: bool


class Cursors:
    """Cursors are `base64url(kind|time|id).mac`: opaque, and forged ones are refused."""

    def __init__(self, secret: ServerSecret) -> None:
        self._secret = secret

    def encode(self, kind: str, at: datetime, item_id: uuid.UUID) -> str:
        payload = f"{at.isoformat()}|{item_id}".encode()
        mac = self._secret.mac("cursor:" + kind, payload)[:12]
        return f"{_b64(payload)}.{_b64(mac)}"

    def decode(self, kind: str, cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
        if cursor is None:
            return None
        try:
            encoded_payload, encoded_mac = cursor.split(".")
            payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
            if len(mac) != 12 or not self._secret.verify_mac("cursor:" + kind, payload, mac):
                raise ValueError("not ours")
            at, item_id = payload.decode().split("|")
            return datetime.fromisoformat(at), uuid.UUID(item_id)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidPage("This cursor does not belong to this list.") from None

    async def page(
        self,
        kind: str,
        first: int,
        after: str | None,
        fetch: Callable[[int, tuple[datetime, uuid.UUID] | None], Awaitable[list[T]]],
    ) -> Page[T]:
        """`first` items after the cursor: one more is fetched to know if a next page exists."""
        check_first(first)
        rows = await fetch(first + 1, self.decode(kind, after))
        return Page(items=rows[:first], has_next=len(rows) > first)


def check_first(first: int) -> None:
    if not 1 <= first <= MAX_PAGE:
        raise InvalidPage(f"`first` must be between 1 and {MAX_PAGE}.")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    data = text.encode("ascii")
    return base64.b64decode(data + b"=" * (-len(data) % 4), altchars=b"-_", validate=True)
