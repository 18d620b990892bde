"""OAuth clients: the apps that sign their users in with identity.

A confidential client's secret is 256 random bits, shown once, and kept only as an HMAC under
the data key: a database backup cannot give it back, and a rotation of the server secret
keeps it working. Creating a first-party client (no consent page), or changing anything of
one, needs a caller who holds every permission: such a client can act for any user unasked.
"""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from identity.db.models import URL_MAX
from identity.db.oauth_models import OAuthClient
from identity.services import events
from identity.services.challenges import OAUTH_CODE
from identity.services.datakeys import DataKeys
from identity.services.errors import NotFound
from identity.services.fields import UNSET, Maybe
from identity.services.principal import Principal
from identity.services.privileges import ensure_held
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

# What every client may ask for in the code flow; `allowedScopes` add the client's own.
STANDARD_SCOPES = ("openid", "profile", "email", "offline_access")
SCOPE = re.compile(r"^[a-z][a-z0-9:._-]{0,63}$")
MAX_REDIRECT_URIS = 10
MAX_SCOPES = 20
_SECRET_PURPOSE = "oauth-client-secret"
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True, slots=True)
class ClientChanges:
    name: Maybe[str] = UNSET
    redirect_uris: Maybe[list[str]] = UNSET
    allowed_scopes: Maybe[list[str]] = UNSET
    post_logout_redirect_uris: Maybe[list[str]] = UNSET


_POST_LOGOUT = "postLogoutRedirectUris"
_NO_CONSENT = "You have not given this client consent, and it holds no sign-in of yours."


