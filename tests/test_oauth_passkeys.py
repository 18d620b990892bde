"""Passkeys on the hosted pages, answered by a software authenticator through HTTP: the
sign-in page's button (a discoverable credential, no email) and the passkey as the second
factor after the password; and what the pages refuse, writing nothing."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text
from starlette.applications import Starlette

from identity.clock import FrozenClock
from identity.container import Container
from tests.admin_helpers import make_admin
from tests.conftest import PASSWORD, GraphQLClient, SignedIn, row_counts
from tests.mfa_helpers import live_sessions, verified_user
from tests.oauth_helpers import (
    authorize,
    code_of,
    create_client,
    exchange,
    form_fields,
    pkce,
    submit,
)
from tests.passkey_helpers import add_passkey, finish_login, start_login
from tests.webauthn_authenticator import SoftAuthenticator, b64

SESSION_COOKIE = "identity-session"  # plain-http development: no __Host- prefix


async def passkey_user(
    gql: GraphQLClient, container: Container, authenticator: SoftAuthenticator
) -> SignedIn:
    user = await verified_user(gql, container)
    await add_passkey(gql, user.access_token, authenticator)
    return user


async def options_for(http: httpx.AsyncClient, page: httpx.Response) -> httpx.Response:
    """What the button's script asks first: a challenge, with the passkey form's fields."""
    fields = {**form_fields(page.text, 1), "step": "passkey_options"}
    return await http.post("/oauth2/authorize", data=fields)


def answer_fields(page: httpx.Response, token: str, credential: Any) -> dict[str, str]:
    """The page's passkey form, sent with an answer to the challenge behind `token`."""
    return {
        **form_fields(page.text, 1),
        "challenge_token": token,
        "credential": json.dumps(credential),
    }


