"""Settings: every knob of the service, read once from the environment (prefix IDENTITY_)."""

from __future__ import annotations

import ipaddress
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import limits
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    )

    env: Env = Env.DEVELOPMENT
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    database_hot_pool_size: int = Field(default=4, ge=1)

    secret_key: SecretStr | None = None
    secret_key_file: Path = Path(".identity-secret")
    secret_key_fallbacks: Annotated[list[SecretStr], NoDecode] = Field(
        default=[],
        description="earlier secrets, comma-separated, for a rotation: they still check and "
        "open what they made (verify only); everything new is made with IDENTITY_SECRET_KEY. "
        "See `identity secret check | reencrypt`",
    )

    public_url: str = Field(default="", description="default: http://HOST:PORT")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    access_token_ttl: int = Field(default=900, ge=30, le=86400)
    refresh_token_ttl: int = Field(default=30 * 86400, ge=60)
    refresh_idle_timeout: int | None = Field(default=None, ge=60)
    refresh_reuse_grace: int = Field(default=10, ge=0, le=300)
    jwt_algorithm: Literal["RS256", "ES256", "EdDSA"] = "RS256"
    jwt_issuer: str | None = None
    jwt_audience: str = "identity"
    jwt_leeway: int = Field(default=30, ge=0, le=300)
    jwks_max_age: int = Field(default=300, ge=0, le=86400)
    key_refresh_interval: int = Field(default=10, ge=1)

    argon2_memory_cost: int = Field(default=19456, ge=1024, description="KiB")
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)
    password_hash_concurrency: int = Field(default=0, ge=0, description="0: one per CPU")

    auto_migrate: bool | None = None
    require_verified_email: bool = False
    graphiql: bool | None = None
    # Where GraphiQL's page loads React and GraphiQL from, instead of https://unpkg.com/: the
    # same relative paths (react@18.2.0/umd/…), e.g. a mirror made by examples/graphiql-assets.
    graphiql_assets_url: str | None = None
    introspection: bool | None = None
    graphql_hints: bool | None = Field(
        default=None,
        description="validation messages that name types and suggest fields (default: on in "
        "development, off in production, where they are replaced by neutral ones)",
    )
    graphql_get: bool | None = Field(
        default=None,
        description="run queries sent with GET on /graphql (default: on in development, off in "
        "production); GraphiQL's page is not affected",
    )
    max_body_size: int = Field(default=64 * 1024, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    gc_freeze: bool = True

    cors_origins: Annotated[list[str], NoDecode] = []
    trusted_proxies: Annotated[list[str], NoDecode] = []
    refresh_cookie: bool = False
    redis_url: str | None = None
    metrics_token: SecretStr | None = None

    # Rate limits (the `limits` notation: "5/15minutes;20/day"; every part must hold)
    rate_limit_login_account: str = "5/15minutes;10/hour;20/day"
    rate_limit_login_address: str = "60/minute;600/hour"
    rate_limit_register_address: str = "10/hour;50/day"
    rate_limit_register_email: str = "3/hour"
    rate_limit_recovery_address: str = "10/hour;50/day"
    rate_limit_recovery_email: str = "3/hour;10/day"
    rate_limit_key_prefix: str = "identity"

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

    # GraphQL limits
    max_query_depth: int = Field(default=15, ge=2, le=100)
    max_aliases: int = Field(default=15, ge=1)
    max_tokens: int = Field(default=2000, ge=100)
    max_query_size: int = Field(default=16 * 1024, ge=1024)
    max_directives: int = Field(
        default=30,
        ge=1,
        description="directives in one operation, fragments counted each time they are spread",
    )
    max_directives_per_field: int = Field(
        default=4, ge=1, description="directives on one field, fragment or operation"
    )

    # Mail
    mail_url: str | None = None
    mail_from: str = "identity <no-reply@localhost>"
    product_name: str = "identity"
    mail_templates_dir: Path | None = None
    mail_poll_interval: float = Field(default=2.0, gt=0)
    mail_max_attempts: int = Field(default=12, ge=1)
    notify_new_sign_in: bool = False
    password_reset_url: str = "{public_url}/reset-password#token={token}"
    verify_email_url: str = "{public_url}/verify-email#token={token}"
    confirm_email_change_url: str = "{public_url}/confirm-email-change#token={token}"
    password_reset_ttl: int = Field(default=30 * 60, ge=60)
    verify_email_ttl: int = Field(default=24 * 3600, ge=60)
    email_change_ttl: int = Field(default=24 * 3600, ge=60)
    invitation_ttl: int = Field(default=7 * 24 * 3600, ge=60)

    @field_validator("cors_origins", "trusted_proxies", "secret_key_fallbacks", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("secret_key_fallbacks")
    @classmethod
    def _fallbacks(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(secret.get_secret_value()) < 32 for secret in value):
            raise ValueError("every fallback secret must be at least 32 characters")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r}: list exact origins like https://app.example.com")
        return [origin.rstrip("/") for origin in value]

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
        if self.secret_key is not None and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("IDENTITY_SECRET_KEY must be at least 32 characters")
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
    def totp_issuer(self) -> str:
        return self.mfa_issuer or self.product_name

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else not self.is_production

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


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if part != "__root__"]
        name = "IDENTITY_" + loc[0].upper() if loc else ""
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if name else message)
    return "; ".join(parts)
