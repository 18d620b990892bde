"""Generate the reference pages of the documentation site from the code.

    python -m tools.docs            write docs/reference/{configuration,cli,graphql}.md
    python -m tools.docs --check    exit 1 when a committed page differs from the code

`make docs` runs the first, then builds the site. The pages come from:

- configuration.md: the fields of `identity.config.Settings` and the docstring under each;
- cli.md: the argparse parser of `identity.cli`, with each command's help and description;
- graphql.md: `schema.graphql` (itself exported from the code), with each operation's
  description, the permission it needs (the "Requires …" sentence of its description) and
  the members of its result union.

New settings, commands and operations appear without an edit here.
"""

from __future__ import annotations

import argparse
import enum
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import annotated_types
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLType,
    GraphQLUnionType,
    Undefined,
    ast_from_value,
    build_schema,
    get_named_type,
    print_ast,
)
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "docs" / "reference"
COMMAND = "make docs"


def _notice(source: str) -> str:
    return (
        f"<!-- Generated from {source} by `{COMMAND}` (python -m tools.docs): "
        "edit the source, not this page. -->\n"
    )


def _cell(text: str) -> str:
    """Text for one Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _paragraphs(text: str) -> str:
    """A docstring as Markdown paragraphs: lines joined, blank lines kept."""
    blocks = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(block.split()) for block in blocks)


# ---- configuration ----------------------------------------------------------------------

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
        "Mail and links",
        "See [Mail](../guides/mail.md). The three link templates must carry `{token}` in the "
        "fragment (after `#`), so the token never reaches a server log or a `Referer`; "
        "`{public_url}` is replaced by `IDENTITY_PUBLIC_URL`.",
        (
            "product_name",
            "notify_new_sign_in",
            "password_reset_url",
            "verify_email_url",
            "confirm_email_change_url",
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
        _notice("the Settings class in src/identity/config.py"),
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
        out.append(f"| [{title}](#{_slug(title)}) | {names} |")
    out.append("")
    for title, intro in present:
        out.append(f"## {title} {{#{_slug(title)}}}\n")
        if intro:
            out.append(intro + "\n")
        for name, field in grouped[title]:
            variable = (prefix + name).upper()
            annotation, _ = _strip_optional(field.annotation)
            kind = _type_text(annotation)
            bounds = _bounds(field)
            out.append(f"### `{variable}` {{#{variable.lower()}}}\n")
            out.append(_paragraphs(field.description or "") + "\n")
            facts = f"**Default:** {_default_text(field)} · **Value:** {kind}"
            out.append(facts + (f", {bounds}" if bounds else "") + "\n")
    return "\n".join(out).rstrip() + "\n"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---- command line -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    from identity import cli

    factory: Callable[[], argparse.ArgumentParser] = cli._parser
    return factory()


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """(words after `identity`, parser, one-line help) of every command, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub, helps.get(name, "")
                yield from commands(sub, (*path, name))


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
    ]


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    return action.dest if not action.option_strings else action.dest.upper()


def _argument_text(action: argparse.Action) -> str:
    if not action.option_strings:
        return _metavar(action)
    takes_value = action.nargs != 0
    return ", ".join(
        f"{option} {_metavar(action)}" if takes_value else option
        for option in action.option_strings
    )


