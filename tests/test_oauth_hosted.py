"""The hosted pages and identity's own browser session: second factor, prompt, max_age,
first-party clients, logout, the discovery document and the sessions-end rules."""

from __future__ import annotations

import httpx
import jwt

from identity.clock import FrozenClock
from identity.container import Container
from identity.security import totp
from tests.admin_helpers import make_admin
from tests.conftest import PASSWORD, GraphQLClient, signed_up
from tests.mfa_helpers import enroll, verified_user
from tests.oauth_helpers import (
    REDIRECT,
    authorize,
    code_of,
    create_client,
    exchange,
    pkce,
    sign_in_and_consent,
    submit,
)

REVOKE_USER_SESSIONS = """
mutation($id: ID!) { revokeUserSessions(userId: $id) { __typename } }
"""


async def test_discovery_says_exactly_what_is_supported(client: httpx.AsyncClient) -> None:
    document = (await client.get("/.well-known/openid-configuration")).json()
    assert document["issuer"] == "http://testserver"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["end_session_endpoint"] == "http://testserver/oauth2/logout"
    for endpoint in ("token_endpoint", "userinfo_endpoint", "revocation_endpoint"):
        assert document[endpoint].startswith("http://testserver/oauth2/")
    jwks = await client.get(document["jwks_uri"].removeprefix("http://testserver"))
    assert jwks.json()["keys"][0]["alg"] == "RS256"


async def test_second_factor_on_the_hosted_page(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin, isFirstParty=True)
    user = await verified_user(gql, container)
    enrolled = await enroll(gql, user, clock)
    verifier, challenge = pkce()
    page = await authorize(client, app["clientId"], challenge, acr_values="aal2")
    step = await submit(client, page, email="ann@example.com", password=PASSWORD)
    assert "authenticator app" in step.text
    wrong = await submit(client, step, totp_code="000000")
    assert wrong.status_code == 400
    assert "incorrect" in wrong.text
    done = await submit(client, wrong, totp_code=totp.code_at(enrolled.secret, clock.now()))
    code = code_of(done)  # first party: no consent page
    body = (await exchange(client, app["clientId"], secret, code, verifier)).json()
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "otp", "mfa"]


async def test_prompt_login_and_max_age_ask_again(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin, isFirstParty=True)
    await signed_up(gql)
    page = await authorize(client, app["clientId"], pkce()[1])
    code_of(await submit(client, page, email="ann@example.com", password=PASSWORD))

    silent = await authorize(client, app["clientId"], pkce()[1], prompt="none")
    code_of(silent)
    again = await authorize(client, app["clientId"], pkce()[1], prompt="login")
    assert again.status_code == 200
    assert 'name="password"' in again.text
    clock.advance(120)
    recent = await authorize(client, app["clientId"], pkce()[1], max_age="60", prompt="none")
    assert "error=login_required" in recent.headers["location"]
    stepped = await authorize(client, app["clientId"], pkce()[1], acr_values="aal2", prompt="none")
    assert "error=login_required" in stepped.headers["location"]


async def test_pages_are_never_framed_and_carry_csrf(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    page = await authorize(client, app["clientId"], pkce()[1])
    assert page.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self' https://wiki.example.com" in policy
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    # Without the CSRF cookie (a cross-site POST does not carry it) the form is refused.
    fields = {"step": "password", "email": "ann@example.com", "password": PASSWORD}
    bare = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with bare:
        refused = await bare.post("/oauth2/authorize", data=fields)
    assert refused.status_code == 403


SIGNED_OUT = "https://wiki.example.com/signed-out"
OTHER_OUT = "https://other.example.com/signed-out"


async def test_logout_with_an_id_token_and_the_sessions_end_rules(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin, postLogoutRedirectUris=[SIGNED_OUT])
    assert app["postLogoutRedirectUris"] == [SIGNED_OUT]
    user = await signed_up(gql)
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, app["clientId"], challenge)
    body = (await exchange(client, app["clientId"], secret, code, verifier)).json()

    # An unregistered address to return to is refused, and signs nobody out: one of
    # elsewhere, and a redirect URI that is not one for after logout.
    for elsewhere in ("https://evil.example", REDIRECT):
        refused = await client.get(
            "/oauth2/logout",
            params={"id_token_hint": body["id_token"], "post_logout_redirect_uri": elsewhere},
        )
        assert refused.status_code == 400
        assert "has not registered" in refused.text
        assert "location" not in refused.headers
    # The hint of this app with another app's client_id (and its address): they must agree.
    other, _ = await create_client(gql, admin, name="Other", postLogoutRedirectUris=[OTHER_OUT])
    for target in (OTHER_OUT, SIGNED_OUT):
        mixed = await client.get(
            "/oauth2/logout",
            params={
                "id_token_hint": body["id_token"],
                "client_id": other["clientId"],
                "post_logout_redirect_uri": target,
            },
        )
        assert mixed.status_code == 400
        assert "issued to another app" in mixed.text
        assert "location" not in mixed.headers
    code_of(await authorize(client, app["clientId"], pkce()[1], prompt="none"))  # still in
    out = await client.get(
        "/oauth2/logout",
        params={
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": SIGNED_OUT,
            "state": "bye",
        },
    )
    assert out.status_code == 303
    assert out.headers["location"] == SIGNED_OUT + "?state=bye"
    silent = await authorize(client, app["clientId"], pkce()[1], prompt="none")
    assert "error=login_required" in silent.headers["location"]

    # The grant outlives the browser session (offline_access), not revokeUserSessions.
    refreshed = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(app["clientId"], secret),
    )
    assert refreshed.status_code == 200
    await gql(REVOKE_USER_SESSIONS, {"id": user.user_id}, token=admin.access_token)
    ended = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"]},
        auth=(app["clientId"], secret),
    )
    assert ended.json()["error"] == "invalid_grant"
    info = await client.get(
        "/oauth2/userinfo",
        headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"},
    )
    assert info.status_code == 401
    assert info.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_logout_without_a_hint_asks_first(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin, isFirstParty=True)
    await signed_up(gql)
    page = await authorize(client, app["clientId"], pkce()[1])
    code_of(await submit(client, page, email="ann@example.com", password=PASSWORD))
    asked = await client.get("/oauth2/logout")
    assert "Sign out of your account here?" in asked.text
    still = await authorize(client, app["clientId"], pkce()[1], prompt="none")
    code_of(still)
    from tests.oauth_helpers import form_fields

    done = await client.post("/oauth2/logout", data=form_fields(asked.text))
    assert "You are signed out." in done.text
    gone = await authorize(client, app["clientId"], pkce()[1], prompt="none")
    assert "error=login_required" in gone.headers["location"]


async def test_prompt_consent_asks_again_and_more_scopes_ask_again(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    await signed_up(gql)
    page = await authorize(client, app["clientId"], pkce()[1], scope="openid")
    consent = await submit(client, page, email="ann@example.com", password=PASSWORD)
    assert "Know who you are here" in consent.text
    assert "See your email address" not in consent.text
    code_of(await submit(client, consent, decision="allow"))
    code_of(await authorize(client, app["clientId"], pkce()[1], scope="openid", prompt="none"))
    asked = await authorize(client, app["clientId"], pkce()[1], scope="openid", prompt="consent")
    assert "would like to" in asked.text
    wider = await authorize(client, app["clientId"], pkce()[1], scope="openid wiki:read")
    assert "Use your account for wiki:read" in wider.text
