"""Second factors: enrolling an authenticator app, recovery codes, renaming and removing
factors, an admin's reset (the mailed "this wasn't me" link is services.revert).

A user with at least one factor has MFA on. The first factor turns it on: ten recovery codes
(shown once), the user's other sessions end, and the calling session counts as signed in
with two factors from then on. Removing a factor ends the other sessions too; removing the
last turns MFA off and voids the recovery codes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from identity.db.models import Factor, User
from identity.security import recovery_codes, totp
from identity.services import events, privileges
from identity.services.challenges import TOTP_ENROLLMENT, Challenges, factor_lock
from identity.services.datakeys import DataKeys
from identity.services.errors import (
    EmailNotVerified,
    InvalidCredentials,
    InvalidToken,
    MfaRequired,
    NotFound,
    ValidationFailed,
)
from identity.services.principal import OTP, Principal
from identity.services.reauth import Reauthentication
from identity.services.runtime import Runtime
from identity.services.tokens import REVERT_CHANGE, OneTimeTokens
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

TOTP = "totp"
PASSKEY = "passkey"
TOTP_SECRET = totp.SECRET_PURPOSE
ENROLLMENT_SECRET = totp.ENROLLMENT_PURPOSE
RECOVERY_CODE = "recovery-code"  # HMAC purpose under the data key
DEFAULT_LABELS = {TOTP: "Authenticator app", PASSKEY: "Passkey"}
KIND_WORDS = {TOTP: "an authenticator app", PASSKEY: "a passkey"}


@dataclass(frozen=True, slots=True)
class TotpEnrollment:
    token: str
    secret: str
    uri: str
    qr_code_svg: str


@dataclass(frozen=True, slots=True)
class FactorAdded:
    factor: Factor
    recovery_codes: list[str] | None  # only when this factor turned MFA on


class Factors:
    def __init__(
        self,
        rt: Runtime,
        challenges: Challenges,
        datakeys: DataKeys,
        tokens: OneTimeTokens,
        reauth: Reauthentication,
    ) -> None:
        self.rt = rt
        self.challenges = challenges
        self.datakeys = datakeys
        self.tokens = tokens
        self.reauth = reauth

    # Enrolling an authenticator app -------------------------------------------------------

    async def start_totp_enrollment(
        self, uow: UnitOfWork, principal: Principal, password: str | None
    ) -> TotpEnrollment:
        """A new secret for the app, kept sealed in a challenge until a code confirms it."""
        user = await self.ready_to_enroll(uow, principal, password)
        secret = totp.new_secret()
        challenge_id = uuid.uuid4()
        sealed = self.rt.secret.seal(ENROLLMENT_SECRET, secret.encode(), challenge_id.bytes)
        issued = await self.challenges.issue(
            uow, TOTP_ENROLLMENT, user, sealed=sealed, challenge_id=challenge_id
        )
        uow.audit.record("mfa.totp_enrollment_started", actor=user.id, subject=user.id)
        await uow.commit()
        uri = totp.provisioning_uri(secret, user.email, self.rt.settings.totp_issuer)
        return TotpEnrollment(
            token=issued.token, secret=secret, uri=uri, qr_code_svg=totp.qr_code_svg(uri)
        )

    async def confirm_totp_enrollment(
        self, uow: UnitOfWork, principal: Principal, token: str, code: str, label: str | None
    ) -> FactorAdded:
        check = Checker()
        digits = totp_code(check, "code", code)
        label = check.label("label", label, DEFAULT_LABELS[TOTP])
        check.done()
        row, user = await self.challenges.open(uow, token, TOTP_ENROLLMENT)
        if user is None or user.id != principal.user_id or row.sealed is None:
            raise InvalidToken()
        await self.challenges.attempt(uow, row)
        secret = self.rt.secret.unseal(ENROLLMENT_SECRET, row.sealed, row.id.bytes).decode()
        step = totp.matching_step(secret, digits, self.rt.clock.now())
        if step is None:
            await self.challenges.failed(uow, row)
            uow.audit.record("mfa.totp_enrollment_failed", actor=user.id, subject=user.id)
            await uow.commit()
            raise InvalidCredentials("The code is incorrect: enter the one the app shows now.")
        await self.challenges.spend(uow, row)  # deleted: nothing of the enrolment stays behind
        factor_id = uuid.uuid4()
        factor = Factor(
            id=factor_id,
            user_id=user.id,
            kind=TOTP,
            label=label,
            created_at=self.rt.clock.now(),
            last_used_at=self.rt.clock.now(),
            secret=self.rt.secret.seal(TOTP_SECRET, secret.encode(), factor_id.bytes),
            last_step=step,  # the code that confirmed it cannot sign in again
        )
        return await self.add(uow, principal, user, factor, (OTP,))

    async def ready_to_enroll(
        self, uow: UnitOfWork, principal: Principal, password: str | None
    ) -> User:
        """Re-authenticated, with a verified address (a factor's notices go there)."""
        user = await self.reauth.confirm(uow, principal, password)
        if not user.is_verified:
            raise EmailNotVerified("Verify your email address before adding a sign-in method.")
        return user

    async def add(
        self,
        uow: UnitOfWork,
        principal: Principal,
        user: User,
        factor: Factor,
        proven: tuple[str, ...],
    ) -> FactorAdded:
        """Store a factor just proven in the caller's session; the first turns MFA on.

        Commits. `proven` are the RFC 8176 methods the enrolment showed (otp, or hwk+user).
        """
        await uow.locks.hold(factor_lock(user.id))
        turned_on = await uow.factors.count(user.id) == 0
        if not turned_on and principal.assurance.aal < 2:
            raise MfaRequired()  # a session without the second factor cannot add one
        uow.factors.add(factor)
        now = self.rt.clock.now()
        codes = None
        if turned_on:
            codes = await self._new_recovery_codes(uow, user)
            ended = await uow.sessions.revoke_all(
                user.id, now, "mfa_enabled", keep=principal.session_id
            )
            events.sessions_ended(uow.events, user.id, ended, "mfa_enabled")
            uow.audit.record(
                "mfa.enabled", actor=user.id, subject=user.id, sessions_ended=len(ended)
            )
            uow.events.add(
                events.USER_MFA_ENABLED,
                {"userId": user.id, "actorId": None, "factorId": factor.id, "kind": factor.kind},
            )
        raised = principal.assurance.adding(*proven)
        await uow.sessions.set_assurance(principal.session_id, raised.aal, list(raised.amr))
        undo = await self.tokens.issue(uow, user, REVERT_CHANGE, payload=f"factor:{factor.id}")
        uow.outbox.add(
            "factor_added",
            user.email,
            token_id=undo.id,
            first_name=user.first_name,
            label=factor.label,
            kind=KIND_WORDS[factor.kind],
            turned_on=turned_on,
            signs_in_alone=factor.kind == PASSKEY,
        )
        uow.audit.record(
            "mfa.factor_added",
            actor=user.id,
            subject=user.id,
            factor_id=str(factor.id),
            kind=factor.kind,
            label=factor.label,
        )
        await uow.commit()
        return FactorAdded(factor=factor, recovery_codes=codes)

    # Recovery codes ------------------------------------------------------------------------

    async def regenerate_recovery_codes(
        self, uow: UnitOfWork, principal: Principal, password: str | None
    ) -> list[str]:
        user = await self.reauth.confirm(uow, principal, password)
        await uow.locks.hold(factor_lock(user.id))
        if await uow.factors.count(user.id) == 0:
            raise ValidationFailed.one(
                "factors",
                "mfa_off",
                "Add an authenticator app or a passkey first: recovery codes come with MFA.",
            )
        codes = await self._new_recovery_codes(uow, user)
        uow.audit.record("mfa.recovery_codes_regenerated", actor=user.id, subject=user.id)
        await uow.commit()
        return codes

    async def recovery_digest(self, user_id: uuid.UUID, code: str) -> bytes:
        """What is stored of a (normalized) recovery code: an HMAC under the data key."""
        return await self.datakeys.mac(RECOVERY_CODE, user_id.bytes + code.encode())

    async def _new_recovery_codes(self, uow: UnitOfWork, user: User) -> list[str]:
        codes = recovery_codes.generate()
        digests = []
        for code in codes:
            normalized = recovery_codes.normalize(code)
            assert normalized is not None
            digests.append(await self.recovery_digest(user.id, normalized))
        await uow.recovery_codes.replace(user.id, digests, self.rt.clock.now())
        return codes

    # Managing factors ----------------------------------------------------------------------

    async def rename(
        self, uow: UnitOfWork, principal: Principal, factor_id: uuid.UUID, label: str
    ) -> Factor:
        check = Checker()
        label = check.label("label", label, "")
        if not label and not check.problems:
            check.fail("label", "required", "Enter a name.")
        check.done()
        factor = await self._own(uow, principal, factor_id)
        if factor.label != label:
            before, factor.label = factor.label, label
            uow.audit.record(
                "mfa.factor_renamed",
                actor=principal.user_id,
                subject=principal.user_id,
                factor_id=str(factor.id),
                label=label,
                label_before=before,
            )
        await uow.commit()
        return factor

    async def remove(
        self, uow: UnitOfWork, principal: Principal, factor_id: uuid.UUID, password: str | None
    ) -> None:
        """Remove one of my factors; my other sessions end; the last one turns MFA off."""
        await self._own(uow, principal, factor_id)  # NotFound before any password check
        user = await self.reauth.confirm(uow, principal, password)
        await uow.locks.hold(factor_lock(user.id))
        factor = await self._own(uow, principal, factor_id)
        if not await uow.factors.remove(factor.id):  # removed by a concurrent request
            raise NotFound("No factor with this id.")
        turned_off = await uow.factors.count(user.id) == 0
        if turned_off:
            await uow.recovery_codes.remove_all(user.id)
            # With no second factor left, this session no longer counts as two.
            await uow.sessions.set_assurance(principal.session_id, 1, list(principal.assurance.amr))
        now = self.rt.clock.now()
        ended = await uow.sessions.revoke_all(
            user.id, now, "factor_removed", keep=principal.session_id
        )
        events.sessions_ended(uow.events, user.id, ended, "factor_removed")
        if turned_off:
            uow.events.add(events.USER_MFA_DISABLED, _disabled(user, None, "factor_removed"))
        uow.outbox.add(
            "factor_removed",
            user.email,
            first_name=user.first_name,
            label=factor.label,
            kind=KIND_WORDS[factor.kind],
            turned_off=turned_off,
        )
        uow.audit.record(
            "mfa.factor_removed",
            actor=user.id,
            subject=user.id,
            factor_id=str(factor.id),
            kind=factor.kind,
            sessions_ended=len(ended),
            mfa_off=turned_off,
        )
        await uow.commit()

    async def reset(self, uow: UnitOfWork, actor: Principal, user_id: uuid.UUID) -> User:
        """An admin removes every factor and recovery code of a user; every session ends."""
        user = await privileges.target(uow, actor, user_id)
        await uow.locks.hold(factor_lock(user.id))
        removed = await uow.factors.remove_all(user.id)
        await uow.recovery_codes.remove_all(user.id)
        await uow.challenges.void_all(user.id)
        ended = await uow.sessions.revoke_all(user.id, self.rt.clock.now(), "mfa_reset")
        events.sessions_ended(uow.events, user.id, ended, "mfa_reset", actor.user_id)
        if removed:
            uow.events.add(events.USER_MFA_DISABLED, _disabled(user, actor.user_id, "mfa_reset"))
        uow.outbox.add("mfa_reset", user.email, first_name=user.first_name)
        uow.audit.record(
            "admin.mfa_reset",
            actor=actor.user_id,
            subject=user.id,
            factors_removed=removed,
            sessions_ended=len(ended),
        )
        await uow.commit()
        return user

    async def _own(self, uow: UnitOfWork, principal: Principal, factor_id: uuid.UUID) -> Factor:
        factor = await uow.factors.get(factor_id)
        if factor is None or factor.user_id != principal.user_id:
            raise NotFound("No factor with this id.")
        return factor


def _disabled(user: User, actor: uuid.UUID | None, reason: str) -> dict[str, object]:
    return {"userId": user.id, "actorId": actor, "reason": reason}


def totp_code(check: Checker, field: str, value: str | None) -> str:
    """Six digits, as typed ("123 456" is fine); anything else is a validation problem."""
    digits = totp.normalize_code(value) if value is not None else None
    if digits is None:
        check.fail(field, "invalid_code", "Enter the 6 digits your authenticator app shows.")
        return ""
    return digits


def recovery_code(check: Checker, field: str, value: str | None) -> str:
    code = recovery_codes.normalize(value) if value is not None else None
    if code is None:
        check.fail(field, "invalid_code", "Enter one of your recovery codes, like abcde-12345.")
        return ""
    return code
