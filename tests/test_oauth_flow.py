"""The code flow through HTTP: the hosted pages, the token endpoint, the tokens and their ends."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jwt
import pytest

from identity.container import Container
from identity.repositories.oauth_clients import OAuthClientRepository
from tests.admin_helpers import make_admin
from tests.conftest import PASSWORD, Database, GraphQLClient, row_counts, scalar, signed_up
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

REFRESH_OWN = """
mutation($token: String!) {
  refreshToken(input: {refreshToken: $token}) { __typename }
}
"""


async def _keys(client: httpx.AsyncClient) -> jwt.PyJWKSet:
    return jwt.PyJWKSet.from_dict((await client.get("/.well-known/jwks.json")).json())


async def test_code_flow_tokens_userinfo_refresh_revoke(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin)
    user = await signed_up(gql)
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, app["clientId"], challenge)
    tokens = await exchange(client, app["clientId"], secret, code, verifier)
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["cache-control"] == "no-store"
    body = tokens.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "openid profile email offline_access"

    keys = await _keys(client)
    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] == "RS256"
    id_token = jwt.decode(
        body["id_token"],
        keys[header["kid"]].key,
        algorithms=["RS256"],
        audience=app["clientId"],
        issuer="http://testserver",
    )
    assert id_token["sub"] == user.user_id
    assert id_token["nonce"] == "n-1"
    assert id_token["amr"] == ["pwd"]
    assert id_token["acr"] == "aal1"
    assert {"auth_time", "iat", "exp", "sid"} <= set(id_token)
    access = jwt.decode(
        body["access_token"],
        keys[header["kid"]].key,
        algorithms=["RS256"],
        audience=app["clientId"],
    )
    assert access["client_id"] == app["clientId"]
    assert access["aud"] == app["clientId"]

    info = await client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert info.status_code == 200, info.text
    assert info.json()["email"] == "ann@example.com"
    assert info.json()["sub"] == user.user_id

    # /graphql refuses a client's access token; neither refresh path takes the other's token.
    me = await gql("{ me { id } }", token=body["access_token"], expect_errors=True)
    assert me["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    own = await gql(REFRESH_OWN, {"token": body["refresh_token"]})
    assert own["data"]["refreshToken"]["__typename"] == "InvalidToken"
    crossed = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": user.refresh_token},
        auth=(app["clientId"], secret),
    )
    assert crossed.status_code == 400
    assert crossed.json()["error"] == "invalid_grant"

    # Refresh rotates; the used token coming back later ends the grant (reuse detection).
    refreshed = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(app["clientId"], secret),
    )
    assert refreshed.status_code == 200, refreshed.text
    newer = refreshed.json()["refresh_token"]
    assert newer != body["refresh_token"]
    container.runtime.clock.advance(60)  # type: ignore[attr-defined]
    replay = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(app["clientId"], secret),
    )
    assert replay.json()["error"] == "invalid_grant"
    after = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": newer},
        auth=(app["clientId"], secret),
    )
    assert after.json()["error"] == "invalid_grant"
    assert (
        await scalar(
            container,
            "SELECT count(*) FROM audit_events WHERE action = 'oauth.refresh_token_reuse'",
        )
        == 1
    )


async def test_consent_is_remembered_and_revocation_ends_grants(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin)
    user = await signed_up(gql)
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, app["clientId"], challenge)
    body = (await exchange(client, app["clientId"], secret, code, verifier)).json()

    # Signed in and consented: the next request comes straight back with a code.
    _verifier2, challenge2 = pkce()
    again = await authorize(client, app["clientId"], challenge2, prompt="none")
    assert again.status_code == 302
    assert "code=" in again.headers["location"]

    introspected = await client.post(
        "/oauth2/introspect", data={"token": body["refresh_token"]}, auth=(app["clientId"], secret)
    )
    assert introspected.json()["active"] is True
    revoked = await client.post(
        "/oauth2/revoke", data={"token": body["refresh_token"]}, auth=(app["clientId"], secret)
    )
    assert revoked.status_code == 200
    introspected = await client.post(
        "/oauth2/introspect", data={"token": body["access_token"]}, auth=(app["clientId"], secret)
    )
    assert introspected.json() == {"active": False}

    forget = """mutation($c: String!) { revokeConsent(clientId: $c) {
      __typename ... on RevokeConsentSuccess { message } ... on NotFound { message } } }"""
    result = await gql(forget, {"c": app["clientId"]}, token=user.access_token)
    assert result["data"]["revokeConsent"]["__typename"] == "RevokeConsentSuccess"
    result = await gql(forget, {"c": app["clientId"]}, token=user.access_token)
    assert result["data"]["revokeConsent"]["__typename"] == "NotFound"
    needs = await authorize(client, app["clientId"], challenge2, prompt="none")
    assert "error=consent_required" in needs.headers["location"]


async def test_revoke_consent_ends_a_first_party_clients_grants(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    """A first-party client asks for no consent, but the user can still take its grants back."""
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin, isFirstParty=True)
    user = await signed_up(gql)
    forget = """mutation($c: String!) { revokeConsent(clientId: $c) {
      __typename ... on RevokeConsentSuccess { message } ... on NotFound { message } } }"""
    before = await row_counts(container)
    nothing = await gql(forget, {"c": app["clientId"]}, token=user.access_token)
    assert nothing["data"]["revokeConsent"]["__typename"] == "NotFound"
    assert "holds no sign-in of yours" in nothing["data"]["revokeConsent"]["message"]
    assert await row_counts(container) == before

    verifier, challenge = pkce()
    page = await authorize(client, app["clientId"], challenge)
    code = code_of(await submit(client, page, email="ann@example.com", password=PASSWORD))
    body = (await exchange(client, app["clientId"], secret, code, verifier)).json()
    # A code issued just before, not exchanged yet, must not become a grant afterwards.
    later_verifier, later_challenge = pkce()
    silent = await authorize(client, app["clientId"], later_challenge, prompt="none")
    pending = code_of(silent)
    result = await gql(forget, {"c": app["clientId"]}, token=user.access_token)
    assert result["data"]["revokeConsent"]["__typename"] == "RevokeConsentSuccess"
    refreshed = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(app["clientId"], secret),
    )
    assert refreshed.json()["error"] == "invalid_grant"
    userinfo = await client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert userinfo.status_code == 401
    late = await exchange(client, app["clientId"], secret, pending, later_verifier)
    assert late.json()["error"] == "invalid_grant"
    again = await gql(forget, {"c": app["clientId"]}, token=user.access_token)
    assert again["data"]["revokeConsent"]["__typename"] == "NotFound"
    audited = "SELECT count(*) FROM audit_events WHERE action = 'oauth.consent_revoked'"
    assert await scalar(container, audited) == 1


async def test_a_code_exchanged_while_consent_is_revoked_makes_no_grant(
    client: httpx.AsyncClient,
    gql: GraphQLClient,
    container: Container,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exchange comes between revokeConsent's statements (found by review): its code is
    voided before the grants are read, so it either loses the code or has its grant ended."""
    if database.backend != "postgresql":
        pytest.skip("SQLite runs one writer at a time: the race needs PostgreSQL")
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin, isFirstParty=True)
    user = await signed_up(gql)
    page = await authorize(client, app["clientId"], pkce()[1])
    code_of(await submit(client, page, email="ann@example.com", password=PASSWORD))
    verifier, challenge = pkce()
    pending = code_of(await authorize(client, app["clientId"], challenge, prompt="none"))
    original = OAuthClientRepository.revoke_grants
    revoked, go_on = asyncio.Event(), asyncio.Event()

    async def paused(self: OAuthClientRepository, *args: Any) -> Any:
        ended = await original(self, *args)
        revoked.set()
        await go_on.wait()
        return ended

    monkeypatch.setattr(OAuthClientRepository, "revoke_grants", paused)
    forget = """mutation($c: String!) { revokeConsent(clientId: $c) { __typename } }"""
    revoking = asyncio.create_task(gql(forget, {"c": app["clientId"]}, token=user.access_token))
    await revoked.wait()
    monkeypatch.setattr(OAuthClientRepository, "revoke_grants", original)
    exchanging = asyncio.create_task(exchange(client, app["clientId"], secret, pending, verifier))
    await asyncio.wait({exchanging}, timeout=1)  # it finishes, or waits for revokeConsent
    go_on.set()
    assert (await revoking)["data"]["revokeConsent"]["__typename"] == "RevokeConsentSuccess"
    late = await exchanging
    assert late.json()["error"] == "invalid_grant"
    live = "SELECT count(*) FROM sessions WHERE oauth_client_id IS NOT NULL AND revoked_at IS NULL"
    assert await scalar(container, live) == 0


