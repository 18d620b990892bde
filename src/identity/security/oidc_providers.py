"""The OpenID Connect providers people may sign in with, as configured (IDENTITY_OIDC_PROVIDERS).

Any OpenID Connect provider works by its discovery URL. Presets fill in the discovery URL and
the name of well-known public providers: `{"id": "google", "client_id": …, "client_secret": …}`
is enough for Google.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

WELL_KNOWN = "/.well-known/openid-configuration"
# Asymmetric algorithms only: an HMAC-signed ID token would be keyed with the client secret,
# and "none" is no signature at all.
ID_TOKEN_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    discovery_url: str
    # The issuer names the signing tenant ({tenantid}) rather than the discovery URL's path.
    issuer_template: bool = False


PRESETS = {
    "google": Preset("Google", "https://accounts.google.com" + WELL_KNOWN),
    # Work, school and personal accounts. Microsoft sends no `email_verified`: with the default
    # trust no account is made or matched by address (see the guide).
    "microsoft": Preset(
        "Microsoft",
        "https://login.microsoftonline.com/common/v2.0" + WELL_KNOWN,
        issuer_template=True,
    ),
    "gitlab": Preset("GitLab", "https://gitlab.com" + WELL_KNOWN),
}


EmailTrust = Literal["verified", "always", "never"]


class OidcProviderSettings(BaseModel):
    """One provider of IDENTITY_OIDC_PROVIDERS."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(
        description="Names it in the API and in the callback URL "
        "{public_url}/login/external/{id}/callback; a preset's name fills in the rest."
    )
    name: str | None = Field(
        default=None, description="What the sign-in button says (default: the preset's, or id)."
    )
    preset: str | None = Field(
        default=None, description=f"One of {', '.join(PRESETS)} (default: the id, if it is one)."
    )
    discovery_url: str | None = Field(
        default=None,
        description="The provider's https://…/.well-known/openid-configuration "
        "(a preset fills it in).",
    )
    client_id: str = Field(description="The client id identity was registered with.")
    client_secret: SecretStr | None = Field(
        default=None, description="Its secret; none for a public client (PKCE only)."
    )
    email_trust: EmailTrust = Field(
        default="verified",
        description="Which addresses create or match accounts: `verified` (only with "
        "`email_verified: true`), `always` (the provider verifies every address), `never`.",
    )
    scopes: list[str] = Field(
        default=["openid", "email", "profile"], description="Asked for; must include openid."
    )
    id_token_algorithm: str = Field(
        default="RS256",
        description="The one algorithm its ID tokens may be signed with (the provider must "
        "list it in id_token_signing_alg_values_supported).",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise ValueError(f"{value!r}: use 1 to 32 of a-z, 0-9 and -, like google")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        if "openid" not in value or any(not s or " " in s for s in value):
            raise ValueError("list scopes without spaces, openid among them")
        return value

    @field_validator("id_token_algorithm")
    @classmethod
    def _algorithm(cls, value: str) -> str:
        if value not in ID_TOKEN_ALGORITHMS:
            raise ValueError(f"{value!r}: use one of {', '.join(ID_TOKEN_ALGORITHMS)}")
        return value

    @model_validator(mode="after")
    def _preset(self) -> OidcProviderSettings:
        preset = self.preset or (self.id if self.id in PRESETS else None)
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"preset {preset!r}: use one of {', '.join(PRESETS)}")
        if self.discovery_url is None and preset is None:
            raise ValueError(f"provider {self.id!r}: give a discovery_url or a preset")
        url = self.discovery_url or PRESETS[preset or ""].discovery_url
        if not url.endswith(WELL_KNOWN):
            raise ValueError(f"provider {self.id!r}: the discovery_url ends in {WELL_KNOWN}")
        if not secure_url(url):
            raise ValueError(f"provider {self.id!r}: the discovery_url must use https")
        preset_used = self.preset_used
        if preset_used and preset_used.issuer_template and self.email_trust == "always":
            # Any tenant's admin could then claim any address as verified.
            raise ValueError(
                f'provider {self.id!r}: a multi-tenant provider cannot have email_trust "always"'
            )
        return self

    @property
    def preset_used(self) -> Preset | None:
        name = self.preset or self.id
        # A discovery URL of its own is another provider, whatever its id says.
        if name in PRESETS and (self.discovery_url is None or self.preset is not None):
            return PRESETS[name]
        return None

    @property
    def display_name(self) -> str:
        preset = self.preset_used
        return self.name or (preset.name if preset else self.id)

    @property
    def discovery(self) -> str:
        preset = self.preset_used
        if self.discovery_url is not None:
            return self.discovery_url
        assert preset is not None  # checked by the validator
        return preset.discovery_url

    @property
    def expected_issuer(self) -> str:
        """OpenID Connect Discovery §4.3: the issuer is the discovery URL without its suffix."""
        return self.discovery.removesuffix(WELL_KNOWN)

    @property
    def issuer_names_tenant(self) -> bool:
        preset = self.preset_used
        return preset is not None and preset.issuer_template


def secure_url(url: str) -> bool:
    """https, or plain http to this machine (a provider in development or in tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and is_loopback(parts.hostname or "")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
