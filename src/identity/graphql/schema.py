"""The schema and the execution extensions: caches, limits, error masking."""

from __future__ import annotations

import logging
from collections.abc import Iterator
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
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionContext

from identity.config import Settings
from identity.graphql.limits import limit_rules, too_complex
from identity.graphql.mutations.account import AccountMutations
from identity.graphql.mutations.admin import AdminMutations
from identity.graphql.mutations.auth import AuthMutations
from identity.graphql.mutations.recovery import RecoveryMutations
from identity.graphql.mutations.roles import RoleMutations
from identity.graphql.queries import Query

log = logging.getLogger("identity.graphql")

UNEXPECTED = "Unexpected error."


@strawberry.type
class Mutation(AuthMutations, AccountMutations, RecoveryMutations, AdminMutations, RoleMutations):
    pass


def is_unexpected(error: GraphQLError) -> bool:
    """An exception from our code, not a deliberate GraphQL error or a validation error."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


@lru_cache(maxsize=1024)
def _parse(query: str, max_tokens: int) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


@lru_cache(maxsize=1024)
def _validate(
    schema: GraphQLSchema,
    query: str,
    max_tokens: int,
    rules: tuple[type[ASTValidationRule], ...],
    hide_suggestions: bool,
) -> list[GraphQLError]:
    return validate(schema, _parse(query, max_tokens), rules, hide_suggestions=hide_suggestions)


def validation_rules(settings: Settings) -> tuple[type[ASTValidationRule], ...]:
    rules: list[type[ASTValidationRule]] = [
        *specified_rules,
        MaybeNullValidationRule,
        OneOfInputValidationRule,
    ]
    if not settings.introspection_enabled:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


def document_cache(settings: Settings) -> type[SchemaExtension]:
    """Parsing and validation, each cached by query text.

    The cache keys are the query string and fixed rule classes: hashing a parsed document
    would walk the whole tree on every request, and rules built per request (Strawberry's
    limiter factories) would never hit the cache.
    """
    rules = validation_rules(settings)
    limits = limit_rules(settings.max_query_depth, settings.max_aliases)
    hide_suggestions = settings.is_production
    max_tokens = settings.max_tokens
    max_size = settings.max_query_size

    class DocumentCache(SchemaExtension):
        def on_parse(self) -> Iterator[None]:
            context = self.execution_context
            query = context.query
            if query and context.graphql_document is None:
                if len(query) > max_size:
                    raise too_complex(f"The query is longer than {max_size} characters.")
                try:
                    context.graphql_document = _parse(query, max_tokens)
                except GraphQLSyntaxError as exc:
                    if "Parsing aborted" in exc.message:  # the token limit
                        raise too_complex(exc.message.removeprefix("Syntax Error: ")) from None
                    raise
            yield

        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            assert context.query is not None
            schema = context.schema._schema
            # The limits first: a refused document is not validated any further.
            context.pre_execution_errors = _validate(
                schema, context.query, max_tokens, limits, hide_suggestions
            ) or _validate(schema, context.query, max_tokens, rules, hide_suggestions)
            yield

    return DocumentCache


class MaskUnexpectedErrors(SchemaExtension):
    """Clients get a generic message and the request id; the log has the trace."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", None)
        result.errors = [
            GraphQLError(
                UNEXPECTED,
                nodes=error.nodes,
                path=error.path,
                extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
            )
            if is_unexpected(error)
            else error
            for error in result.errors
        ]


class RecordOutcome(SchemaExtension):
    """Operation name and outcome, for the access log and the request metrics."""

    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        state = getattr(context.context, "state", None)
        if state is None:
            return
        state["operation"] = context.operation_name
        errors = context.result.errors if context.result else context.pre_execution_errors
        if errors:
            codes = [(e.extensions or {}).get("code") for e in errors]
            state["outcome"] = next((c for c in codes if c), "GRAPHQL_VALIDATION_FAILED")
        else:
            state["outcome"] = getattr(context.context, "outcome", None) or "ok"


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors (validation, UNAUTHENTICATED, ...) are answers, not incidents.
        for error in errors:
            if is_unexpected(error):
                request_id = getattr(
                    getattr(execution_context, "context", None), "request_id", None
                )
                log.error(
                    "unexpected error in %s (request %s)",
                    ".".join(str(p) for p in error.path or ()) or "operation",
                    request_id,
                    exc_info=error.original_error,
                )


def build_schema(settings: Settings) -> Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(
            disable_field_suggestions=settings.is_production,
        ),
        extensions=[
            RecordOutcome,
            document_cache(settings),
            MaskUnexpectedErrors,
        ],
    )


def sdl() -> str:
    """The schema as clients see it (settings do not change it)."""
    from identity.config import Settings as _Settings

    return build_schema(_Settings.model_construct()).as_str() + "\n"
