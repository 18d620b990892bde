"""The OpenID Provider against someone who knows the protocol: forged codes, pages answered
out of turn, idle grants, codes outliving a sign-out, forms without their CSRF cookie."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import jwt
import pytest

from identity.clock import FrozenClock
from identity.container import Container
from tests.admin_helpers import make_admin
from tests.conftest import PASSWORD, GraphQLClient, row_counts, signed_up
from tests.oauth_helpers import (
    authorize,
    code_of,
    create_client,
    exchange,
    form_fields,
    pkce,
    sign_in_and_consent,
    submit,
)

REVOKE_USER_SESSIONS = "mutation($id: ID!) { revokeUserSessions(userId: $id) { __typename } }"


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def refresh(
    http: httpx.AsyncClient, token: str, client_id: str, secret: str | None = None
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    if secret is None:
        return await http.post("/oauth2/token", data={**data, "client_id": client_id})
    return await http.post("/oauth2/token", data=data, auth=(client_id, secret))


async def test_a_made_up_code_naming_a_grant_does_not_end_it(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin, isConfidential=False)
    await signed_up(gql)
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, app["clientId"], challenge)
    body = (await exchange(client, app["clientId"], None, code, verifier)).json()
    # The grant's id is no secret: it is the `sid` of every access token the client gets.
    grant_id = uuid.UUID(claims(body["access_token"])["sid"])
    forged = base64.urlsafe_b64encode(grant_id.bytes + b"\0" * 32).rstrip(b"=").decode()
    before = await row_counts(container)
    answer = await exchange(client, app["clientId"], None, forged, "a" * 43)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    assert await row_counts(container) == before  # no revocation, no audit entry
    assert (await refresh(client, body["refresh_token"], app["clientId"])).status_code == 200
    # The real code coming back still ends the grant (RFC 6749 §4.1.2).
    again = await exchange(client, app["clientId"], None, code, verifier)
    assert again.status_code == 400


@pytest.mark.parametrize("asked", [{"prompt": "login"}, {"max_age": "60"}])
async def test_the_sign_in_page_cannot_be_answered_as_the_consent_page(
    client: httpx.AsyncClient,
    gql: GraphQLClient,
    container: Container,
    clock: FrozenClock,
    asked: dict[str, str],
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    await signed_up(gql)
    await sign_in_and_consent(client, app["clientId"], pkce()[1])
    clock.advance(3600)
    page = await authorize(client, app["clientId"], pkce()[1], **asked)
    assert 'name="password"' in page.text  # the app asked for a fresh sign-in
    fields = form_fields(page.text)
    answer = await client.post(
        "/oauth2/authorize", data={**fields, "step": "consent", "decision": "allow"}
    )
    assert answer.status_code == 400
    assert "location" not in answer.headers  # no code


async def test_prompt_consent_asks_even_right_after_signing_in(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    await signed_up(gql)
    await sign_in_and_consent(client, app["clientId"], pkce()[1])  # consent remembered
    transport = client._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        page = await authorize(other, app["clientId"], pkce()[1], prompt="consent")
        answer = await submit(other, page, email="ann@example.com", password=PASSWORD)
        assert answer.status_code == 200
        assert "would like to" in answer.text  # the consent page, not a code


@pytest.mark.parametrize("max_age", ["²", "60\n", "-1", "1" * 10])
async def test_a_max_age_that_is_not_a_number_is_refused(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container, max_age: str
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    answer = await authorize(client, app["clientId"], pkce()[1], max_age=max_age)
    assert "error=invalid_request" in answer.headers["location"]


@pytest.mark.parametrize("settings_overrides", [{"refresh_idle_timeout": 600}])
async def test_an_idle_grant_and_an_idle_browser_session_end(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin)
    await signed_up(gql)
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, app["clientId"], challenge)
    body = (await exchange(client, app["clientId"], secret, code, verifier)).json()
    clock.advance(601)
    answer = await refresh(client, body["refresh_token"], app["clientId"], secret)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    silent = await authorize(client, app["clientId"], pkce()[1], prompt="none")
    assert "error=login_required" in silent.headers["location"]


async def test_a_code_from_before_sign_out_everywhere_starts_no_grant(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin)
    user = await signed_up(gql)
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, app["clientId"], challenge)
    await gql(REVOKE_USER_SESSIONS, {"id": user.user_id}, token=admin.access_token)
    answer = await exchange(client, app["clientId"], secret, code, verifier)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")


async def test_signing_out_needs_the_csrf_cookie(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    await signed_up(gql)
    await sign_in_and_consent(client, app["clientId"], pkce()[1])
    # The CSRF cookie lasts for the browser session; the hosted session's cookie outlives it.
    client.cookies.delete("identity-csrf")
    await client.post("/oauth2/logout", data={"confirm": "yes"})
    silent = await authorize(client, app["clientId"], pkce()[1], prompt="none")
    assert "code=" in silent.headers["location"]  # still signed in


async def test_a_page_answered_twice_gives_one_code(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    await signed_up(gql)
    page = await authorize(client, app["clientId"], pkce()[1])
    fields = {**form_fields(page.text), "email": "ann@example.com", "password": PASSWORD}
    first = await client.post("/oauth2/authorize", data=fields)
    second = await client.post("/oauth2/authorize", data=fields)
    assert first.status_code == 200
    assert "would like to" in first.text
    assert second.status_code == 400
    consent = form_fields(first.text)
    allowed = {**consent, "decision": "allow"}
    assert code_of(await client.post("/oauth2/authorize", data=allowed))
    assert (await client.post("/oauth2/authorize", data=allowed)).status_code == 400
