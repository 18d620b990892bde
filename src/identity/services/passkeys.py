"""Passkeys: adding one to an account, and signing in with one alone.

A passkey is a factor like an authenticator app: the first turns MFA on (services.factors
does that part for both). Signing in with a passkey needs no password and counts as two
factors (`hwk` and `user`, aal 2): the authenticator verified the user. Such sign-ins are
limited per client address (the challenges asked for) and per credential, and have nothing
to do with the password lock-out, in either direction. The passkey as a second step after a
password is in services.mfa.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.structs import AuthenticationCredential

from identity import metrics
from identity.db.models import Challenge, Factor, User
from identity.security import webauthn
from identity.security.webauthn import Credential, Refused, RelyingParty
from identity.services.auth import Auth, AuthResult
from identity.services.challenges import (
    HOSTED_PASSKEY,
    PASSKEY_LOGIN,
    PASSKEY_REGISTRATION,
    Challenges,
)
from identity.services.errors import (
    AccountDisabled,
    EmailNotVerified,
    InvalidCredentials,
    InvalidToken,
    PasskeysOff,
    ValidationFailed,
)
from identity.services.factors import DEFAULT_LABELS, PASSKEY, FactorAdded, Factors
from identity.services.principal import (
    HARDWARE_KEY,
    USER_PRESENCE,
    Assurance,
    ClientInfo,
    Principal,
)
from identity.services.runtime import Runtime
from identity.services.throttle import Throttle
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

PROVEN = (HARDWARE_KEY, USER_PRESENCE)  # a passkey with user verification
NOT_ACCEPTED = "This passkey could not be used to sign in."
_MALFORMED = "Send the credential exactly as the browser returned it (its JSON form)."


@dataclass(frozen=True, slots=True)
class Started:
    token: str
    options: dict[str, Any]


class Passkeys:
    def __init__(
        self,
        rt: Runtime,
        rp: RelyingParty | None,
        auth: Auth,
        challenges: Challenges,
        factors: Factors,
        throttle: Throttle,
    ) -> None:
        self.rt = rt
        self._rp = rp
        self.auth = auth
        self.challenges = challenges
        self.factors = factors
        self.throttle = throttle

    @property
    def rp(self) -> RelyingParty:
        if self._rp is None:
            raise PasskeysOff()
        return self._rp

    def usable_at(self, origin: str) -> bool:
        """Whether a page of `origin` can sign in with a passkey here."""
        return self._rp is not None and origin in self._rp.origins

    # Adding a passkey ---------------------------------------------------------------------

    async def start_registration(
        self, uow: UnitOfWork, principal: Principal, password: str | None
    ) -> Started:
        rp = self.rp
        user = await self.factors.ready_to_enroll(uow, principal, password)
        challenge = webauthn.new_challenge()
        issued = await self.challenges.issue(
            uow, PASSKEY_REGISTRATION, user, data={"webauthn": webauthn.encode(challenge)}
        )
        existing = await uow.factors.of_user(user.id, PASSKEY)
        options = rp.creation_options(
            challenge=challenge,
            user_handle=user.id.bytes,
            user_name=user.email,
            display_name=f"{user.first_name} {user.last_name}".strip(),
            exclude=[Credential.of(f) for f in existing],
        )
        uow.audit.record("mfa.passkey_registration_started", actor=user.id, subject=user.id)
        await uow.commit()
        return Started(token=issued.token, options=options)

    async def finish_registration(
        self,
        uow: UnitOfWork,
        principal: Principal,
        token: str,
        credential: object,
        label: str | None,
    ) -> FactorAdded:
        rp = self.rp
        check = Checker()
        label = check.label("label", label, DEFAULT_LABELS[PASSKEY])
        parsed = None
        try:
            parsed = rp.parse_registration(credential)
        except Refused as exc:
            _credential_problem(check, exc)
        check.done()
        row, user = await self.challenges.open(uow, token, PASSKEY_REGISTRATION)
        if user is None or user.id != principal.user_id:
            raise InvalidToken()
        await self.challenges.attempt(uow, row)
        try:
            registered = rp.verify_registration(parsed, base64url_to_bytes(row.data["webauthn"]))
        except Refused as exc:
            await self._registration_failed(uow, row, user, exc.reason)
            raise ValidationFailed.one(
                "credential",
                "invalid_credential",
                "The passkey could not be verified: try again from this site.",
            ) from None
        # Held until the factor is committed: two registrations of one credential id cannot
        # both pass the check below.
        await uow.locks.hold(f"passkey:{webauthn.encode(registered.credential_id)}")
        if await uow.factors.by_credential(registered.credential_id) is not None:
            await self._registration_failed(uow, row, user, "already_registered")
            raise ValidationFailed.one(
                "credential", "already_registered", "This passkey is already registered."
            )
        await self.challenges.spend(uow, row)
        now = self.rt.clock.now()
        factor = Factor(
            id=uuid.uuid4(),
            user_id=user.id,
            kind=PASSKEY,
            label=label,
            created_at=now,
            last_used_at=now,
            credential_id=registered.credential_id,
            public_key=registered.public_key,
            sign_count=registered.sign_count,
            transports=registered.transports,
            aaguid=registered.aaguid,
            backup_eligible=registered.backup_eligible,
            backup_state=registered.backup_state,
        )
        return await self.factors.add(uow, principal, user, factor, PROVEN)

    async def _registration_failed(
        self, uow: UnitOfWork, row: Challenge, user: User, reason: str
    ) -> None:
        await self.challenges.failed(uow, row)
        uow.audit.record(
            "mfa.passkey_registration_failed", actor=user.id, subject=user.id, reason=reason
        )
        await uow.commit()

    # Signing in with a passkey alone -----------------------------------------------------

    async def start_login(
        self, uow: UnitOfWork, client: ClientInfo, *, bound_to: str | None = None
    ) -> Started:
        """Options for a discoverable credential: no user yet, the browser offers them.

        Limited per client address here only: each challenge takes one answer, so the
        answers are limited with it. `bound_to` (the hosted page's request and form) makes
        a challenge that only an answer sent with the same binding can use, and that
        finishPasskeyLogin does not take (nor the page a GraphQL one).
        """
        rp = self.rp
        await self.throttle.per_address(self.throttle.passkey_address, client)
        challenge = webauthn.new_challenge()
        data = {"webauthn": webauthn.encode(challenge)}
        if bound_to is not None:
            data["bound_to"] = _digest(bound_to)
        purpose = PASSKEY_LOGIN if bound_to is None else HOSTED_PASSKEY
        issued = await self.challenges.issue(uow, purpose, None, data=data)
        await uow.commit()
        return Started(
            token=issued.token, options=rp.request_options(challenge=challenge, allow=[])
        )

    async def finish_login(
        self,
        uow: UnitOfWork,
        token: str,
        credential: object,
        client: ClientInfo,
        *,
        bound_to: str | None = None,
        origin: str | None = None,
    ) -> AuthResult:
        """`bound_to`: see start_login; `origin`: the one origin the answer may come from
        (the hosted page's), instead of any allowed one."""
        rp = self.rp
        check = Checker()
        assertion = passkey_assertion(check, credential, "credential")
        check.done()
        assert assertion is not None
        purpose = PASSKEY_LOGIN if bound_to is None else HOSTED_PASSKEY
        row, _ = await self.challenges.open(uow, token, purpose)
        if bound_to is not None and not hmac.compare_digest(
            row.data.get("bound_to", ""), _digest(bound_to)
        ):
            # Not spent (a stolen token must not burn the page's challenge), so each such
            # answer counts as a new sign-in would: the audit entries are limited with it.
            await self.throttle.per_address(self.throttle.passkey_address, client)
            await self._refuse(uow, None, "challenge_elsewhere", InvalidToken())
        # Spent by the first answer, right or wrong: a sign-in challenge is cheap to ask for.
        await self.challenges.spend(uow, row)
        await uow.commit()
        challenge = base64url_to_bytes(row.data["webauthn"])
        factor = await uow.factors.by_credential(assertion.raw_id)
        if factor is None or factor.kind != PASSKEY:
            await self._refuse(uow, None, "unknown_credential")
        assert factor is not None
        handle = webauthn.user_handle(assertion)
        if handle is not None and handle != factor.user_id.bytes:
            # The handle is not signed: it must name the credential's owner.
            await self._refuse(uow, factor, "user_handle_mismatch")
        try:
            asserted = rp.verify_assertion(assertion, challenge, Credential.of(factor), origin)
        except Refused as exc:
            await self._refuse(uow, factor, exc.reason)
        # Counted only for answers its key signed: made-up answers naming a credential id
        # (which a second step shows to whoever knows the password) must not lock it out.
        await self.throttle.count(self.throttle.passkey_credential, str(factor.id))
        user = await uow.users.get(factor.user_id)
        assert user is not None  # a factor goes with its user
        if not user.is_active:
            await self._refuse(uow, factor, "disabled", AccountDisabled())
        if self.rt.settings.require_verified_email and not user.is_verified:
            await self._refuse(uow, factor, "unverified", EmailNotVerified())
        now = self.rt.clock.now()
        if not await uow.factors.record_assertion(
            factor, asserted.sign_count, asserted.backup_state, now
        ):
            await self._refuse(uow, factor, "concurrent_use")  # its counter moved meanwhile
        metrics.LOGINS.labels("success").inc()
        roles = await uow.roles.of_user(user.id)
        return await self.auth.start_session(
            uow, user, client, assurance=Assurance.of(PROVEN), roles=roles
        )

    async def _refuse(
        self,
        uow: UnitOfWork,
        factor: Factor | None,
        reason: str,
        error: Exception | None = None,
    ) -> NoReturn:
        """Record a refused passkey sign-in and refuse it (nothing else is written)."""
        details: dict[str, Any] = {"reason": reason, "method": "passkey"}
        subject = None
        if factor is not None:  # read before the rollback expires it
            subject, details["factor_id"] = factor.user_id, str(factor.id)
        await uow.rollback()
        metrics.LOGINS.labels(reason if reason in ("disabled", "unverified") else "refused").inc()
        if reason == "counter_regressed":  # a cloned authenticator, perhaps
            uow.audit.record("auth.passkey_counter_regressed", subject=subject, **details)
        else:
            uow.audit.record("auth.login_failed", subject=subject, **details)
        await uow.commit()
        raise error or InvalidCredentials(NOT_ACCEPTED)


def _digest(binding: str) -> str:
    return hashlib.sha256(binding.encode()).hexdigest()


def passkey_assertion(
    check: Checker, value: object, field: str = "passkey"
) -> AuthenticationCredential | None:
    """A browser's JSON of `navigator.credentials.get()`, or a validation problem."""
    try:
        return webauthn.parse_assertion(value)
    except Refused as exc:
        _credential_problem(check, exc, field)
        return None


def _credential_problem(check: Checker, exc: Refused, field: str = "credential") -> None:
    if exc.reason == "oversized":
        check.fail(field, "too_long", "The credential is larger than a passkey's answer.")
    else:
        check.fail(field, "invalid_credential", _MALFORMED)
