"""The unit of work: one database transaction, the repositories bound to it, and the audit log."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from identity.clock import Clock
from identity.db.models import OutboxMessage
from identity.repositories.audit import AuditRepository, new_event
from identity.repositories.keys import KeyRepository
from identity.repositories.locks import LockRepository
from identity.repositories.outbox import OutboxRepository
from identity.repositories.roles import RoleRepository
from identity.repositories.sessions import SessionRepository
from identity.repositories.tokens import OneTimeTokenRepository
from identity.repositories.transfer import TransferRepository
from identity.repositories.users import UserRepository
from identity.services.principal import ClientInfo


class AuditLog:
    """Records events in the transaction of the change they describe."""

    def __init__(self, repository: AuditRepository, client: ClientInfo, clock: Clock) -> None:
        self._repository = repository
        self._client = client
        self._clock = clock

    def record(
        self,
        action: str,
        *,
        actor: uuid.UUID | None = None,
        subject: uuid.UUID | None = None,
        **details: Any,
    ) -> None:
        self._repository.add(
            new_event(
                action,
                occurred_at=self._clock.now(),
                actor=actor,
                subject=subject,
                ip_address=self._client.ip_address,
                user_agent=self._client.user_agent,
                details=details,
            )
        )


class Outbox:
    """Mail queued in the same transaction as the change that causes it."""

    def __init__(self, repository: OutboxRepository, clock: Clock) -> None:
        self._repository = repository
        self._clock = clock
        self.queued = 0

    def add(
        self, template: str, recipient: str, *, token_id: uuid.UUID | None = None, **context: Any
    ) -> None:
        now = self._clock.now()
        self._repository.add(
            OutboxMessage(
                id=uuid.uuid4(),
                created_at=now,
                template=template,
                recipient=recipient,
                context=context,
                token_id=token_id,
                attempts=0,
                next_attempt_at=now,
            )
        )
        self.queued += 1


class UnitOfWork:
    def __init__(self, db: AsyncSession, clock: Clock, client: ClientInfo | None = None) -> None:
        self.db = db
        self.client = client or ClientInfo()
        self.users = UserRepository(db)
        self.roles = RoleRepository(db)
        self.sessions = SessionRepository(db)
        self.keys = KeyRepository(db)
        self.locks = LockRepository(db)
        self.tokens = OneTimeTokenRepository(db)
        self.audit = AuditLog(AuditRepository(db), self.client, clock)
        self.audit_events = AuditRepository(db)
        self.outbox = Outbox(OutboxRepository(db), clock)
        self.outbox_messages = OutboxRepository(db)
        self.committed = False
        self.transfer = TransferRepository(db)

    async def commit(self) -> None:
        await self.db.commit()
        self.committed = True

    async def release(self) -> None:
        """End the transaction so far and give the connection back (before slow work)."""
        await self.db.commit()

    async def rollback(self) -> None:
        await self.db.rollback()
