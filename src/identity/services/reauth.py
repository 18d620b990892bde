"""Re-authentication for changes to how an account signs in (factors, linked providers).

The password, when given, is always checked (and counted like a sign-in); without it, the
session must have proven its credentials within IDENTITY_REAUTH_WINDOW.
"""

from __future__ import annotations

from datetime import timedelta

from identity.db.models import User
from identity.services.errors import InvalidCredentials, MfaRequired, SignedOut
from identity.services.principal import Principal
from identity.services.runtime import Runtime
from identity.services.throttle import Throttle
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

SIGN_IN_AGAIN = "Give your current password, or sign in again: this needs a recent sign-in."


class Reauthentication:
    def __init__(self, rt: Runtime, throttle: Throttle) -> None:
        self.rt = rt
        self.throttle = throttle

    async def confirm(self, uow: UnitOfWork, principal: Principal, password: str | None) -> User:
        """The caller's user, once they proved it is them; InvalidCredentials otherwise.

        With a password the transaction so far is ended (no connection is held while the
        hash is checked).
        """
        user = await uow.users.get(principal.user_id)
        if user is None:
            raise SignedOut()
        if principal.assurance.aal < 2 and await uow.factors.count(user.id):
            # A session without the second factor (one that began before MFA was turned on)
            # must not change how the account signs in, password or not.
            raise MfaRequired()
        if password is not None:
            check = Checker()
            given = check.given_password("currentPassword", password)
            if check.problems or user.password_hash is None:
                raise InvalidCredentials("The current password is incorrect.")
            await self.throttle.check_password(uow, user, given)
            return user
        window = timedelta(seconds=self.rt.settings.reauth_window)
        signed_in = principal.authenticated_at
        if signed_in is None or self.rt.clock.now() - signed_in > window:
            raise InvalidCredentials(SIGN_IN_AGAIN)
        return user
