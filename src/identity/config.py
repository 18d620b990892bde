"""Settings: every knob of the service, read once from the environment (prefix IDENTITY_)."""

from __future__ import annotations

import difflib
import ipaddress
import secrets
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import limits
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from identity.security.oidc_providers import OidcProviderSettings, secure_url
from identity.security.origins import fits, origin_of, relying_party_problem

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./identity.db"


class Env(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigError(Exception):
    """Bad configuration: the message is one line that names the setting."""


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IDENTITY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # The docstring under each field is its description: the configuration reference
        # (docs/reference/configuration.md) is generated from them.
        use_attribute_docstrings=True,
    )

    env: Env = Env.DEVELOPMENT
    """`development` or `production`. Production requires `IDENTITY_SECRET_KEY` and a real mail
    transport, never migrates by itself, turns GraphiQL, introspection and field suggestions
    off and logs JSON lines."""
    database_url: str = DEFAULT_DATABASE_URL
    """`sqlite+aiosqlite:///path` or `postgresql+asyncpg://user:pass@host/db`. Several workers or
    instances need PostgreSQL."""
    database_pool_size: int = Field(default=10, ge=1)
    """PostgreSQL: connections kept in SQLAlchemy's pool, per process."""
    database_max_overflow: int = Field(default=10, ge=0)
    """PostgreSQL: connections the pool may open beyond `IDENTITY_DATABASE_POOL_SIZE` under
    load, per process."""
    database_hot_pool_size: int = Field(default=4, ge=1)
    """PostgreSQL: the small asyncpg pool of the two statements on the hot path (the principal
    of every authenticated request, refresh-token rotation), per process."""

    secret_key: SecretStr | None = None
    """The one server secret, at least 32 characters: encrypts the signing keys at rest and keys
    the HMAC of refresh tokens, one-time tokens and paging cursors. Required in production;
    unset in development, it is generated into `IDENTITY_SECRET_KEY_FILE`."""
    secret_key_file: Path = Path(".identity-secret")
    """Where development keeps the generated secret (file mode 600) while `IDENTITY_SECRET_KEY`
    is unset."""
    secret_key_fallbacks: Annotated[list[SecretStr], NoDecode] = []
    """Earlier server secrets, comma-separated, each at least 32 characters: they still open and
    check what they made (verification only); everything new is made with
    `IDENTITY_SECRET_KEY`. See `identity secret check | reencrypt`."""

    public_url: str = ""
    """Where clients reach identity: the default JWT issuer, `{public_url}` in mailed links, and
    whether cookies are `Secure` (an `https://` URL). Unset: `http://HOST:PORT` from
    `IDENTITY_HOST` and `IDENTITY_PORT` (`http://127.0.0.1:8000`)."""
    host: str = "127.0.0.1"
    """The address `identity serve` listens on. A development server bound to anything but
    loopback prints a warning."""
    port: int = Field(default=8000, ge=0, le=65535)
    """The port `identity serve` listens on."""

    access_token_ttl: int = Field(default=900, ge=30, le=86400)
    """Access-token lifetime in seconds."""
    refresh_token_ttl: int = Field(default=30 * 86400, ge=60)
    """Absolute session lifetime in seconds (30 days); rotating the refresh token never extends
    it."""
    refresh_idle_timeout: int | None = Field(default=None, ge=60)
    """Optional: seconds after which a session that was not used (refreshed) ends."""
    refresh_reuse_grace: int = Field(default=10, ge=0, le=300)
    """Seconds within which a just-rotated refresh token yields the same successor again (two
    tabs refreshing at once) instead of counting as reuse."""
    jwt_algorithm: Literal["RS256", "ES256", "EdDSA"] = "RS256"
    """The signing algorithm of keys made from now on."""
    jwt_issuer: str | None = None
    """The `iss` claim of access tokens. Unset: `IDENTITY_PUBLIC_URL`."""
    jwt_audience: str = "identity"
    """The `aud` claim of access tokens."""
    jwt_leeway: int = Field(default=30, ge=0, le=300)
    """Seconds of clock skew accepted on `exp` and `iat`."""
    jwks_max_age: int = Field(default=300, ge=0, le=86400)
    """`Cache-Control: max-age` of `/.well-known/jwks.json` in seconds, and how long a rotated
    key waits before it signs."""
    key_refresh_interval: int = Field(default=10, ge=1)
    """Seconds between reloads of the signing keys, which picks up rotations made by the CLI or
    other instances."""

    argon2_memory_cost: int = Field(default=19456, ge=1024)
    """argon2id memory in KiB (OWASP's 19 MiB). Hashes made with other parameters are upgraded
    at the next sign-in."""
    argon2_time_cost: int = Field(default=2, ge=1)
    """argon2id iterations."""
    argon2_parallelism: int = Field(default=1, ge=1)
    """argon2id lanes."""
    password_hash_concurrency: int = Field(default=0, ge=0)
    """How many password hashes run at once, on low-priority threads; 0: one per CPU."""

    auto_migrate: bool | None = None
    """Apply migrations when the server starts. Unset: on in development, off in production.
    Off, start-up refuses an unmigrated database and says to run `identity migrate`."""
    require_verified_email: bool = False
    """Refuse sign-in (`EmailNotVerified`) until the address is verified."""
    graphiql: bool | None = None
    """Serve the GraphiQL explorer at `GET /graphql`. Unset: on in development, off in
    production."""
    graphiql_assets_url: str | None = None
    """Where GraphiQL's page loads React and GraphiQL from, instead of `https://unpkg.com/`: a
    URL, or a `/path` on this host, serving the CDN's relative paths (`react@18.2.0/umd/…`),
    such as a mirror made with `examples/graphiql-assets`."""
    introspection: bool | None = None
    """Answer introspection queries. Unset: on in development, off in production."""
    graphql_hints: bool | None = None
    """Validation messages that name types and suggest fields. Unset: on in development, off in
    production, where neutral messages replace them."""
    graphql_get: bool | None = None
    """Run queries sent with GET on `/graphql`. Unset: on in development, off in production;
    GraphiQL's page is not affected."""
    max_body_size: int = Field(default=64 * 1024, ge=1024)
    """Bytes; a larger request body gets HTTP 413 before it is parsed."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """The least severe log level written."""
    gc_freeze: bool = True
    """Move what start-up loaded out of the garbage collector's way (`gc.freeze()`): shorter
    latency tails."""

    cors_origins: Annotated[list[str], NoDecode] = []
    """Exact origins allowed to call from a browser, comma-separated, e.g.
    `https://app.example.com,https://admin.example.com`; `*` and paths are refused. Unset: no
    CORS header is sent."""
    trusted_proxies: Annotated[list[str], NoDecode] = []
    """Addresses or networks (`10.0.0.0/8`) of reverse proxies whose `X-Forwarded-For` is
    believed, comma-separated."""
    refresh_cookie: bool = False
    """Cookie mode: the refresh token travels only in an HttpOnly cookie, never in a response
    body."""
    redis_url: str | None = None
    """`redis://host:port/db` or `rediss://…`: rate-limit counts shared by every instance. Unset:
    counts in process memory."""
    metrics_token: SecretStr | None = None
    """The bearer token `GET /metrics` asks for. Unset: `/metrics` answers 401 to everyone."""

    # Rate limits (the `limits` notation: "5/15minutes;20/day"; every part must hold)
    rate_limit_login_account: str = "5/15minutes;10/hour;20/day"
    """Failed sign-ins per account (the address tried) before it is locked."""
    rate_limit_login_address: str = "60/minute;600/hour"
    """Sign-in attempts per client address."""
    rate_limit_register_address: str = "10/hour;50/day"
    """Registrations per client address."""
    rate_limit_register_email: str = "3/hour"
    """Registrations per email address."""
    rate_limit_recovery_address: str = "10/hour;50/day"
    """Password-reset, verification and email-change requests per client address."""
    rate_limit_recovery_email: str = "3/hour;10/day"
    """The same requests per email address."""
    rate_limit_key_prefix: str = "identity"
    """Prefix of the keys in Redis, so several deployments can share one Redis."""

    # Second factors
    mfa_issuer: str | None = Field(
        default=None,
        description="The issuer authenticator apps show beside the account "
        "(default: the product name).",
    )
    reauth_window: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="Seconds after signing in during which factor changes need no password.",
    )
    rate_limit_mfa_account: str = Field(
        default="5/15minutes;20/day",
        description="Wrong second factors per account; only a right one clears the count.",
    )
    revert_change_url: str = Field(
        default="{public_url}/revert-change#token={token}",
        description="The 'this wasn't me' link mailed when a factor or a sign-in method is added.",
    )

    # Passkeys (WebAuthn)
    webauthn_rp_id: str | None = Field(
        default=None,
        description="The relying-party id passkeys are bound to: the host of every origin "
        "below or a parent domain of them all (`example.com` for `app.example.com` and "
        "`id.example.com`). Unset: the host of `IDENTITY_PUBLIC_URL` in development; in "
        "production passkeys are off until it is set.",
    )
    webauthn_origins: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Comma-separated: the exact origins whose pages may create and use "
        "passkeys. Unset: the origin of `IDENTITY_PUBLIC_URL` and the CORS origins under the "
        "relying-party id.",
    )
    rate_limit_passkey_address: str = Field(
        default="60/minute;600/hour",
        description="Passkey sign-in challenges (each takes one answer) per client address.",
    )
    rate_limit_passkey_credential: str = Field(
        default="10/minute;100/hour",
        description="Passkey sign-in answers per credential.",
    )
    rate_limit_external_address: str = Field(
        default="60/minute;600/hour",
        description="Sign-ins (and links) started at another provider per client address: "
        "each writes a state that lives ten minutes.",
    )

    # Sign-in with other providers
    oidc_providers: list[OidcProviderSettings] = Field(
        default=[],
        description="OpenID Connect providers people may sign in with, as a JSON array of "
        '{"id", "client_id", "client_secret", and "discovery_url" or a preset such as google}; '
        "see the external providers guide for every key.",
    )
    oidc_return_urls: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Comma-separated: the exact URLs `startExternalLogin` may name as "
        "`returnTo`, where identity sends the browser back with a one-time code.",
    )
    oidc_timeout: float = Field(
        default=10.0, gt=0, le=60, description="Seconds identity waits for a provider's answer."
    )

    # Sender-constrained tokens (DPoP, RFC 9449)
    dpop: Literal["optional", "required"] = "optional"
    """`optional`: a sign-in or refresh that carries a `DPoP` proof binds the session to the
    proof's key, one without stays a bearer session. `required`: every request that issues
    tokens must carry a proof."""
    dpop_proof_max_age: int = Field(default=60, ge=5, le=600)
    """Seconds a DPoP proof's `iat` may lie in the past (plus `IDENTITY_JWT_LEEWAY` either
    way); each proof is good for one request."""

    # GraphQL limits
    max_query_depth: int = Field(default=15, ge=2, le=100)
    """Deepest selection nesting of an operation."""
    max_aliases: int = Field(default=15, ge=1)
    """Aliases per request."""
    max_tokens: int = Field(default=2000, ge=100)
    """Tokens (names, punctuation, values) in a query."""
    max_query_size: int = Field(default=16 * 1024, ge=1024)
    """Characters in a query."""
    max_directives: int = Field(default=30, ge=1)
    """Directives in one operation, fragments counted each time they are spread."""
    max_directives_per_field: int = Field(default=4, ge=1)
    """Directives on one field, fragment or operation."""

    # Mail
    mail_url: str | None = None
    """Where mail goes: `console:` (standard output; refused in production), `file:///dir` (one
    `.eml` file per message), `smtp://user:pass@host:port?starttls=true` or
    `smtps://user:pass@host:port` (TLS from the start). Unset: `console:`."""
    mail_from: str = "identity <no-reply@localhost>"
    """The `From` header."""
    product_name: str = "identity"
    """The name in subjects, messages and the link pages."""
    mail_templates_dir: Path | None = None
    """A folder whose templates replace the built-in ones of the same name."""
    mail_poll_interval: float = Field(default=2.0, gt=0)
    """Seconds between looks at the outbox (new mail also wakes the sender at once)."""
    mail_max_attempts: int = Field(default=12, ge=1)
    """Delivery attempts before a message is marked failed."""
    notify_new_sign_in: bool = False
    """Mail the user when they sign in from a browser (user agent) not seen on their account
    before."""
    password_reset_url: str = "{public_url}/reset-password#token={token}"
    """The link in password-reset and invitation mail; `{token}` must be in the fragment."""
    verify_email_url: str = "{public_url}/verify-email#token={token}"
    """The link in verification mail; `{token}` must be in the fragment."""
    confirm_email_change_url: str = "{public_url}/confirm-email-change#token={token}"
    """The link sent to a new address; `{token}` must be in the fragment."""
    password_reset_ttl: int = Field(default=30 * 60, ge=60)
    """Lifetime of a password-reset link in seconds (30 minutes)."""
    verify_email_ttl: int = Field(default=24 * 3600, ge=60)
    """Lifetime of a verification link in seconds (24 hours)."""
    email_change_ttl: int = Field(default=24 * 3600, ge=60)
    """Lifetime of an email-change link in seconds (24 hours)."""
    invitation_ttl: int = Field(default=7 * 24 * 3600, ge=60)
    """Lifetime of an invitation link in seconds (7 days)."""

    # Webhooks
    webhook_allow_private: bool | None = Field(
        default=None,
        description=(
            "Let webhook endpoints use any URL: http, and hosts on loopback, private, "
            "link-local or cloud-metadata addresses. Default: true in development, false in "
            "production (https only, public addresses only, checked at registration and at "
            "every connection)."
        ),
    )
    webhook_poll_interval: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between looks at the webhook outbox when nothing woke it up.",
    )
    webhook_concurrency: int = Field(
        default=32, ge=1, le=64, description="Webhook deliveries a process sends at once."
    )

    @field_validator(
        "cors_origins",
        "trusted_proxies",
        "secret_key_fallbacks",
        "oidc_return_urls",
        "webauthn_origins",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("secret_key_fallbacks")
    @classmethod
    def _fallbacks(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(secret.get_secret_value()) < 32 for secret in value):
            raise ValueError("every fallback secret must be at least 32 characters")
        return value

    @field_validator("cors_origins", "webauthn_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r}: list exact origins like https://app.example.com")
        return [origin.rstrip("/") for origin in value]

    @field_validator("oidc_providers")
    @classmethod
    def _oidc_providers(cls, value: list[OidcProviderSettings]) -> list[OidcProviderSettings]:
        ids = [provider.id for provider in value]
        if len(set(ids)) != len(ids):
            raise ValueError("every provider needs an id of its own")
        return value

    @field_validator("oidc_return_urls")
    @classmethod
    def _return_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            scheme, _, rest = url.partition("://")
            if scheme not in ("http", "https") or not rest or "#" in url:
                raise ValueError(f"{url!r}: list absolute http(s) URLs without a fragment")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for proxy in value:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an address or network") from None
        return value

    @field_validator(
        "rate_limit_login_account",
        "rate_limit_login_address",
        "rate_limit_register_address",
        "rate_limit_register_email",
        "rate_limit_recovery_address",
        "rate_limit_recovery_email",
        "rate_limit_mfa_account",
        "rate_limit_passkey_address",
        "rate_limit_passkey_credential",
        "rate_limit_external_address",
    )
    @classmethod
    def _rate_limits(cls, value: str) -> str:
        try:
            limits.parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit like 5/15minutes;20/day") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://")):
            raise ValueError("use redis://host:port/db or rediss://…")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db")
        return value

    @field_validator(
        "password_reset_url", "verify_email_url", "confirm_email_change_url", "revert_change_url"
    )
    @classmethod
    def _link_template(cls, value: str) -> str:
        fragment = value.partition("#")[2]
        if "{token}" not in fragment:
            raise ValueError(
                "must carry {token} in the fragment, e.g. https://app/reset#token={token}"
            )
        return value

    @field_validator("mail_url")
    @classmethod
    def _mail_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("console:", "file://", "smtp://", "smtps://")
        ):
            raise ValueError(
                "use console:, file:///path/to/dir, smtp://user:pass@host:port or smtps://…"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("graphiql_assets_url")
    @classmethod
    def _graphiql_assets_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://", "/")):
            raise ValueError("must start with http://, https:// or / (a path on this host)")
        return value.rstrip("/") + "/"

    @model_validator(mode="before")
    @classmethod
    def _default_public_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("public_url"):
            host = str(data.get("host") or "127.0.0.1")
            if host in ("0.0.0.0", "::"):  # noqa: S104 - listening everywhere: this host is one
                host = "127.0.0.1"
            if ":" in host:
                host = f"[{host}]"
            data = {**data, "public_url": f"http://{host}:{data.get('port') or 8000}"}
        return data

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        if self.env is Env.PRODUCTION and self.secret_key is None:
            raise ValueError("IDENTITY_SECRET_KEY is required in production")
        if self.env is Env.PRODUCTION and (self.mail_url or "console:").startswith("console:"):
            raise ValueError(
                "IDENTITY_MAIL_URL: the console transport is for development; "
                "set smtp://…, smtps://… or file:///… in production"
            )
        if self.env is Env.PRODUCTION and any(not secure_url(url) for url in self.oidc_return_urls):
            raise ValueError("IDENTITY_OIDC_RETURN_URLS: use https:// URLs in production")
        if self.env is Env.PRODUCTION and any(not secure_url(o) for o in self.webauthn_origins):
            raise ValueError("IDENTITY_WEBAUTHN_ORIGINS: use https:// origins in production")
        if self.secret_key is not None and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("IDENTITY_SECRET_KEY must be at least 32 characters")
        if self.webauthn_rp_id is not None or self.webauthn_origins:
            problem = relying_party_problem(self.passkey_rp_id, self.passkey_origins)
            if problem:
                raise ValueError(f"IDENTITY_WEBAUTHN_RP_ID: {problem}")
        return self

    @property
    def is_production(self) -> bool:
        return self.env is Env.PRODUCTION

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def issuer(self) -> str:
        return self.jwt_issuer or self.public_url

    @property
    def migrate_on_start(self) -> bool:
        return self.auto_migrate if self.auto_migrate is not None else not self.is_production

    @property
    def secure_cookies(self) -> bool:
        """Secure and the __Host- prefix; dropped only for plain-HTTP development."""
        return self.is_production or self.public_url.startswith("https://")

    @property
    def mail_transport(self) -> str:
        return self.mail_url or "console:"

    @property
    def passkeys_enabled(self) -> bool:
        """Development always (a relying party derived from the public URL); production once
        IDENTITY_WEBAUTHN_RP_ID is set."""
        return not self.is_production or self.webauthn_rp_id is not None

    @property
    def passkey_rp_id(self) -> str:
        return self.webauthn_rp_id or (urlsplit(self.public_url).hostname or "localhost")

    @property
    def passkey_origins(self) -> list[str]:
        if self.webauthn_origins:
            # As browsers write them: no default port, no path.
            return [origin_of(origin) for origin in self.webauthn_origins]
        rp_id = self.passkey_rp_id
        own = origin_of(self.public_url)
        return [own, *(o for o in self.cors_origins if o != own and fits(rp_id, o))]

    @property
    def totp_issuer(self) -> str:
        return self.mfa_issuer or self.product_name

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else not self.is_production

    @property
    def webhooks_allow_private(self) -> bool:
        if self.webhook_allow_private is not None:
            return self.webhook_allow_private
        return not self.is_production

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else not self.is_production

    @property
    def graphql_hints_enabled(self) -> bool:
        return self.graphql_hints if self.graphql_hints is not None else not self.is_production

    @property
    def graphql_get_enabled(self) -> bool:
        return self.graphql_get if self.graphql_get is not None else not self.is_production

    def secret(self) -> bytes:
        """The server secret; in development it is generated into `secret_key_file`."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.secret_key_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting at once must not write two different secrets.
            try:
                with path.open("x", encoding="ascii") as fh:
                    path.chmod(0o600)
                    fh.write(secrets.token_urlsafe(48))
            except FileExistsError:
                pass
        value = path.read_text(encoding="ascii").strip()
        if len(value) < 32:
            raise ConfigError(f"IDENTITY_SECRET_KEY_FILE: {path} holds fewer than 32 characters")
        return value.encode()

    def secret_fallbacks(self) -> list[bytes]:
        """Earlier secrets, for verification only, in the order given."""
        current = self.secret()
        fallbacks = [s.get_secret_value().encode() for s in self.secret_key_fallbacks]
        return [secret for secret in fallbacks if secret != current]


def load_settings(**overrides: object) -> Settings:
    """Read settings; a bad value raises ConfigError with one line naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One line for each IDENTITY_* variable that names no setting: a misspelt name would
    otherwise be ignored without a word (IDENTITY_TEST_* belongs to the test suite)."""
    known = {f"IDENTITY_{name.upper()}" for name in Settings.model_fields}
    lines = []
    for name in sorted(environ):
        if not name.startswith("IDENTITY_") or name in known or name.startswith("IDENTITY_TEST_"):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        lines.append(f"{name} is not a setting of identity and is ignored{hint}")
    return lines


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if part != "__root__"]
        name = "IDENTITY_" + loc[0].upper() if loc else ""
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if name else message)
    return "; ".join(parts)
