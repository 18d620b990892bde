"""Delivering the outbox: render, send, mark sent; retry with backoff; never lose a message.

Requests only write outbox rows (in their own transaction); this sender, a background task
of each server process, delivers them. A crash or an SMTP outage between commit and
delivery loses nothing: the rows wait, and delivery resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from email.message import EmailMessage

from identity import metrics
from identity.db.models import OutboxMessage
from identity.mail.render import Renderer, describe
from identity.mail.transports import Mailer
from identity.services.runtime import Runtime
from identity.services.tokens import OneTimeTokens
from identity.services.uow import UnitOfWork

log = logging.getLogger("identity.mail")

LEASE = timedelta(minutes=5)
BATCH = 20
# One send may take at most half a lease (a tarpitting SMTP server is cut off and retried
# later), so the lease renewed just before it always outlasts it.
SEND_TIMEOUT = LEASE.total_seconds() / 2


class Undeliverable(Exception):
    """The message can never be sent (its link was voided); not worth a retry."""


class MailDelivery:
    def __init__(
        self,
        rt: Runtime,
        tokens: OneTimeTokens,
        mailer: Mailer,
        renderer: Renderer,
        unit_of_work: Callable[[], AbstractAsyncContextManager[UnitOfWork]],
    ) -> None:
        self.rt = rt
        self.tokens = tokens
        self.mailer = mailer
        self.renderer = renderer
        self.unit_of_work = unit_of_work
        self.expanders: dict[str, Callable[[UnitOfWork, str], Awaitable[None]]] = {}

    async def deliver_due(self) -> int:
        """Send what is due now; the number of messages sent."""
        sent = 0
        while True:
            now = self.rt.clock.now()
            async with self.unit_of_work() as uow:
                batch = await uow.outbox_messages.claim_due(now, now + LEASE, BATCH)
                await uow.commit()
            if not batch:
                await self._measure_depth()
                return sent
            expanded = False
            for message in batch:
                if not await self._still_ours(message):
                    continue
                if message.template in self.expanders:
                    await self._expand(message)
                    expanded = True
                elif await self._deliver(message):
                    sent += 1
            if len(batch) < BATCH and not expanded:
                await self._measure_depth()
                return sent

    async def _expand(self, message: OutboxMessage) -> None:
        """An entry that stands for work (e.g. a reset request): done, it may queue mail."""
        try:
            async with self.unit_of_work() as uow:
                await self.expanders[message.template](uow, message.recipient)
                await uow.outbox_messages.mark_sent(message, self.rt.clock.now())
                await uow.commit()
        except Exception as exc:
            log.warning("outbox entry %s (%s) failed", message.id, message.template, exc_info=True)
            final = message.attempts >= self.rt.settings.mail_max_attempts
            await self._record_failure(message, f"{type(exc).__name__}: {exc}", final=final)

    async def _still_ours(self, message: OutboxMessage) -> bool:
        """Renew the lease just before the message is handled.

        A batch is claimed at once, but its messages are sent one by one and a slow SMTP
        server can outlast the batch's lease; another instance may then have claimed what
        this one has not reached yet. Renewed here, the lease covers this one send.
        """
        async with self.unit_of_work() as uow:
            ours = await uow.outbox_messages.renew(message, self.rt.clock.now() + LEASE)
            await uow.commit()
        return ours

    async def _measure_depth(self) -> None:
        async with self.unit_of_work() as uow:
            metrics.OUTBOX_DEPTH.set((await uow.outbox_messages.counts())["pending"])

    async def _deliver(self, message: OutboxMessage) -> bool:
        try:
            email = await self._render(message)
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.mailer.send(email)
        except Undeliverable as exc:
            await self._record_failure(message, str(exc), final=True)
            return False
        except Exception as exc:
            log.warning(
                "mail %s (%s) not delivered, attempt %d: %s",
                message.id,
                message.template,
                message.attempts,
                type(exc).__name__,
                exc_info=not isinstance(exc, OSError | TimeoutError),
            )
            metrics.MAIL_FAILURES.labels(message.template).inc()
            final = message.attempts >= self.rt.settings.mail_max_attempts
            await self._record_failure(message, f"{type(exc).__name__}: {exc}", final=final)
            return False
        async with self.unit_of_work() as uow:
            await uow.outbox_messages.mark_sent(message, self.rt.clock.now())
            await uow.commit()
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
                    raise Undeliverable("skipped: the link in it was used, replaced or expired")
                # The link is re-derived now; the outbox never held a usable token.
                context["link"] = self.tokens.link(row)
                context["expires_in"] = describe(self.tokens.lifetime(row.purpose))
        return self.renderer.render(message.template, message.recipient, context)

    async def _record_failure(self, message: OutboxMessage, error: str, *, final: bool) -> None:
        now = self.rt.clock.now()
        retry_at = None if final else now + _backoff(message.attempts)
        async with self.unit_of_work() as uow:
            await uow.outbox_messages.mark_failed_attempt(message, error, retry_at, now)
            await uow.commit()

    async def run(self, wakeup: asyncio.Event, stop: asyncio.Event) -> None:
        """The background loop: deliver, then wait for new mail or the poll interval.

        Setting `stop` (and `wakeup`) ends it after the message in hand is delivered.
        """
        interval = self.rt.settings.mail_poll_interval
        while not stop.is_set():
            try:
                await self.deliver_due()
            except Exception:  # the database may be away for a while; try again later
                log.warning("mail delivery paused: the outbox could not be read", exc_info=True)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the wait ends.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await wakeup.wait()
            wakeup.clear()
        log.info("mail sender stopped")


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))
