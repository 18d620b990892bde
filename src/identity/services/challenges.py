"""One-time secrets of multi-step flows: an mfaToken after the password, a TOTP enrolment, a
passkey registration or sign-in, the state of a sign-in at another provider and the one-time
code it ends with.

A token is `base64url(id ‖ HMAC(secret, id ‖ purpose ‖ user ‖ password stamp))` (see
security.derive): only the id is stored, and a token is bound to its purpose, to its user
and to the password the user had when it was made, so a password change makes it worthless.
Each is single use, short-lived, and stored in the database so every instance knows it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from identity.db.models import Challenge, User
from identity.security.derive import ServerSecret, read_token
from identity.services.errors import InvalidToken
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork

MFA = "mfa"  # the second step of a sign-in
TOTP_ENROLLMENT = "totp-enrollment"
PASSKEY_REGISTRATION = "passkey-registration"
PASSKEY_LOGIN = "passkey-login"
HOSTED_PASSKEY = "hosted-passkey"  # the hosted sign-in page's, bound to its request and form
EXTERNAL_STATE = "external-state"  # a sign-in at another provider, under way
EXTERNAL_SIGN_IN = "external-sign-in"  # its one-time code, for finishExternalLogin
EXTERNAL_LINK = "external-link"  # the code of a link start, for linkExternalAccount
OAUTH_REQUEST = "oauth-request"  # an authorization request, across the hosted pages
OAUTH_CODE = "oauth-code"  # an authorization code, for /oauth2/token

LIFETIMES = {
    MFA: timedelta(minutes=5),
    TOTP_ENROLLMENT: timedelta(minutes=10),
    PASSKEY_REGISTRATION: timedelta(minutes=5),
    PASSKEY_LOGIN: timedelta(minutes=5),
    HOSTED_PASSKEY: timedelta(minutes=5),
    EXTERNAL_STATE: timedelta(minutes=10),  # the person may have to sign in over there
    EXTERNAL_SIGN_IN: timedelta(minutes=5),
    EXTERNAL_LINK: timedelta(minutes=5),
    OAUTH_REQUEST: timedelta(minutes=15),  # signing in, a second factor, consent
    OAUTH_CODE: timedelta(minutes=1),
}
# The purposes whose challenges have no user: a token is checked before it is looked up,
# so made-up tokens (these are asked for without signing in) cost no database round trip.
_WITHOUT_USER = frozenset({PASSKEY_LOGIN, HOSTED_PASSKEY, OAUTH_REQUEST})
# The purposes of which a user has at most one pending: a new one voids the older.
_ONE_AT_A_TIME = frozenset({TOTP_ENROLLMENT, PASSKEY_REGISTRATION})
MAX_FAILURES = 5
_MAC_PURPOSE = "challenge"


@dataclass(frozen=True, slots=True)
class Issued:
    row: Challenge
    token: str
    expires_in: int  # seconds


class Challenges:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def issue(
        self,
        uow: UnitOfWork,
        purpose: str,
        user: User | None,
        *,
        data: dict[str, Any] | None = None,
        sealed: bytes | None = None,
        challenge_id: uuid.UUID | None = None,
    ) -> Issued:
        """A new challenge in the caller's transaction (enrolments void the older one)."""
        now = self.rt.clock.now()
        if user is not None and purpose in _ONE_AT_A_TIME:
            await uow.locks.hold(f"challenges:{user.id}")
            await uow.challenges.void(user.id, purpose)
        lifetime = LIFETIMES[purpose]
        row = Challenge(
            id=challenge_id or uuid.uuid4(),
            purpose=purpose,
            user_id=user.id if user is not None else None,
            created_at=now,
            expires_at=now + lifetime,
            failures=0,
            data=data or {},
            sealed=sealed,
        )
        uow.challenges.add(row)
        token = challenge_token(self.rt.secret, row, user)
        return Issued(row=row, token=token, expires_in=int(lifetime.total_seconds()))

    async def open(
        self, uow: UnitOfWork, token: str, purpose: str
    ) -> tuple[Challenge, User | None]:
        """The live challenge of `purpose` behind a token, and its (active) user.

        InvalidToken for anything else: unknown, forged, of another purpose, used, expired,
        failed too often, made before the user's password changed, or of a deactivated user.
        """
        parts = read_token(token or "", 16)
        if parts is None:
            raise InvalidToken()
        if purpose in _WITHOUT_USER and not self.rt.secret.check(
            _MAC_PURPOSE, *parts, _binding(purpose, None)
        ):
            raise InvalidToken()
        found = await uow.challenges.with_user(uuid.UUID(bytes=parts[0]))
        if found is None or found[0].purpose != purpose:
            raise InvalidToken()
        row, user = found
        if row.user_id is not None and (user is None or not user.is_active):
            raise InvalidToken()
        if not self.rt.secret.check(_MAC_PURPOSE, *parts, _binding(purpose, user)):
            raise InvalidToken()
        now = self.rt.clock.now()
        if row.used_at is not None or row.expires_at <= now or row.failures >= MAX_FAILURES:
            raise InvalidToken()
        return row, user

    async def attempt(self, uow: UnitOfWork, row: Challenge) -> None:
        """Count an answer before it is checked; InvalidToken once five were given."""
        if not await uow.challenges.attempt(row.id, MAX_FAILURES, self.rt.clock.now()):
            raise InvalidToken()

    async def spend(self, uow: UnitOfWork, row: Challenge, webauthn: str | None = None) -> None:
        """Use it up (it is deleted); InvalidToken if another request just did, or, with
        `webauthn` (the WebAuthn challenge an answer was checked against), if a page shown
        again meanwhile replaced it (see `renew`)."""
        if not await uow.challenges.use(row.id, self.rt.clock.now(), webauthn):
            raise InvalidToken()

    async def renew(self, uow: UnitOfWork, row: Challenge, **data: Any) -> None:
        """Replace some of a live challenge's data (a passkey's WebAuthn challenge, for a
        page shown again); InvalidToken if it was spent or expired meanwhile."""
        merged = {**row.data, **data}
        if not await uow.challenges.set_data(row.id, merged, self.rt.clock.now()):
            raise InvalidToken()

    async def failed(self, uow: UnitOfWork, row: Challenge) -> None:
        """A wrong answer (counted by `attempt`): the fifth spends the challenge."""
        await uow.challenges.close_if_exhausted(row.id, MAX_FAILURES, self.rt.clock.now())

    async def prune(self, uow: UnitOfWork) -> int:
        """Delete expired challenges with whatever they held (housekeeping); commits."""
        count = await uow.challenges.prune(self.rt.clock.now())
        await uow.commit()
        return count


def factor_lock(user_id: uuid.UUID) -> str:
    """The lock under which a user's factors change (and a password-only sign-in checks that
    there are none)."""
    return f"factors:{user_id}"


def challenge_token(secret: ServerSecret, row: Challenge, user: User | None) -> str:
    """The token of a challenge row (also for the benchmark, which seeds rows directly)."""
    return secret.token(_MAC_PURPOSE, row.id.bytes, _binding(row.purpose, user))


def was_issued(secret: ServerSecret, token: str, purpose: str, user: User) -> uuid.UUID | None:
    """The id behind a challenge token this server made for `user` and `purpose` (its row
    may be gone, used up or expired); None for any other string."""
    parts = read_token(token or "", 16)
    if parts is None or not secret.check(_MAC_PURPOSE, *parts, _binding(purpose, user)):
        return None
    return uuid.UUID(bytes=parts[0])


def password_stamp(user: User) -> bytes:
    """What changes whenever the user's password does."""
    changed = user.password_changed_at
    return changed.isoformat().encode() if changed is not None else b"-"


def _binding(purpose: str, user: User | None) -> bytes:
    if user is None:
        return purpose.encode()
    return purpose.encode() + b"\0" + user.id.bytes + b"\0" + password_stamp(user)
