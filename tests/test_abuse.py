"""Abuse resistance: rate limits, GraphQL limits, cookie mode and CSRF, CORS, headers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from identity import metrics
from identity.app import create_app
from identity.clock import FrozenClock
from identity.container import Container
from identity.graphql import schema as schema_module
from tests.conftest import (
    LOGIN,
    PASSWORD,
    Database,
    GraphQLClient,
    make_settings,
    register,
    reset_database,
    row_counts,
    scalar,
    settle_outbox,
    signed_up,
)
from tests.tcpproxy import TCPProxy


async def attempt(gql: GraphQLClient, email: str, password: str, **kw: Any) -> dict[str, Any]:
    body = await gql(LOGIN, {"input": {"email": email, "password": password}}, **kw)
    result: dict[str, Any] = body["data"]["login"]
    return result


# Rate limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_login_account": "5/15minutes;8/hour"}])
async def test_account_lockout_refuses_even_the_right_password(
    gql: GraphQLClient, container: Container, limits_clock: FrozenClock
) -> None:
    await register(gql)
    for _ in range(5):
        assert (await attempt(gql, "ann@example.com", "wrong guess!"))[
            "__typename"
        ] == "InvalidCredentials"
    locked = await attempt(gql, "ann@example.com", PASSWORD)
    assert locked["__typename"] == "RateLimited"
    assert 1 <= locked["retryAfter"] <= 15 * 60 + 1
    assert await scalar(container, "SELECT count(*) FROM sessions") == 0
    assert (
        await scalar(container, "SELECT count(*) FROM audit_events WHERE action = 'auth.lockout'")
        == 1
    )

    # When the window has passed, the right password works again, and the end is audited.
    limits_clock.advance(minutes=15, seconds=1)
    assert (await attempt(gql, "ann@example.com", PASSWORD))["__typename"] == "AuthPayload"
    assert (
        await scalar(
            container, "SELECT count(*) FROM audit_events WHERE action = 'auth.lockout_ended'"
        )
        == 1
    )

    # A success cleared the count; repeated lock-outs hit the longer window (growing back-off).
    for _ in range(5):
        await attempt(gql, "ann@example.com", "wrong guess!")
    limits_clock.advance(minutes=15, seconds=1)
    for _ in range(3):
        await attempt(gql, "ann@example.com", "wrong guess!")
    second = await attempt(gql, "ann@example.com", PASSWORD)
    assert second["__typename"] == "RateLimited"


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_login_account": "5/15minutes"}])
async def test_a_concurrent_burst_of_guesses_gets_no_more_than_the_allowance(
    gql: GraphQLClient, container: Container, limits_clock: FrozenClock
) -> None:
    # Each guess is counted before its hash is checked: of 30 sent at once, at most 5 are
    # tried, and the account is locked afterwards even for the right password.
    await register(gql)
    guesses = [f"guess number {n}" for n in range(30)]
    answers = await asyncio.gather(*(attempt(gql, "ann@example.com", g) for g in guesses))
    kinds = [a["__typename"] for a in answers]
    assert kinds.count("InvalidCredentials") == 5
    assert kinds.count("RateLimited") == 25
    assert (await attempt(gql, "ann@example.com", PASSWORD))["__typename"] == "RateLimited"
    assert await scalar(container, "SELECT count(*) FROM sessions") == 0


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_login_account": "3/15minutes"}])
async def test_lockout_does_not_reveal_whether_the_account_exists(
    gql: GraphQLClient, limits_clock: FrozenClock
) -> None:
    await register(gql)
    answers = {}
    for email in ("ann@example.com", "nobody@example.com"):
        for _ in range(3):
            await attempt(gql, email, "wrong guess!")
        answer = await attempt(gql, email, "wrong guess!")
        answers[email] = (answer["__typename"], answer["retryAfter"], answer["message"])
    assert answers["ann@example.com"] == answers["nobody@example.com"]
    assert answers["ann@example.com"][0] == "RateLimited"


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_login_address": "4/minute", "trusted_proxies": "203.0.113.0/24"}],
)
async def test_address_limit_spans_accounts_and_honours_trusted_proxies(
    gql: GraphQLClient, limits_clock: FrozenClock
) -> None:
    for i in range(4):
        await attempt(gql, f"victim{i}@example.com", "password guess")
    assert (await attempt(gql, "victim9@example.com", "password guess"))[
        "__typename"
    ] == "RateLimited"
    # The test client's socket (203.0.113.7) is a trusted proxy: the forwarded address counts.
    other = {"X-Forwarded-For": "198.51.100.20"}
    assert (await attempt(gql, "victim9@example.com", "password guess", headers=other))[
        "__typename"
    ] == "InvalidCredentials"
    # A spoofed first hop does not help: the nearest untrusted hop is the client.
    spoofed = {"X-Forwarded-For": "1.2.3.4, 198.51.100.20"}
    for _ in range(3):
        await attempt(gql, "victim9@example.com", "password guess", headers=spoofed)
    assert (await attempt(gql, "x@example.com", "password guess", headers=other))[
        "__typename"
    ] == "RateLimited"
    limits_clock.advance(61)
    assert (await attempt(gql, "x@example.com", "password guess"))[
        "__typename"
    ] == "InvalidCredentials"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("198.51.100.20", "198.51.100.20"),
        ("198.51.100.20:4711", "198.51.100.20"),  # some load balancers add the port
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("1.2.3.4, 198.51.100.20:4711, 10.0.0.2", "198.51.100.20"),  # 10.0.0.2: a proxy
        ("not an address", "10.0.0.1"),  # garbled: the proxy is the best we know
        ("[2001:db8::1", "10.0.0.1"),
    ],
)
def test_forwarded_hops_with_ports_and_brackets(forwarded: str, client: str) -> None:
    from identity.http import RequestMiddleware

    middleware = RequestMiddleware(
        lambda *_: None,  # type: ignore[arg-type]
        max_body_size=1024,
        trusted_proxies=["10.0.0.0/8"],
    )
    scope = {"client": ("10.0.0.1", 5555), "headers": [(b"x-forwarded-for", forwarded.encode())]}
    assert middleware.client_address(scope) == client


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_login_address": "2/minute"}])
async def test_forwarded_for_is_ignored_without_a_trusted_proxy(
    gql: GraphQLClient, limits_clock: FrozenClock
) -> None:
    for i in range(2):
        await attempt(
            gql, "a@example.com", "password guess", headers={"X-Forwarded-For": f"198.51.100.{i}"}
        )
    refused = await attempt(
        gql, "a@example.com", "password guess", headers={"X-Forwarded-For": "198.51.100.99"}
    )
    assert refused["__typename"] == "RateLimited"


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_register_email": "2/hour", "rate_limit_register_address": "4/hour"}],
)
async def test_register_is_limited_per_email_and_per_address(
    gql: GraphQLClient, container: Container, limits_clock: FrozenClock
) -> None:
    mutation = "mutation($i: RegisterInput!) { register(input: $i) { __typename ... on RateLimited { retryAfter } } }"

    def data(email: str) -> dict[str, Any]:
        return {"i": {"email": email, "password": PASSWORD, "firstName": "", "lastName": ""}}

    assert (await gql(mutation, data("a@example.com")))["data"]["register"][
        "__typename"
    ] == "RegisterSuccess"
    assert (await gql(mutation, data("a@example.com")))["data"]["register"][
        "__typename"
    ] == "EmailAlreadyRegistered"
    before = await row_counts(container)
    limited = (await gql(mutation, data("A@example.com")))["data"]["register"]
    assert limited["__typename"] == "RateLimited"
    assert limited["retryAfter"] > 60  # an hour-long window, partly used
    assert await row_counts(container) == before
    assert (await gql(mutation, data("b@example.com")))["data"]["register"][
        "__typename"
    ] == "RegisterSuccess"
    assert (await gql(mutation, data("c@example.com")))["data"]["register"][
        "__typename"
    ] == "RateLimited"


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_recovery_email": "2/hour"}])
async def test_reset_requests_are_limited_per_email_known_or_not(
    gql: GraphQLClient, container: Container, limits_clock: FrozenClock
) -> None:
    await register(gql)
    mutation = "mutation($e: String!) { requestPasswordReset(input: {email: $e}) { __typename } }"
    for email in ("ann@example.com", "nobody@example.com"):
        for _ in range(2):
            assert (await gql(mutation, {"e": email}))["data"]["requestPasswordReset"][
                "__typename"
            ] == "RequestPasswordResetSuccess"
        assert (await gql(mutation, {"e": email}))["data"]["requestPasswordReset"][
            "__typename"
        ] == "RateLimited"
    # Two accepted requests per address; the sender makes links for the known one only.
    requests = "SELECT count(*) FROM outbox_messages WHERE template = 'password_reset_request'"
    assert await scalar(container, requests) == 4
    await settle_outbox(container)
    links = "SELECT count(*) FROM outbox_messages WHERE template = 'password_reset'"
    assert await scalar(container, links) == 2


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_login_account": "3/15minutes"}])
async def test_wrong_current_passwords_count_towards_the_lockout(
    gql: GraphQLClient, limits_clock: FrozenClock
) -> None:
    user = await signed_up(gql)
    change = 'mutation($c: String!) { changePassword(input: {currentPassword: $c, newPassword: "a new passphrase!"}) { __typename } }'
    for _ in range(3):
        result = await gql(change, {"c": "wrong guess!"}, token=user.access_token)
        assert result["data"]["changePassword"]["__typename"] == "InvalidCredentials"
    result = await gql(change, {"c": PASSWORD}, token=user.access_token)
    assert result["data"]["changePassword"]["__typename"] == "RateLimited"
    assert (await attempt(gql, user.email, PASSWORD))["__typename"] == "RateLimited"


# Redis ------------------------------------------------------------------------------------


@asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_two_instances_share_limits_through_redis(
    redis_url: str, database: Database, tmp_path: Path
) -> None:
    prefix = f"identity-test-{uuid.uuid4().hex}"
    settings = make_settings(
        database.url,
        tmp_path,
        redis_url=redis_url,
        rate_limit_key_prefix=prefix,
        rate_limit_login_address="5/minute",
        mail_url=f"file://{tmp_path / 'mail'}",
    )
    first, second = create_app(settings), create_app(settings)
    try:
        async with running(first) as a, running(second) as b:
            results = await _guesses(a, b)
        assert results == ["InvalidCredentials"] * 5 + ["RateLimited"]
        assert first.state.container.runtime.limiter.shared
    finally:
        await reset_database(settings)


async def _guesses(a: httpx.AsyncClient, b: httpx.AsyncClient) -> list[str]:
    return [await _guess(http, "x@example.com") for http in (a, b, a, b, a, b)]


async def _guess(http: httpx.AsyncClient, email: str) -> str:
    variables = {"input": {"email": email, "password": "password guess"}}
    response = await http.post("/graphql", json={"query": LOGIN, "variables": variables})
    kind: str = response.json()["data"]["login"]["__typename"]
    return kind


async def test_redis_outage_falls_back_to_memory_limits(
    redis_url: str, database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    proxy = TCPProxy(host, int(port))
    await proxy.start()
    settings = make_settings(
        database.url,
        tmp_path,
        redis_url=f"redis://127.0.0.1:{proxy.port}/15",
        rate_limit_key_prefix=f"identity-test-{uuid.uuid4().hex}",
        rate_limit_login_address="3/minute",
        mail_url=f"file://{tmp_path / 'mail'}",
    )
    app = create_app(settings)
    caplog.set_level(logging.WARNING, logger="identity.ratelimit")
    fallbacks = metrics.RATE_LIMIT_FALLBACKS._value.get()
    try:
        async with running(app) as http:
            assert await _guess(http, "y@example.com") == "InvalidCredentials"  # in Redis
            await proxy.cut()  # Redis traffic stops
            answers = [await _guess(http, "y@example.com") for _ in range(4)]
            # Still limited, from memory: never no limit at all.
            assert answers == ["InvalidCredentials"] * 3 + ["RateLimited"]
            assert "Redis unreachable" in caplog.text
            assert metrics.RATE_LIMIT_FALLBACKS._value.get() > fallbacks
        assert not app.state.container.runtime.limiter.shared
    finally:
        await proxy.cut()
        await reset_database(settings)


# GraphQL limits ---------------------------------------------------------------------------


async def test_thirty_aliased_logins_evaluate_no_password(
    client: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = container.runtime.hasher.verify

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await original(*args, **kwargs)

    monkeypatch.setattr(container.runtime.hasher, "verify", counting)
    fields = " ".join(
        f'a{i}: login(input: {{email: "ann@example.com", password: "guess number {i}"}}) {{ __typename }}'
        for i in range(30)
    )
    response = await client.post("/graphql", json={"query": f"mutation {{ {fields} }}"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert calls == []


async def test_two_different_credential_mutations_are_refused(client: httpx.AsyncClient) -> None:
    query = """mutation {
      login(input: {email: "a@b.co", password: "guess one!"}) { __typename }
      register(input: {email: "a@b.co", password: "guess two!", firstName: "", lastName: ""}) { __typename }
    }"""
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


def _deep_introspection(levels: int) -> str:
    inner = "name"
    for _ in range(levels):
        inner = f"ofType {{ {inner} }}"
    return f"{{ __schema {{ types {{ fields {{ type {{ {inner} }} }} }} }} }}"


async def test_deep_introspection_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": _deep_introspection(40)})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "levels deep" in error["message"]


async def test_standard_introspection_is_allowed_in_development(client: httpx.AsyncClient) -> None:
    from graphql import get_introspection_query

    response = await client.post(
        "/graphql", json={"query": get_introspection_query(descriptions=True)}
    )
    assert response.status_code == 200
    assert "errors" not in response.json()


async def test_fragment_cycles_and_fan_out_do_not_hang_the_limits(
    client: httpx.AsyncClient,
) -> None:
    fragments = (
        "".join(f"fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} id }}\n" for i in range(30))
        + "fragment F30 on User { ...F0 }\n"
    )
    response = await client.post("/graphql", json={"query": "{ me { ...F0 } }\n" + fragments})
    assert response.status_code == 200  # a validation error, quickly: cycles are not allowed
    assert "errors" in response.json()


async def test_too_many_tokens_and_too_long_queries_are_refused(client: httpx.AsyncClient) -> None:
    many = "{ me { " + " ".join(["id"] * 3000) + " } }"
    response = await client.post("/graphql", json={"query": many})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    long = "{ me { id } }" + " " * 20_000 + "# padding"
    response = await client.post("/graphql", json={"query": long})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_many_aliases_are_refused(client: httpx.AsyncClient) -> None:
    query = "{ " + " ".join(f"m{i}: me {{ id }}" for i in range(16)) + " }"
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_aliases_in_fragments_count_each_time_they_are_spread(
    client: httpx.AsyncClient,
) -> None:
    # 4 + 4 + 3 = 11 aliases written, 4 * 4 * 3 and more executed: refused.
    query = """
    { a: me { ...R } b: me { ...R } c: me { ...R } d: me { ...R } }
    fragment R on User { r1: roles { ...P } r2: roles { ...P } r3: roles { ...P } r4: roles { ...P } }
    fragment P on Role { p1: permissions { code } p2: permissions { code } p3: permissions { code } }
    """
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "More than 15 aliases in one request."
    # A fragment with a few aliases, spread once, is fine.
    fine = "{ me { ...F } } fragment F on User { a: id b: email }"
    assert "errors" not in (await client.post("/graphql", json={"query": fine})).json()


async def test_five_megabyte_body_gets_413(client: httpx.AsyncClient, container: Container) -> None:
    before = await row_counts(container)
    response = await client.post(
        "/graphql",
        content=b'{"query": "' + b"x" * (5 * 1024 * 1024) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert await row_counts(container) == before


async def test_validation_is_cached(gql: GraphQLClient) -> None:
    user = await signed_up(gql)
    query = "{ me { id email roles { name } } }"
    await gql(query, token=user.access_token)
    hits = schema_module._validate.cache_info().hits
    await gql(query, token=user.access_token)
    assert schema_module._validate.cache_info().hits >= hits + 1


# Browser apps -----------------------------------------------------------------------------

COOKIE_LOGIN = """mutation($i: LoginInput!) { login(input: $i) { __typename ... on AuthPayload { accessToken refreshToken } } }"""
COOKIE_REFRESH = "mutation { refreshToken(input: {}) { __typename ... on AuthPayload { accessToken refreshToken } } }"
COOKIE_LOGOUT = "mutation { logout(input: {}) { __typename } }"
CSRF = {"X-Requested-With": "identity-spa"}


async def cookie_login(client: httpx.AsyncClient, gql: GraphQLClient) -> httpx.Response:
    """Register ann and sign in; in cookie mode the answer sets the refresh cookie."""
    await register(gql)
    variables = {"i": {"email": "ann@example.com", "password": PASSWORD}}
    return await client.post("/graphql", json={"query": COOKIE_LOGIN, "variables": variables})


@pytest.mark.parametrize(
    "settings_overrides", [{"refresh_cookie": True, "public_url": "https://id.example.com"}]
)
async def test_cookie_mode_round_trip(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    response = await cookie_login(client, gql)
    payload = response.json()["data"]["login"]
    assert payload["refreshToken"] is None  # never reaches JavaScript
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-identity-refresh=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/", "Max-Age=2592000"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "domain" not in cookie.lower()
    assert response.headers["cache-control"] == "no-store"
    token = cookie.split(";")[0].split("=", 1)[1]
    jar = {"Cookie": f"__Host-identity-refresh={token}"}

    clock.advance(60)
    refreshed = await client.post(
        "/graphql", json={"query": COOKIE_REFRESH}, headers={**CSRF, **jar}
    )
    assert refreshed.json()["data"]["refreshToken"]["__typename"] == "AuthPayload"
    assert refreshed.json()["data"]["refreshToken"]["refreshToken"] is None
    rotated = refreshed.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert rotated != token
    assert "Max-Age=2591940" in refreshed.headers["set-cookie"]  # rotation does not extend it

    out = await client.post(
        "/graphql",
        json={"query": COOKIE_LOGOUT},
        headers={**CSRF, "Cookie": f"__Host-identity-refresh={rotated}"},
    )
    assert out.json()["data"]["logout"]["__typename"] == "LogoutSuccess"
    assert (
        "Max-Age=0" in out.headers["set-cookie"] or "expires=" in out.headers["set-cookie"].lower()
    )
    assert await scalar(container, "SELECT revoked_reason FROM sessions") == "logout"


@pytest.mark.parametrize(
    "settings_overrides", [{"refresh_cookie": True, "public_url": "https://id.example.com"}]
)
async def test_cookie_requests_without_the_header_or_json_are_refused(
    client: httpx.AsyncClient, gql: GraphQLClient, container: Container
) -> None:
    response = await cookie_login(client, gql)
    jar = {"Cookie": response.headers["set-cookie"].split(";")[0]}
    counter = await scalar(container, "SELECT refresh_counter FROM sessions")

    forged = await client.post("/graphql", json={"query": COOKIE_REFRESH}, headers=jar)
    assert forged.status_code == 400
    assert forged.json()["errors"][0]["extensions"]["code"] == "CSRF_CHECK_FAILED"
    for content_type, body in (
        ("text/plain", '{"query": "' + COOKIE_REFRESH.replace('"', '\\"') + '"}'),
        ("application/x-www-form-urlencoded", "query=" + COOKIE_REFRESH),
    ):
        refused = await client.post(
            "/graphql", content=body, headers={"content-type": content_type, **CSRF, **jar}
        )
        assert refused.status_code == 400
    logout = await client.post("/graphql", json={"query": COOKIE_LOGOUT}, headers=jar)
    assert logout.status_code == 400
    assert await scalar(container, "SELECT refresh_counter FROM sessions") == counter
    assert await scalar(container, "SELECT revoked_at FROM sessions") is None


@pytest.mark.parametrize("settings_overrides", [{"refresh_cookie": True}])
async def test_plain_http_development_cookie_drops_secure_and_prefix(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    response = await cookie_login(client, gql)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("identity-refresh=")
    assert "secure" not in cookie.lower()
    assert "httponly" in cookie.lower()


@pytest.mark.parametrize("settings_overrides", [{"cors_origins": "https://app.example.com"}])
async def test_cors_allows_only_listed_origins(client: httpx.AsyncClient) -> None:
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-requested-with",
    }
    allowed = await client.options("/graphql", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    evil = await client.options("/graphql", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    simple = await client.post(
        "/graphql", json={"query": "{ me { id } }"}, headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in simple.headers


@pytest.mark.parametrize("settings_overrides", [{"cors_origins": "https://app.example.com"}])
async def test_cors_leaves_the_pages_a_person_sees_out(client: httpx.AsyncClient) -> None:
    origin = {"Origin": "https://app.example.com"}
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    api = (
        "/graphql",
        "/oauth2/token",
        "/oauth2/userinfo",
        "/oauth2/revoke",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
    )
    for path in api:
        answer = await client.options(path, headers=preflight)
        assert answer.headers.get("access-control-allow-origin") == origin["Origin"], path
    # An actual request too (with CORS on, POST /graphql goes through the router).
    query = await client.post("/graphql", json={"query": "{ me { id } }"}, headers=origin)
    assert query.headers["access-control-allow-origin"] == origin["Origin"]
    assert query.headers["access-control-allow-credentials"] == "true"
    # The hosted sign-in's forms carry CSRF values: a listed origin may not read them.
    for path in (
        "/oauth2/authorize",
        "/oauth2/logout",
        "/oauth2/introspect",  # servers only, with a secret
        "/verify-email",
        "/login/external/acme/callback",
        "/oauth2/tokens",
    ):
        answer = await client.options(path, headers=preflight)
        assert "access-control-allow-origin" not in answer.headers, path
    page = await client.get("/oauth2/authorize?client_id=x", headers=origin)
    assert page.status_code == 400
    assert "access-control-allow-origin" not in page.headers
    assert "access-control-allow-credentials" not in page.headers


async def test_security_headers_on_answers(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ me { id } }"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    csp = page.headers["content-security-policy"]
    assert "https://unpkg.com" in csp  # GraphiQL still runs in development
    assert "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("given", ["trace-1", "abc\n", "x" * 65, "a b", ""])
def test_request_ids_from_clients_are_kept_only_when_plain(given: str) -> None:
    from identity.http import _request_id

    kept = _request_id({"headers": [(b"x-request-id", given.encode())]})
    assert (kept == given) == (given == "trace-1")
    assert "\n" not in kept
    assert len(kept) <= 64
