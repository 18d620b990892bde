"""The second step of signing in: an mfaToken from `login`, and a second factor.

A TOTP code is accepted once per time step and factor (a compare-and-set on the step); a
recovery code once. Wrong answers count against the mfaToken (five, then it is spent) and
against a per-account counter that only a right second factor clears.
"""

from __future__ import annotations

import uuid
from typing import Any

from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.structs import AuthenticationCredential

from identity.security import totp as otp
from identity.security import webauthn
from identity.security.webauthn import Credential, Refused
from identity.services.auth import Auth, AuthResult
from identity.services.challenges import MFA, Challenges
from identity.services.errors import InvalidCredentials, InvalidToken
from identity.services.factors import TOTP, TOTP_SECRET, Factors, recovery_code, totp_code
from identity.services.passkeys import PROVEN, passkey_assertion
from identity.services.principal import OTP, Assurance, ClientInfo
from identity.services.runtime import Runtime
from identity.services.throttle import Throttle
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

WRONG_CODE = "The code is incorrect."
WRONG_PASSKEY = "This passkey could not be verified for this account."
STALE_PASSKEY = "This page was shown again meanwhile: use the passkey once more."
_FEW_LEFT = 2


class SecondStep:
    def __init__(
        self,
        rt: Runtime,
        auth: Auth,
        challenges: Challenges,
        factors: Factors,
        throttle: Throttle,
    ) -> None:
        self.rt = rt
        self.auth = auth
        self.challenges = challenges
        self.factors = factors
        self.throttle = throttle

    async def verify(
        self,
        uow: UnitOfWork,
        mfa_token: str,
        client: ClientInfo,
        *,
        totp_code_given: str | None = None,
        recovery_code_given: str | None = None,
        passkey_given: object = None,
        origin: str | None = None,
    ) -> AuthResult:
        """`origin`: the one origin a passkey's answer may come from (the hosted page's)."""
        check = Checker()
        offered = (
            ("totpCode", totp_code_given),
            ("recoveryCode", recovery_code_given),
            ("passkey", passkey_given),
        )
        given = [name for name, value in offered if value is not None]
        if len(given) != 1:
            for field in given or ["totpCode"]:
                check.fail(
                    field, "one_of", "Give exactly one of totpCode, recoveryCode or passkey."
                )
            check.done()
        code, assertion = "", None
        if totp_code_given is not None:
            code = totp_code(check, "totpCode", totp_code_given)
        elif recovery_code_given is not None:
            code = recovery_code(check, "recoveryCode", recovery_code_given)
        else:
            assertion = passkey_assertion(check, passkey_given)
        check.done()

        row, user = await self.challenges.open(uow, mfa_token, MFA)
        assert user is not None  # an mfaToken always has its user
        asked = row.data.get("webauthn")  # what a passkey's answer is checked against
        await self.throttle.before_second_factor(user.id)
        await self.challenges.attempt(uow, row)
        now = self.rt.clock.now()
        if assertion is not None:
            method = "passkey"
            ok = await self._passkey(uow, user.id, asked, assertion, origin)
        elif totp_code_given is not None:
            method, ok = "totp", await self._totp(uow, user.id, code)
        else:
            method, ok = (
                "recovery_code",
                await uow.recovery_codes.use(
                    user.id, await self.factors.recovery_digest(user.id, code), now
                ),
            )
        if not ok:
            await self.challenges.failed(uow, row)
            uow.audit.record("auth.mfa_failed", subject=user.id, method=method)
            await uow.commit()
            raise InvalidCredentials(WRONG_PASSKEY if method == "passkey" else WRONG_CODE)
        # A passkey's answer counts only while its challenge is the token's: a page shown
        # again meanwhile (renew) voids it.
        try:
            await self.challenges.spend(uow, row, asked if method == "passkey" else None)
        except InvalidToken:
            await uow.rollback()  # nothing of this answer stays (the counter, a code's use)
            if method == "passkey":
                # Spent by another answer: InvalidToken. Still live: shown again meanwhile.
                await self.challenges.open(uow, mfa_token, MFA)
                raise InvalidCredentials(STALE_PASSKEY) from None
            raise
        if method == "recovery_code":
            left = await uow.recovery_codes.left(user.id)
            uow.outbox.add(
                "recovery_code_used",
                user.email,
                first_name=user.first_name,
                left=left,
                few_left=left <= _FEW_LEFT,
            )
        await self.throttle.second_factor_succeeded(user.id)
        roles = await uow.roles.of_user(user.id)
        proven = PROVEN if method == "passkey" else (OTP,)
        assurance = Assurance.of([*row.data.get("amr", ["pwd"]), *proven])
        return await self.auth.start_session(uow, user, client, assurance=assurance, roles=roles)

    async def offer(
        self, uow: UnitOfWork, mfa_token: str, *, passkeys: bool
    ) -> tuple[bool, dict[str, Any] | None]:
        """For a page shown again (after a wrong or refused answer): whether the user has an
        authenticator app, and, with `passkeys`, request options over a new WebAuthn
        challenge that replaces the mfaToken's (an answer to the old one, counted or not, is
        void; None when it offers no passkey). Commits. (True, None) for a token that is no
        longer live: the page says so when it is sent."""
        try:
            row, user = await self.challenges.open(uow, mfa_token, MFA)
        except InvalidToken:
            return True, None
        assert user is not None  # an mfaToken always has its user
        totp = TOTP in await uow.factors.kinds(user.id)
        if not passkeys or "webauthn" not in row.data:
            return totp, None
        challenge = webauthn.new_challenge()
        options = await self.auth.passkey_options(uow, user.id, challenge)
        if options is not None:
            try:
                await self.challenges.renew(uow, row, webauthn=webauthn.encode(challenge))
            except InvalidToken:  # spent or expired meanwhile
                return totp, None
            await uow.commit()
        return totp, options

    async def _passkey(
        self,
        uow: UnitOfWork,
        user_id: uuid.UUID,
        asked: str | None,
        assertion: AuthenticationCredential,
        origin: str | None,
    ) -> bool:
        """An assertion of one of the user's passkeys over the mfaToken's challenge."""
        rp = self.auth.rp
        factor = await uow.factors.by_credential(assertion.raw_id)
        handle = webauthn.user_handle(assertion)
        if (
            rp is None
            or asked is None
            or factor is None
            or factor.user_id != user_id  # another user's passkey: no second factor of this one
            or (handle is not None and handle != user_id.bytes)
        ):
            return False
        try:
            asserted = rp.verify_assertion(
                assertion, base64url_to_bytes(asked), Credential.of(factor), origin
            )
        except Refused as exc:
            if exc.reason == "counter_regressed":
                uow.audit.record(
                    "auth.passkey_counter_regressed",
                    subject=user_id,
                    factor_id=str(factor.id),
                    method="passkey",
                )
            return False
        now = self.rt.clock.now()
        return await uow.factors.record_assertion(
            factor, asserted.sign_count, asserted.backup_state, now
        )

    async def _totp(self, uow: UnitOfWork, user_id: uuid.UUID, code: str) -> bool:
        """A code of one of the user's apps, at a time step not used before."""
        now = self.rt.clock.now()
        for factor in await uow.factors.of_user(user_id, TOTP):
            assert factor.secret is not None
            secret = self.rt.secret.unseal(TOTP_SECRET, factor.secret, factor.id.bytes).decode()
            step = otp.matching_step(secret, code, now)
            if step is not None:
                # Replayed (this step or a later one was used): refused like a wrong code.
                return await uow.factors.accept_step(factor.id, step, now)
        return False
