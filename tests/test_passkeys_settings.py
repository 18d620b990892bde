"""The relying party from settings: derived in development, required in production for
passkeys, and refused at start-up when browsers would refuse it."""

from __future__ import annotations

from typing import Any

import pytest

from identity.config import ConfigError, load_settings
from tests.conftest import GraphQLClient
from tests.passkey_helpers import START_LOGIN

PRODUCTION = {"env": "production", "secret_key": "x" * 40, "mail_url": "smtp://mail:25"}


def test_development_derives_the_relying_party_from_the_public_url() -> None:
    settings = load_settings(
        _env_file=None,
        public_url="http://localhost:8000",
        cors_origins=["http://localhost:5173", "https://elsewhere.example"],
    )
    assert settings.passkeys_enabled
    assert settings.passkey_rp_id == "localhost"
    # The CORS origins under the relying-party id; an origin elsewhere could not use it.
    assert settings.passkey_origins == ["http://localhost:8000", "http://localhost:5173"]


def test_an_app_and_identity_on_sibling_hosts_share_a_parent_domain() -> None:
    settings = load_settings(
        _env_file=None,
        **PRODUCTION,
        public_url="https://id.example.com",
        cors_origins=["https://app.example.com"],
        webauthn_rp_id="example.com",
    )
    assert settings.passkeys_enabled
    assert settings.passkey_origins == ["https://id.example.com", "https://app.example.com"]
    explicit = load_settings(
        _env_file=None,
        **PRODUCTION,
        public_url="https://id.example.com",
        webauthn_rp_id="example.com",
        webauthn_origins="https://app.example.com:8443/,https://id.example.com:443",
    )
    assert explicit.passkey_origins == ["https://app.example.com:8443", "https://id.example.com"]


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"webauthn_rp_id": "example.org"}, "not https://id.example.com's host"),
        ({"webauthn_rp_id": "com"}, "not a registrable domain"),
        ({"webauthn_rp_id": "192.0.2.1"}, "is an address"),
        (
            {"webauthn_rp_id": "example.com", "webauthn_origins": "https://app.example.net"},
            "not https://app.example.net's host",
        ),
        ({"webauthn_origins": "*"}, "list exact origins"),
    ],
)
def test_start_up_refuses_a_relying_party_browsers_would_refuse(
    overrides: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(
            _env_file=None, **PRODUCTION, public_url="https://id.example.com", **overrides
        )


def test_production_without_a_relying_party_id_has_passkeys_off() -> None:
    settings = load_settings(_env_file=None, **PRODUCTION, public_url="https://id.example.com")
    assert not settings.passkeys_enabled


@pytest.mark.parametrize(
    "settings_overrides", [{"env": "production", "mail_url": "smtp://127.0.0.1:1"}]
)
async def test_passkey_operations_say_passkeys_are_off(gql: GraphQLClient) -> None:
    result = await gql(START_LOGIN, expect_errors=True)
    assert result["data"] is None
    assert result["errors"][0]["extensions"]["code"] == "PASSKEYS_OFF"


def test_production_refuses_plain_http_origins() -> None:
    with pytest.raises(ConfigError, match="https:// origins in production"):
        load_settings(
            _env_file=None,
            **PRODUCTION,
            public_url="https://id.example.com",
            webauthn_rp_id="example.com",
            webauthn_origins=["http://app.example.com"],
        )