async def test_client_credentials(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin)
    answer = await client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(app["clientId"], secret)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "wiki:read"
    assert "refresh_token" not in answer.json()
    wider = await client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "users:write"},
        auth=(app["clientId"], secret),
    )
    assert wider.json()["error"] == "invalid_scope"
    public, _ = await create_client(gql, admin, isConfidential=False, name="SPA")
    refused = await client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "client_id": public["clientId"]}
    )
    assert refused.json()["error"] == "unauthorized_client"


async def test_public_client_with_pkce(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin, isConfidential=False)
    await signed_up(gql)
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, app["clientId"], challenge)
    wrong = await exchange(client, app["clientId"], None, code, pkce()[0])
    assert wrong.json()["error"] == "invalid_grant"
    # The wrong verifier did not spend the code... but a code is good once.
    good = await exchange(client, app["clientId"], None, code, verifier)
    assert good.status_code == 200, good.text
    again = await exchange(client, app["clientId"], None, code, verifier)
    assert again.json()["error"] == "invalid_grant"
    # The replay ended the grant the code had started: its refresh token is worthless now.
    ended = await client.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": good.json()["refresh_token"],
            "client_id": app["clientId"],
        },
    )
    assert ended.json()["error"] == "invalid_grant"
    assert (
        await scalar(
            container, "SELECT count(*) FROM audit_events WHERE action = 'oauth.code_reuse'"
        )
        == 1
    )


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"request": "eyJ..."}, "request_not_supported"),
    ],
)
async def test_bad_requests_go_back_with_an_error_and_write_nothing(
    client: httpx.AsyncClient,
    gql: GraphQLClient,
    container: Container,
    change: dict[str, str],
    error: str,
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    before = await row_counts(container)
    answer = await authorize(client, app["clientId"], pkce()[1], **change)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith(REDIRECT + "?error=" + error)
    assert "state=st-1" in answer.headers["location"]
    assert await row_counts(container) == before


async def test_unknown_client_or_redirect_uri_is_never_redirected_to(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    before = await row_counts(container)
    for params in (
        {"client_id": "nobody"},
        {"redirect_uri": "https://evil.example.com/cb"},
        {"redirect_uri": REDIRECT + "/"},
    ):
        answer = await authorize(client, app["clientId"], pkce()[1], **params)
        assert answer.status_code == 400
        assert "location" not in answer.headers
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert await row_counts(container) == before


async def test_token_endpoint_errors(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin)
    before = await row_counts(container)
    wrong_secret = await client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(app["clientId"], "x")
    )
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert wrong_secret.headers["www-authenticate"].startswith("Basic")
    no_client = await client.post("/oauth2/token", data={"grant_type": "client_credentials"})
    assert no_client.status_code == 401
    unsupported = await client.post(
        "/oauth2/token", data={"grant_type": "password"}, auth=(app["clientId"], secret)
    )
    assert unsupported.json()["error"] == "unsupported_grant_type"
    bad_code = await exchange(client, app["clientId"], secret, "nope", pkce()[0])
    assert bad_code.status_code == 400
    assert bad_code.json()["error"] == "invalid_grant"
    no_verifier = await client.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT},
        auth=(app["clientId"], secret),
    )
    assert no_verifier.json()["error"] == "invalid_request"
    repeated = await client.post(
        "/oauth2/token",
        content="grant_type=client_credentials&grant_type=refresh_token",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(app["clientId"], secret),
    )
    assert repeated.json()["error"] == "invalid_request"
    as_json = await client.post("/oauth2/token", json={"grant_type": "client_credentials"})
    assert as_json.json()["error"] == "invalid_request"
    assert await row_counts(container) == before


