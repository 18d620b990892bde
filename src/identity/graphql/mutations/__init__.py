"""Mutation resolvers: thin; unpack the input, call one service, return the success type."""

from __future__ import annotations

import uuid
from typing import Any

import strawberry

from identity.graphql.errors import DomainErrors
from identity.graphql.permissions import Rule, guarded
from identity.services.errors import NotFound
from identity.services.fields import UNSET, Maybe


def mutation(description: str, rule: Rule | None = None, *, name: str | None = None) -> Any:
    """A mutation whose domain errors become members of its result union.

    With a rule, its description names what the caller needs; `name` where the automatic
    camelCase would be wrong (`createOAuthClient`, not `createOauthClient`).
    """
    if rule is None:
        return strawberry.mutation(name=name, description=description, extensions=[DomainErrors()])
    return strawberry.mutation(
        name=name,
        description=f"{description} {rule.describe()}",
        extensions=[*guarded(rule), DomainErrors()],
    )


def maybe(value: Any) -> Maybe[Any]:
    """Strawberry's UNSET (omitted in the input) as the services' own marker."""
    return UNSET if value is strawberry.UNSET else value


def sessions_ended(count: int) -> str:
    return f"{count} session{'' if count == 1 else 's'} ended."


def parse_id(value: str, what: str = "object") -> uuid.UUID:
    """An ID argument as a UUID; a malformed one cannot name anything: NotFound."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"No {what} with this id.") from None