class OAuthClients:
    def __init__(self, rt: Runtime, datakeys: DataKeys) -> None:
        self.rt = rt
        self.datakeys = datakeys

    async def all(self, uow: UnitOfWork) -> list[OAuthClient]:
        return await uow.oauth_clients.all()

    async def create(
        self,
        uow: UnitOfWork,
        actor: Principal | None,
        *,
        name: str,
        redirect_uris: list[str],
        is_confidential: bool,
        is_first_party: bool,
        allowed_scopes: list[str],
        post_logout_redirect_uris: list[str] | None = None,
    ) -> tuple[OAuthClient, str | None]:
        """A new client, and its secret if it is confidential (shown this once); commits.

        `actor` None: the command line, run by whoever runs the server.
        """
        check = Checker()
        name = self._name(check, name)
        redirect_uris = self._redirect_uris(check, redirect_uris)
        post_logout = self._redirect_uris(
            check, post_logout_redirect_uris, _POST_LOGOUT, required=False
        )
        allowed_scopes = self._scopes(check, allowed_scopes)
        check.done()
        if is_first_party:
            await self._ensure_all_permissions(uow, actor)
        now = self.rt.clock.now()
        client = OAuthClient(
            id=uuid.uuid4(),
            client_id=secrets.token_hex(16),  # no "-": a command-line argument as it is
            name=name,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout,
            is_confidential=is_confidential,
            is_first_party=is_first_party,
            allowed_scopes=allowed_scopes,
            created_by=actor.user_id if actor is not None else None,
            created_at=now,
            updated_at=now,
        )
        secret = await self._new_secret(client) if is_confidential else None
        uow.oauth_clients.add(client)
        uow.audit.record(
            "oauth.client_created",
            actor=actor.user_id if actor is not None else None,
            client_id=client.client_id,
            name=name,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout,
            confidential=is_confidential,
            first_party=is_first_party,
            scopes=allowed_scopes,
        )
        await uow.commit()
        return client, secret

    async def update(
        self, uow: UnitOfWork, actor: Principal | None, client_pk: uuid.UUID, changes: ClientChanges
    ) -> OAuthClient:
        client = await self._get(uow, client_pk)
        check = Checker()
        name = redirect_uris = post_logout = scopes = None
        if changes.name is not UNSET:
            name = self._name(check, changes.name)
        if changes.redirect_uris is not UNSET:
            redirect_uris = self._redirect_uris(check, changes.redirect_uris)
        if changes.post_logout_redirect_uris is not UNSET:
            post_logout = self._redirect_uris(
                check, changes.post_logout_redirect_uris, _POST_LOGOUT, required=False
            )
        if changes.allowed_scopes is not UNSET:
            scopes = self._scopes(check, changes.allowed_scopes)
        check.done()
        if client.is_first_party:
            await self._ensure_all_permissions(uow, actor)
        changed = []
        if name is not None and name != client.name:
            client.name = name
            changed.append("name")
        if redirect_uris is not None and redirect_uris != client.redirect_uris:
            client.redirect_uris = redirect_uris
            changed.append("redirectUris")
        if post_logout is not None and post_logout != client.post_logout_redirect_uris:
            client.post_logout_redirect_uris = post_logout
            changed.append("postLogoutRedirectUris")
        if scopes is not None and scopes != client.allowed_scopes:
            client.allowed_scopes = scopes
            changed.append("allowedScopes")
        if changed:
            client.updated_at = self.rt.clock.now()
            uow.audit.record(
                "oauth.client_updated",
                actor=actor.user_id if actor is not None else None,
                client_id=client.client_id,
                changed=changed,
            )
        await uow.commit()
        return client

    async def rotate_secret(
        self, uow: UnitOfWork, actor: Principal | None, client_pk: uuid.UUID
    ) -> tuple[OAuthClient, str | None]:
        """A new secret for a confidential client (the old one stops at once); a public
        client has none and gets none."""
        client = await self._get(uow, client_pk)
        if client.is_first_party:
            await self._ensure_all_permissions(uow, actor)
        if not client.is_confidential:
            await uow.commit()  # nothing changed; ends the transaction, keeps the row loaded
            return client, None
        secret = await self._new_secret(client)
        client.updated_at = self.rt.clock.now()
        uow.audit.record(
            "oauth.client_secret_rotated",
            actor=actor.user_id if actor is not None else None,
            client_id=client.client_id,
        )
        await uow.commit()
        return client, secret

    async def delete(self, uow: UnitOfWork, actor: Principal | None, client_pk: uuid.UUID) -> None:
        """Delete a client; its grants and consents go with it."""
        client = await self._get(uow, client_pk)
        if client.is_first_party:
            await self._ensure_all_permissions(uow, actor)
        await uow.oauth_clients.delete(client.id)
        uow.audit.record(
            "oauth.client_deleted",
            actor=actor.user_id if actor is not None else None,
            client_id=client.client_id,
        )
        await uow.commit()

    async def revoke_consent(self, uow: UnitOfWork, principal: Principal, client_id: str) -> int:
        """Forget the user's consent to a client and end its grants; how many ended.

        A first-party client is never given consent (it asks for none), but its grants end
        alike: the user can always take back what an app holds. Its codes not exchanged yet
        are voided too, so none becomes a grant afterwards.
        """
        client = await self.find(uow, client_id)
        if client is None:
            raise NotFound(_NO_CONSENT)
        forgotten = await uow.oauth_clients.forget_consent(principal.user_id, client.id)
        now = self.rt.clock.now()
        # The codes first: an exchange under way either finds its code gone, or has made its
        # grant before the grants are read (each statement sees what was committed before it).
        codes = await uow.challenges.void(principal.user_id, OAUTH_CODE, client=str(client.id))
        ended = await uow.oauth_clients.revoke_grants(principal.user_id, client.id, now, "consent")
        if not forgotten and not ended and not codes:
            raise NotFound(_NO_CONSENT)
        events.sessions_ended(uow.events, principal.user_id, ended, "consent")
        uow.audit.record(
            "oauth.consent_revoked",
            actor=principal.user_id,
            subject=principal.user_id,
            client_id=client.client_id,
            grants_ended=len(ended),
        )
        await uow.commit()
        return len(ended)

    async def find(self, uow: UnitOfWork, client_id: str) -> OAuthClient | None:
        if not client_id or len(client_id) > 64:
            return None
        return await uow.oauth_clients.by_client_id(client_id)

    async def secret_matches(self, client: OAuthClient, secret: str) -> bool:
        if client.secret_digest is None or not secret or len(secret) > 256:
            return False
        given = await self.datakeys.mac(_SECRET_PURPOSE, client.id.bytes + secret.encode())
        return hmac.compare_digest(given, client.secret_digest)

    # Rules ------------------------------------------------------------------------------

    async def _get(self, uow: UnitOfWork, client_pk: uuid.UUID) -> OAuthClient:
        client = await uow.oauth_clients.get(client_pk)
        if client is None:
            raise NotFound("No OAuth client with this id.")
        return client

    async def _new_secret(self, client: OAuthClient) -> str:
        secret = secrets.token_urlsafe(32)  # 256 bits
        client.secret_digest = await self.datakeys.mac(
            _SECRET_PURPOSE, client.id.bytes + secret.encode()
        )
        return secret

    async def _ensure_all_permissions(self, uow: UnitOfWork, actor: Principal | None) -> None:
        if actor is not None:
            ensure_held(actor, [p.code for p in await uow.roles.catalogue()])

    def _name(self, check: Checker, value: str | None) -> str:
        name = check.name("name", value)
        if value is not None and not name:
            check.fail("name", "required", "Give the client a name people will recognise.")
        return name

    def _redirect_uris(
        self,
        check: Checker,
        values: list[str] | None,
        field: str = "redirectUris",
        *,
        required: bool = True,
    ) -> list[str]:
        """Redirect URIs (at least one), or post-logout ones (`field`, not `required`)."""
        if not values:
            if required:
                check.fail(field, "required", "Give at least one redirect URI.")
            return []
        if len(values) > MAX_REDIRECT_URIS:
            check.fail(field, "too_many", f"Give at most {MAX_REDIRECT_URIS}.")
            return []
        for uri in values:
            problem = redirect_uri_problem(uri)
            if problem is not None:
                check.fail(field, "invalid_url", f"{uri[:100]!r}: {problem}")
        return list(dict.fromkeys(values))

    def _scopes(self, check: Checker, values: list[str] | None) -> list[str]:
        values = values or []
        if len(values) > MAX_SCOPES:
            check.fail("allowedScopes", "too_many", f"Give at most {MAX_SCOPES} scopes.")
            return []
        for scope in values:
            if not SCOPE.match(scope):
                check.fail(
                    "allowedScopes",
                    "invalid_scope",
                    f"{scope[:64]!r}: use a lower-case letter, then letters, digits, or : . _ -.",
                )
        return sorted(set(values))


def redirect_uri_problem(uri: str) -> str | None:
    """Why a redirect URI cannot be registered, or None: https, or http on a loopback host
    (RFC 8252), absolute, without a fragment or credentials."""
    if len(uri) > URL_MAX or any(ch.isspace() or ord(ch) < 0x20 for ch in uri):
        return "not a URL"
    try:
        parts = urlsplit(uri)
        port = parts.port  # raises ValueError for a bad port
    except ValueError:
        return "not a URL"
    del port
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "use an absolute https URL"
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        return "http is allowed only on a loopback host (localhost, 127.0.0.1, [::1])"
    if parts.fragment or "#" in uri:
        return "a redirect URI has no fragment"
    if parts.username or parts.password:
        return "a redirect URI has no user name or password"
    return None
