"""The end of a sign-in at another provider, and the accounts it links.

An external account is found by (provider, subject), never by address. Without one:

- an address the provider's trust setting does not vouch for answers EmailNotVerified,
  whether or not an account uses it (trust is checked first: nothing tells which addresses
  have accounts), and creates or links nothing;
- a vouched-for address that an account uses answers ExternalAccountConflict: its owner
  signs in (with the password) and links, with a `link: true` start of their own;
- a new vouched-for address creates a user: verified, the `user` role, no password (one
  comes through requestPasswordReset), the external account linked.

A user with second factors passes one after the provider (MfaRequired; the session then has
amr fed+otp+mfa, aal 2); alone, a provider gives amr ["fed"], aal 1. The provider's own amr
is not read. Every link mails a notice with a 24-hour "this wasn't me" link.
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError

from identity import metrics
from identity.db.models import NAME_MAX, Challenge, ExternalAccount, User
from identity.security.oidc_providers import OidcProviderSettings
from identity.services import events
from identity.services.auth import Auth, AuthResult, MfaPending
from identity.services.challenges import EXTERNAL_LINK, EXTERNAL_SIGN_IN, Challenges, factor_lock
from identity.services.errors import (
    AccountDisabled,
    DomainError,
    EmailAlreadyRegistered,
    EmailNotVerified,
    ExternalAccountConflict,
    InvalidToken,
    NotFound,
    ValidationFailed,
)
from identity.services.external import ExternalProviders, check_verifier
from identity.services.principal import FEDERATED, Assurance, ClientInfo, Principal
from identity.services.rules import USER_ROLE, add_user
from identity.services.runtime import Runtime
from identity.services.throttle import Throttle
from identity.services.tokens import REVERT_CHANGE, OneTimeTokens
from identity.services.uow import UnitOfWork
from identity.services.validation import normalize_email

UNTRUSTED = "{provider} did not vouch for an email address we can use: sign in another way."
LINKED_ELSEWHERE = "This {provider} account is linked to another account here."
LAST_METHOD = (
    "This is your only way to sign in: set a password (through 'Forgot password') or link "
    "another account first."
)


class ExternalAccounts:
    def __init__(
        self,
        rt: Runtime,
        providers: ExternalProviders,
        auth: Auth,
        challenges: Challenges,
        tokens: OneTimeTokens,
        throttle: Throttle,
    ) -> None:
        self.rt = rt
        self.providers = providers
        self.auth = auth
        self.challenges = challenges
        self.tokens = tokens
        self.throttle = throttle

    async def finish(
        self, uow: UnitOfWork, code: str, verifier: str, client: ClientInfo
    ) -> AuthResult | MfaPending:
        """finishExternalLogin: the code of a sign-in start, with the app's verifier."""
        await self.throttle.per_address(self.throttle.login_address, client)
        row, _ = await self._spend(uow, code, verifier, EXTERNAL_SIGN_IN)
        found = row.data
        provider = self.providers.settings(str(found.get("provider")))
        if provider is None:  # no longer configured
            raise InvalidToken()
        account = await uow.external_accounts.find(provider.id, found["subject"])
        if account is not None:
            user = await uow.users.get(account.user_id)
            assert user is not None  # accounts go with their users
            await uow.external_accounts.used(account.id, self.rt.clock.now())
            return await self._sign_in(uow, user, provider, client)
        email = trusted_address(provider, found)
        if email is None:
            untrusted = EmailNotVerified(UNTRUSTED.format(provider=provider.display_name))
            await self._refuse(uow, None, provider, "untrusted_email", untrusted)
        existing = await uow.users.by_email(email)
        if existing is not None:
            await self._refuse(uow, existing, provider, "conflict", ExternalAccountConflict())
        try:
            user = await self._create(uow, provider, found, email)
        except EmailAlreadyRegistered:  # registered a moment ago, by someone else
            await self._refuse(uow, None, provider, "conflict", ExternalAccountConflict())
        return await self._sign_in(uow, user, provider, client, new=True)

    async def link(
        self, uow: UnitOfWork, principal: Principal, code: str, verifier: str
    ) -> ExternalAccount:
        """linkExternalAccount: the code of this user's own `link: true` start."""
        row, user = await self._spend(uow, code, verifier, EXTERNAL_LINK, principal)
        assert user is not None
        found = row.data
        provider = self.providers.settings(str(found.get("provider")))
        if provider is None:
            raise InvalidToken()
        await uow.locks.hold(f"external-accounts:{user.id}")
        existing = await uow.external_accounts.find(provider.id, found["subject"])
        if existing is not None:
            if existing.user_id != user.id:
                await self._refuse(
                    uow,
                    user,
                    provider,
                    "linked_elsewhere",
                    ExternalAccountConflict(
                        LINKED_ELSEWHERE.format(provider=provider.display_name)
                    ),
                )
            return existing  # linked already: nothing new, no notice
        account = self._account(user, provider, found)
        uow.external_accounts.add(account)
        try:
            await uow.external_accounts.flush()
        except IntegrityError:  # linked to someone else a moment ago
            await uow.rollback()
            raise ExternalAccountConflict(
                LINKED_ELSEWHERE.format(provider=provider.display_name)
            ) from None
        undo = await self.tokens.issue(uow, user, REVERT_CHANGE, payload=f"external:{account.id}")
        uow.outbox.add(
            "external_account_linked",
            user.email,
            token_id=undo.id,
            first_name=user.first_name,
            provider=provider.display_name,
            external_email=account.email or "",
        )
        uow.audit.record(
            "external.linked",
            actor=user.id,
            subject=user.id,
            external_account_id=str(account.id),
            provider=provider.id,
        )
        await uow.commit()
        return account

    async def unlink(self, uow: UnitOfWork, principal: Principal, account_id: uuid.UUID) -> None:
        """unlinkExternalAccount; never the last way to sign in (a ValidationError)."""
        user_id = principal.user_id
        await uow.locks.hold(f"external-accounts:{user_id}")
        account = await uow.external_accounts.get(account_id)
        if account is None or account.user_id != user_id:
            raise NotFound("No external account with this id.")
        user = await uow.users.get(user_id)
        has_password = user is not None and user.password_hash is not None
        others = await uow.external_accounts.other_sign_in_methods(user_id, besides=account.id)
        if not has_password and others == 0:
            raise ValidationFailed.one("id", "last_sign_in_method", LAST_METHOD)
        await uow.external_accounts.remove(account.id)
        uow.audit.record(
            "external.unlinked",
            actor=user_id,
            subject=user_id,
            external_account_id=str(account.id),
            provider=account.provider,
        )
        await uow.commit()

    # -----------------------------------------------------------------------------------

    async def _spend(
        self,
        uow: UnitOfWork,
        code: str,
        verifier: str,
        purpose: str,
        owner: Principal | None = None,
    ) -> tuple[Challenge, User | None]:
        """The live code of `purpose` (and of `owner`) whose challenge the verifier answers;
        spent (and committed: it serves once, whatever the outcome)."""
        row, user = await self.challenges.open(uow, code, purpose)
        if owner is not None and (user is None or user.id != owner.user_id):
            raise InvalidToken()  # someone else's: left for its owner
        await self.challenges.attempt(uow, row)  # counted before it is checked
        if not check_verifier(verifier, row.data.get("challenge")):
            await self.challenges.failed(uow, row)
            await uow.commit()
            raise InvalidToken()
        await self.challenges.spend(uow, row)
        await uow.commit()
        return row, user

    async def _create(
        self, uow: UnitOfWork, provider: OidcProviderSettings, found: dict[str, Any], email: str
    ) -> User:
        """A new user for a new, vouched-for address; not committed."""
        user = await add_user(
            uow,
            self.rt.clock.now(),
            email=email,
            first_name=_name(found.get("given_name")),
            last_name=_name(found.get("family_name")),
            password_hash=None,
            is_verified=True,  # the provider vouched for it
        )
        role = await uow.roles.by_name(USER_ROLE)
        if role is not None:
            await uow.roles.grant(user.id, role.id)
        account = self._account(user, provider, found)
        uow.external_accounts.add(account)
        try:
            await uow.external_accounts.flush()
        except IntegrityError:  # the same account at the provider, finishing twice at once
            await uow.rollback()
            raise EmailAlreadyRegistered() from None
        uow.audit.record(
            "user.registered",
            actor=user.id,
            subject=user.id,
            via=provider.id,
            external_account_id=str(account.id),
        )
        uow.events.add(
            events.USER_CREATED,
            events.user_data(user, roles=[USER_ROLE], source="external", actorId=None),
        )
        return user

    def _account(
        self, user: User, provider: OidcProviderSettings, found: dict[str, Any]
    ) -> ExternalAccount:
        now = self.rt.clock.now()
        email = found.get("email")
        return ExternalAccount(
            id=uuid.uuid4(),
            user_id=user.id,
            provider=provider.id,
            subject=str(found["subject"]),
            email=(normalize_email(email) if isinstance(email, str) else None),
            linked_at=now,
            last_used_at=now,
        )

    async def _sign_in(
        self,
        uow: UnitOfWork,
        user: User,
        provider: OidcProviderSettings,
        client: ClientInfo,
        *,
        new: bool = False,
    ) -> AuthResult | MfaPending:
        if not user.is_active:
            await self._refuse(uow, user, provider, "disabled", AccountDisabled())
        if self.rt.settings.require_verified_email and not user.is_verified:
            await self._refuse(uow, user, provider, "unverified", EmailNotVerified())
        roles = await uow.roles.of_user(user.id)
        # Under the lock enrolment holds: MFA turned on meanwhile is seen here.
        await uow.locks.hold(factor_lock(user.id))
        kinds = sorted({factor.kind for factor in await uow.factors.of_user(user.id)})
        uow.audit.record(
            "auth.external_login", actor=user.id, subject=user.id, provider=provider.id, new=new
        )
        if kinds:
            metrics.LOGINS.labels("mfa_required").inc()
            return await self.auth.second_step(uow, user, kinds, amr=(FEDERATED,))
        metrics.LOGINS.labels("success").inc()
        assurance = Assurance.of([FEDERATED])
        return await self.auth.start_session(uow, user, client, assurance=assurance, roles=roles)

    async def _refuse(
        self,
        uow: UnitOfWork,
        user: User | None,
        provider: OidcProviderSettings,
        reason: str,
        error: DomainError,
    ) -> NoReturn:
        metrics.LOGINS.labels(reason if reason in ("disabled", "unverified") else "refused").inc()
        uow.audit.record(
            "auth.external_login_failed",
            subject=user.id if user is not None else None,
            provider=provider.id,
            reason=reason,
        )
        await uow.commit()
        raise error


def trusted_address(provider: OidcProviderSettings, found: dict[str, Any]) -> str | None:
    """The address the provider vouches for, by its trust setting; None if none."""
    email = found.get("email")
    if provider.email_trust == "never" or not isinstance(email, str):
        return None
    if provider.email_trust == "verified" and found.get("email_verified") is not True:
        return None
    return normalize_email(email)


def _name(value: object) -> str:
    """A name from the provider, as our own rules allow one (no control characters)."""
    if not isinstance(value, str):
        return ""
    value = unicodedata.normalize("NFKC", value)
    kept = "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    return kept.strip()[:NAME_MAX]
