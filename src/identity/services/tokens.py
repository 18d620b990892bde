"""One-time tokens: password reset, email verification, email change, invitation, and the
"this wasn't me" link that undoes an added factor or sign-in method.

A token is `base64url(id ‖ HMAC(secret, id ‖ purpose ‖ user id))`: at least 256 bits, bound
to its purpose and user, and only the id is stored. A new token of a purpose voids the
user's older ones; each is used once.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from identity.db.models import OneTimeToken, User
from identity.security.derive import read_token
from identity.services.errors import InvalidToken
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

PASSWORD_RESET = "password_reset"
VERIFY_EMAIL = "verify_email"
EMAIL_CHANGE = "email_change"
INVITATION = "invitation"
REVERT_CHANGE = "revert_change"  # survives password and email changes; one per change

_MAC_PURPOSE = "one-time-token"


class OneTimeTokens:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def lifetime(self, purpose: str) -> timedelta:
        settings = self.rt.settings
        seconds = {
            PASSWORD_RESET: settings.password_reset_ttl,
            VERIFY_EMAIL: settings.verify_email_ttl,
            EMAIL_CHANGE: settings.email_change_ttl,
            INVITATION: settings.invitation_ttl,
            REVERT_CHANGE: 24 * 3600,
        }[purpose]
        return timedelta(seconds=seconds)

    async def issue(
        self, uow: UnitOfWork, user: User, purpose: str, payload: str | None = None
    ) -> OneTimeToken:
        """A new token; the user's unused tokens of the same purpose stop working.

        Held under a lock per user: two requests at once must not each void only the tokens
        committed before them and leave two live links.
        """
        await uow.locks.hold(f"one-time-tokens:{user.id}")
        now = self.rt.clock.now()
        if purpose != REVERT_CHANGE:  # each change has its own undo link
            await uow.tokens.void(user.id, now, purpose)
        row = OneTimeToken(
            id=uuid.uuid4(),
            user_id=user.id,
            purpose=purpose,
            created_at=now,
            expires_at=now + self.lifetime(purpose),
            payload=payload,
        )
        uow.tokens.add(row)
        return row

    def token(self, row: OneTimeToken) -> str:
        return self.rt.secret.token(_MAC_PURPOSE, row.id.bytes, _binding(row))

    async def consume(self, uow: UnitOfWork, token: str, purposes: set[str]) -> OneTimeToken:
        """Check a token and mark it used; InvalidToken unless it is a live one of `purposes`."""
        row = await self.check(uow, token, purposes)
        if not await uow.tokens.use(row.id, self.rt.clock.now()):  # used concurrently
            raise InvalidToken()
        return row

    async def check(self, uow: UnitOfWork, token: str, purposes: set[str]) -> OneTimeToken:
        """The live token of one of `purposes`, not yet marked used; else InvalidToken."""
        parts = read_token(token or "", 16)
        if parts is None:
            raise InvalidToken()
        token_id, mac = parts
        row = await uow.tokens.get(uuid.UUID(bytes=token_id))
        if row is None or not self.rt.secret.check(_MAC_PURPOSE, token_id, mac, _binding(row)):
            raise InvalidToken()
        now = self.rt.clock.now()
        if row.purpose not in purposes or row.used_at is not None or row.expires_at <= now:
            raise InvalidToken()
        return row

    def link(self, row: OneTimeToken) -> str:
        settings = self.rt.settings
        template = {
            PASSWORD_RESET: settings.password_reset_url,
            INVITATION: settings.password_reset_url,
            VERIFY_EMAIL: settings.verify_email_url,
            EMAIL_CHANGE: settings.confirm_email_change_url,
            REVERT_CHANGE: settings.revert_change_url,
        }[row.purpose]
        return template.replace("{public_url}", settings.public_url).replace(
            "{token}", self.token(row)
        )


def _binding(row: OneTimeToken) -> bytes:
    return row.purpose.encode() + b"\0" + row.user_id.bytes