async def test_wrong_password_shows_the_page_again(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    await signed_up(gql)
    page = await authorize(client, app["clientId"], pkce()[1], login_hint="ann@example.com")
    assert 'value="ann@example.com"' in page.text
    again = await submit(page=page, http=client, email="ann@example.com", password="wrong one!")
    assert again.status_code == 400
    assert "incorrect" in again.text
    forged = await client.post(
        "/oauth2/authorize",
        data={"step": "password", "request": "x", "csrf": "y", "email": "a", "password": "b"},
    )
    assert forged.status_code == 403
    denied_page = await submit(
        client, again, email="ann@example.com", password="correct horse battery staple"
    )
    denied = await submit(client, denied_page, decision="deny")
    assert "error=access_denied" in denied.headers["location"]


async def test_another_clients_code_or_refresh_token_is_refused(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    wiki, wiki_secret = await create_client(gql, admin)
    other, other_secret = await create_client(gql, admin, name="Other app")
    await signed_up(gql)
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, wiki["clientId"], challenge)
    stolen = await exchange(client, other["clientId"], other_secret, code, verifier)
    assert stolen.json()["error"] == "invalid_grant"
    body = (await exchange(client, wiki["clientId"], wiki_secret, code, verifier)).json()
    refused = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(other["clientId"], other_secret),
    )
    assert refused.json()["error"] == "invalid_grant"
    introspected = await client.post(
        "/oauth2/introspect",
        data={"token": body["access_token"]},
        auth=(other["clientId"], other_secret),
    )
    assert introspected.json() == {"active": False}
    # The owner's grant is untouched by the attempts.
    still = await client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(wiki["clientId"], wiki_secret),
    )
    assert still.status_code == 200, still.text
