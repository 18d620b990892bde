"""The outbox sender: one mechanism for every channel (mail, webhook deliveries).

Requests only write rows, in the transaction of the change that causes them; a sender per
channel, a background task of each server process, delivers them. What it shares across
channels lives here: claiming due rows (one sender per row across instances), short leases
kept alive while the sender lives, the loop that wakes up after a commit or on a poll
interval. What a channel does with one row (render and mail it, sign and post it) is the
channel's.

Crashes: a lease is 30 s and a heartbeat extends it every 10 s while the sender lives, so
when a process dies mid-batch another instance (or the restarted one) takes the rows over
within about 30 s. Each row's lease is also renewed just before it is handled, and one
send is cut off at half a lease, so the renewal always outlasts the send: a slow server
cannot make two instances send one row. (That renewal is skipped while the batch's lease,
kept fresh by the heartbeat, still outlasts a send by a margin: no other instance can claim
the row before then.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from identity.db.models import Queued
from identity.repositories.queue import Queue
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

log = logging.getLogger("identity.outbox")

LEASE = timedelta(seconds=30)
KEEP_ALIVE_EVERY = LEASE.total_seconds() / 3  # real seconds between heartbeats
SEND_TIMEOUT = LEASE.total_seconds() / 2  # one send at most: the renewal before it outlasts it
BATCH = 20
RENEW_MARGIN = 5.0  # seconds a lease must outlast a send by, or the row is renewed first

Q = TypeVar("Q", bound=Queued)
UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


class Channel(Protocol[Q]):
    name: str

    def queue(self, uow: UnitOfWork) -> Queue[Q]: ...

    async def prepare(self, rows: list[Q]) -> Any:
        """What the rows of one claimed batch share (read once, e.g. their endpoints)."""
        ...

    async def handle(self, row: Q, batch: Any) -> bool:
        """Attempt one claimed row (its lease outlasting the send) and record the outcome
        through `queue(uow).finish`; True if it was delivered."""
        ...

    async def measure(self, uow: UnitOfWork) -> None:
        """Update the channel's gauges (queue depth and the like)."""
        ...


@dataclass(slots=True)
class Claim:
    id: uuid.UUID
    leases: dict[uuid.UUID, datetime]  # row id -> its lease as this sender last set it


class Courier(Generic[Q]):
    """Delivers one channel's rows: claim, keep the lease alive, hand each row over."""

    def __init__(
        self,
        rt: Runtime,
        channel: Channel[Q],
        unit_of_work: UnitOfWorkFactory,
        *,
        poll_interval: float,
        concurrency: int = 1,
        batch: int = BATCH,
        keep_alive_every: float = KEEP_ALIVE_EVERY,
    ) -> None:
        self.rt = rt
        self.channel = channel
        self.unit_of_work = unit_of_work
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self.batch = batch
        self.keep_alive_every = keep_alive_every

    async def deliver_due(self) -> int:
        """Handle what is due now; the number of rows delivered."""
        delivered = 0
        while True:
            now = self.rt.clock.now()
            claim_id, lease_until = uuid.uuid4(), now + LEASE
            async with self.unit_of_work() as uow:
                queue = self.channel.queue(uow)
                rows = await queue.claim_due(now, claim_id, lease_until, self.batch)
                await uow.commit()
            claim = Claim(claim_id, {row.id: lease_until for row in rows})  # type: ignore[attr-defined]
            if not rows:
                await self._measure()
                return delivered
            heartbeat = asyncio.create_task(self._keep_alive(claim))
            try:
                batch = await self.channel.prepare(rows)
                delivered += await self._handle_all(rows, claim, batch)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            # Handling may have queued more that is due now (a reset request's mail): go on.

    async def _handle_all(self, rows: list[Q], claim: Claim, batch: Any) -> int:
        if self.concurrency == 1:
            return sum([await self._handle(row, claim, batch) for row in rows])
        slots = asyncio.Semaphore(self.concurrency)

        async def one(row: Q) -> bool:
            async with slots:
                return await self._handle(row, claim, batch)

        return sum(await asyncio.gather(*(one(row) for row in rows)))

    async def _handle(self, row: Q, claim: Claim, batch: Any) -> bool:
        if not await self._still_ours(row, claim):
            return False
        try:
            return await self.channel.handle(row, batch)
        except Exception:  # the database may be away: the row waits for its lease to end
            log.warning("%s: %s could not be handled", self.channel.name, row.id, exc_info=True)  # type: ignore[attr-defined]
            return False

    async def _still_ours(self, row: Q, claim: Claim) -> bool:
        """Make sure the row's lease outlasts its send; False if another claim took it.

        A batch is claimed at once and handled row by row; if this sender stalled (a slow
        server, a missed heartbeat), another instance may have claimed what is left.
        """
        row_id = row.id  # type: ignore[attr-defined]
        now = self.rt.clock.now()
        lease = claim.leases[row_id]
        if (lease - now).total_seconds() > SEND_TIMEOUT + RENEW_MARGIN:
            return True  # nobody can claim it before the send is over
        async with self.unit_of_work() as uow:
            ours = await self.channel.queue(uow).renew(row, now + LEASE)
            await uow.commit()
        if ours:
            claim.leases[row_id] = now + LEASE
        return ours

    async def _keep_alive(self, claim: Claim) -> None:
        while True:
            await asyncio.sleep(self.keep_alive_every)
            await self.keep_alive(claim)

    async def keep_alive(self, claim: Claim) -> None:
        """One heartbeat: the claim's unfinished rows stay this sender's for another lease."""
        try:
            lease_until = self.rt.clock.now() + LEASE
            async with self.unit_of_work() as uow:
                held = await self.channel.queue(uow).keep_alive(claim.id, lease_until)
                await uow.commit()
            # Rows no longer held (done, or taken over) keep their old lease: a row taken
            # over after a stall must not look like this sender's again.
            for row_id in held:
                claim.leases[row_id] = lease_until
        except Exception:  # a missed heartbeat only lets another instance take over
            log.warning("%s: the lease could not be renewed", self.channel.name, exc_info=True)

    async def _measure(self) -> None:
        async with self.unit_of_work() as uow:
            await self.channel.measure(uow)

    async def run(self, wakeup: asyncio.Event, stop: asyncio.Event) -> None:
        """The background loop: deliver, then wait for a wake-up or the poll interval.

        Setting `stop` (and `wakeup`) ends it after the rows in hand are handled.
        """
        while not stop.is_set():
            try:
                await self.deliver_due()
            except Exception:  # the database may be away for a while; try again later
                log.warning(
                    "%s delivery paused: the outbox could not be read",
                    self.channel.name,
                    exc_info=True,
                )
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the wait ends.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await wakeup.wait()
            wakeup.clear()
        log.info("%s sender stopped", self.channel.name)
