"""Other people's code against the OpenID Provider: Authlib's OAuth 2.0 client (PKCE code
flow, refresh, revocation, introspection, client_credentials) and joserfc validating the ID
token against the published JWKS. The browser part of the code flow (the hosted sign-in and
consent pages) is driven by plain HTTP requests, as a browser without JavaScript sends them.
"""

from __future__ import annotations

import secrets
import warnings

import authlib.deprecate  # noqa: F401  (it sets a filter of its own at import)
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette

from identity.container import Container
from tests.admin_helpers import make_admin
from tests.conftest import PASSWORD, GraphQLClient, signed_up
from tests.oauth_helpers import REDIRECT, create_client, submit

with warnings.catch_warnings():  # Authlib prefers the httpx2 package; httpx is what we have
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _plain_http_on_the_test_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    # The app answers at http://testserver through an in-process transport.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


def _authlib(app: Starlette, **kwargs: object) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        **kwargs,
    )


async def test_authlib_code_flow_with_pkce(
    app: Starlette, client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    registered, secret = await create_client(gql, admin)
    user = await signed_up(gql)
    discovery = (await client.get("/.well-known/openid-configuration")).json()
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)

    async with _authlib(
        app,
        client_id=registered["clientId"],
        client_secret=secret,
        scope="openid profile email offline_access",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    ) as rp:
        url, _state = rp.create_authorization_url(
            discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        # The browser: the sign-in page, then consent, then back to the app.
        login_page = await client.get(url.removeprefix("http://testserver"))
        consent_page = await submit(client, login_page, email=user.email, password=PASSWORD)
        back = await submit(client, consent_page, decision="allow")
        assert back.status_code == 303
        token = await rp.fetch_token(
            discovery["token_endpoint"],
            authorization_response=back.headers["location"],
            code_verifier=verifier,
        )
        assert token["token_type"] == "Bearer"
        assert "refresh_token" in token

        keys = KeySet.import_key_set((await client.get(discovery["jwks_uri"])).json())
        decoded = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": discovery["issuer"]},
            aud={"essential": True, "value": registered["clientId"]},
            nonce={"essential": True, "value": nonce},
            sub={"essential": True, "value": user.user_id},
            exp={"essential": True},
            iat={"essential": True},
            auth_time={"essential": True},
        ).validate(decoded.claims)
        assert decoded.claims["acr"] == "aal1"

        info = await rp.get(discovery["userinfo_endpoint"])
        assert info.json()["email"] == user.email
        assert info.json()["given_name"] == "Ann"

        renewed = await rp.refresh_token(discovery["token_endpoint"])
        assert renewed["refresh_token"] != token["refresh_token"]
        introspected = await rp.introspect_token(
            discovery["introspection_endpoint"], token=renewed["refresh_token"]
        )
        assert introspected.json()["active"] is True
        revoked = await rp.revoke_token(
            discovery["revocation_endpoint"], token=renewed["refresh_token"]
        )
        assert revoked.status_code == 200
        introspected = await rp.introspect_token(
            discovery["introspection_endpoint"], token=renewed["refresh_token"]
        )
        assert introspected.json() == {"active": False}


async def test_authlib_client_credentials(
    app: Starlette, client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    registered, secret = await create_client(gql, admin, allowedScopes=["reports:read"])
    async with _authlib(
        app,
        client_id=registered["clientId"],
        client_secret=secret,
        token_endpoint_auth_method="client_secret_post",
    ) as machine:
        token = await machine.fetch_token(
            "http://testserver/oauth2/token", grant_type="client_credentials"
        )
    assert token["scope"] == "reports:read"
    keys = KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())
    decoded = jwt.decode(token["access_token"], keys, algorithms=["RS256"])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.claims["sub"] == registered["clientId"]
    assert decoded.claims["aud"] == registered["clientId"]
    # A machine token is no API session.
    refused = await gql("{ me { id } }", token=token["access_token"], expect_errors=True)
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
