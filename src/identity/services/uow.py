"""The unit of work: one database transaction, the repositories bound to it, and the audit log."""

from __future__ import annotations

import uuid
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from identity.clock import Clock
from identity.db.models import OutboxMessage
from identity.repositories.audit import AuditRepository, new_event
from identity.repositories.challenges import ChallengeRepository
from identity.repositories.data_keys import DataKeyRepository
from identity.repositories.dpop import DpopProofRepository
from identity.repositories.external_accounts import ExternalAccountRepository
from identity.repositories.factors import FactorRepository, RecoveryCodeRepository
from identity.repositories.keys import KeyRepository
from identity.repositories.locks import LockRepository
from identity.repositories.oauth_clients import OAuthClientRepository
from identity.repositories.outbox import OutboxRepository
from identity.repositories.roles import RoleRepository
from identity.repositories.sealed import SealedRepository
from identity.repositories.sessions import SessionRepository
from identity.repositories.tokens import OneTimeTokenRepository
from identity.repositories.transfer import TransferRepository
from identity.repositories.users import UserRepository
from identity.repositories.webhooks import WebhookDeliveryQueue, WebhookRepository
from identity.services.events import Events
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
    """Repositories are made on first use: most use cases touch two or three of them."""

    def __init__(self, db: AsyncSession, clock: Clock, client: ClientInfo | None = None) -> None:
        self.db = db
        self.clock = clock
        self.client = client or ClientInfo()
        self.committed = False

    @cached_property
    def users(self) -> UserRepository:
        return UserRepository(self.db)

    @cached_property
    def roles(self) -> RoleRepository:
        return RoleRepository(self.db)

    @cached_property
    def sessions(self) -> SessionRepository:
        return SessionRepository(self.db)

    @cached_property
    def keys(self) -> KeyRepository:
        return KeyRepository(self.db)

    @cached_property
    def dpop_proofs(self) -> DpopProofRepository:
        return DpopProofRepository(self.db)

    @cached_property
    def locks(self) -> LockRepository:
        return LockRepository(self.db)

    @cached_property
    def tokens(self) -> OneTimeTokenRepository:
        return OneTimeTokenRepository(self.db)

    @cached_property
    def audit_events(self) -> AuditRepository:
        return AuditRepository(self.db)

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.audit_events, self.client, self.clock)

    @cached_property
    def outbox_messages(self) -> OutboxRepository:
        return OutboxRepository(self.db)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.outbox_messages, self.clock)

    @cached_property
    def factors(self) -> FactorRepository:
        return FactorRepository(self.db)

    @cached_property
    def recovery_codes(self) -> RecoveryCodeRepository:
        return RecoveryCodeRepository(self.db)

    @cached_property
    def challenges(self) -> ChallengeRepository:
        return ChallengeRepository(self.db)

    @cached_property
    def external_accounts(self) -> ExternalAccountRepository:
        return ExternalAccountRepository(self.db)

    @cached_property
    def oauth_clients(self) -> OAuthClientRepository:
        return OAuthClientRepository(self.db)

    @cached_property
    def data_keys(self) -> DataKeyRepository:
        return DataKeyRepository(self.db)

    @cached_property
    def sealed(self) -> SealedRepository:
        return SealedRepository(self.db)

    @cached_property
    def transfer(self) -> TransferRepository:
        return TransferRepository(self.db)

    @cached_property
    def webhooks(self) -> WebhookRepository:
        return WebhookRepository(self.db)

    @cached_property
    def webhook_deliveries(self) -> WebhookDeliveryQueue:
        return WebhookDeliveryQueue(self.db)

    @cached_property
    def events(self) -> Events:
        """Webhook events, written with the change: `uow.events.add("user.created", data)`."""
        return Events(self.webhooks, self.clock)

    @property
    def queued_mail(self) -> bool:
        return "outbox" in self.__dict__ and self.outbox.queued > 0

    @property
    def queued_deliveries(self) -> bool:
        return "events" in self.__dict__ and self.events.deliveries > 0

    async def commit(self) -> None:
        if "events" in self.__dict__:
            await self.events.flush()
        await self.db.commit()
        self.committed = True

    async def release(self) -> None:
        """End the transaction so far and give the connection back (before slow work)."""
        await self.db.commit()

    async def rollback(self) -> None:
        """Undo what was not committed (nothing to do, and no round trip, if nothing began)."""
        if "events" in self.__dict__:
            self.events.drop()
        if self.db.in_transaction():
            await self.db.rollback()
