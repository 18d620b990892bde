"""What the use cases need from the process: settings, clock, secret, hasher and key ring."""

from __future__ import annotations

from dataclasses import dataclass

from identity.clock import Clock
from identity.config import Settings
from identity.security.derive import ServerSecret
from identity.security.jwt import KeyRing
from identity.security.passwords import PasswordHasher
from identity.security.ratelimit import RateLimiter


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    secret: ServerSecret
    hasher: PasswordHasher
    keyring: KeyRing
    limiter: RateLimiter

    @classmethod
    def create(cls, settings: Settings, clock: Clock) -> Runtime:
        secret = ServerSecret(settings.secret(), settings.secret_fallbacks())
        return cls(
            settings=settings,
            clock=clock,
            secret=secret,
            hasher=PasswordHasher(
                memory_cost=settings.argon2_memory_cost,
                time_cost=settings.argon2_time_cost,
                parallelism=settings.argon2_parallelism,
                concurrency=settings.password_hash_concurrency,
            ),
            keyring=KeyRing(
                secret,
                issuer=settings.issuer,
                audience=settings.jwt_audience,
                access_token_ttl=settings.access_token_ttl,
                leeway=settings.jwt_leeway,
                algorithm=settings.jwt_algorithm,
            ),
            limiter=RateLimiter(
                redis_url=settings.redis_url, key_prefix=settings.rate_limit_key_prefix
            ),
        )
