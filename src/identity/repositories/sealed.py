"""Columns that hold data sealed under the server secret, for `identity secret`: SQL only.

Every sealed column is listed here with its purpose and how its additional data is made
from the row, so that a secret rotation can check and re-seal all of them. A capability
that stores a new kind of sealed secret adds it to SEALED_COLUMNS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, inspect, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from identity.db.models import Challenge, DataKey, Factor, SigningKey, WebhookSecret
from identity.repositories import rowcount
from identity.security import totp, webhooks
from identity.security.derive import DATA_KEY_PURPOSE
from identity.security.jwt import KEY_ENCRYPTION
from identity.security.oidc_client import STATE_SEAL


@dataclass(frozen=True, slots=True)
class SealedColumn:
    name: str  # what it is, in words: "signing keys"
    model: type[DeclarativeBase]
    column: str
    purpose: str
    aad: Callable[[Any], bytes]
    # The rows of the table that hold this kind of value (the challenges table holds several).
    where: Callable[[], ColumnElement[bool]] | None = None


# A row whose column is null holds nothing sealed (a passkey has no TOTP secret).
SEALED_COLUMNS: list[SealedColumn] = [
    SealedColumn(
        "signing keys", SigningKey, "private_key", KEY_ENCRYPTION, lambda r: r.kid.encode()
    ),
    SealedColumn("data keys", DataKey, "sealed", DATA_KEY_PURPOSE, lambda r: r.name.encode()),
    SealedColumn("TOTP secrets", Factor, "secret", totp.SECRET_PURPOSE, lambda r: r.id.bytes),
    SealedColumn(
        "pending TOTP enrolments",
        Challenge,
        "sealed",
        totp.ENROLLMENT_PURPOSE,
        lambda r: r.id.bytes,
        lambda: Challenge.purpose == "totp-enrollment",
    ),
    SealedColumn(
        "sign-ins at other providers under way",
        Challenge,
        "sealed",
        STATE_SEAL,
        lambda r: r.id.bytes,
        lambda: Challenge.purpose == "external-state",
    ),
    SealedColumn(
        "webhook secrets", WebhookSecret, "sealed", webhooks.SECRET_PURPOSE, webhooks.secret_aad
    ),
]


class SealedRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def page(
        self, sealed: SealedColumn, after: tuple[Any, ...] | None, limit: int
    ) -> list[Any]:
        """Rows of the column's table in primary-key order, `limit` after the key `after`."""
        model = sealed.model
        keys = list(inspect(model).primary_key)
        stmt = select(model).order_by(*keys).limit(limit)
        if sealed.where is not None:
            stmt = stmt.where(sealed.where())
        if after is not None:
            stmt = stmt.where(tuple_(*keys) > tuple_(*after))
        return list((await self.db.execute(stmt)).scalars())

    async def exists(self, sealed: SealedColumn) -> bool:
        """Whether the column's table exists yet (a database a migration behind may lack it)."""
        name = sealed.model.__table__.name  # type: ignore[attr-defined]
        connection = await self.db.connection()
        return bool(await connection.run_sync(lambda sync: inspect(sync).has_table(name)))

    def key_of(self, row: Any) -> tuple[Any, ...]:
        identity = inspect(row).identity
        assert identity is not None
        return tuple(identity)

    async def store(self, sealed: SealedColumn, row: Any, value: bytes, *, was: bytes) -> bool:
        """Replace the row's sealed value, unless it is no longer `was`: a running server may
        have changed it meanwhile (a new TOTP secret, a rotated webhook secret), and that
        newer value must not be overwritten by a re-sealed older one. True if stored."""
        model = sealed.model
        keys = list(inspect(model).primary_key)
        column = getattr(model, sealed.column)
        stmt = update(model).where(tuple_(*keys) == tuple_(*self.key_of(row)), column == was)
        return await rowcount(self.db, stmt.values({sealed.column: value})) == 1
