"""Bounds on what one request may ask: depth, aliases, tokens, size, credential checks.

Each refusal is a GraphQL error with `extensions.code = QUERY_TOO_COMPLEX` (HTTP 400). The
rules are classes built once per schema, so validation results stay cacheable.
"""

from __future__ import annotations

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

# Mutations that check a password or create one: at most one per request, so aliases
# cannot try many passwords at once.
CREDENTIAL_MUTATIONS = frozenset(
    {"login", "register", "changePassword", "resetPassword", "requestEmailChange", "deleteMe"}
)


def too_complex(message: str, nodes: Any = None) -> GraphQLError:
    return GraphQLError(message, nodes, extensions={"code": CODE})


def depth_rule(max_depth: int) -> type[ASTValidationRule]:
    class MaxDepth(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            definitions = context.document.definitions
            fragments = {
                d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)
            }
            memo: dict[str, int] = {}
            for definition in definitions:
                if isinstance(definition, OperationDefinitionNode):
                    depth = _depth(definition.selection_set, fragments, memo, frozenset())
                    if depth > max_depth:
                        name = definition.name.value if definition.name else "the operation"
                        context.report_error(
                            too_complex(
                                f"{name} is {depth} levels deep; at most {max_depth} are allowed.",
                                definition,
                            )
                        )

    return MaxDepth


def _depth(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    memo: dict[str, int],
    path: frozenset[str],
) -> int:
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            below = selection.selection_set
            depth = 1 + (_depth(below, fragments, memo, path) if below else 0)
        elif isinstance(selection, InlineFragmentNode):
            depth = _depth(selection.selection_set, fragments, memo, path)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in path:  # unknown or cyclic: other rules report it
                depth = 0
            elif name in memo:
                depth = memo[name]
            else:
                depth = memo[name] = _depth(fragment.selection_set, fragments, memo, path | {name})
        else:  # pragma: no cover - the grammar has no other selections
            depth = 0
        deepest = max(deepest, depth)
    return deepest


def alias_rule(max_aliases: int) -> type[ASTValidationRule]:
    class MaxAliases(ValidationRule):
        """Aliases as executed: a fragment counts each time it is spread, so nesting
        fragments cannot multiply aliases past the bound."""

        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            definitions = context.document.definitions
            fragments = {
                d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)
            }
            memo: dict[str, int] = {}
            for definition in definitions:
                if isinstance(definition, OperationDefinitionNode):
                    count = _aliases(definition.selection_set, fragments, memo, frozenset())
                    if count > max_aliases:
                        context.report_error(
                            too_complex(
                                f"More than {max_aliases} aliases in one request.", definition
                            )
                        )

    return MaxAliases


def _aliases(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    memo: dict[str, int],
    path: frozenset[str],
) -> int:
    count = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            below = selection.selection_set
            count += (selection.alias is not None) + (
                _aliases(below, fragments, memo, path) if below else 0
            )
        elif isinstance(selection, InlineFragmentNode):
            count += _aliases(selection.selection_set, fragments, memo, path)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in path:  # unknown or cyclic: other rules report it
                continue
            if name not in memo:
                memo[name] = _aliases(fragment.selection_set, fragments, memo, path | {name})
            count += memo[name]
    return count


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
                        "At most one sign-in, registration or password operation per request.",
                        node,
                    )
                )


def limit_rules(max_depth: int, max_aliases: int) -> tuple[type[ASTValidationRule], ...]:
    return (depth_rule(max_depth), alias_rule(max_aliases), OneCredentialCheck)