def _usage(words: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """The usage line, built from the actions (argparse's own wording moves between Python
    versions and terminal widths)."""
    parts = ["identity", *words]
    for action in arguments(parser):
        if action.option_strings:
            option = action.option_strings[-1]
            text = f"{option} {_metavar(action)}" if action.nargs != 0 else option
            parts.append(text if action.required else f"[{text}]")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parts.append(f"{action.metavar or 'COMMAND'} …")
    parts.extend(_metavar(action) for action in arguments(parser) if not action.option_strings)
    return " ".join(parts)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cli_text(text: str) -> str:
    """Help text as Markdown: settings linked to the configuration page, options as code."""
    from identity.config import Settings

    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    known = {(prefix + name).upper() for name in Settings.model_fields}

    def setting(match: re.Match[str]) -> str:
        name = match.group(0)
        return f"[`{name}`](configuration.md#{name.lower()})" if name in known else f"`{name}`"

    text = re.sub(rf"\b{re.escape(prefix)}[A-Z0-9_]+\b", setting, text) if prefix else text
    return re.sub(r"(?<![\w`-])(--[a-z][a-z0-9-]*)", r"`\1`", text)


def cli_page(parser: argparse.ArgumentParser | None = None) -> str:
    parser = parser or _parser()
    out = [
        "# Command line\n",
        _notice("the argument parser in src/identity/cli.py"),
        "`make run` installs the `identity` command into `.venv`: run it as "
        "`.venv/bin/identity …`, or put it on your path first with "
        "`source .venv/bin/activate`. `identity COMMAND --help` prints what this page says "
        "about a command.\n",
        "Every command works on the database of `IDENTITY_DATABASE_URL` (by default "
        "`./identity.db` in the working folder): run them where the server runs, or with its "
        f"settings.{_creators_sentence(parser)} A bad setting stops a command with exit "
        "status 2 and one line naming it.\n",
        "| Command | |\n|---|---|",
    ]
    leaves = list(commands(parser))
    for words, _, help in leaves:
        summary = _cli_text(_cell(_sentence(help)))
        out.append(f"| [`identity {' '.join(words)}`](#{_command_anchor(words)}) | {summary} |")
    out.append("")
    for words, sub, help in leaves:
        depth = "#" * min(len(words) + 1, 4)
        out.append(f"{depth} `identity {' '.join(words)}` {{#{_command_anchor(words)}}}\n")
        description = sub.description or (_sentence(help) + "." if help else "")
        if description:
            out.append(_cli_text(_paragraphs(description)) + "\n")
        out.append(f"```text\n{_usage(words, sub)}\n```\n")
        rows = arguments(sub)
        if rows:
            out.append("| Argument | |\n|---|---|")
            for action in rows:
                help_text = _sentence(action.help or "")
                if action.required and action.option_strings:
                    help_text = f"Required. {help_text}".strip()
                out.append(f"| `{_argument_text(action)}` | {_cli_text(_cell(help_text))} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def _creators_sentence(parser: argparse.ArgumentParser) -> str:
    """Which commands may create a database (the parser's `creates_database` default)."""
    creators = [
        f"`{' '.join(words)}`"
        for words, sub, _ in commands(parser)
        if sub.get_default("creates_database") and not _has_subcommands(sub)
    ]
    if not creators:
        return ""
    names = ", ".join(creators[:-1]) + f" and {creators[-1]}" if len(creators) > 1 else creators[0]
    return (
        f" The commands other than {names} refuse to start on a SQLite file that does not "
        "exist, rather than create an empty database (and a new development secret) beside it."
    )


def _has_subcommands(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def _command_anchor(words: Sequence[str]) -> str:
    return "identity-" + "-".join(words)


# ---- GraphQL ----------------------------------------------------------------------------

_REQUIRES = re.compile(r"(?:^|(?<=[.;]\s))(Requires\b[^.]*\.)", re.MULTILINE)
_PERMISSION = re.compile(r"`([a-z]+:[a-z]+)`")


def _split_requirement(description: str | None) -> tuple[str, str | None]:
    """(the description without its "Requires …" sentence, that sentence or None)."""
    text = " ".join((description or "").split())
    match = _REQUIRES.search(text)
    if match is None:
        return text, None
    rest = (text[: match.start()] + text[match.end() :]).strip()
    return rest, match.group(1)


def _anchor(named: GraphQLNamedType) -> str:
    return f"type-{named.name.lower()}"


def _type_link(type_: GraphQLType, schema: GraphQLSchema) -> str:
    named = get_named_type(type_)
    text = f"`{type_}`"
    if named is None or named.name not in _documented_types(schema):
        return text
    return f"[{text}](#{_anchor(named)})"


def _documented_types(schema: GraphQLSchema) -> dict[str, GraphQLNamedType]:
    roots = {t.name for t in (schema.query_type, schema.mutation_type) if t is not None}
    return {
        name: named
        for name, named in sorted(schema.type_map.items())
        if not name.startswith("__")
        and name not in roots
        and name not in ("String", "Int", "Float", "Boolean", "ID")
    }


def _default(argument: GraphQLArgument | GraphQLInputField) -> str:
    # The literal as written in schema.graphql: the schema is built from it.
    literal = argument.ast_node.default_value if argument.ast_node is not None else None
    if literal is None and argument.default_value is not Undefined:
        literal = ast_from_value(argument.default_value, argument.type)
    return f"`{print_ast(literal)}`" if literal is not None else ""


def _arguments_table(
    arguments: dict[str, GraphQLArgument] | dict[str, GraphQLInputField],
    schema: GraphQLSchema,
    heading: str,
) -> list[str]:
    rows = [f"| {heading} | Type | Default | |", "|---|---|---|---|"]
    for name, argument in arguments.items():
        rows.append(
            f"| `{name}` | {_type_link(argument.type, schema)} | {_default(argument)} | "
            f"{_cell(argument.description or '')} |"
        )
    return [*rows, ""]


def _fields_table(type_: GraphQLObjectType | GraphQLInterfaceType, schema: GraphQLSchema) -> str:
    rows = ["| Field | Type | |", "|---|---|---|"]
    for name, field in type_.fields.items():
        text = field.description or ""
        if field.args:
            args = ", ".join(f"{n}: {a.type}" for n, a in field.args.items())
            text = f"Arguments: `{args}`. {text}"
        if field.deprecation_reason:
            text = f"**Deprecated:** {field.deprecation_reason} {text}"
        rows.append(f"| `{name}` | {_type_link(field.type, schema)} | {_cell(text)} |")
    return "\n".join(rows) + "\n"


def _operation(kind: str, name: str, field: GraphQLField, schema: GraphQLSchema) -> list[str]:
    description, requirement = _split_requirement(field.description)
    out = [f"### `{name}` {{#{kind}-{name.lower()}}}\n"]
    if field.deprecation_reason:
        out.append(f"**Deprecated:** {field.deprecation_reason}\n")
    if description:
        out.append(description + "\n")
    out.append(f"**Permission:** {requirement or 'none; anyone may call it.'}\n")
    for arg_name, argument in field.args.items():
        named = get_named_type(argument.type)
        if isinstance(named, GraphQLInputObjectType) and len(field.args) == 1:
            out.append(
                f"**Argument** `{arg_name}`: {_type_link(argument.type, schema)}"
                + (f". {_cell(named.description)}" if named.description else "")
                + "\n"
            )
            out.extend(_arguments_table(named.fields, schema, "Input field"))
            break
    else:
        if field.args:
            out.extend(_arguments_table(field.args, schema, "Argument"))
    result = get_named_type(field.type)
    if isinstance(result, GraphQLUnionType):
        out.append(f"**Result:** `{field.type}`, one of:\n")
        for member in result.types:
            what = _cell(member.description or _member_fields(member))
            out.append(f"- [`{member.name}`](#{_anchor(member)})" + (f": {what}" if what else ""))
        out.append("")
    else:
        out.append(f"**Result:** {_type_link(field.type, schema)}\n")
    return out


def _member_fields(member: GraphQLObjectType) -> str:
    return "`{ " + " ".join(f"{n}: {f.type}" for n, f in member.fields.items()) + " }`"


def graphql_page(schema_sdl: str | None = None) -> str:
    sdl = schema_sdl or (REPO / "schema.graphql").read_text(encoding="utf-8")
    schema = build_schema(sdl)
    out = [
        "# GraphQL API\n",
        _notice("schema.graphql"),
        "Every operation of the schema, with what it needs and what it answers. The contract "
        "is `schema.graphql` in the repository, exported from the code. Examples of each "
        "operation, with answers, are in [Using the API](../api/index.md); the error types "
        "and codes in [Errors](errors.md).\n",
        "A permission is named `area:action`. Registration gives the `user` role, which grants "
        "none; the `admin` role grants them all.\n",
    ]
    out.extend(_permissions(schema))
    for kind, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        if root is None:
            continue
        out.append(f"## {'Queries' if kind == 'query' else 'Mutations'}\n")
        out.append("| Operation | |\n|---|---|")
        for name, field in root.fields.items():
            summary, _ = _split_requirement(field.description)
            out.append(f"| [`{name}`](#{kind}-{name.lower()}) | {_cell(summary)} |")
        out.append("")
        for name, field in root.fields.items():
            out.extend(_operation(kind, name, field, schema))
    out.append("## Types\n")
    groups: list[tuple[str, Callable[[GraphQLNamedType], bool]]] = [
        ("Objects", lambda t: isinstance(t, GraphQLObjectType) and not _is_error(t, schema)),
        ("Errors", lambda t: isinstance(t, GraphQLObjectType) and _is_error(t, schema)),
        ("Interfaces", lambda t: isinstance(t, GraphQLInterfaceType)),
        ("Unions", lambda t: isinstance(t, GraphQLUnionType)),
        ("Inputs", lambda t: isinstance(t, GraphQLInputObjectType)),
        ("Enums", lambda t: isinstance(t, GraphQLEnumType)),
        ("Scalars", lambda t: isinstance(t, GraphQLScalarType)),
    ]
    documented = _documented_types(schema)
    for title, belongs in groups:
        members = [t for t in documented.values() if belongs(t)]
        if not members:
            continue
        out.append(f"### {title}\n")
        for named in members:
            out.extend(_type_section(named, schema))
    return "\n".join(out).rstrip() + "\n"


def _is_error(type_: GraphQLObjectType, schema: GraphQLSchema) -> bool:
    return any(interface.name == "Error" for interface in type_.interfaces)


def _type_section(named: GraphQLNamedType, schema: GraphQLSchema) -> list[str]:
    out = [f"#### `{named.name}` {{#{_anchor(named)}}}\n"]
    if named.description:
        out.append(" ".join(named.description.split()) + "\n")
    if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
        if named.interfaces:
            links = ", ".join(f"[`{i.name}`](#{_anchor(i)})" for i in named.interfaces)
            out.append(f"Implements {links}.\n")
        out.append(_fields_table(named, schema))
    elif isinstance(named, GraphQLUnionType):
        links = " \\| ".join(f"[`{m.name}`](#{_anchor(m)})" for m in named.types)
        out.append(f"One of {links}.\n")
    elif isinstance(named, GraphQLInputObjectType):
        out.extend(_arguments_table(named.fields, schema, "Field"))
    elif isinstance(named, GraphQLEnumType):
        out.append("| Value | |\n|---|---|")
        for value_name, value in named.values.items():
            out.append(f"| `{value_name}` | {_cell(value.description or '')} |")
        out.append("")
    return out


def _permissions(schema: GraphQLSchema) -> list[str]:
    """Which permission each operation or field requires, from the descriptions."""
    needs: dict[str, list[str]] = {}
    for kind, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        if root is None:
            continue
        for name, field in root.fields.items():
            _, requirement = _split_requirement(field.description)
            for permission in _PERMISSION.findall(requirement or ""):
                needs.setdefault(permission, []).append(f"[`{name}`](#{kind}-{name.lower()})")
    for named in _documented_types(schema).values():
        if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
            for name, field in named.fields.items():
                _, requirement = _split_requirement(field.description)
                for permission in _PERMISSION.findall(requirement or ""):
                    link = f"[`{named.name}.{name}`](#{_anchor(named)})"
                    needs.setdefault(permission, []).append(link + " (another user's)")
    if not needs:
        return []
    rows = ["## Permissions\n", "| Permission | Needed by |", "|---|---|"]
    rows += [f"| `{code}` | {', '.join(users)} |" for code, users in sorted(needs.items())]
    return [*rows, ""]


# ---- the command ------------------------------------------------------------------------


def pages() -> dict[Path, str]:
    return {
        REFERENCE / "configuration.md": configuration_page(),
        REFERENCE / "cli.md": cli_page(),
        REFERENCE / "graphql.md": graphql_page(),
    }


def stale() -> list[Path]:
    """The committed pages that differ from what the code generates."""
    return [
        path
        for path, text in pages().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.docs", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="only report stale pages")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"{path.relative_to(REPO)} is out of date: run `{COMMAND}`", file=sys.stderr)
        return 1 if out_of_date else 0
    for path, text in pages().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
