"""The schema, and the documents clients send: parsed, limited and validated once per text."""

from __future__ import annotations

import logging
from functools import lru_cache

import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from graphql.validation.validate import ValidationAbortedError
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from identity.config import Settings
from identity.graphql.hints import neutral
from identity.graphql.limits import CODE, Bounds, limit_rules, too_complex
from identity.graphql.mutations.account import AccountMutations
from identity.graphql.mutations.admin import AdminMutations
from identity.graphql.mutations.auth import AuthMutations
from identity.graphql.mutations.clients import ClientMutations
from identity.graphql.mutations.external import ExternalMutations
from identity.graphql.mutations.mfa import MfaMutations
from identity.graphql.mutations.passkeys import PasskeyMutations
from identity.graphql.mutations.recovery import RecoveryMutations
from identity.graphql.mutations.roles import RoleMutations
from identity.graphql.mutations.webhooks import WebhookMutations
from identity.graphql.queries import Query

log = logging.getLogger("identity.graphql")


@strawberry.type
class Mutation(
    AuthMutations,
    MfaMutations,
    PasskeyMutations,
    ExternalMutations,
    AccountMutations,
    RecoveryMutations,
    AdminMutations,
    RoleMutations,
    WebhookMutations,
    ClientMutations,
):
    pass


Schema = strawberry.Schema


def build_schema(settings: Settings) -> Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(disable_field_suggestions=not settings.graphql_hints_enabled),
    )


def sdl() -> str:
    """The schema as clients see it (settings do not change it)."""
    return build_schema(Settings.model_construct()).as_str() + "\n"


@lru_cache(maxsize=1024)
def _parse(query: str, max_tokens: int) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


@lru_cache(maxsize=1024)
def _validate(
    schema: GraphQLSchema,
    query: str,
    max_tokens: int,
    rules: tuple[type[ASTValidationRule], ...],
    hints: bool,
) -> list[GraphQLError]:
    errors = validate(schema, _parse(query, max_tokens), rules, hide_suggestions=not hints)
    aborted = [error for error in errors if isinstance(error, ValidationAbortedError)]
    if aborted:
        # Too many errors, or fragments nested past graphql-core's recursion guard: the
        # document is refused as too complex, not answered with what was found so far.
        ours = [error for error in errors if (error.extensions or {}).get("code") == CODE]
        return ours or [too_complex("The document is too complex to validate.")]
    return errors if hints else [neutral(error) for error in errors]


class Documents:
    """Parsing and validation, each cached by query text.

    The cache keys are the query string and fixed rule classes: hashing a parsed document
    would walk the whole tree on every request, and rules built per request (Strawberry's
    limiter factories) would never hit the cache.
    """

    def __init__(self, schema: Schema, settings: Settings) -> None:
        self.schema = schema._schema
        self.rules = validation_rules(settings)
        self.limits = limit_rules(
            Bounds(
                depth=settings.max_query_depth,
                aliases=settings.max_aliases,
                directives=settings.max_directives,
                directives_per_field=settings.max_directives_per_field,
            )
        )
        self.hints = settings.graphql_hints_enabled
        self.max_tokens = settings.max_tokens
        self.max_size = settings.max_query_size

    def get(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError]]:
        """The parsed document, or the errors that refuse it."""
        if len(query) > self.max_size:
            return None, [too_complex(f"The query is longer than {self.max_size} characters.")]
        try:
            document = _parse(query, self.max_tokens)
        except GraphQLSyntaxError as exc:
            if "Parsing aborted" in exc.message:  # the token limit
                return None, [too_complex(exc.message.removeprefix("Syntax Error: "))]
            return None, [exc]
        # The limits first: a refused document is not validated any further.
        errors = _validate(
            self.schema, query, self.max_tokens, self.limits, self.hints
        ) or _validate(self.schema, query, self.max_tokens, self.rules, self.hints)
        return (None, errors) if errors else (document, [])


def validation_rules(settings: Settings) -> tuple[type[ASTValidationRule], ...]:
    rules: list[type[ASTValidationRule]] = [
        *specified_rules,
        MaybeNullValidationRule,
        OneOfInputValidationRule,
    ]
    if not settings.introspection_enabled:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)
