"""docs/reference/graphql.md, from `schema.graphql`: each operation's description, the
permission its "Requires …" sentence names, its arguments and the members of its result."""

from __future__ import annotations

import re
from collections.abc import Callable

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

from tools.docs.markdown import REPO, cell, notice

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
            f"{cell(argument.description or '')} |"
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
        rows.append(f"| `{name}` | {_type_link(field.type, schema)} | {cell(text)} |")
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
                + (f". {cell(named.description)}" if named.description else "")
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
            what = cell(member.description or _member_fields(member))
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
        notice("schema.graphql"),
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
            out.append(f"| [`{name}`](#{kind}-{name.lower()}) | {cell(summary)} |")
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
            out.append(f"| `{value_name}` | {cell(value.description or '')} |")
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
