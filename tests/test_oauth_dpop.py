"""DPoP at the OpenID Provider (RFC 9449 §5): a public client's tokens bound to its key, at
the token endpoint and at userinfo."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest

from identity.clock import FrozenClock
from identity.container import Container
from tests.admin_helpers import make_admin
from tests.conftest import GraphQLClient, row_counts, signed_up
from tests.dpop_helpers import Holder
from tests.oauth_helpers import create_client, exchange, pkce, sign_in_and_consent

TOKEN_URL = "http://testserver/oauth2/token"
USERINFO_URL = "http://testserver/oauth2/userinfo"


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def bound_grant(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container, holder: Holder
) -> tuple[str, dict[str, Any]]:
    """A public client's grant, its code exchanged with a DPoP proof: (client id, answer)."""
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin, isConfidential=False)
    await signed_up(gql)
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, app["clientId"], challenge)
    proof = {"DPoP": holder.proof(htu=TOKEN_URL)}
    answer = await exchange(client, app["clientId"], None, code, verifier, proof)
    assert answer.status_code == 200, answer.text
    return app["clientId"], answer.json()


async def refresh(
    client: httpx.AsyncClient, client_id: str, token: str, proof: str | None
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "client_id": client_id, "refresh_token": token}
    headers = {"DPoP": proof} if proof else {}
    return await client.post("/oauth2/token", data=data, headers=headers)


@pytest.fixture
def holder(clock: FrozenClock) -> Holder:
    return Holder(clock)


async def test_a_code_exchanged_with_a_proof_gives_bound_tokens(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container, holder: Holder
) -> None:
    client_id, body = await bound_grant(client, gql, container, holder)
    assert body["token_type"] == "DPoP"
    assert claims(body["access_token"])["cnf"] == {"jkt": holder.jkt}
    token = body["access_token"]
    # userinfo: with the DPoP scheme and a fresh proof for it, and nothing less.
    proof = holder.proof(token, htm="GET", htu=USERINFO_URL)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    assert (await client.get("/oauth2/userinfo", headers=headers)).status_code == 200
    again = await client.get("/oauth2/userinfo", headers=headers)
    assert (again.status_code, again.json()["error"]) == (401, "invalid_dpop_proof")
    stolen = await client.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert stolen.status_code == 401
    thief = Holder(holder.clock)
    other = {
        "Authorization": f"DPoP {token}",
        "DPoP": thief.proof(token, htm="GET", htu=USERINFO_URL),
    }
    assert (await client.get("/oauth2/userinfo", headers=other)).status_code == 401
    # A refresh needs a proof by the grant's key, and keeps the binding.
    renewed = await refresh(client, client_id, body["refresh_token"], holder.proof(htu=TOKEN_URL))
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["token_type"] == "DPoP"
    assert claims(renewed.json()["access_token"])["cnf"] == {"jkt": holder.jkt}


async def test_a_stolen_refresh_token_is_refused_and_the_grant_left_alone(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container, holder: Holder
) -> None:
    client_id, body = await bound_grant(client, gql, container, holder)
    thief = Holder(holder.clock)
    before = await row_counts(container, ignore=("dpop_proofs",))
    for proof in (None, thief.proof(htu=TOKEN_URL)):
        answer = await refresh(client, client_id, body["refresh_token"], proof)
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_dpop_proof")
    assert await row_counts(container, ignore=("dpop_proofs",)) == before
    answer = await refresh(client, client_id, body["refresh_token"], holder.proof(htu=TOKEN_URL))
    assert answer.status_code == 200  # the owner's key still works: nothing was ended


@pytest.mark.parametrize(
    "bad",
    [
        lambda h: "not-a-proof",
        lambda h: h.proof(htu="http://testserver/graphql"),  # made for another endpoint
        lambda h: h.proof(htu=TOKEN_URL, htm="GET"),
        lambda h: h.proof(htu=TOKEN_URL, age=600),
    ],
    ids=["malformed", "another endpoint", "another method", "stale"],
)
async def test_a_bad_proof_at_the_token_endpoint_is_refused(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container, holder: Holder, bad: Any
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin, isConfidential=False)
    await signed_up(gql)
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, app["clientId"], challenge)
    before = await row_counts(container)
    answer = await exchange(client, app["clientId"], None, code, verifier, {"DPoP": bad(holder)})
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_dpop_proof")
    assert await row_counts(container) == before


async def test_when_required_a_public_client_needs_a_proof(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    app, _ = await create_client(gql, admin, isConfidential=False)
    await signed_up(gql)
    verifier, challenge = pkce()
    code = await sign_in_and_consent(client, app["clientId"], challenge)
    # Required from here on (the admin above signed in through GraphQL without a proof);
    # settings and runtime are frozen, so the runtime is given a copy for the request.
    runtime, settings = container.runtime, container.runtime.settings
    object.__setattr__(runtime, "settings", settings.model_copy(update={"dpop": "required"}))
    try:
        answer = await exchange(client, app["clientId"], None, code, verifier)
    finally:
        object.__setattr__(runtime, "settings", settings)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_dpop_proof")


async def test_discovery_names_the_proof_algorithms(client: httpx.AsyncClient) -> None:
    document = (await client.get("/.well-known/openid-configuration")).json()
    assert "ES256" in document["dpop_signing_alg_values_supported"]
    assert "HS256" not in document["dpop_signing_alg_values_supported"]
