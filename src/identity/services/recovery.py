"""Getting back in and proving an address: password reset, verification, email change."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from identity.db.models import User
from identity.security.passwords import normalize_password
from identity.services import events
from identity.services.errors import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidToken,
    ValidationFailed,
)
from identity.services.principal import Principal
from identity.services.runtime import Runtime
from identity.services.throttle import Throttle
from identity.services.tokens import (
    EMAIL_CHANGE,
    INVITATION,
    PASSWORD_RESET,
    VERIFY_EMAIL,
    OneTimeTokens,
)
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

RESET_REQUEST = "password_reset_request"  # an outbox entry the sender expands, never mailed


class Recovery:
    def __init__(self, rt: Runtime, tokens: OneTimeTokens, throttle: Throttle) -> None:
        self.rt = rt
        self.tokens = tokens
        self.throttle = throttle

    async def request_password_reset(self, uow: UnitOfWork, email: str) -> None:
        """The same answer for known and unknown addresses; mail only to a known, active one."""
        check = Checker()
        email = check.email("email", email)
        check.done()
        await self.throttle.per_address(self.throttle.recovery_address, uow.client)
        await self.throttle.count(self.throttle.recovery_email, email)
        user = await uow.users.by_email(email)
        # Known or not, the request does the same work (a lookup, two inserts, a commit), so
        # its time tells nothing; the mail sender makes the link, for a known, active user.
        uow.outbox.add(RESET_REQUEST, email)
        uow.audit.record(
            "user.password_reset_requested",
            subject=user.id if user else None,
            email=email,
            known=user is not None,
        )
        await uow.commit()

    async def expand_reset_request(self, uow: UnitOfWork, email: str) -> None:
        """For the mail sender: turn a reset request into a link for a known, active user.

        The token and the message that carries it are written in one transaction.
        """
        user = await uow.users.by_email(email)
        if user is not None and user.is_active:
            row = await self.tokens.issue(uow, user, PASSWORD_RESET)
            uow.outbox.add(
                "password_reset", user.email, token_id=row.id, first_name=user.first_name
            )

    async def reset_password(
        self, uow: UnitOfWork, token: str, password: str, confirmation: str
    ) -> User:
        """Set a new password with a reset or invitation token; every session ends."""
        # A weak password must not burn the token: check it before the token is used.
        row = await self.tokens.check(uow, token, {PASSWORD_RESET, INVITATION})
        check = Checker()
        password = check.new_password("password", password)
        if password and password != normalize_password(confirmation):
            check.fail("passwordConfirm", "mismatch", "The passwords do not match.")
        check.done()
        user = await uow.users.get(row.user_id)
        if user is None or not user.is_active:
            raise InvalidToken()
        await uow.release()
        password_hash = await self.rt.hasher.hash(password)

        row = await self.tokens.consume(uow, token, {PASSWORD_RESET, INVITATION})
        now = self.rt.clock.now()
        user.password_hash = password_hash
        user.password_changed_at = now
        user.updated_at = now
        user.is_verified = True  # they read the mail sent to that address
        await uow.tokens.void(user.id, now)
        ended = await uow.sessions.revoke_all(user.id, now, "password_reset")
        action = "user.invitation_accepted" if row.purpose == INVITATION else "user.password_reset"
        uow.audit.record(action, actor=user.id, subject=user.id, sessions_ended=len(ended))
        reason = "invitation_accepted" if row.purpose == INVITATION else "reset"
        uow.events.add(
            events.USER_PASSWORD_CHANGED,
            {"userId": user.id, "reason": reason, "sessionsEnded": len(ended)},
        )
        events.sessions_ended(uow.events, user.id, ended, "password_reset")
        if row.purpose == PASSWORD_RESET:
            uow.outbox.add("password_reset_done", user.email, first_name=user.first_name)
        await uow.commit()
        return user

    async def request_email_verification(self, uow: UnitOfWork, principal: Principal) -> bool:
        """Mail a verification link; False (and nothing sent) if the address is verified."""
        user = await uow.users.get(principal.user_id)
        if user is None or user.is_verified:
            return False
        await self.throttle.per_address(self.throttle.recovery_address, uow.client)
        await self.throttle.count(self.throttle.recovery_email, user.email)
        await self.send_verification(uow, user)
        await uow.commit()
        return True

    async def send_verification(self, uow: UnitOfWork, user: User) -> None:
        """Queue a verification link (in the caller's transaction)."""
        row = await self.tokens.issue(uow, user, VERIFY_EMAIL)
        uow.outbox.add("verify_email", user.email, token_id=row.id, first_name=user.first_name)

    async def verify_email(self, uow: UnitOfWork, token: str) -> User:
        row = await self.tokens.consume(uow, token, {VERIFY_EMAIL})
        user = await uow.users.get(row.user_id)
        if user is None or not user.is_active:
            raise InvalidToken()
        changed = not user.is_verified
        user.is_verified = True
        user.updated_at = self.rt.clock.now()
        uow.audit.record("user.email_verified", actor=user.id, subject=user.id)
        if changed:
            events.user_changed(uow.events, user, ["is_verified"], actor=None)
        await uow.commit()
        return user

    async def request_email_change(
        self, uow: UnitOfWork, principal: Principal, new_email: str, password: str
    ) -> None:
        check = Checker()
        new_email = check.email("newEmail", new_email)
        password = check.given_password("currentPassword", password)
        check.done()
        user = await uow.users.get(principal.user_id)
        if user is None:
            raise InvalidCredentials()
        await self.throttle.per_address(self.throttle.recovery_address, uow.client)
        await self.throttle.count(self.throttle.recovery_email, new_email)
        await self.throttle.check_password(uow, user, password)
        if new_email == user.email:
            raise ValidationFailed.one("newEmail", "unchanged", "This is already your address.")
        if await uow.users.email_taken(new_email):
            raise EmailAlreadyRegistered()
        row = await self.tokens.issue(uow, user, EMAIL_CHANGE, payload=new_email)
        uow.outbox.add(
            "email_change_confirm", new_email, token_id=row.id, first_name=user.first_name
        )
        uow.outbox.add(
            "email_change_requested", user.email, first_name=user.first_name, new_email=new_email
        )
        uow.audit.record("user.email_change_requested", actor=user.id, subject=user.id)
        await uow.commit()

    async def confirm_email_change(
        self, uow: UnitOfWork, token: str, bearer: Principal | None
    ) -> User:
        """Switch the address; the user's other sessions end (the bearer's continues)."""
        row = await self.tokens.consume(uow, token, {EMAIL_CHANGE})
        user = await uow.users.get(row.user_id)
        # A deactivated account keeps its address: it must not free it for a new sign-up.
        if user is None or not user.is_active or row.payload is None:
            raise InvalidToken()
        new_email = row.payload
        if await uow.users.email_taken(new_email, besides=user.id):
            raise EmailAlreadyRegistered()
        now = self.rt.clock.now()
        old_email = user.email
        user.email = new_email
        user.is_verified = True
        user.updated_at = now
        await uow.tokens.void(user.id, now)
        keep = bearer.session_id if bearer is not None and bearer.user_id == user.id else None
        ended = await uow.sessions.revoke_all(user.id, now, "email_changed", keep=keep)
        uow.audit.record("user.email_changed", actor=user.id, subject=user.id)
        uow.events.add(
            events.USER_EMAIL_CHANGED,
            {"userId": user.id, "email": new_email, "previousEmail": old_email, "actorId": None},
        )
        events.sessions_ended(uow.events, user.id, ended, "email_changed")
        uow.outbox.add("email_changed", old_email, first_name=user.first_name, new_email=new_email)
        try:
            await uow.commit()
        except IntegrityError:  # the unique index is the last word on a concurrent taker
            await uow.rollback()
            raise EmailAlreadyRegistered() from None
        return user
