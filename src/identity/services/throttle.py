"""Who may try again, and when: the rate-limit rules of the use cases.

Sign-in failures count per account (the address tried, whether or not an account uses it,
so a lock-out never tells) with growing windows, and all attempts count per client address.
Registration and recovery count per client address and per target address.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid

from identity.db.models import User
from identity.security.ratelimit import Rule
from identity.services import events
from identity.services.errors import InvalidCredentials, RateLimited
from identity.services.principal import ClientInfo
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

log = logging.getLogger("identity.auth")

_LOCKED = "locked"
_REMEMBER_LOCKOUT = 7 * 24 * 3600


class Throttle:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.limiter = rt.limiter
        settings = rt.settings
        self.login_account = Rule.parse("login-account", settings.rate_limit_login_account)
        self.login_address = Rule.parse("login-address", settings.rate_limit_login_address)
        self.register_address = Rule.parse("register-address", settings.rate_limit_register_address)
        self.register_email = Rule.parse("register-email", settings.rate_limit_register_email)
        self.recovery_address = Rule.parse("recovery-address", settings.rate_limit_recovery_address)
        self.recovery_email = Rule.parse("recovery-email", settings.rate_limit_recovery_email)
        self.mfa_account = Rule.parse("mfa-account", settings.rate_limit_mfa_account)
        self.passkey_address = Rule.parse("passkey-address", settings.rate_limit_passkey_address)
        self.passkey_credential = Rule.parse(
            "passkey-credential", settings.rate_limit_passkey_credential
        )
        self.external_address = Rule.parse("external-address", settings.rate_limit_external_address)

    async def count(self, rule: Rule, key: str | None) -> None:
        """Count one attempt against `rule`; RateLimited when it is used up."""
        if key is None:
            return
        retry_after = await self.limiter.hit(rule, key)
        if retry_after is not None:
            raise RateLimited(retry_after)

    async def per_address(self, rule: Rule, client: ClientInfo) -> None:
        await self.count(rule, address_key(client.ip_address))

    # Credential checks ----------------------------------------------------------------------

    async def before_credentials(self, uow: UnitOfWork, email: str, user: User | None) -> None:
        """Count the attempt, and refuse while the account is locked, even if the password
        would be right.

        Every attempt is counted before its password is checked, and a right password clears
        the count: counted afterwards, a burst of concurrent guesses would all pass this check
        while their hashes were still being verified.
        """
        retry_after = await self.limiter.hit(self.login_account, email)
        if retry_after is not None:
            raise RateLimited(retry_after)
        if await self.limiter.marked(_LOCKED, email):
            await self.limiter.unmark(_LOCKED, email)
            log.info("sign-in lock-out over (user %s)", user.id if user else "unknown")
            uow.audit.record("auth.lockout_ended", subject=user.id if user else None, email=email)

    async def credentials_failed(self, uow: UnitOfWork, email: str, user: User | None) -> None:
        """A wrong password (already counted): the failure that used the allowance up locks
        the account."""
        retry_after = await self.limiter.blocked(self.login_account, email)
        if retry_after is not None and not await self.limiter.marked(_LOCKED, email):
            await self.limiter.mark(_LOCKED, email, _REMEMBER_LOCKOUT)
            log.warning(
                "sign-in locked for %s s after repeated failures (user %s)",
                retry_after,
                user.id if user else "unknown: no such account",
            )
            uow.audit.record(
                "auth.lockout",
                subject=user.id if user else None,
                email=email,
                retry_after=retry_after,
            )
            if user is not None:  # an address nobody uses has no one to tell about
                uow.events.add(
                    events.USER_LOCKED_OUT,
                    {"userId": user.id, "email": user.email, "retryAfter": retry_after},
                )

    async def credentials_succeeded(self, email: str) -> None:
        await self.limiter.clear(self.login_account, email)

    async def check_password(self, uow: UnitOfWork, user: User, password: str) -> None:
        """The signed-in user's current password, as a sign-in would check it (and limit it).

        Ends the transaction so far: no connection is held while the hash is verified.
        """
        await self.before_credentials(uow, user.email, user)
        await uow.release()
        if not (await self.rt.hasher.verify(user.password_hash, password)).ok:
            await self.credentials_failed(uow, user.email, user)
            uow.audit.record("auth.password_check_failed", actor=user.id, subject=user.id)
            await uow.commit()
            raise InvalidCredentials("The current password is incorrect.")
        await self.credentials_succeeded(user.email)

    # Second factors -----------------------------------------------------------------------

    async def before_second_factor(self, user_id: uuid.UUID) -> None:
        """Count a second-factor attempt before it is checked (a concurrent burst gets no
        more tries than the allowance). Only a right second factor clears the count: a right
        password must not, or the password alone would buy endless guesses."""
        await self.count(self.mfa_account, str(user_id))

    async def second_factor_succeeded(self, user_id: uuid.UUID) -> None:
        await self.limiter.clear(self.mfa_account, str(user_id))


def address_key(address: str | None) -> str:
    """Who a client address stands for, in per-address limits.

    An IPv6 client usually holds a whole /64 and could pick a fresh address per request: the
    /64 is the key. An IPv4-mapped address is its IPv4 address. A request with no address
    (e.g. a Unix socket without a trusted proxy) shares one key with all such requests.
    """
    if address is None:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
