"""Types of sign-in with other providers."""

from __future__ import annotations

from datetime import datetime

import strawberry

from identity.db import models


@strawberry.type(description="An OpenID Connect provider people may sign in with.")
class ExternalProvider:
    id: str = strawberry.field(description="For `startExternalLogin(input: {provider})`.")
    name: str = strawberry.field(description="What a sign-in button says: 'Sign in with …'.")


@strawberry.type(description="An account at another provider that signs in to this user.")
class ExternalAccount:
    id: strawberry.ID
    provider: str = strawberry.field(description="The provider's id.")
    email: str | None = strawberry.field(
        description="The address the provider gave when it was linked (not necessarily "
        "the user's own)."
    )
    linked_at: datetime

    @classmethod
    def from_row(cls, row: models.ExternalAccount) -> ExternalAccount:
        return cls(
            id=strawberry.ID(str(row.id)),
            provider=row.provider,
            email=row.email,
            linked_at=row.linked_at,
        )
