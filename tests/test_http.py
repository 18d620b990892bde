"""Plain HTTP: health, readiness, JWKS, bad requests, masking, request ids, headers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest

from identity.app import create_app
from identity.config import Settings
from identity.container import Container
from tests.conftest import GraphQLClient, make_settings, row_counts, signed_up

REGISTER_FIELDS = 'mutation { register(input: {email: "a@b.co", password: "x"}) { __typename } }'


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_database_reachable(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe's two seconds are for production; a loaded CI machine may take longer to
    # open the first PostgreSQL connection, which is not what this test is about.
    monkeypatch.setattr("identity.app.READY_TIMEOUT", 30.0)
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres@127.0.0.1:1/identity",
        "sqlite+aiosqlite:////nonexistent-directory/identity.db",
    ],
)
async def test_ready_is_503_when_database_is_unreachable(url: str, tmp_path: Path) -> None:
    # No lifespan: start-up would (rightly) fail without a database; /ready must still answer.
    app = create_app(make_settings(url, tmp_path))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/ready")
        health = await http.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
    assert health.status_code == 200


async def test_jwks_publishes_the_signing_key_with_cache_control(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    keys = response.json()["keys"]
    assert len(keys) == 1
    assert keys[0]["alg"] == "RS256"
    assert keys[0]["use"] == "sig"
    assert "d" not in keys[0]  # never the private half

    user = await signed_up(gql)
    header = jwt.get_unverified_header(user.access_token)
    assert header["kid"] == keys[0]["kid"]
    assert header["typ"] == "at+jwt"
    # Another service verifies with nothing but the JWKS.
    public = jwt.PyJWK(keys[0])
    claims = jwt.decode(
        user.access_token,
        public.key,
        algorithms=["RS256"],
        audience="identity",
        issuer="http://testserver",
    )
    assert set(claims) == {"iss", "aud", "sub", "exp", "iat", "jti", "sid", "roles"} | {
        "aal",
        "amr",
        "app_metadata",
    }
    assert (claims["aal"], claims["amr"], claims["app_metadata"]) == (1, ["pwd"], {})
    assert claims["sub"] == user.user_id
    assert claims["roles"] == ["user"]
    assert claims["exp"] - claims["iat"] == 900


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b'"just a string"', "application/json"),
        (b"42", "application/json"),
        (b"query=%7Bme%7Bid%7D%7D", "application/x-www-form-urlencoded"),
    ],
)
async def test_malformed_bodies_get_400_without_traceback(
    client: httpx.AsyncClient, container: Container, body: bytes, content_type: str
) -> None:
    before = await row_counts(container)
    response = await client.post("/graphql", content=body, headers={"content-type": content_type})
    assert response.status_code == 400
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    assert await row_counts(container) == before


async def test_batched_array_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json=[{"query": "{ me { id } }"}] * 20)
    assert response.status_code == 400


async def test_body_over_the_bound_gets_413_before_parsing(
    client: httpx.AsyncClient, container: Container
) -> None:
    before = await row_counts(container)
    password = "p" * 1_000_000
    query = 'mutation($p: String!) { login(input: {email: "a@b.co", password: $p}) { __typename } }'
    response = await client.post("/graphql", json={"query": query, "variables": {"p": password}})
    assert response.status_code == 413
    assert await row_counts(container) == before


@pytest.mark.parametrize(
    "settings_overrides",
    [{}, {"cors_origins": "https://app.example.com"}],  # CORS wraps the app in another layer
    ids=["plain", "cors"],
)
async def test_chunked_body_over_the_bound_gets_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 10_000

    response = await client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_unknown_fields_and_wrong_types_are_graphql_errors(
    gql: GraphQLClient, container: Container
) -> None:
    before = await row_counts(container)
    unknown = await gql(
        'mutation { register(input: {email: "a@b.co", password: "long enough pw", firstName: "A",'
        ' lastName: "B", isAdmin: true}) { __typename } }',
        expect_errors=True,
    )
    assert unknown.get("data") is None
    assert "isAdmin" in unknown["errors"][0]["message"]
    wrong = await gql(
        "mutation($i: LoginInput!) { login(input: $i) { __typename } }",
        {"i": {"email": 12, "password": ["x"]}},
        expect_errors=True,
    )
    assert wrong["errors"]
    missing = await gql(REGISTER_FIELDS, expect_errors=True)
    assert "firstName" in missing["errors"][0]["message"]
    assert await row_counts(container) == before


async def test_unexpected_errors_are_masked_with_request_id_and_logged(
    client: httpx.AsyncClient,
    container: Container,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def explode(*_: object, **__: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(container.auth, "login", explode)
    caplog.set_level(logging.ERROR, logger="identity.graphql")
    response = await client.post(
        "/graphql",
        json={
            "query": 'mutation { login(input: {email: "a@b.co", password: "x"}) { __typename } }'
        },
        headers={"X-Request-ID": "req-123"},
    )
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["message"] == "Unexpected error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-123"}
    assert "secret internal detail" not in response.text
    assert response.headers["x-request-id"] == "req-123"
    assert "secret internal detail" in caplog.text
    assert "req-123" in caplog.text


async def test_expected_errors_are_not_logged_as_errors(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await gql("{ me { id } }", headers={"Authorization": "Bearer nope"}, expect_errors=True)
    await gql("{ nope }", expect_errors=True)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_every_response_has_a_request_id_and_security_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health")
    assert len(response.headers["x-request-id"]) == 32
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    bogus = await client.get("/health", headers={"X-Request-ID": "bad id with spaces\n"})
    assert bogus.headers["x-request-id"] != "bad id with spaces"


async def test_graphiql_page_does_not_persist_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "shouldPersistHeaders: false" in response.text
    assert "shouldPersistHeaders: true" not in response.text


async def test_get_cannot_run_mutations(client: httpx.AsyncClient, container: Container) -> None:
    before = await row_counts(container)
    response = await client.get(
        "/graphql",
        params={
            "query": 'mutation { register(input: {email: "a@b.co", password: "long enough pw",'
            ' firstName: "A", lastName: "B"}) { __typename } }'
        },
    )
    assert response.status_code in (400, 405)
    assert await row_counts(container) == before


async def test_errors_about_variables_do_not_echo_their_values(gql: GraphQLClient) -> None:
    body = await gql(
        "mutation($i: LoginInput!) { login(input: $i) { __typename } }",
        {"i": {"email": "a@b.co", "password": "my secret passphrase", "extra": 1}},
        expect_errors=True,
    )
    message = body["errors"][0]["message"]
    assert "unknown field 'extra'" in message
    assert "my secret passphrase" not in str(body)


async def test_head_is_answered_like_get(client: httpx.AsyncClient) -> None:
    get = await client.get("/graphql", params={"query": "{ __typename }"})
    head = await client.head("/graphql", params={"query": "{ __typename }"})
    assert (get.status_code, head.status_code) == (200, 200)
    assert head.headers["content-type"] == get.headers["content-type"]
    refused = await client.request("PUT", "/graphql")
    assert refused.status_code == 405


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("Application/JSON", 200),
        ("application/json; charset=utf-8", 200),
        ("application/jsonx", 400),
        ("text/plain", 400),
    ],
)
async def test_the_media_type_is_compared_whole_and_in_any_case(
    client: httpx.AsyncClient, content_type: str, status: int
) -> None:
    response = await client.post(
        "/graphql", content=b'{"query": "{ __typename }"}', headers={"Content-Type": content_type}
    )
    assert response.status_code == status


def test_a_misspelt_setting_is_named_when_the_app_starts(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("IDENTITY_WEBHOOKS_ALLOW_PRIVATE", "true")  # the setting is WEBHOOK_
    monkeypatch.setenv("IDENTITY_TEST_ANYTHING", "1")  # the test suite's own
    monkeypatch.setenv("IDENTITY_PUBLIC_URL", "http://id.example")  # a real setting
    caplog.set_level(logging.WARNING, logger="identity")
    create_app(settings)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "IDENTITY_WEBHOOKS_ALLOW_PRIVATE is not a setting of identity and is ignored; "
        "did you mean IDENTITY_WEBHOOK_ALLOW_PRIVATE?"
    ]
