"""What a passkey's challenge serves, and nothing else: the hosted page's is bound to its
authorization request, its browser and identity's own origin; the second step's is renewed
each time the page is shown, and a renewal voids an answer already in flight; made-up
tokens of sign-ins without a user cost no database round trip. Each refusal writes no
session."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from identity.container import Container
from identity.services.errors import InvalidCredentials
from identity.services.principal import ClientInfo
from tests.admin_helpers import make_admin
from tests.conftest import (
    PASSWORD,
    Database,
    GraphQLClient,
    row_counts,
    scalar,
    settle_outbox,
)
from tests.mfa_helpers import live_sessions
from tests.oauth_helpers import authorize, create_client, form_fields, pkce, submit
from tests.passkey_helpers import finish_login, password_step, start_login
from tests.test_admin import count_statements
from tests.test_oauth_passkeys import (
    another_browser,
    answer_fields,
    no_session_started,
    options_for,
    page_options,
    passkey_user,
)
from tests.webauthn_authenticator import SoftAuthenticator

KEPT = ("audit_events", "challenges")
APP_ORIGIN = "http://app.testserver"  # an app's origin that may use passkeys too


async def test_a_pages_challenge_sent_from_another_browser_is_refused_and_not_spent(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container, app: Starlette
) -> None:
    authenticator = SoftAuthenticator()
    admin = await make_admin(container, gql)
    rp, _ = await create_client(gql, admin)
    user = await passkey_user(gql, container, authenticator)
    page = await authorize(client, rp["clientId"], pkce()[1])
    started = (await options_for(client, page)).json()
    answer = answer_fields(page, started["challenge_token"], authenticator.get(started["options"]))
    sessions = await live_sessions(container, user.user_id)
    async with another_browser(app) as (other, csrf):
        before = await row_counts(container, ignore=("audit_events",))
        stolen = {**answer, "csrf": csrf}
        refused = await other.post("/oauth2/authorize", data=stolen)
    assert refused.status_code == 400
    assert "has expired or was started on another page" in refused.text
    assert no_session_started(refused)
    assert await row_counts(container, ignore=("audit_events",)) == before  # not spent
    audited = "SELECT count(*) FROM audit_events WHERE action = 'auth.login_failed'"
    assert await scalar(container, audited) == 1
    assert await live_sessions(container, user.user_id) == sessions
    # The page that asked still signs in with it.
    signed_in = await client.post("/oauth2/authorize", data=answer)
    assert "would like to" in signed_in.text
    assert await live_sessions(container, user.user_id) == sessions + 1


@pytest.mark.parametrize(
    "settings_overrides",
    [{"cors_origins": [APP_ORIGIN]}],  # passkey origins: the pages' and the CORS ones
)
async def test_the_hosted_pages_take_answers_made_at_their_own_origin_only(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    """A script on an app's origin could have the user sign a challenge it asked for; the
    pages' ceremonies run at identity's origin, so such an answer is refused there."""
    own = SoftAuthenticator()
    admin = await make_admin(container, gql)
    rp, _ = await create_client(gql, admin, isFirstParty=True)
    user = await passkey_user(gql, container, own)
    relay = SoftAuthenticator(origin=APP_ORIGIN, passkeys=own.passkeys)
    # GraphQL takes it: the app's origin may use passkeys.
    started = await start_login(gql)
    finished = await finish_login(gql, started["challengeToken"], relay.get(started["options"]))
    assert finished["__typename"] == "AuthPayload"
    sessions = await live_sessions(container, user.user_id)

    page = await authorize(client, rp["clientId"], pkce()[1])
    started = (await options_for(client, page)).json()
    fields = answer_fields(page, started["challenge_token"], relay.get(started["options"]))
    refused = await client.post("/oauth2/authorize", data=fields)
    assert refused.status_code == 400
    assert "could not be used to sign in" in refused.text
    assert no_session_started(refused)

    # The second factor on the page alike.
    step = await submit(client, page, email="ann@example.com", password=PASSWORD)
    relayed = relay.get(page_options(step))
    mfa_form = form_fields(step.text, 1)
    before = await row_counts(container, ignore=KEPT)
    again = await client.post(
        "/oauth2/authorize", data={**mfa_form, "passkey": json.dumps(relayed)}
    )
    assert again.status_code == 400
    assert "could not be verified" in again.text
    assert no_session_started(again)
    assert await row_counts(container, ignore=KEPT) == before
    assert await live_sessions(container, user.user_id) == sessions


async def test_a_renewal_voids_an_answer_already_being_checked(
    gql: GraphQLClient, container: Container, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page shown again (a new challenge) while an answer to the old one is checked:
    that answer no longer counts, and signs nobody in (found by review)."""
    if database.backend != "postgresql":
        pytest.skip("SQLite runs one writer at a time: the race needs PostgreSQL")
    authenticator = SoftAuthenticator()
    user = await passkey_user(gql, container, authenticator)
    mfa = await password_step(gql)
    token, options = mfa["mfaToken"], mfa["passkeyOptions"]
    old = authenticator.get(options, passkey=authenticator.passkeys[0])
    step = container.second_step
    opened, go_on = asyncio.Event(), asyncio.Event()
    original = step.throttle.before_second_factor

    async def paused(user_id: Any) -> None:  # verify has read the token's challenge
        opened.set()
        await go_on.wait()
        await original(user_id)

    monkeypatch.setattr(step.throttle, "before_second_factor", paused)
    peer = ClientInfo(ip_address="203.0.113.9")

    async def verify() -> object:
        async with container.unit_of_work(peer) as uow:
            return await step.verify(uow, token, peer, passkey_given=old)

    answering = asyncio.create_task(verify())
    await opened.wait()
    monkeypatch.setattr(step.throttle, "before_second_factor", original)
    async with container.unit_of_work(peer) as uow:
        totp, renewed = await step.offer(uow, token, passkeys=True)
    assert totp is False
    assert renewed is not None
    assert renewed["challenge"] != options["challenge"]
    sessions = await live_sessions(container, user.user_id)
    go_on.set()
    with pytest.raises(InvalidCredentials, match="shown again meanwhile"):
        await answering
    assert await live_sessions(container, user.user_id) == sessions
    failures = "SELECT failures FROM challenges WHERE purpose = 'mfa'"
    assert await scalar(container, failures) == 0  # nothing of that answer stayed
    # The renewed challenge still serves the token.
    right = authenticator.get(renewed, passkey=authenticator.passkeys[0])
    async with container.unit_of_work(peer) as uow:
        await step.verify(uow, token, peer, passkey_given=right)
    assert await live_sessions(container, user.user_id) == sessions + 1


