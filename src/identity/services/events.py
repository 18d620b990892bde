"""Webhook events: the catalogue, what each carries, and the buffer a unit of work keeps.

An event is written in the transaction of the change it describes (`uow.events.add`), as
one INSERT … SELECT at commit that makes a delivery row per subscribed active endpoint:
nothing is written when no endpoint wants it. Payloads carry ids and the fields the event
is about, never secrets, tokens or password hashes; each type has a JSON Schema in
identity/webhooks/schemas.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from identity.clock import Clock
from identity.db.models import Role, Session, User, WebhookDelivery
from identity.repositories.webhooks import WebhookRepository

USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DELETED = "user.deleted"
USER_EMAIL_CHANGED = "user.email_changed"
USER_PASSWORD_CHANGED = "user.password_changed"
USER_LOCKED_OUT = "user.locked_out"
USER_MFA_ENABLED = "user.mfa_enabled"
USER_MFA_DISABLED = "user.mfa_disabled"
SESSION_CREATED = "session.created"
SESSION_REVOKED = "session.revoked"
ROLE_ASSIGNED = "role.assigned"
ROLE_REVOKED = "role.revoked"
EVENT_TYPES = (
    USER_CREATED,
    USER_UPDATED,
    USER_DELETED,
    USER_EMAIL_CHANGED,
    USER_PASSWORD_CHANGED,
    USER_LOCKED_OUT,
    USER_MFA_ENABLED,
    USER_MFA_DISABLED,
    SESSION_CREATED,
    SESSION_REVOKED,
    ROLE_ASSIGNED,
    ROLE_REVOKED,
)
# Sent by `sendTestWebhook` only; nobody subscribes to it.
TEST_EVENT = "webhook.test"

# What a caller must hold to subscribe an endpoint to an event, by prefix: the API shows
# the same data only to them. role.* says who holds which role: a user's roles are
# users:read, the role itself roles:read.
READ_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "user.": ("users:read",),
    "session.": ("users:read",),
    "role.": ("users:read", "roles:read"),
}


def needed_permissions(events: list[str]) -> set[str]:
    return {
        code
        for event in events
        for prefix, codes in READ_PERMISSIONS.items()
        if event.startswith(prefix)
        for code in codes
    }


@dataclass(frozen=True, slots=True)
class Event:
    id: uuid.UUID
    type: str
    body: str  # the JSON every delivery of this event sends


def body(event_type: str, occurred_at: datetime, data: Mapping[str, Any]) -> str:
    """`{type, timestamp, data}` as Standard Webhooks has it; made once per event."""
    document = {"type": event_type, "timestamp": occurred_at, "data": data}
    return orjson.dumps(document, default=_uuid_like, option=orjson.OPT_UTC_Z).decode()


def _uuid_like(value: object) -> str:
    """asyncpg's UUIDs (from the hot path) are a subclass orjson does not take."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


class Events:
    """The events of one unit of work; written when it commits, dropped when it rolls back."""

    def __init__(self, repository: WebhookRepository, clock: Clock) -> None:
        self._repository = repository
        self._clock = clock
        self._pending: list[Event] = []
        self.deliveries = 0  # delivery rows written by this unit of work

    def add(self, event_type: str, data: Mapping[str, Any]) -> uuid.UUID:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        event = Event(uuid.uuid4(), event_type, body(event_type, self._clock.now(), data))
        self._pending.append(event)
        return event.id

    async def flush(self) -> None:
        """One INSERT … SELECT for everything added since the last flush."""
        if self._pending:
            events, self._pending = self._pending, []
            self.deliveries += await self._repository.fan_out(events, self._clock.now())

    def enqueue(self, delivery: WebhookDelivery) -> None:
        """A delivery made by hand (a test event, a redelivery), sent like the others."""
        self._repository.add(delivery)
        self.deliveries += 1

    def drop(self) -> None:
        self._pending.clear()


# Payloads ---------------------------------------------------------------------------------


def user_data(user: User, **extra: Any) -> dict[str, Any]:
    return {
        "userId": user.id,
        "email": user.email,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "isActive": user.is_active,
        "isVerified": user.is_verified,
        "appMetadata": user.app_metadata or {},
        "userMetadata": user.user_metadata or {},
        "createdAt": user.created_at,
        "updatedAt": user.updated_at,
        **extra,
    }


def session_data(session: Session) -> dict[str, Any]:
    return {
        "sessionId": session.id,
        "userId": session.user_id,
        "createdAt": session.created_at,
        "expiresAt": session.expires_at,
        "ipAddress": session.ip_address,
        "userAgent": session.user_agent,
    }


def revoked_data(
    session_id: uuid.UUID, user_id: uuid.UUID, reason: str, actor: uuid.UUID | None = None
) -> dict[str, Any]:
    return {"sessionId": session_id, "userId": user_id, "reason": reason, "actorId": actor}


def role_data(user_id: uuid.UUID, role: Role, actor: uuid.UUID | None) -> dict[str, Any]:
    return {"userId": user_id, "roleId": role.id, "role": role.name, "actorId": actor}


def sessions_ended(
    events: Events,
    user_id: uuid.UUID,
    session_ids: list[uuid.UUID],
    reason: str,
    actor: uuid.UUID | None = None,
) -> None:
    for session_id in session_ids:
        events.add(SESSION_REVOKED, revoked_data(session_id, user_id, reason, actor))


def user_changed(events: Events, user: User, changes: list[str], actor: uuid.UUID | None) -> None:
    """`user.updated`, naming the changed fields as the API does (camelCase)."""
    events.add(USER_UPDATED, user_data(user, changes=[_camel(c) for c in changes], actorId=actor))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
