"""What GraphQL's own messages may tell a client; with hints off, nothing about the schema.

graphql-core's validation and coercion messages name types ("Field 'roles' of type
'[Role!]!' must have a selection of subfields"), say which type an argument or a position
expects, and suggest names: enough for a scanner to rebuild the schema without introspection.
With hints off (production, unless IDENTITY_GRAPHQL_HINTS says otherwise) each message
without an `extensions.code` is rewritten here. A neutral message keeps only names the client
wrote itself (fields, arguments, variables, fragments, directives), never a type name, not
even one the client guessed (that would confirm it); the locations and extensions stay.

The table is an allowlist: a message of a shape it does not know (a graphql-core upgrade, a
rule added later) becomes the generic one, so a new message cannot start to leak.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from graphql import GraphQLError, GraphQLSyntaxError

GENERIC = "The document is not valid for this API."
INVALID_VALUE = "Invalid value."

_NAME = r"[_A-Za-z][_0-9A-Za-z]*"
_PATH = rf"(?:\.{_NAME}|\[\d+\])*"  # where in a variable's value, as graphql-core prints it

_KEEP = "{0}"
_TYPE = "A type named here is unknown, or cannot be used here."
_DIRECTIVE = "Directive '@{d}' is unknown or not allowed here."
_MISSING_ARGUMENT = "A required argument was not provided."
_ONE_OF = "Give exactly one field of this input."
_POSITION = "Variable '${v}' is used in a position that does not accept its type."

# A template over the groups, a function of the match, or None: "what is wrong with a value".
Rewrite = str | Callable[[re.Match[str]], str] | None

# (pattern, neutral message): the first whose pattern matches the whole message wins. A
# message template may use the pattern's groups, which only ever capture client-written names.
_RULES: list[tuple[str, Rewrite]] = [
    # Kept as they are: they name only what the client wrote, or nothing of the schema.
    (rf"Unknown fragment '{_NAME}'\.", _KEEP),
    (rf"Fragment '{_NAME}' is never used\.", _KEEP),
    (
        rf"Cannot spread fragment '{_NAME}' within itself(?: via '{_NAME}'(?:, '{_NAME}')*)?\.",
        _KEEP,
    ),
    (
        rf"There can be only one (?:argument|input field|fragment|operation) named '{_NAME}'\.",
        _KEEP,
    ),
    (rf"There can be only one variable named '\${_NAME}'\.", _KEEP),
    (rf"Variable '\${_NAME}' is never used(?: in (?:operation|fragment) '{_NAME}')?\.", _KEEP),
    (rf"Variable '\${_NAME}' is not defined(?: by operation '{_NAME}')?\.", _KEEP),
    (r"This anonymous operation must be the only defined operation\.", _KEEP),
    (rf"The directive '@{_NAME}' can only be used once at this location\.", _KEEP),
    (rf"Unknown operation named '{_NAME}'\.", _KEEP),
    (r"Must provide operation name if query contains multiple operations\.", _KEEP),
    (r"Must provide an operation\.", _KEEP),
    (r"Variable values are nested too deeply\.", _KEEP),
    (
        rf"GraphQL introspection has been disabled, but the requested query contained the "
        rf"field '{_NAME}'\.",
        _KEEP,
    ),
    (r"The (?:query|mutation|subscription) operation is not supported by the schema\.", _KEEP),
    # Rewritten: what the client wrote stays, what the schema would tell goes.
    (rf"Cannot query field '(?P<f>{_NAME})' on type .*", "Cannot query field '{f}' here."),
    (rf"Unknown argument '(?P<a>{_NAME})' on .*", "Unknown argument '{a}'."),
    (rf"Unknown directive '@(?P<d>{_NAME})'\.", _DIRECTIVE),
    (rf"Directive '@(?P<d>{_NAME})' may not be used on .*", _DIRECTIVE),
    (
        rf"Field '(?P<f>{_NAME})' must not have a selection since .*",
        "Field '{f}' must not have a selection of subfields.",
    ),
    (
        rf"Field '(?P<f>{_NAME})' of type .* must have "
        r"(?:a selection of subfields|at least one field selected)\..*",
        "Field '{f}' must have a selection of subfields.",
    ),
    (r"(?:Argument|Fragment) .* is required, but it was not provided\.", _MISSING_ARGUMENT),
    (rf"Fields '(?P<r>{_NAME})' conflict because .*", "Fields '{r}' conflict: use aliases."),
    (rf"Spreads '(?P<s>{_NAME})' conflict because .*", "Spreads '{s}' conflict."),
    # Unknown and unusable types answer alike: the message must not confirm a guessed name.
    (r"Unknown type .*", _TYPE),
    (r"Fragment (?:'[^']*' )?cannot (?:condition on|be spread here) .*", _TYPE),
    (rf"Variable '\${_NAME}' cannot be non-input type .*", _TYPE),
    (rf"Variable '\${_NAME}' expected value of type .* which cannot be used as an input .*", _TYPE),
    (rf"Variable '\$(?P<v>{_NAME})' of type .* used in position expecting .*", _POSITION),
    (rf"Variable '\$?(?P<v>{_NAME})' (?:is of type .* but )?must be non-nullable .*", _POSITION),
    # Values: literals (validation) and variables (execution).
    (
        rf"Variable '\$(?P<v>{_NAME})' of required type .* was not provided\.",
        "Variable '${v}' is required but was not provided.",
    ),
    (
        rf"Variable '\$(?P<v>{_NAME})' of non-null type .* must not be null\.",
        "Variable '${v}' must not be null.",
    ),
    (
        rf"Variable '\$(?P<v>{_NAME})' has invalid (?:default )?value(?P<path>{_PATH}): (?P<x>.*)",
        lambda m: f"Variable '${m['v']}' has an invalid value{m['path']}: {_value(m['x'])}",
    ),
    (rf"Argument '(?P<a>{_NAME})' of required type .* was not provided\.", _MISSING_ARGUMENT),
    (
        rf"Argument '(?P<a>{_NAME})' of non-null type .* must not be null\.",
        "Argument '{a}' must not be null.",
    ),
    (
        rf"Argument '(?P<a>{_NAME})' has invalid (?:default )?value(?P<path>{_PATH}): (?P<x>.*)",
        lambda m: f"Argument '{m['a']}' has an invalid value{m['path']}: {_value(m['x'])}",
    ),
    (r"Expected .*|Within OneOf .*|OneOf .*|Field '[^']*' must be non-null\.", None),
    (r".* cannot represent .*|Value .* does not exist in .*", None),
]

_VALUE_RULES: list[tuple[str, str]] = [
    (
        rf".*not to include unknown field '(?P<f>{_NAME})'.*",
        "The input has an unknown field '{f}'.",
    ),
    (r".*to include required field .*", "A required input field is missing."),
    (r".*exactly one (?:key|field) must be.*|.*must specify exactly one key.*", _ONE_OF),
]

_COMPILED = [(re.compile(p, re.DOTALL), r) for p, r in _RULES]
_VALUES = [(re.compile(p, re.DOTALL), r) for p, r in _VALUE_RULES]


def neutral_message(message: str) -> str:
    """The neutral form of one of graphql-core's messages."""
    for pattern, rewrite in _COMPILED:
        match = pattern.fullmatch(message)
        if match is None:
            continue
        if rewrite is None:
            return _value(message)
        if callable(rewrite):
            return rewrite(match)
        return rewrite.format(match[0], **match.groupdict())
    return GENERIC


def _value(message: str) -> str:
    """What is wrong with a value, without the type it should have or the value itself."""
    for pattern, rewrite in _VALUES:
        match = pattern.fullmatch(message)
        if match is not None:
            return rewrite.format(**match.groupdict())
    return INVALID_VALUE


class NeutralError(GraphQLError):
    """An error whose message was made neutral (or found to be so) already."""


def neutral(error: GraphQLError) -> GraphQLError:
    """`error` with a neutral message, unless it is one of ours (it has a code) or a syntax
    error (the parser knows no schema: it quotes only the document)."""
    if isinstance(error, NeutralError | GraphQLSyntaxError) or (error.extensions or {}).get("code"):
        return error
    return NeutralError(
        neutral_message(error.message),
        error.nodes,
        error.source,
        error.positions,
        error.path,
        extensions=error.extensions or None,
    )