async def test_a_spent_token_is_not_renewed(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    """Five wrong answers spend the mfaToken: the page shown again has no passkey options,
    and the token's expiry and failures did not move with a renewal."""
    authenticator = SoftAuthenticator()
    admin = await make_admin(container, gql)
    rp, _ = await create_client(gql, admin, isFirstParty=True)
    await passkey_user(gql, container, authenticator)
    page = await authorize(client, rp["clientId"], pkce()[1])
    step = await submit(client, page, email="ann@example.com", password=PASSWORD)
    mfa_form = form_fields(step.text, 1)
    expiry = "SELECT expires_at FROM challenges WHERE purpose = 'mfa'"
    expires = await scalar(container, expiry)
    for attempt in range(1, 6):
        wrong = authenticator.get(page_options(step), challenge="A" * 43)
        step = await client.post(
            "/oauth2/authorize", data={**mfa_form, "passkey": json.dumps(wrong)}
        )
        if attempt < 5:
            assert step.status_code == 400
            assert 'data-options="' in step.text
            assert await scalar(container, expiry) == expires
            failures = "SELECT failures FROM challenges WHERE purpose = 'mfa'"
            assert await scalar(container, failures) == attempt
    assert 'data-options="' not in step.text
    right = authenticator.get(
        {"challenge": "B" * 43, "rpId": "testserver"}, passkey=authenticator.passkeys[0]
    )
    late = await client.post("/oauth2/authorize", data={**mfa_form, "passkey": json.dumps(right)})
    assert late.status_code == 400
    assert no_session_started(late)


async def test_made_up_sign_in_tokens_cost_no_query(
    gql: GraphQLClient, container: Container
) -> None:
    """finishPasskeyLogin is limited through the challenges it needs; a token this server
    did not make is refused before the database is asked."""
    authenticator = SoftAuthenticator()
    await passkey_user(gql, container, authenticator)
    started = await start_login(gql)
    credential = authenticator.get(started["options"])
    token = started["challengeToken"]
    made_up = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    await settle_outbox(container)  # the passkey's notice is mailed first
    with count_statements(container) as statements:
        refused = await finish_login(gql, made_up, credential)
    assert refused["__typename"] == "InvalidToken"
    assert statements == []
    # The real one, still there, signs in.
    finished = await finish_login(gql, token, credential)
    assert finished["__typename"] == "AuthPayload"


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_passkey_address": "3/minute"}])
async def test_answers_with_another_pages_challenge_are_limited(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container, app: Starlette
) -> None:
    """Such a challenge is not spent, so its refusals count per address as sign-ins do:
    the audit entries they leave are limited (found by review)."""
    authenticator = SoftAuthenticator()
    admin = await make_admin(container, gql)
    rp, _ = await create_client(gql, admin)
    await passkey_user(gql, container, authenticator)
    page = await authorize(client, rp["clientId"], pkce()[1])
    started = (await options_for(client, page)).json()
    answer = answer_fields(page, started["challenge_token"], authenticator.get(started["options"]))
    audited = "SELECT count(*) FROM audit_events WHERE action = 'auth.login_failed'"
    async with another_browser(app, ("198.51.100.4", 4444)) as (other, csrf):
        stolen = {**answer, "csrf": csrf}
        for _ in range(3):
            refused = await other.post("/oauth2/authorize", data=stolen)
            assert "has expired or was started on another page" in refused.text
        before = await row_counts(container)
        for _ in range(5):
            limited = await other.post("/oauth2/authorize", data=stolen)
            assert limited.status_code == 400
            assert "Too many attempts" in limited.text
    assert await row_counts(container) == before
    assert await scalar(container, audited) == 3
