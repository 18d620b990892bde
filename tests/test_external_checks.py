"""Sign-in with other providers, what is refused: bad starts, a tampered, expired, replayed or
mixed-up state at the callback, every way an ID token or a discovery document can be wrong,
and bad settings. Nothing is issued for any of them."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from identity.config import ConfigError, load_settings
from identity.container import Container
from tests.conftest import GraphQLClient, scalar
from tests.external_helpers import (
    OVERRIDES,
    RETURN_TO,
    finish,
    fragment,
    new_verifier,
    returned,
    start,
    use_fake_provider,
)
from tests.fake_provider import CLIENT_ID, ISSUER, Account, FakeProvider

ANN = Account("sub-ann", "ann@example.com")
CODES = "SELECT count(*) FROM challenges WHERE purpose IN ('external-sign-in', 'external-link')"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(OVERRIDES)


@pytest.fixture
def provider(container: Container) -> FakeProvider:
    return use_fake_provider(container)


async def authorization_url(gql: GraphQLClient) -> str:
    started = await start(gql, new_verifier())
    assert started["__typename"] == "StartExternalLoginSuccess", started
    url: str = started["authorizationUrl"]
    return url


async def test_a_bad_start_names_every_bad_field(
    gql: GraphQLClient, provider: FakeProvider
) -> None:
    variables = {
        "input": {"provider": "nope", "returnTo": "https://evil.test/", "codeChallenge": "abc"}
    }
    query = """mutation($input: StartExternalLoginInput!) { startExternalLogin(input: $input) {
      __typename ... on ValidationError { fields { field code } } } }"""
    result = (await gql(query, variables))["data"]["startExternalLogin"]
    assert result["__typename"] == "ValidationError"
    assert {(f["field"], f["code"]) for f in result["fields"]} == {
        ("provider", "unknown_provider"),
        ("returnTo", "not_allowed"),
        ("codeChallenge", "invalid_challenge"),
    }
    # A returnTo is matched exactly: no prefixes, other paths or fragments.
    for near in (RETURN_TO + "/x", RETURN_TO + "?a=1", RETURN_TO.upper(), RETURN_TO + "#x"):
        refused = await start(gql, new_verifier(), return_to=near)
        assert refused["fields"] == [{"field": "returnTo", "code": "not_allowed"}]
    assert provider.requests == []


async def test_an_unreachable_provider_is_a_clean_error(
    gql: GraphQLClient, provider: FakeProvider, container: Container
) -> None:
    provider.down = True
    result = await start(gql, new_verifier())
    assert result["fields"] == [{"field": "provider", "code": "provider_unavailable"}]
    assert await scalar(container, "SELECT count(*) FROM challenges") == 0


@pytest.mark.parametrize(
    "settings_overrides", [{**OVERRIDES, "rate_limit_external_address": "2/minute"}]
)
async def test_starts_are_limited_per_client_address(
    gql: GraphQLClient, provider: FakeProvider, container: Container
) -> None:
    for _ in range(2):
        await authorization_url(gql)
    states = await scalar(container, "SELECT count(*) FROM challenges")
    asked = len(provider.requests)
    limited = await start(gql, new_verifier())
    assert limited["__typename"] == "RateLimited"
    assert "Too many" in limited["message"]
    # Neither a state written nor the provider asked.
    assert await scalar(container, "SELECT count(*) FROM challenges") == states == 2
    assert len(provider.requests) == asked


async def test_the_authorization_request_carries_pkce_state_and_nonce(
    gql: GraphQLClient, provider: FakeProvider
) -> None:
    from urllib.parse import parse_qs, urlsplit

    url = await authorization_url(gql)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["redirect_uri"] == "http://testserver/login/external/acme/callback"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["nonce"]) >= 32
    assert len(query["state"]) >= 64
    assert query["scope"] == "openid email profile"
    again = {k: v[0] for k, v in parse_qs(urlsplit(await authorization_url(gql)).query).items()}
    assert all(again[k] != query[k] for k in ("state", "nonce", "code_challenge"))


def tampered(callback: str) -> str:
    head, _, state = callback.partition("state=")
    state, sep, rest = state.partition("&")
    flipped = state[:-2] + ("A" if state[-2] != "A" else "B") + state[-1]
    return f"{head}state={flipped}{sep}{rest}"


async def test_a_tampered_expired_replayed_or_mixed_up_state_issues_nothing(
    gql: GraphQLClient, container: Container, provider: FakeProvider, clock: Any
) -> None:
    callback = provider.authorize(await authorization_url(gql), ANN)
    assert (await returned(gql.http, tampered(callback))) == {"error": "invalid_state"}
    other = callback.replace("/external/acme/", "/external/google/")
    assert (await returned(gql.http, other)) == {"error": "invalid_state"}
    assert await scalar(container, CODES) == 0
    # The genuine answer still works once; then the state is spent.
    assert "code" in await returned(gql.http, callback)
    assert (await returned(gql.http, callback)) == {"error": "invalid_state"}
    # Ten minutes: a state expires.
    late = provider.authorize(await authorization_url(gql), ANN)
    clock.advance(601)
    assert (await returned(gql.http, late)) == {"error": "invalid_state"}
    assert await scalar(container, CODES) == 1
    # No state at all: back to the first app on the list, with the error.
    bare = await gql.http.get("/login/external/acme/callback?code=x")
    assert fragment(bare) == {"error": "invalid_state"}
    doubled = await gql.http.get(f"{callback}&state=again")
    assert fragment(doubled) == {"error": "invalid_state"}
    refusals = "SELECT count(*) FROM audit_events WHERE action = 'external.callback_refused'"
    assert await scalar(container, refusals) == 6


async def test_the_app_named_in_the_state_gets_the_answer(
    gql: GraphQLClient, provider: FakeProvider
) -> None:
    started = await start(gql, new_verifier(), return_to="http://other.test/")
    response = await gql.http.get(provider.authorize(started["authorizationUrl"], ANN))
    assert response.headers["location"].startswith("http://other.test/#code=")
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("settings_overrides", [{**OVERRIDES, "oidc_return_urls": []}])
async def test_without_any_app_to_go_back_to_a_page_says_so(
    client: httpx.AsyncClient, provider: FakeProvider
) -> None:
    response = await client.get("/login/external/acme/callback?state=x&code=y")
    assert response.status_code == 400
    assert "start again" in response.text


async def test_a_refusal_at_the_provider_returns_access_denied(
    gql: GraphQLClient, container: Container, provider: FakeProvider
) -> None:
    denied = provider.deny(await authorization_url(gql))
    assert (await returned(gql.http, denied)) == {"error": "access_denied"}
    other = provider.authorize(await authorization_url(gql), ANN, error="server_error")
    assert (await returned(gql.http, other)) == {"error": "provider_error"}
    assert await scalar(container, CODES) == 0


BAD_ID_TOKENS: list[tuple[str, dict[str, Any]]] = [
    ("signed ES256 while RS256 is configured", {"sign_with": "ec"}),
    ("signed HS256 with the client secret", {"sign_with": "hs256"}),
    ("not signed at all", {"sign_with": "none"}),
    ("signed by another key", {"sign_with": "other-rsa"}),
    ("another issuer", {"claims": {"iss": "https://other.example.test"}}),
    ("another audience", {"claims": {"aud": "someone-else"}}),
    ("several audiences, no azp", {"claims": {"aud": [CLIENT_ID, "someone-else"]}}),
    ("issued to another party", {"claims": {"azp": "someone-else"}}),
    ("another sign-in's nonce", {"claims": {"nonce": "replayed"}}),
    ("no nonce", {"claims": {"nonce": None}}),
    ("expired", {"claims": {"exp": int(time.time()) - 3600}}),
    ("issued in the future", {"claims": {"iat": int(time.time()) + 3600}}),
    ("not valid yet", {"claims": {"nbf": int(time.time()) + 3600}}),
    ("no subject", {"claims": {"sub": None}}),
    ("an unknown key", {"header": {"kid": "unknown"}}),
    ("an issuer mix-up in the response", {"discovery": {"issuer": "https://other.test"}}),
    (
        "endpoints over plain http",
        {"discovery": {"token_endpoint": "http://login.example.test/token"}},
    ),
    (
        "an https provider naming a loopback endpoint",
        {"discovery": {"jwks_uri": "http://127.0.0.1:6379/"}},
    ),
    (
        "no RS256 on offer",
        {"discovery": {"id_token_signing_alg_values_supported": ["ES256"]}},
    ),
    ("userinfo about someone else", {"email_in_userinfo": True, "userinfo_sub": "other"}),
]


@pytest.mark.parametrize(("what", "knobs"), BAD_ID_TOKENS, ids=[what for what, _ in BAD_ID_TOKENS])
async def test_a_bad_answer_from_the_provider_issues_nothing(
    gql: GraphQLClient, container: Container, what: str, knobs: dict[str, Any]
) -> None:
    provider = use_fake_provider(container)
    started = await start(gql, new_verifier())
    assert started["__typename"] == "StartExternalLoginSuccess"
    # Misbehave from here on (discovery: a fresh client reads the document again).
    for name, value in knobs.items():
        setattr(provider, name, value)
    if "discovery" in knobs:
        container.providers.use_http(provider.http())
        container.providers.clients["acme"]._metadata = None
    back = await returned(gql.http, provider.authorize(started["authorizationUrl"], ANN))
    assert back == {"error": "provider_error"}, what
    assert await scalar(container, CODES) == 0
    assert await scalar(container, "SELECT count(*) FROM users") == 0


async def test_the_address_may_come_from_userinfo(gql: GraphQLClient, container: Container) -> None:
    provider = use_fake_provider(container, email_in_userinfo=True)
    verifier = new_verifier()
    started = await start(gql, verifier)
    back = await returned(gql.http, provider.authorize(started["authorizationUrl"], ANN))
    done = await finish(gql, back["code"], verifier)
    assert done["__typename"] == "AuthPayload"
    assert done["user"]["email"] == "ann@example.com"
    assert "GET /userinfo" in provider.requests


async def test_a_rotated_key_is_fetched_again_once(
    gql: GraphQLClient, container: Container
) -> None:
    provider = use_fake_provider(container)
    for _ in range(2):
        started = await start(gql, new_verifier())
        assert "code" in await returned(
            gql.http, provider.authorize(started["authorizationUrl"], ANN)
        )
    assert provider.requests.count("GET /jwks") == 1  # kept
    assert provider.requests.count("GET /.well-known/openid-configuration") == 1


# Settings --------------------------------------------------------------------------------


def provider_settings(**provider: Any) -> Any:
    base = {
        "id": "acme",
        "client_id": "c",
        "discovery_url": ISSUER + "/.well-known/openid-configuration",
    }
    return load_settings(_env_file=None, oidc_providers=[{**base, **provider}])


def test_presets_fill_in_discovery_and_name() -> None:
    settings = load_settings(
        _env_file=None,
        oidc_providers=[
            {"id": "google", "client_id": "g"},
            {"id": "work", "preset": "microsoft", "client_id": "m"},
            {"id": "gitlab", "client_id": "l", "name": "Our GitLab"},
        ],
    )
    google, work, gitlab = settings.oidc_providers
    assert google.discovery == "https://accounts.google.com/.well-known/openid-configuration"
    assert (work.display_name, work.issuer_names_tenant) == ("Microsoft", True)
    assert gitlab.display_name == "Our GitLab"
    assert gitlab.expected_issuer == "https://gitlab.com"
    assert google.email_trust == "verified"


def test_a_multi_tenant_provider_cannot_trust_every_address() -> None:
    # Any Entra tenant's admin could otherwise claim any address as verified.
    with pytest.raises(ConfigError, match="multi-tenant"):
        load_settings(
            _env_file=None,
            oidc_providers=[{"id": "microsoft", "client_id": "m", "email_trust": "always"}],
        )


def test_the_environment_takes_a_json_array(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "IDENTITY_OIDC_PROVIDERS",
        '[{"id": "google", "client_id": "g", "client_secret": "hush-hush"}]',
    )
    monkeypatch.setenv(
        "IDENTITY_OIDC_RETURN_URLS", "https://app.example.com/, http://localhost:3000/"
    )
    settings = load_settings(_env_file=None)
    assert settings.oidc_providers[0].client_secret is not None
    assert "hush-hush" not in repr(settings.oidc_providers[0])
    assert settings.oidc_return_urls == ["https://app.example.com/", "http://localhost:3000/"]


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ({"preset": "nope"}, "preset 'nope'"),
        ({"discovery_url": None}, "give a discovery_url or a preset"),
        ({"discovery_url": "http://idp.example.com/.well-known/openid-configuration"}, "https"),
        ({"discovery_url": "https://idp.example.com/"}, "ends in"),
        ({"id": "Has Spaces"}, "use 1 to 32"),
        ({"id_token_algorithm": "HS256"}, "use one of"),
        ({"id_token_algorithm": "none"}, "use one of"),
        ({"scopes": ["email"]}, "openid"),
        ({"unknown_key": 1}, "Extra inputs"),
    ],
)
def test_bad_provider_settings_are_refused(provider: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="IDENTITY_OIDC_PROVIDERS") as raised:
        provider_settings(**provider)
    assert message in str(raised.value)


def test_bad_return_urls_and_duplicate_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="IDENTITY_OIDC_RETURN_URLS"):
        load_settings(_env_file=None, oidc_return_urls=["https://app.example.com/#x"])
    with pytest.raises(ConfigError, match="IDENTITY_OIDC_RETURN_URLS"):
        load_settings(_env_file=None, oidc_return_urls=["javascript:alert(1)"])
    production = {"env": "production", "secret_key": "x" * 40, "mail_url": "smtp://mail:25"}
    with pytest.raises(ConfigError, match="use https:// URLs in production"):
        load_settings(_env_file=None, oidc_return_urls=["http://app.example.com/"], **production)
    load_settings(_env_file=None, oidc_return_urls=["https://app.example.com/"], **production)
    twice = [{"id": "google", "client_id": "a"}, {"id": "google", "client_id": "b"}]
    with pytest.raises(ConfigError, match="an id of its own"):
        load_settings(_env_file=None, oidc_providers=twice)
