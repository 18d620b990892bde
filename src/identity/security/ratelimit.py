"""Rate limits with the `limits` library: in process memory, or in Redis shared by instances.

The sliding-window-counter strategy keeps two counters per key and window, whatever the
limit: a moving window would keep one entry per hit (a million for a limit of a million).

If Redis is configured but unreachable, checks fall back to process memory (a log line and
a metric say so) and Redis is tried again after a short pause: never no limit at all.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from identity import metrics

log = logging.getLogger("identity.ratelimit")

RETRY_REDIS_AFTER = 5.0  # seconds of memory-only limits after a Redis failure


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    items: tuple[RateLimitItem, ...]

    @classmethod
    def parse(cls, name: str, spec: str) -> Rule:
        return cls(name=name, items=tuple(parse_many(spec)))


class RateLimiter:
    def __init__(self, *, redis_url: str | None, key_prefix: str, timeout: float = 0.5) -> None:
        self._memory_storage = MemoryStorage()
        self._memory = SlidingWindowCounterRateLimiter(self._memory_storage)
        self._redis_storage: Storage | None = None
        self._redis: SlidingWindowCounterRateLimiter | None = None
        if redis_url is not None:
            self._redis_storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=key_prefix,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
            self._redis = SlidingWindowCounterRateLimiter(self._redis_storage)
        self._redis_down_until = 0.0
        self._prefix = key_prefix

    @property
    def shared(self) -> bool:
        """Counts are shared with other instances (Redis is configured and answering)."""
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    def _backends(self) -> tuple[SlidingWindowCounterRateLimiter, Storage]:
        if self._redis is not None and self._redis_storage is not None and self.shared:
            return self._redis, self._redis_storage
        return self._memory, self._memory_storage

    def _redis_failed(self, exc: Exception) -> None:
        if time.monotonic() >= self._redis_down_until:
            log.warning(
                "Redis unreachable for rate limits (%s); counting in process memory for now",
                type(exc.__cause__ or exc).__name__,
            )
        self._redis_down_until = time.monotonic() + RETRY_REDIS_AFTER
        metrics.RATE_LIMIT_FALLBACKS.inc()

    async def hit(self, rule: Rule, key: str) -> int | None:
        """Count one event; None if it was allowed, else seconds until it would be."""
        return await self._check(rule, key, count=True)

    async def blocked(self, rule: Rule, key: str) -> int | None:
        """Seconds until the next event would be allowed, without counting one; or None."""
        return await self._check(rule, key, count=False)

    async def clear(self, rule: Rule, key: str) -> None:
        try:
            limiter = self._backends()[0]
            for item in rule.items:
                await limiter.clear(item, rule.name, key)
        except StorageError as exc:
            self._redis_failed(exc)
        for item in rule.items:
            await self._memory.clear(item, rule.name, key)

    async def _check(self, rule: Rule, key: str, *, count: bool) -> int | None:
        try:
            retry_after = await self._check_with(self._backends()[0], rule, key, count)
        except StorageError as exc:
            self._redis_failed(exc)
            retry_after = await self._check_with(self._memory, rule, key, count)
        if retry_after is not None:
            metrics.RATE_LIMITED.labels(rule.name).inc()
        return retry_after

    async def _check_with(
        self, limiter: SlidingWindowCounterRateLimiter, rule: Rule, key: str, count: bool
    ) -> int | None:
        retry_after = None
        for item in rule.items:
            allowed = await (limiter.hit if count else limiter.test)(item, rule.name, key)
            if not allowed:
                retry_after = max(retry_after or 0, await self._reset_in(limiter, item, rule, key))
        return retry_after

    async def _reset_in(
        self, limiter: SlidingWindowCounterRateLimiter, item: RateLimitItem, rule: Rule, key: str
    ) -> int:
        stats = await limiter.get_window_stats(item, rule.name, key)
        return max(1, int(stats.reset_time - time.time()) + 1)

    # Markers: "this happened, remember it for a while" (e.g. an account was locked).

    async def mark(self, name: str, key: str, seconds: int) -> None:
        storage = self._backends()[1]
        try:
            await storage.incr(f"{self._prefix}/{name}/{key}", seconds)
        except StorageError as exc:
            self._redis_failed(exc)
            await self._memory_storage.incr(f"{self._prefix}/{name}/{key}", seconds)

    async def marked(self, name: str, key: str) -> bool:
        storage = self._backends()[1]
        try:
            return await storage.get(f"{self._prefix}/{name}/{key}") > 0
        except StorageError as exc:
            self._redis_failed(exc)
            return await self._memory_storage.get(f"{self._prefix}/{name}/{key}") > 0

    async def unmark(self, name: str, key: str) -> None:
        storage = self._backends()[1]
        try:
            await storage.clear(f"{self._prefix}/{name}/{key}")
        except StorageError as exc:
            self._redis_failed(exc)
        await self._memory_storage.clear(f"{self._prefix}/{name}/{key}")
