"""Bounds on what one request may ask: depth, aliases, tokens, size, credential checks.

Each refusal is a GraphQL error with `extensions.code = QUERY_TOO_COMPLEX` (HTTP 400). The
rules are classes built once per schema, so validation results stay cacheable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

CODE = "QUERY_TOO_COMPLEX"

# Mutations that check a password, a second factor or a code, or set a password: at most one
# per request, so aliases cannot try many at once.
CREDENTIAL_MUTATIONS = frozenset(
    {
        "login",
        "register",
        "changePassword",
        "resetPassword",
        "requestEmailChange",
        "deleteMe",
        "verifyMfa",
        "startTotpEnrollment",
        "confirmTotpEnrollment",
        "regenerateRecoveryCodes",
        "removeFactor",
        "revertSecurityChange",
    }
)


def too_complex(message: str, nodes: Any = None) -> GraphQLError:
    return GraphQLError(message, nodes, extensions={"code": CODE})


def depth_rule(max_depth: int) -> type[ASTValidationRule]:
    class MaxDepth(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for operation, depth in _measure(context, _levels, max):
                if depth > max_depth:
                    name = operation.name.value if operation.name else "the operation"
                    context.report_error(
                        too_complex(
                            f"{name} is {depth} levels deep; at most {max_depth} are allowed.",
                            operation,
                        )
                    )

    return MaxDepth


def alias_rule(max_aliases: int) -> type[ASTValidationRule]:
    class MaxAliases(ValidationRule):
        """Aliases as executed: a fragment counts each time it is spread, so nesting
        fragments cannot multiply aliases past the bound."""

        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for operation, count in _measure(context, _aliases, sum):
                if count > max_aliases:
                    context.report_error(
                        too_complex(f"More than {max_aliases} aliases in one request.", operation)
                    )

    return MaxAliases


def _levels(field: FieldNode, below: int) -> int:
    return 1 + below


def _aliases(field: FieldNode, below: int) -> int:
    return (field.alias is not None) + below


def _measure(
    context: ValidationContext,
    field: Callable[[FieldNode, int], int],
    combine: Callable[[list[int]], int],
) -> list[tuple[OperationDefinitionNode, int]]:
    """A number for each operation, fragments expanded as executed: `field` gives a field's
    number from its selections' (`below`), `combine` joins the numbers of one selection set
    (max for depth, sum for counts). Each fragment is measured once."""
    definitions = context.document.definitions
    fragments = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}
    memo: dict[str, int] = {}

    def measure(selection_set: SelectionSetNode, path: frozenset[str]) -> int:
        values = [0]
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                below = selection.selection_set
                values.append(field(selection, measure(below, path) if below else 0))
            elif isinstance(selection, InlineFragmentNode):
                values.append(measure(selection.selection_set, path))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is None or name in path:  # unknown or cyclic: other rules report it
                    continue
                if name not in memo:
                    memo[name] = measure(fragment.selection_set, path | {name})
                values.append(memo[name])
        return combine(values)

    return [
        (d, measure(d.selection_set, frozenset()))
        for d in definitions
        if isinstance(d, OperationDefinitionNode)
    ]


class OneCredentialCheck(ValidationRule):
    """At most one password-checking (or password-setting) mutation per request."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.seen = 0

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.context.get_parent_type()
        mutation = self.context.schema.mutation_type
        if parent is not None and parent is mutation and node.name.value in CREDENTIAL_MUTATIONS:
            self.seen += 1
            if self.seen == 2:
                self.report_error(
                    too_complex(
                        "At most one sign-in, registration, password or second-factor "
                        "operation per request.",
                        node,
                    )
                )


def limit_rules(max_depth: int, max_aliases: int) -> tuple[type[ASTValidationRule], ...]:
    return (depth_rule(max_depth), alias_rule(max_aliases), OneCredentialCheck)
