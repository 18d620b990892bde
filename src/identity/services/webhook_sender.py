"""The webhook channel of the outbox: sign, post, and record each attempt.

Retries follow the Standard Webhooks schedule: an attempt at once, then after 5 s, 5 min,
30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h; after the tenth failure the delivery is
`abandoned`. HTTP 410 disables the endpoint, and so does a run of failures lasting five
days; either way its pending deliveries end as `failed` and whoever holds webhooks:write is
mailed. Everything runs on the injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from identity import metrics
from identity.db.models import WebhookDelivery, WebhookEndpoint
from identity.repositories.webhooks import WebhookDeliveryQueue
from identity.security import webhooks as hooks
from identity.services.outbox import UnitOfWorkFactory
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

log = logging.getLogger("identity.webhooks")

DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
DISABLE_AFTER = timedelta(days=5)
WEBHOOK_BATCH = 100  # rows per claim: events come in bursts (an import, a bulk change)
DELIVERED = "delivered"
FAILED = "failed"
ABANDONED = "abandoned"
GONE = 410


@dataclass(frozen=True, slots=True)
class Delivered:
    row: WebhookDelivery
    endpoint: WebhookEndpoint
    status: int


class GroupRecord:
    """Successful deliveries recorded together, as a database groups commits: the first
    success starts a write, and every success that arrives while one is being written goes
    into the next. Concurrent sends thus share transactions without waiting for each other
    (a lone success is written at once), and each caller learns whether its row was
    recorded (False: another claim had taken it over)."""

    def __init__(self, write: Callable[[list[Delivered]], Awaitable[set[uuid.UUID]]]) -> None:
        self._write = write
        self._waiting: list[tuple[Delivered, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, row: WebhookDelivery, endpoint: WebhookEndpoint, status: int) -> bool:
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((Delivered(row, endpoint, status), answer))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        # Shielded: a caller cancelled meanwhile leaves its row to the write in progress.
        return await asyncio.shield(answer)

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    recorded = await self._write([d for d, _ in group])
                except Exception as exc:  # the database may be away: each row waits its lease
                    for _, answer in group:
                        answer.set_exception(exc)
                    continue
                for d, answer in group:
                    answer.set_result(d.row.id in recorded)
        finally:
            self._writer = None


@dataclass(frozen=True, slots=True)
class Target:
    endpoint: WebhookEndpoint
    keys: list[bytes]  # the secrets that sign, opened


class WebhookChannel:
    name = "webhooks"

    def __init__(
        self, rt: Runtime, client: hooks.WebhookClient, unit_of_work: UnitOfWorkFactory
    ) -> None:
        self.rt = rt
        self.client = client
        self.unit_of_work = unit_of_work
        self.delivered = GroupRecord(self._record_delivered)

    def queue(self, uow: UnitOfWork) -> WebhookDeliveryQueue:
        return uow.webhook_deliveries

    async def measure(self, uow: UnitOfWork) -> None:
        counts = await uow.webhook_deliveries.counts()
        metrics.WEBHOOK_QUEUE_DEPTH.set(counts.get("pending", 0))
        oldest = await uow.webhook_deliveries.oldest_pending()
        age = 0.0 if oldest is None else (self.rt.clock.now() - oldest).total_seconds()
        metrics.WEBHOOK_OLDEST_PENDING.set(max(age, 0.0))

    async def prepare(self, rows: list[WebhookDelivery]) -> dict[uuid.UUID, Target]:
        """The batch's endpoints and their signing keys, read once, as of the claim."""
        ids = sorted({row.endpoint_id for row in rows})
        async with self.unit_of_work() as uow:
            endpoints = await uow.webhooks.endpoints_by_id(ids)
            secrets = await uow.webhooks.live_secrets(ids, self.rt.clock.now())
            await uow.release()  # the read ends; the rows stay usable (a rollback expires them)
        return {
            endpoint_id: Target(
                endpoint,
                [
                    self.rt.secret.unseal(hooks.SECRET_PURPOSE, s.sealed, hooks.secret_aad(s))
                    for s in secrets.get(endpoint_id, [])
                ],
            )
            for endpoint_id, endpoint in endpoints.items()
        }

    async def handle(self, row: WebhookDelivery, batch: dict[uuid.UUID, Target]) -> bool:
        target = batch.get(row.endpoint_id)
        if target is None:  # deleted meanwhile (its deliveries went with it)
            return False
        endpoint = target.endpoint
        if not endpoint.is_active:
            reason = endpoint.disabled_reason or "by an admin"
            await self._record(row, endpoint, None, f"endpoint disabled: {reason}")
            return False
        status, error = await self._post(endpoint, row, target.keys, self.rt.clock.now())
        if error is None and status is not None:
            return await self.delivered.record(row, endpoint, status)
        return await self._record(row, endpoint, status, error)

    async def _post(
        self, endpoint: WebhookEndpoint, row: WebhookDelivery, keys: list[bytes], now: datetime
    ) -> tuple[int | None, str | None]:
        """The answer's status, or why there is none; never the answer's body."""
        problem = hooks.url_problem(endpoint.url, require_https=self.rt.settings.is_production)
        if problem is not None:
            return None, f"refused: {problem.message}"
        timestamp = int(now.timestamp())
        headers = hooks.headers(keys, str(row.event_id), timestamp, row.body)
        try:
            answer = await self.client.post(endpoint.url, headers, row.body)
        except hooks.AddressRefused as exc:
            metrics.WEBHOOK_DELIVERIES.labels("refused").inc()
            return None, f"refused: {exc}"
        except TimeoutError:
            return None, f"timed out after {self.client.timeout:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:200]}"
        if 200 <= answer.status < 300:
            return answer.status, None
        if 300 <= answer.status < 400:
            return answer.status, f"HTTP {answer.status}: redirects are not followed"
        return answer.status, f"HTTP {answer.status}"

    async def _record_delivered(self, done: list[Delivered]) -> set[uuid.UUID]:
        """Successes, in one transaction: each row still held by its claim is `delivered`,
        and each endpoint's run of failures ends. The ids recorded."""
        now = self.rt.clock.now()
        async with self.unit_of_work() as uow:
            queue, recorded = uow.webhook_deliveries, set()
            for status in sorted({d.status for d in done}):
                rows = [d.row for d in done if d.status == status]
                recorded |= await queue.finish_many(
                    rows,
                    state=DELIVERED,
                    delivered_at=now,
                    last_response_status=status,
                    last_error=None,
                )
            for endpoint_id in sorted({d.endpoint.id for d in done if d.row.id in recorded}):
                await uow.webhooks.succeeded(endpoint_id)  # matches no row, mostly
            await uow.commit()
        for d in done:
            if d.row.id in recorded:
                metrics.WEBHOOK_DELIVERIES.labels(DELIVERED).inc()
                log.info(
                    "webhook %s (%s) to endpoint %s: delivered, HTTP %s",
                    d.row.id,
                    d.row.event,
                    d.endpoint.id,
                    d.status,
                )
        return recorded

    async def _record(
        self,
        row: WebhookDelivery,
        endpoint: WebhookEndpoint,
        status: int | None,
        error: str | None,
    ) -> bool:
        now = self.rt.clock.now()
        async with self.unit_of_work() as uow:
            queue, repo = uow.webhook_deliveries, uow.webhooks
            done = {"last_response_status": status, "last_error": error}
            if error is None:
                ours = await queue.finish(row, state=DELIVERED, delivered_at=now, **done)
                if ours:  # a success ends a run of failures (matches no row, mostly)
                    await repo.succeeded(endpoint.id)
                outcome = DELIVERED
            elif not endpoint.is_active:
                ours = await queue.finish(row, state=FAILED, attempts=row.attempts, **done)
                outcome = FAILED
            elif status == GONE:
                ours = await queue.finish(row, state=FAILED, **done)
                if ours:
                    await self._disable(uow, endpoint, "The receiver answered HTTP 410 Gone.")
                outcome = FAILED
            else:
                attempt = row.attempts + 1
                since = await repo.failing(endpoint.id, now)
                if since is not None and now - since >= DISABLE_AFTER:
                    ours = await queue.finish(row, state=FAILED, **done)
                    if ours:
                        await self._disable(uow, endpoint, "Every delivery failed for 5 days.")
                    outcome = FAILED
                elif attempt > len(DELAYS):
                    ours = await queue.finish(row, state=ABANDONED, **done)
                    outcome = ABANDONED
                else:
                    retry_at = now + DELAYS[attempt - 1]
                    ours = await queue.finish(row, next_attempt_at=retry_at, **done)
                    outcome = "retried"
            if not ours:  # another claim took it over meanwhile: its outcome counts
                return False
            await uow.commit()
        metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
        level = logging.INFO if error is None else logging.WARNING
        log.log(
            level,
            "webhook %s (%s) to endpoint %s: %s",
            row.id,
            row.event,
            endpoint.id,
            error or f"delivered, HTTP {status}",
        )
        return error is None

    async def _disable(self, uow: UnitOfWork, endpoint: WebhookEndpoint, reason: str) -> None:
        if not await uow.webhooks.disable(endpoint.id, reason, self.rt.clock.now()):
            return
        await uow.webhooks.fail_pending(endpoint.id, f"endpoint disabled: {reason}")
        uow.audit.record("webhook.endpoint_disabled", endpoint_id=str(endpoint.id), reason=reason)
        for manager in await uow.webhooks.managers("webhooks:write"):
            uow.outbox.add(
                "webhook_disabled",
                manager.email,
                first_name=manager.first_name,
                url=endpoint.url,
                reason=reason,
            )
        log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
