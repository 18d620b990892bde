"""DPoP (RFC 9449): sessions bound to the client's key, and stolen tokens that do not work.

Proofs are made here with PyJWT and `cryptography`, as any client library would make them;
the server's checks are identity's own on top of PyJWT (see identity.security.dpop).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from jwt.algorithms import ECAlgorithm
from sqlalchemy import func, select, update
from starlette.applications import Starlette

from identity.app import create_app
from identity.clock import FrozenClock
from identity.config import Settings
from identity.container import Container
from identity.db import models
from tests.conftest import (
    LOGIN,
    PASSWORD,
    GraphQLClient,
    register,
    row_counts,
    scalar,
)
from tests.dpop_helpers import URL, Holder, b64
from tests.mfa_helpers import claims, enroll, mfa_login, verified_user

ME = "{ me { id email } }"
REFRESH = """
mutation Refresh($t: String) {
  refreshToken(input: {refreshToken: $t}) {
    __typename
    ... on AuthPayload { accessToken refreshToken tokenType }
  }
}
"""
LOGOUT = "mutation Out($t: String) { logout(input: {refreshToken: $t}) { __typename } }"
VERIFY_MFA = """
mutation Verify($input: VerifyMfaInput!) {
  verifyMfa(input: $input) { __typename ... on AuthPayload { accessToken tokenType } }
}
"""


@pytest.fixture
def holder(clock: FrozenClock) -> Holder:
    return Holder(clock)


async def sign_in(gql: GraphQLClient, proof: str | None, email: str = "ann@example.com") -> Any:
    headers = {"DPoP": proof} if proof is not None else {}
    variables = {"input": {"email": email, "password": PASSWORD}}
    return await gql(LOGIN, variables, headers=headers, expect_errors=True)


async def bound(gql: GraphQLClient, holder: Holder) -> dict[str, Any]:
    await register(gql)
    answer = await sign_in(gql, holder.proof())
    login: dict[str, Any] = answer["data"]["login"]
    assert login["__typename"] == "AuthPayload", answer
    return login


async def me(gql: GraphQLClient, token: str, proof: str | None, scheme: str = "DPoP") -> Any:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return await gql(ME, headers=headers, expect_errors=True)


def code(answer: dict[str, Any]) -> str | None:
    errors = answer.get("errors") or [{}]
    found: str | None = errors[0].get("extensions", {}).get("code")
    return found


async def session_row(container: Container) -> models.Session:
    async with container.reads() as db:
        return (await db.execute(select(models.Session))).scalar_one()


async def test_a_sign_in_with_a_proof_binds_the_session_and_its_tokens(
    gql: GraphQLClient, container: Container, holder: Holder
) -> None:
    login = await bound(gql, holder)
    assert login["tokenType"] == "DPoP"
    assert claims(login["accessToken"])["cnf"] == {"jkt": holder.jkt}
    assert (await session_row(container)).dpop_jkt == holder.jkt
    # Each request proves the key, for this token.
    for _ in range(2):
        answer = await me(gql, login["accessToken"], holder.proof(login["accessToken"]))
        assert answer["data"]["me"]["email"] == "ann@example.com", answer
    # A refresh needs a proof too, and keeps the binding.
    refreshed = await gql(REFRESH, {"t": login["refreshToken"]}, headers={"DPoP": holder.proof()})
    payload = refreshed["data"]["refreshToken"]
    assert payload["tokenType"] == "DPoP"
    assert claims(payload["accessToken"])["cnf"] == {"jkt": holder.jkt}
    answer = await me(gql, payload["accessToken"], holder.proof(payload["accessToken"]))
    assert answer["data"]["me"]["email"] == "ann@example.com"


async def test_without_a_proof_the_session_stays_a_bearer_one(
    gql: GraphQLClient, container: Container, holder: Holder
) -> None:
    await register(gql)
    login = (await sign_in(gql, None))["data"]["login"]
    assert login["tokenType"] == "Bearer"
    assert "cnf" not in claims(login["accessToken"])
    assert (await session_row(container)).dpop_jkt is None
    # A bearer token is not a DPoP one: sending it with the DPoP scheme and a proof fails.
    refused = await me(gql, login["accessToken"], holder.proof(login["accessToken"]))
    assert code(refused) == "UNAUTHENTICATED"
    # A proof at refresh does not bind a session that signed in without one.
    refreshed = await gql(REFRESH, {"t": login["refreshToken"]}, headers={"DPoP": holder.proof()})
    assert refreshed["data"]["refreshToken"]["tokenType"] == "Bearer"


STOLEN_ACCESS: dict[str, Callable[[Holder, Holder, str], tuple[str, str | None]]] = {
    "sent as a bearer token": lambda h, other, token: ("Bearer", None),
    "no proof": lambda h, other, token: ("DPoP", None),
    "a proof by another key": lambda h, other, token: ("DPoP", other.proof(token)),
    "a proof without ath": lambda h, other, token: ("DPoP", h.proof()),
    "a proof for another token": lambda h, other, token: ("DPoP", h.proof(token + "x")),
    "a proof for another method": lambda h, other, token: ("DPoP", h.proof(token, htm="GET")),
    "a proof for another URL": lambda h, other, token: (
        "DPoP",
        h.proof(token, htu="http://evil.example/graphql"),
    ),
    "a stale proof": lambda h, other, token: ("DPoP", h.proof(token, age=200)),
}


@pytest.mark.parametrize("case", list(STOLEN_ACCESS))
async def test_a_bound_access_token_without_its_key_is_refused(
    gql: GraphQLClient, holder: Holder, clock: FrozenClock, case: str
) -> None:
    token = (await bound(gql, holder))["accessToken"]
    scheme, proof = STOLEN_ACCESS[case](holder, Holder(clock), token)
    answer = await me(gql, token, proof, scheme)
    assert answer["data"] is None or answer["data"]["me"] is None, answer
    assert code(answer) == "UNAUTHENTICATED"


async def test_a_proof_is_good_for_one_request(gql: GraphQLClient, holder: Holder) -> None:
    token = (await bound(gql, holder))["accessToken"]
    proof = holder.proof(token)
    assert (await me(gql, token, proof))["data"]["me"]
    replayed = await me(gql, token, proof)
    assert code(replayed) == "UNAUTHENTICATED"
    assert "used already" in replayed["errors"][0]["message"]


async def test_a_stolen_refresh_token_is_refused_and_the_session_left_alone(
    gql: GraphQLClient, container: Container, holder: Holder, clock: FrozenClock
) -> None:
    login = await bound(gql, holder)
    thief = Holder(clock)
    for headers in ({}, {"DPoP": thief.proof()}):
        answer = await gql(REFRESH, {"t": login["refreshToken"]}, headers=headers)
        assert answer["data"]["refreshToken"]["__typename"] == "InvalidToken"
        assert answer["data"]["refreshToken"]
    row = await session_row(container)
    assert (row.refresh_counter, row.revoked_at) == (0, None)
    # Nor can the thief sign the owner out.
    out = await gql(LOGOUT, {"t": login["refreshToken"]}, headers={"DPoP": thief.proof()})
    assert out["data"]["logout"]["__typename"] == "InvalidToken"
    assert (await session_row(container)).revoked_at is None
    # The owner's key still works for both.
    answer = await gql(REFRESH, {"t": login["refreshToken"]}, headers={"DPoP": holder.proof()})
    refreshed = answer["data"]["refreshToken"]
    assert refreshed["__typename"] == "AuthPayload"
    out = await gql(LOGOUT, {"t": refreshed["refreshToken"]}, headers={"DPoP": holder.proof()})
    assert out["data"]["logout"]["__typename"] == "LogoutSuccess"


def _hmac_proof(holder: Holder) -> str:
    body = {"htm": "POST", "htu": URL, "iat": int(holder.clock.now().timestamp()), "jti": "a" * 16}
    header = {"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": b64(b"k" * 32)}}
    return jwt.encode(body, b"k" * 32, algorithm="HS256", headers=header)


def _unsigned_proof(holder: Holder) -> str:
    signed = holder.proof()
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": holder.jwk}
    body = signed.split(".")[1]
    return f"{b64(json.dumps(header).encode())}.{body}."


def _private_jwk_proof(holder: Holder) -> str:
    private = json.loads(ECAlgorithm.to_jwk(holder.key))
    return holder.proof(header={"jwk": private})


BAD_PROOFS: dict[str, Callable[[Holder], str]] = {
    "not a JWT": lambda h: "not-a-proof",
    "typ JWT": lambda h: h.proof(header={"typ": "JWT"}),
    "HMAC with a symmetric key": _hmac_proof,
    "alg none": _unsigned_proof,
    "a private key in the header": _private_jwk_proof,
    "another method": lambda h: h.proof(htm="GET"),
    "another URL": lambda h: h.proof(htu="https://testserver.evil/graphql"),
    "issued long ago": lambda h: h.proof(age=600),
    "issued in the future": lambda h: h.proof(age=-600),
    "a short jti": lambda h: h.proof(jti="1"),
    "without jti": lambda h: h.proof(jti=None),
}


@pytest.mark.parametrize("case", list(BAD_PROOFS))
async def test_a_bad_proof_at_sign_in_is_refused_and_nothing_is_written(
    gql: GraphQLClient, container: Container, holder: Holder, case: str
) -> None:
    await register(gql)
    before = await row_counts(container)
    answer = await sign_in(gql, BAD_PROOFS[case](holder))
    assert answer["data"] is None, answer
    assert code(answer) == "INVALID_DPOP_PROOF"
    assert await row_counts(container) == before


async def test_two_dpop_headers_are_refused(
    client: httpx.AsyncClient, container: Container, holder: Holder
) -> None:
    gql = GraphQLClient(client)
    await register(gql)
    before = await row_counts(container)
    body = {
        "query": LOGIN,
        "variables": {"input": {"email": "ann@example.com", "password": PASSWORD}},
    }
    headers = [("DPoP", holder.proof()), ("DPoP", holder.proof())]
    answer = (await client.post("/graphql", json=body, headers=headers)).json()
    assert code(answer) == "INVALID_DPOP_PROOF"
    assert await row_counts(container) == before


async def test_the_second_step_binds_the_session_too(
    gql: GraphQLClient, container: Container, holder: Holder, clock: FrozenClock
) -> None:
    import pyotp

    enrolled = await enroll(gql, await verified_user(gql, container), clock)
    step = await mfa_login(gql)
    clock.advance(30)
    variables = {
        "input": {
            "mfaToken": step["mfaToken"],
            "totpCode": pyotp.TOTP(enrolled.secret).at(clock.now()),
        }
    }
    answer = await gql(VERIFY_MFA, variables, headers={"DPoP": holder.proof()})
    payload = answer["data"]["verifyMfa"]
    assert payload["tokenType"] == "DPoP", payload
    assert claims(payload["accessToken"])["cnf"] == {"jkt": holder.jkt}


@pytest.mark.parametrize("settings_overrides", [{"dpop": "required"}])
async def test_when_required_a_sign_in_without_a_proof_is_refused(
    gql: GraphQLClient, container: Container, holder: Holder
) -> None:
    await register(gql)
    before = await row_counts(container)
    answer = await sign_in(gql, None)
    assert code(answer) == "INVALID_DPOP_PROOF"
    assert "required" in answer["errors"][0]["message"]
    assert await row_counts(container) == before
    login = (await sign_in(gql, holder.proof()))["data"]["login"]
    assert login["tokenType"] == "DPoP"
    # A refresh without a proof is refused too.
    answer = await gql(REFRESH, {"t": login["refreshToken"]}, expect_errors=True)
    assert code(answer) == "INVALID_DPOP_PROOF"
    # And a session from before DPoP was required (bound to no key) refreshes no more.
    async with container.writes() as db:
        await db.execute(update(models.Session).values(dpop_jkt=None))
        await db.commit()
    answer = await gql(REFRESH, {"t": login["refreshToken"]}, headers={"DPoP": holder.proof()})
    assert answer["data"]["refreshToken"]["__typename"] == "InvalidToken"
    assert (await session_row(container)).refresh_counter == 0


@pytest.fixture
async def second_instance(settings: Settings, clock: FrozenClock) -> AsyncIterator[GraphQLClient]:
    """Another instance on the same database (and the same Redis, if the settings name one)."""
    application: Starlette = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.8", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield GraphQLClient(http)


async def test_another_instance_refuses_a_proof_this_one_has_seen(
    gql: GraphQLClient, second_instance: GraphQLClient, container: Container, holder: Holder
) -> None:
    token = (await bound(gql, holder))["accessToken"]
    proof = holder.proof(token)
    assert (await me(gql, token, proof))["data"]["me"]
    assert code(await me(second_instance, token, proof)) == "UNAUTHENTICATED"
    # Without Redis the database keeps them (two: the sign-in's proof and this one).
    assert await scalar(container, "SELECT count(*) FROM dpop_proofs") == 2


@pytest.fixture
def with_redis(redis_url: str, settings_overrides: dict[str, Any]) -> None:
    settings_overrides["redis_url"] = redis_url
    settings_overrides["rate_limit_key_prefix"] = f"dpop-test-{uuid.uuid4().hex}"


@pytest.mark.usefixtures("with_redis")
async def test_with_redis_the_database_still_keeps_the_proofs_seen(
    gql: GraphQLClient, second_instance: GraphQLClient, container: Container, holder: Holder
) -> None:
    # Not Redis: an outage would send instances to a record the others cannot see. Here one
    # instance believes Redis is down; the other still refuses the proof it accepted.
    container.runtime.limiter._redis_down_until = time.monotonic() + 60
    token = (await bound(gql, holder))["accessToken"]
    proof = holder.proof(token)
    assert (await me(gql, token, proof))["data"]["me"]
    assert code(await me(second_instance, token, proof)) == "UNAUTHENTICATED"
    assert await scalar(container, "SELECT count(*) FROM dpop_proofs") == 2


async def test_housekeeping_forgets_proofs_too_old_to_come_back(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    # The worst case: time at .9 of a second, the proof's iat at the leeway's future edge.
    clock.advance((0.9 - clock.now().timestamp() % 1) % 1)
    holder = Holder(clock)
    token = (await bound(gql, holder))["accessToken"]
    leeway, max_age = container.settings.jwt_leeway, container.settings.dpop_proof_max_age
    proof = holder.proof(token, age=-leeway)
    assert (await me(gql, token, proof))["data"]["me"]
    # The record outlives the last moment the proof's iat passes the check...
    clock.advance(max_age + 2 * leeway)
    assert await container.dpop.prune() == 1  # the sign-in's proof, made `leeway` earlier
    assert code(await me(gql, token, proof)) == "UNAUTHENTICATED"
    # ...and only then is pruned.
    clock.advance(1)
    assert await container.dpop.prune() == 1
    async with container.reads() as db:
        assert await db.scalar(select(func.count()).select_from(models.DpopProof)) == 0


async def test_requests_that_prove_nothing_write_no_proof_records(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    await register(gql)
    junk_refresh = 'mutation { refreshToken(input: {refreshToken: "junk"}) { __typename } }'
    for _ in range(5):
        key = Holder(clock)
        variables = {"input": {"email": "ann@example.com", "password": "not the password"}}
        await gql(LOGIN, variables, headers={"DPoP": key.proof()}, expect_errors=True)
        await gql(junk_refresh, headers={"DPoP": key.proof()}, expect_errors=True)
        await me(gql, "made.up.token", key.proof("made.up.token"))
    assert await scalar(container, "SELECT count(*) FROM dpop_proofs") == 0


@pytest.mark.parametrize("htu", ["http://testserver:99999/graphql", "http://[::1/graphql"])
async def test_an_unparsable_htu_is_a_bad_proof(
    gql: GraphQLClient, holder: Holder, htu: str
) -> None:
    await register(gql)
    assert code(await sign_in(gql, holder.proof(htu=htu))) == "INVALID_DPOP_PROOF"


@pytest.mark.parametrize("settings_overrides", [{"cors_origins": "https://app.example.com"}])
async def test_cors_lets_browsers_send_proofs(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/graphql",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, dpop",
        },
    )
    assert response.status_code == 200
    assert "dpop" in response.headers["access-control-allow-headers"].lower()
