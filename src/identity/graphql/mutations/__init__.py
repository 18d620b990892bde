"""Mutation resolvers: thin; unpack the input, call one service, return the success type."""

from __future__ import annotations

from typing import Any

import strawberry

from identity.graphql.errors import DomainErrors


def mutation(description: str) -> Any:
    """A mutation whose domain errors become members of its result union."""
    return strawberry.mutation(description=description, extensions=[DomainErrors()])
