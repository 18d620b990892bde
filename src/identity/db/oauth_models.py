"""The OpenID Provider's tables: registered clients and the consents users gave them.

Grants (a client's refresh-token family for one user) are rows of `sessions` with
`oauth_client_id` set, so every rule that ends a user's sessions ends them too.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from identity.db.models import NAME_MAX, Base
from identity.db.types import utcnow

CLIENT_ID_MAX = 64


class OAuthClient(Base):
    """An app that signs its users in with identity. A confidential client's secret is kept
    only as an HMAC under the data key (so a rotation of the server secret keeps it)."""

    __tablename__ = "oauth_clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_MAX), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Where RP-initiated logout may send the browser back to (matched exactly).
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_confidential: Mapped[bool] = mapped_column(Boolean, default=True)
    is_first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    allowed_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    created_by: Mapped[uuid.UUID | None]  # kept, not a foreign key: the client outlives them
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class OAuthConsent(Base):
    """The scopes a user allowed a client; asked again only for scopes beyond them."""

    __tablename__ = "oauth_consents"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