@asynccontextmanager
async def another_browser(
    asgi: Starlette, address: tuple[str, int] = ("127.0.0.1", 123)
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser of its own, with its own CSRF cookie (and that value)."""
    transport = httpx.ASGITransport(app=asgi, client=address)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        await other.get("/oauth2/authorize?client_id=none")  # sets the CSRF cookie
        yield other, other.cookies["identity-csrf"]


def no_session_started(response: httpx.Response) -> bool:
    return SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def with_passkey(
    http: httpx.AsyncClient, page: httpx.Response, authenticator: SoftAuthenticator, **answer: Any
) -> httpx.Response:
    """The button pressed: options, the authenticator's answer, the form sent."""
    started = (await options_for(http, page)).json()
    credential = authenticator.get(started["options"], **answer)
    fields = answer_fields(page, started["challenge_token"], credential)
    return await http.post("/oauth2/authorize", data=fields)


def id_token_claims(body: dict[str, Any]) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(body["id_token"], options={"verify_signature": False})
    return claims


def page_options(page: httpx.Response) -> dict[str, Any]:
    found = re.search(r'data-options="([^"]*)"', page.text)
    assert found, page.text
    options: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return options


async def test_signing_in_with_a_passkey_on_the_hosted_page(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    authenticator = SoftAuthenticator()
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin)
    user = await passkey_user(gql, container, authenticator)
    verifier, challenge = pkce()
    page = await authorize(client, app["clientId"], challenge, acr_values="aal2")
    # Hidden until the script (from identity, nothing inline) finds WebAuthn's helpers.
    assert '<section id="passkey" hidden>' in page.text
    assert '<script type="module" src="/pages/sign-in.js"></script>' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "connect-src 'self';" in policy
    assert "unsafe-inline" not in policy
    script = await client.get("/pages/sign-in.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "parseRequestOptionsFromJSON" in script.text

    started = await options_for(client, page)
    assert started.headers["cache-control"] == "no-store"
    options = started.json()["options"]
    assert options["rpId"] == "testserver"
    assert options["userVerification"] == "required"
    assert options["allowCredentials"] == []  # discoverable: no email asked
    sessions = await live_sessions(container, user.user_id)
    consent = await with_passkey(client, page, authenticator)
    assert consent.status_code == 200, consent.text
    assert "would like to" in consent.text
    assert client.cookies.get(SESSION_COOKIE)
    assert await live_sessions(container, user.user_id) == sessions + 1
    code = code_of(await submit(client, consent, decision="allow"))
    body = (await exchange(client, app["clientId"], secret, code, verifier)).json()
    claims = id_token_claims(body)
    assert claims["acr"] == "aal2"  # what acr_values asked for
    assert claims["amr"] == ["hwk", "user"]
    assert claims["sub"] == user.user_id

    # The hosted session is a session like the password's: prompt=none comes straight back.
    code_of(await authorize(client, app["clientId"], pkce()[1], prompt="none"))


async def _tampered(page: httpx.Response, fields: dict[str, str], **_: Any) -> None:
    token = fields["challenge_token"]
    fields["challenge_token"] = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")


async def _expired(
    page: httpx.Response, fields: dict[str, str], clock: FrozenClock, **_: Any
) -> None:
    clock.advance(301)


async def _no_csrf(page: httpx.Response, fields: dict[str, str], **_: Any) -> None:
    del fields["csrf"]


async def _graphql_challenge(
    page: httpx.Response,
    fields: dict[str, str],
    *,
    gql: GraphQLClient,
    authenticator: SoftAuthenticator,
    **_: Any,
) -> None:
    """startPasskeyLogin's challenge, answered rightly, sent to the page."""
    started = await start_login(gql)
    fields.update(
        answer_fields(page, started["challengeToken"], authenticator.get(started["options"]))
    )


async def _other_request(
    page: httpx.Response,
    fields: dict[str, str],
    *,
    http: httpx.AsyncClient,
    client_id: str,
    authenticator: SoftAuthenticator,
    **_: Any,
) -> None:
    """The challenge of another authorization request in the same browser."""
    other = await authorize(http, client_id, pkce()[1])
    started = (await options_for(http, other)).json()
    credential = authenticator.get(started["options"])
    fields.update(answer_fields(page, started["challenge_token"], credential))


async def _other_browser(
    page: httpx.Response,
    fields: dict[str, str],
    *,
    asgi: Starlette,
    authenticator: SoftAuthenticator,
    **_: Any,
) -> None:
    """A challenge asked for in another browser (its own CSRF cookie), for this request."""
    async with another_browser(asgi) as (other, csrf):
        mine = {**form_fields(page.text, 1), "step": "passkey_options", "csrf": csrf}
        started = (await other.post("/oauth2/authorize", data=mine)).json()
    credential = authenticator.get(started["options"])
    fields.update(answer_fields(page, started["challenge_token"], credential))


Spoil = Callable[..., Awaitable[None]]
CASES: dict[str, tuple[Spoil | None, dict[str, Any], int, str]] = {
    "tampered challenge": (_tampered, {}, 400, "has expired"),
    "expired challenge": (_expired, {}, 400, "has expired"),
    "challenge of startPasskeyLogin": (_graphql_challenge, {}, 400, "has expired"),
    "challenge of another request": (_other_request, {}, 400, "has expired"),
    "challenge of another browser": (_other_browser, {}, 400, "has expired"),
    "missing CSRF value": (_no_csrf, {}, 403, "The form expired"),
    "credential of another relying party": (None, {"rp_id": "evil.example"}, 400, "could not"),
    "disabled user": (None, {}, 400, "account is disabled"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_refused_passkey_sign_in_writes_no_session(
    client: httpx.AsyncClient,
    gql: GraphQLClient,
    container: Container,
    clock: FrozenClock,
    app: Starlette,
    case: str,
) -> None:
    spoil, answer, status, words = CASES[case]
    authenticator = SoftAuthenticator()
    admin = await make_admin(container, gql)
    rp, _ = await create_client(gql, admin)
    await passkey_user(gql, container, authenticator)
    if case == "disabled user":
        async with container.writes() as db:
            await db.execute(
                text("UPDATE users SET is_active = false WHERE email = 'ann@example.com'")
            )
            await db.commit()
    page = await authorize(client, rp["clientId"], pkce()[1])
    started = (await options_for(client, page)).json()
    credential = authenticator.get(started["options"], **answer)
    fields = answer_fields(page, started["challenge_token"], credential)
    if spoil is not None:
        await spoil(
            page,
            fields,
            clock=clock,
            gql=gql,
            http=client,
            client_id=rp["clientId"],
            authenticator=authenticator,
            asgi=app,
        )
    # Besides the audit entry, at most the challenge's one answer is used up (its row
    # deleted); another page's challenge is not even spent (test_passkey_challenges).
    kept = ("audit_events", "challenges")
    before = await row_counts(container, ignore=kept)
    refused = await client.post("/oauth2/authorize", data=fields)
    assert refused.status_code == status, refused.text
    assert words in refused.text
    assert "location" not in refused.headers
    assert no_session_started(refused)
    assert await row_counts(container, ignore=kept) == before
    if status == 400:  # the sign-in page again with the error, the passkey button on it
        assert 'role="alert"' in refused.text
        assert 'name="password"' in refused.text
        assert '<section id="passkey" hidden>' in refused.text


async def test_the_passkey_as_the_second_factor_on_the_hosted_page(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    authenticator = SoftAuthenticator()
    admin = await make_admin(container, gql)
    app, secret = await create_client(gql, admin, isFirstParty=True)
    await passkey_user(gql, container, authenticator)
    credential_id = authenticator.passkeys[0].credential_id
    verifier, challenge = pkce()
    page = await authorize(client, app["clientId"], challenge, acr_values="aal2")
    step = await submit(client, page, email="ann@example.com", password=PASSWORD)
    # A passkey and recovery codes, no app: the page asks for no app's code.
    assert "Use your passkey, or enter one of your recovery codes." in step.text
    assert 'name="totp_code"' not in step.text
    assert 'name="recovery_code"' in step.text
    assert '<section id="passkey" hidden>' in step.text
    options = page_options(step)
    assert [c["id"] for c in options["allowCredentials"]] == [b64(credential_id)]
    mfa_form = form_fields(step.text, 1)
    assert mfa_form["step"] == "mfa"

    # A wrong answer (another challenge): the page again, the passkey still offered.
    wrong = authenticator.get(options, challenge="A" * 43)
    again = await client.post("/oauth2/authorize", data={**mfa_form, "passkey": json.dumps(wrong)})
    assert again.status_code == 400
    assert "could not be verified" in again.text
    renewed = page_options(again)
    assert renewed["challenge"] != options["challenge"]  # a new challenge per page shown
    assert form_fields(again.text, 1)["mfa_token"] == mfa_form["mfa_token"]
    assert 'name="totp_code"' not in again.text  # shown again, still no app's code

    # A right answer to the page shown first is void now: refused, nothing written.
    stale = authenticator.get(options, passkey=authenticator.passkeys[0])
    before = await row_counts(container, ignore=("audit_events", "challenges"))
    refused = await client.post(
        "/oauth2/authorize", data={**mfa_form, "passkey": json.dumps(stale)}
    )
    assert refused.status_code == 400
    assert "could not be verified" in refused.text
    assert no_session_started(refused)
    assert await row_counts(container, ignore=("audit_events", "challenges")) == before

    again = refused
    right = authenticator.get(page_options(again), passkey=authenticator.passkeys[0])
    done = await client.post(
        "/oauth2/authorize", data={**form_fields(again.text, 1), "passkey": json.dumps(right)}
    )
    code = code_of(done)  # first party: no consent page
    body = (await exchange(client, app["clientId"], secret, code, verifier)).json()
    claims = id_token_claims(body)
    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "hwk", "user", "mfa"]


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_passkey_address": "2/minute"}])
async def test_hosted_passkey_sign_ins_are_limited_as_start_passkey_login_is(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    authenticator = SoftAuthenticator()
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    await passkey_user(gql, container, authenticator)
    page = await authorize(client, app["clientId"], pkce()[1])
    # The options count, per client address, as in GraphQL; each takes one answer.
    signed_in = await with_passkey(client, page, authenticator)  # 1
    assert "would like to" in signed_in.text
    page = await authorize(client, app["clientId"], pkce()[1], prompt="login")
    assert (await options_for(client, page)).status_code == 200  # 2
    answer = await options_for(client, page)
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) > 0
    assert "error" in answer.json()
    # The password form is not limited by it.
    signed = await submit(client, page, email="ann@example.com", password=PASSWORD)
    assert "Use your passkey" in signed.text  # MFA is on: the second step


@pytest.mark.parametrize(
    "settings_overrides",
    [{"webauthn_rp_id": "localhost", "webauthn_origins": ["http://localhost:3000"]}],
)
async def test_no_passkey_where_the_pages_origin_cannot_use_passkeys(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    """Passkeys for an app elsewhere only (identity's own pages are not among their
    origins): no button, and whatever is posted, the pages take no passkey."""
    authenticator = SoftAuthenticator(origin="http://localhost:3000")
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin, isFirstParty=True)
    await passkey_user(gql, container, authenticator)
    page = await authorize(client, app["clientId"], pkce()[1])
    assert 'name="password"' in page.text
    assert 'id="passkey"' not in page.text
    assert "sign-in.js" not in page.text
    fields = {**form_fields(page.text, 0), "challenge_token": "x", "credential": "{}"}
    kept = ("audit_events",)
    before = await row_counts(container, ignore=kept)
    options = await client.post("/oauth2/authorize", data={**fields, "step": "passkey_options"})
    assert options.status_code == 404
    assert options.json() == {"error": "Passkeys are not offered on this page."}
    answer = await client.post("/oauth2/authorize", data={**fields, "step": "passkey"})
    assert answer.status_code == 404
    assert "Passkeys are not offered on this page." in answer.text
    assert await row_counts(container, ignore=kept) == before

    # The second step after the password offers no passkey, and takes none: not even a
    # right answer (from the app's origin) over the mfaToken's challenge.
    step = await submit(client, page, email="ann@example.com", password=PASSWORD)
    assert 'id="passkey"' not in step.text
    assert "Enter one of your recovery codes." in step.text
    mfa_form = form_fields(step.text, 0)
    async with container.writes() as db:
        data = (await db.execute(text("SELECT data FROM challenges WHERE purpose = 'mfa'"))).one()
    stored = data[0] if isinstance(data[0], dict) else json.loads(data[0])
    right = authenticator.get({"challenge": stored["webauthn"], "rpId": "localhost"})
    before = await row_counts(container, ignore=kept)
    refused = await client.post(
        "/oauth2/authorize", data={**mfa_form, "passkey": json.dumps(right)}
    )
    assert refused.status_code == 400
    assert "Give exactly one of" in refused.text
    assert no_session_started(refused)
    assert await row_counts(container, ignore=kept) == before


async def test_a_hosted_passkey_challenge_is_not_finish_passkey_logins(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    authenticator = SoftAuthenticator()
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin)
    user = await passkey_user(gql, container, authenticator)
    page = await authorize(client, app["clientId"], pkce()[1])
    started = (await options_for(client, page)).json()
    credential = authenticator.get(started["options"])
    sessions = await live_sessions(container, user.user_id)
    finished = await finish_login(gql, started["challenge_token"], credential)
    assert finished["__typename"] == "InvalidToken"
    assert await live_sessions(container, user.user_id) == sessions
