"""Webhook endpoints, their subscriptions and secrets, and deliveries: SQL only."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Integer,
    String,
    Text,
    Uuid,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from identity.db.models import (
    Permission,
    RolePermission,
    User,
    UserRole,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecret,
    WebhookSubscription,
)
from identity.db.types import UTCDateTime
from identity.repositories import rowcount
from identity.repositories.queue import PENDING, Queue

if TYPE_CHECKING:
    from identity.services.events import Event


class random_uuid(FunctionElement[uuid.UUID]):
    """A random (version 4) UUID made by the database, one per row of an INSERT … SELECT."""

    type = Uuid()
    inherit_cache = True


@compiles(random_uuid, "postgresql")
def _random_uuid_postgresql(element: random_uuid, compiler: SQLCompiler, **kw: Any) -> str:
    return "gen_random_uuid()"


@compiles(random_uuid, "sqlite")
def _random_uuid_sqlite(element: random_uuid, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy keeps UUIDs on SQLite as 32 hex digits: random ones, with the version
    # nibble 4 and the variant bits 10.
    return (
        "lower(hex(randomblob(6)) || '4' || substr(hex(randomblob(2)), 2) || "
        "substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || "
        "hex(randomblob(6)))"
    )


class WebhookDeliveryQueue(Queue[WebhookDelivery]):
    def __init__(self, db: AsyncSession) -> None:
        super().__init__(db, WebhookDelivery)


class WebhookRepository:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    # Endpoints --------------------------------------------------------------------------

    def add(self, row: object) -> None:
        self.db.add(row)

    async def flush(self) -> None:
        await self.db.flush()

    async def endpoint(self, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
        return await self.db.get(WebhookEndpoint, endpoint_id)

    async def endpoints_by_id(
        self, endpoint_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, WebhookEndpoint]:
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids))
        return {row.id: row for row in (await self.db.execute(stmt)).scalars()}

    async def endpoints(self) -> list[WebhookEndpoint]:
        stmt = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        return list((await self.db.execute(stmt)).scalars())

    async def events_of(self, endpoint_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
        stmt = (
            select(WebhookSubscription.endpoint_id, WebhookSubscription.event)
            .where(WebhookSubscription.endpoint_id.in_(endpoint_ids))
            .order_by(WebhookSubscription.event)
        )
        result: dict[uuid.UUID, list[str]] = defaultdict(list)
        for endpoint_id, event in (await self.db.execute(stmt)).all():
            result[endpoint_id].append(event)
        return result

    async def set_events(self, endpoint_id: uuid.UUID, events: Sequence[str]) -> None:
        await self.db.execute(
            delete(WebhookSubscription).where(WebhookSubscription.endpoint_id == endpoint_id)
        )
        self.db.add_all(WebhookSubscription(endpoint_id=endpoint_id, event=e) for e in events)

    async def delete_endpoint(self, endpoint_id: uuid.UUID) -> None:
        await self.db.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))

    async def disable(self, endpoint_id: uuid.UUID, reason: str, now: datetime) -> bool:
        """Turn an active endpoint off; False if it was already off."""
        stmt = (
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.is_active.is_(True))
            .values(is_active=False, disabled_reason=reason[:255], updated_at=now)
        )
        return await rowcount(self.db, stmt) == 1

    async def failing(self, endpoint_id: uuid.UUID, now: datetime) -> datetime | None:
        """Note a failure: the start of the endpoint's run of failures."""
        await self.db.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_(None))
            .values(failing_since=now)
        )
        since: datetime | None = await self.db.scalar(
            select(WebhookEndpoint.failing_since).where(WebhookEndpoint.id == endpoint_id)
        )
        return since

    async def succeeded(self, endpoint_id: uuid.UUID) -> None:
        await self.db.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_not(None))
            .values(failing_since=None)
        )

    async def managers(self, permission: str) -> list[User]:
        """Active users holding `permission` (through any role): whom to tell."""
        stmt = (
            select(User)
            .join(UserRole, UserRole.user_id == User.id)
            .join(RolePermission, RolePermission.role_id == UserRole.role_id)
            .join(Permission, Permission.code == RolePermission.permission_code)
            .where(Permission.code == permission, User.is_active.is_(True))
            .distinct()
            .order_by(User.email)
        )
        return list((await self.db.execute(stmt)).scalars())

    # Secrets ----------------------------------------------------------------------------

    async def live_secrets(
        self, endpoint_ids: Sequence[uuid.UUID], now: datetime
    ) -> dict[uuid.UUID, list[WebhookSecret]]:
        """Each endpoint's secrets that sign now: the current one first, then one retiring."""
        stmt = (
            select(WebhookSecret)
            .where(
                WebhookSecret.endpoint_id.in_(endpoint_ids),
                (WebhookSecret.retires_at.is_(None)) | (WebhookSecret.retires_at > now),
            )
            .order_by(WebhookSecret.retires_at.is_not(None), WebhookSecret.created_at.desc())
        )
        result: dict[uuid.UUID, list[WebhookSecret]] = defaultdict(list)
        for row in (await self.db.execute(stmt)).scalars():
            result[row.endpoint_id].append(row)
        return result

    async def retire_secrets(self, endpoint_id: uuid.UUID, now: datetime, until: datetime) -> None:
        """Drop secrets already being retired; the current one signs on until `until`."""
        await self.db.execute(
            delete(WebhookSecret).where(
                WebhookSecret.endpoint_id == endpoint_id, WebhookSecret.retires_at.is_not(None)
            )
        )
        await self.db.execute(
            update(WebhookSecret)
            .where(WebhookSecret.endpoint_id == endpoint_id, WebhookSecret.retires_at.is_(None))
            .values(retires_at=until)
        )

    # Deliveries -------------------------------------------------------------------------

    async def fan_out(self, events: Sequence[Event], now: datetime) -> int:
        """One delivery row per event and subscribed active endpoint, in one statement."""
        parts = [
            select(
                literal(e.id, Uuid()).label("event_id"),
                literal(e.type, String()).label("event"),
                literal(e.body, Text()).label("body"),
            )
            for e in events
        ]
        source = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("events")
        rows = (
            select(
                random_uuid(),
                WebhookSubscription.endpoint_id,
                source.c.event_id,
                source.c.event,
                source.c.body,
                literal(PENDING, String()),
                literal(0, Integer()),
                literal(now, UTCDateTime()),
                literal(now, UTCDateTime()),
            )
            .select_from(WebhookSubscription)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookSubscription.endpoint_id)
            .join(source, source.c.event == WebhookSubscription.event)
            .where(WebhookEndpoint.is_active.is_(True))
        )
        columns = [
            "id",
            "endpoint_id",
            "event_id",
            "event",
            "body",
            "state",
            "attempts",
            "next_attempt_at",
            "created_at",
        ]
        return await rowcount(self.db, insert(WebhookDelivery).from_select(columns, rows))

    async def delivery(self, delivery_id: uuid.UUID) -> WebhookDelivery | None:
        return await self.db.get(WebhookDelivery, delivery_id)

    async def deliveries_page(
        self, endpoint_id: uuid.UUID, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> list[WebhookDelivery]:
        """Newest first, keyset on (created_at, id)."""
        stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        if before is not None:
            stmt = stmt.where(
                tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < tuple_(*before)
            )
        stmt = stmt.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        return list((await self.db.execute(stmt.limit(limit))).scalars())

    async def count_deliveries(self, endpoint_id: uuid.UUID) -> int:
        stmt = select(func.count()).where(WebhookDelivery.endpoint_id == endpoint_id)
        return int(await self.db.scalar(stmt) or 0)

    async def fail_pending(self, endpoint_id: uuid.UUID, error: str) -> int:
        """End an endpoint's waiting deliveries (it was disabled)."""
        stmt = (
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state == PENDING)
            .values(state="failed", last_error=error, claim=None)
        )
        return await rowcount(self.db, stmt)

    async def status(self) -> list[tuple[uuid.UUID, str, int]]:
        """(endpoint id, state, count) for every endpoint and state it has."""
        stmt = select(WebhookDelivery.endpoint_id, WebhookDelivery.state, func.count()).group_by(
            WebhookDelivery.endpoint_id, WebhookDelivery.state
        )
        return [(e, s, int(n)) for e, s, n in (await self.db.execute(stmt)).all()]
