"""Types of second factors and of the second step of signing in."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from identity.db import models


@strawberry.enum(description="What a second factor is.")
class FactorKind(Enum):
    TOTP = "totp"
    PASSKEY = "passkey"


@strawberry.enum(description="A way to finish a sign-in that needs a second factor.")
class MfaMethod(Enum):
    TOTP = "TOTP"
    RECOVERY_CODE = "RECOVERY_CODE"
    PASSKEY = "PASSKEY"


@strawberry.type(description="A second factor: an authenticator app or a passkey. No secrets.")
class Factor:
    id: strawberry.ID
    kind: FactorKind
    label: str
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(
        description="When it last finished a sign-in (or was enrolled)."
    )
    factor_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: models.Factor) -> Factor:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=FactorKind(row.kind),
            label=row.label,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            factor_id=row.id,
        )


@strawberry.type(
    description="The password was right and the account has MFA on: finish with `verifyMfa`."
)
class MfaRequired:
    mfa_token: str = strawberry.field(
        description="For `verifyMfa`: one sign-in, five wrong codes, `expiresIn` seconds."
    )
    methods: list[MfaMethod]
    expires_in: int = strawberry.field(description="Seconds until the mfaToken expires.")
    passkey_options: JSON | None = strawberry.field(
        default=None,
        description="WebAuthn request options naming the account's passkeys, for "
        "`PublicKeyCredential.parseRequestOptionsFromJSON`, when PASSKEY is a method.",
    )
