"""The mail channel of the outbox: render, send, mark sent; retry with backoff.

A crash or an SMTP outage between commit and delivery loses nothing: the rows wait, and
delivery resumes (see services/outbox.py for the claim and lease every channel shares).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from email.message import EmailMessage

from identity import metrics
from identity.db.models import OutboxMessage
from identity.mail.render import Renderer, describe
from identity.mail.transports import Mailer
from identity.repositories.outbox import FAILED, SENT, VOIDED, OutboxRepository
from identity.services.outbox import SEND_TIMEOUT, UnitOfWorkFactory
from identity.services.runtime import Runtime
from identity.services.tokens import OneTimeTokens
from identity.services.uow import UnitOfWork

log = logging.getLogger("identity.mail")


class Voided(Exception):
    """The message can never be sent (its link was used, replaced or expired)."""


class MailChannel:
    name = "mail"

    def __init__(
        self,
        rt: Runtime,
        tokens: OneTimeTokens,
        mailer: Mailer,
        renderer: Renderer,
        unit_of_work: UnitOfWorkFactory,
    ) -> None:
        self.rt = rt
        self.tokens = tokens
        self.mailer = mailer
        self.renderer = renderer
        self.unit_of_work = unit_of_work
        # Entries that stand for work (e.g. a reset request): done, they may queue mail.
        self.expanders: dict[str, Callable[[UnitOfWork, str], Awaitable[None]]] = {}

    def queue(self, uow: UnitOfWork) -> OutboxRepository:
        return uow.outbox_messages

    async def measure(self, uow: UnitOfWork) -> None:
        metrics.OUTBOX_DEPTH.set((await uow.outbox_messages.all_counts())["pending"])

    async def prepare(self, rows: list[OutboxMessage]) -> None:
        return None

    async def handle(self, message: OutboxMessage, batch: None = None) -> bool:
        if message.template in self.expanders:
            await self._expand(message)
            return False
        return await self._deliver(message)

    async def _expand(self, message: OutboxMessage) -> None:
        try:
            async with self.unit_of_work() as uow:
                await self.expanders[message.template](uow, message.recipient)
                await uow.outbox_messages.finish(message, state=SENT, sent_at=self.rt.clock.now())
                await uow.commit()
        except Exception as exc:
            log.warning("outbox entry %s (%s) failed", message.id, message.template, exc_info=True)
            await self._failed(message, f"{type(exc).__name__}: {exc}")

    async def _deliver(self, message: OutboxMessage) -> bool:
        try:
            email = await self._render(message)
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.mailer.send(email)
        except Voided as exc:
            await self._finish(message, state=VOIDED, failed_at=self.rt.clock.now(), error=exc)
            log.info("mail %s (%s) voided: %s", message.id, message.template, exc)
            return False
        except Exception as exc:
            log.warning(
                "mail %s (%s) not delivered, attempt %d: %s",
                message.id,
                message.template,
                message.attempts + 1,
                type(exc).__name__,
                exc_info=not isinstance(exc, OSError | TimeoutError),
            )
            metrics.MAIL_FAILURES.labels(message.template).inc()
            await self._failed(message, f"{type(exc).__name__}: {exc}")
            return False
        await self._finish(message, state=SENT, sent_at=self.rt.clock.now())
        metrics.MAIL_SENT.labels(message.template).inc()
        log.info("mail %s (%s) delivered", message.id, message.template)
        return True

    async def _render(self, message: OutboxMessage) -> EmailMessage:
        context = dict(message.context)
        if message.token_id is not None:
            async with self.unit_of_work() as uow:
                row = await uow.tokens.get(message.token_id)
                now = self.rt.clock.now()
                if row is None or row.used_at is not None or row.expires_at <= now:
                    raise Voided("the link in it was used, replaced or expired")
                # The link is re-derived now; the outbox never held a usable token.
                context["link"] = self.tokens.link(row)
                context["expires_in"] = describe(self.tokens.lifetime(row.purpose))
        return self.renderer.render(message.template, message.recipient, context)

    async def _failed(self, message: OutboxMessage, error: str) -> None:
        now = self.rt.clock.now()
        attempt = message.attempts + 1
        if attempt >= self.rt.settings.mail_max_attempts:
            await self._finish(message, state=FAILED, failed_at=now, error=error)
        else:
            await self._finish(message, next_attempt_at=now + backoff(attempt), error=error)

    async def _finish(
        self,
        message: OutboxMessage,
        *,
        error: object = None,
        state: str | None = None,
        **values: datetime | None,
    ) -> None:
        columns: dict[str, object] = dict(values)
        if state is not None:
            columns["state"] = state
        if error is not None:
            columns["last_error"] = str(error)[:2000]
        async with self.unit_of_work() as uow:
            await uow.outbox_messages.finish(message, **columns)
            await uow.commit()


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))
