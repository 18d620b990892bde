"""docs/reference/configuration.md, from the fields of `identity.config.Settings` and the
docstring under each."""

from __future__ import annotations

import enum
import types
import typing
from pathlib import Path

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from tools.docs.markdown import notice, paragraphs, slug

# Sections of the configuration page, by setting name, then by the start of the name; a
# setting that matches neither is listed under "Other settings", so nothing is left out.
_SECTIONS: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = [
    (
        "Core",
        "",
        (
            "env",
            "host",
            "port",
            "public_url",
            "auto_migrate",
            "log_level",
            "metrics_token",
            "gc_freeze",
        ),
        ("database_", "secret_key"),
    ),
    (
        "Tokens",
        "Access tokens, refresh tokens and the signing keys. See "
        "[Verifying tokens in your API](../guides/verifying-tokens.md).",
        ("access_token_ttl", "jwks_max_age", "key_refresh_interval"),
        ("refresh_token_", "refresh_idle_", "refresh_reuse_", "jwt_", "jwks_"),
    ),
    (
        "Passwords and accounts",
        "",
        ("require_verified_email",),
        ("argon2_", "password_hash_"),
    ),
    (
        "Second factors",
        "",
        ("reauth_window",),
        ("mfa_", "totp_", "webauthn_", "passkey_"),
    ),
    (
        "Mail and links",
        "See [Mail](../guides/mail.md). The link templates must carry `{token}` in the "
        "fragment (after `#`), so the token never reaches a server log or a `Referer`; "
        "`{public_url}` is replaced by `IDENTITY_PUBLIC_URL`.",
        (
            "product_name",
            "notify_new_sign_in",
            "password_reset_url",
            "verify_email_url",
            "confirm_email_change_url",
            "revert_change_url",
            "password_reset_ttl",
            "verify_email_ttl",
            "email_change_ttl",
            "invitation_ttl",
        ),
        ("mail_",),
    ),
    (
        "Browser apps",
        "See [Single-page apps](../guides/spa.md).",
        ("refresh_cookie", "cors_origins", "trusted_proxies"),
        (),
    ),
    (
        "Redis and rate limits",
        "See [Abuse limits](../security/abuse-limits.md). Limits use the notation of the "
        "[`limits`](https://limits.readthedocs.io/) library: parts like `5/15minutes` joined "
        "by `;`, and every part must hold.",
        ("redis_url",),
        ("rate_limit_",),
    ),
    (
        "GraphQL limits",
        "See [Abuse limits](../security/abuse-limits.md#graphql-limits).",
        ("max_body_size", "introspection"),
        ("max_query_", "max_aliases", "max_tokens"),
    ),
    (
        "GraphiQL",
        "See [GraphiQL without the internet](../guides/graphiql-offline.md).",
        (),
        ("graphiql",),
    ),
]
_OTHER = "Other settings"


def _section_of(name: str) -> str:
    for title, _, names, _ in _SECTIONS:
        if name in names:
            return title
    for title, _, _, prefixes in _SECTIONS:
        if name.startswith(prefixes):
            return title
    return _OTHER


def _strip_optional(annotation: object) -> tuple[object, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else annotation), True
    return annotation, False


def _type_text(annotation: object) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(f"`{value}`" for value in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return "comma-separated list" + (" of secrets" if item is SecretStr else "")
    names: dict[object, str] = {
        bool: "`true` or `false`",
        int: "integer",
        float: "number",
        str: "text",
        Path: "path",
        SecretStr: "secret text",
    }
    return names.get(annotation, str(annotation))


def _bounds(field: FieldInfo) -> str:
    low = high = ""
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = f"at least {item.ge}"
        elif isinstance(item, annotated_types.Gt):
            low = f"above {item.gt}"
        elif isinstance(item, annotated_types.Le):
            high = f"at most {item.le}"
        elif isinstance(item, annotated_types.Lt):
            high = f"below {item.lt}"
    if low.startswith("at least") and high.startswith("at most"):
        return f"{low.removeprefix('at least ')} to {high.removeprefix('at most ')}"
    return ", ".join(part for part in (low, high) if part)


def _default_text(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None or value == "" or value == []:
        return "unset"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        value = str(value).lower()
    return f"`{value}`"


def configuration_page(settings_class: type[BaseSettings] | None = None) -> str:
    from identity.config import Settings

    settings = settings_class or Settings
    prefix = str(settings.model_config.get("env_prefix", ""))
    grouped: dict[str, list[tuple[str, FieldInfo]]] = {}
    for name, field in settings.model_fields.items():
        grouped.setdefault(_section_of(name), []).append((name, field))
    out = [
        "# Configuration\n",
        notice("the Settings class in src/identity/config.py"),
        f"Settings come from the environment (prefix `{prefix}`, then the setting's name in "
        "upper case) or from a `.env` file in the working folder. A bad value stops the "
        "service at start with one line naming the setting. Lists are comma-separated. "
        "Times are in seconds unless said otherwise.\n",
        "| Section | Settings |\n|---|---|",
    ]
    sections = [(title, intro) for title, intro, _, _ in _SECTIONS] + [(_OTHER, "")]
    present = [(title, intro) for title, intro in sections if grouped.get(title)]
    for title, _ in present:
        names = ", ".join(
            f"[`{(prefix + name).upper()}`](#{(prefix + name).lower()})"
            for name, _ in grouped[title]
        )
        out.append(f"| [{title}](#{slug(title)}) | {names} |")
    out.append("")
    for title, intro in present:
        out.append(f"## {title} {{#{slug(title)}}}\n")
        if intro:
            out.append(intro + "\n")
        for name, field in grouped[title]:
            variable = (prefix + name).upper()
            annotation, _ = _strip_optional(field.annotation)
            kind = _type_text(annotation)
            bounds = _bounds(field)
            out.append(f"### `{variable}` {{#{variable.lower()}}}\n")
            out.append(paragraphs(field.description or "") + "\n")
            facts = f"**Default:** {_default_text(field)} · **Value:** {kind}"
            out.append(facts + (f", {bounds}" if bounds else "") + "\n")
    return "\n".join(out).rstrip() + "\n"
