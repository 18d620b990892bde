"""Bounds on what one request may ask: depth, aliases, directives, fragments, credential checks.

Each refusal is a GraphQL error with `extensions.code = QUERY_TOO_COMPLEX` (HTTP 400). They
run before graphql-core's own rules, so a refused document costs one walk over its syntax
tree. The rules are classes built once per set of bounds, so validation results stay
cacheable by query text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    ASTValidationRule,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    Node,
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
        "startPasskeyRegistration",
        "finishPasskeyRegistration",
        "finishPasskeyLogin",
    }
)

# Fragments spreading fragments: a client's components nest a few levels, never dozens. A
# longer chain is refused here, before graphql-core's rules walk it (past 200 levels they
# give up with "Validation aborted.").
MAX_FRAGMENT_NESTING = 50


def too_complex(message: str, nodes: Any = None) -> GraphQLError:
    return GraphQLError(message, nodes, extensions={"code": CODE})


@dataclass(frozen=True, slots=True)
class Bounds:
    depth: int
    aliases: int
    directives: int  # in one operation, as executed
    directives_per_field: int  # on one field, fragment, operation or variable


@dataclass(frozen=True, slots=True)
class _Cost:
    """An operation's measures, fragments expanded as executed."""

    depth: int = 0
    aliases: int = 0
    directives: int = 0

    def __add__(self, other: _Cost) -> _Cost:  # siblings: the deepest, the sum of counts
        return _Cost(
            max(self.depth, other.depth),
            self.aliases + other.aliases,
            self.directives + other.directives,
        )


class _TooNested(Exception):
    pass


def bounds_rule(bounds: Bounds) -> type[ASTValidationRule]:
    class Bounded(ValidationRule):
        """Depth, aliases and directives as executed: a fragment counts each time it is
        spread, so nesting fragments cannot multiply them past the bounds."""

        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            crowded = _crowded(context.document, bounds.directives_per_field)
            if crowded is not None:
                n = bounds.directives_per_field
                context.report_error(
                    too_complex(f"More than {n} directives on one field or fragment.", crowded)
                )
                return
            try:
                costs = _measure(context)
            except _TooNested:
                context.report_error(
                    too_complex(f"Fragments are nested more than {MAX_FRAGMENT_NESTING} deep.")
                )
                return
            except RecursionError:  # deep nesting in every one of many fragments
                context.report_error(too_complex("The document nests too deeply."))
                return
            for operation, cost in costs:
                name = operation.name.value if operation.name else "the operation"
                if cost.depth > bounds.depth:
                    context.report_error(
                        too_complex(
                            f"{name} is {cost.depth} levels deep; "
                            f"at most {bounds.depth} are allowed.",
                            operation,
                        )
                    )
                if cost.aliases > bounds.aliases:
                    context.report_error(
                        too_complex(
                            f"More than {bounds.aliases} aliases in one request.", operation
                        )
                    )
                if cost.directives > bounds.directives:
                    context.report_error(
                        too_complex(
                            f"More than {bounds.directives} directives in one request.", operation
                        )
                    )

    return Bounded


def _measure(context: ValidationContext) -> list[tuple[OperationDefinitionNode, _Cost]]:
    """Each operation's cost; each fragment is measured once."""
    definitions = context.document.definitions
    fragments = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}
    memo: dict[str, _Cost] = {}

    def measure(selection_set: SelectionSetNode, path: frozenset[str]) -> _Cost:
        total = _Cost()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                below = (
                    measure(selection.selection_set, path) if selection.selection_set else _Cost()
                )
                total += _Cost(
                    1 + below.depth,
                    (selection.alias is not None) + below.aliases,
                    len(selection.directives or ()) + below.directives,
                )
            elif isinstance(selection, InlineFragmentNode):
                inner = measure(selection.selection_set, path)
                total += _Cost(inner.depth, inner.aliases, inner.directives + _count(selection))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is None or name in path:  # unknown or cyclic: other rules report it
                    continue
                if len(path) >= MAX_FRAGMENT_NESTING:
                    raise _TooNested
                if name not in memo:
                    inner = measure(fragment.selection_set, path | {name})
                    memo[name] = _Cost(
                        inner.depth, inner.aliases, inner.directives + _count(fragment)
                    )
                spread = memo[name]
                total += _Cost(spread.depth, spread.aliases, spread.directives + _count(selection))
        return total

    costs = []
    for definition in definitions:
        if isinstance(definition, OperationDefinitionNode):
            cost = measure(definition.selection_set, frozenset())
            own = _count(definition) + sum(_count(v) for v in definition.variable_definitions or ())
            costs.append((definition, _Cost(cost.depth, cost.aliases, cost.directives + own)))
    return costs


def _count(node: Node) -> int:
    directives: tuple[DirectiveNode, ...] | None = getattr(node, "directives", None)
    return len(directives or ())


def _crowded(document: DocumentNode, most: int) -> Node | None:
    """The first node of the document (used or not, executable or not) that carries more
    than `most` directives. No recursion: the parser lets a definition nest 200 deep."""
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple | list):
            stack.extend(node)
        elif isinstance(node, Node):
            if _count(node) > most:
                return node
            stack.extend(getattr(node, key) for key in node.keys if key != "loc")
    return None


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


@lru_cache(maxsize=16)
def limit_rules(bounds: Bounds) -> tuple[type[ASTValidationRule], ...]:
    """The same bounds give the same rule classes: validation stays cached across apps."""
    return (bounds_rule(bounds), OneCredentialCheck)
