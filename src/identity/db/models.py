"""Tables. Every change here comes with an Alembic revision in migrations/versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from identity.db.types import UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EMAIL_MAX = 254
NAME_MAX = 100
URL_MAX = 2048

# JSON that can be compared (PostgreSQL's `json` has no equality operator; `jsonb` has).
Document = JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Stored normalized (trimmed, lower-cased): a plain unique index then holds on every database.
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    # None for an invited user who has not set a password yet.
    password_hash: Mapped[str | None] = mapped_column(String(512))
    first_name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    last_name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]
    # Written by admins, copied into access tokens as `app_metadata`.
    app_metadata: Mapped[dict[str, Any]] = mapped_column(
        Document, default=dict, server_default=text("'{}'")
    )
    # Written by the user; never in tokens.
    user_metadata: Mapped[dict[str, Any]] = mapped_column(
        Document, default=dict, server_default=text("'{}'")
    )

    roles: Mapped[list[Role]] = relationship(
        secondary="user_roles", lazy="raise", order_by="Role.name", viewonly=True
    )

    __table_args__ = (Index("ix_users_created_at_id", "created_at", "id"),)


# Indexes that exist only in the migrations: a trigram GIN index needs a PostgreSQL
# extension and an operator class that the models cannot express portably.
MIGRATION_ONLY_INDEXES = frozenset({"ix_users_search_trgm"})


def user_search_text() -> ColumnElement[str]:
    """What `users(filter: {search})` matches; the trigram index is built on this expression."""
    space: ColumnElement[str] = literal_column("' '")
    return func.lower(User.email + space + User.first_name + space + User.last_name)


class Permission(Base):
    __tablename__ = "permissions"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(String(255), default="")


class Role(Base):
    __tablename__ = "roles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    is_system: Mapped[bool] = mapped_column(Boolean, default=False)
    # Grants its permissions only in a session at assurance level 2 (a second factor).
    requires_mfa: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    permissions: Mapped[list[Permission]] = relationship(
        secondary="role_permissions", lazy="raise", order_by="Permission.code", viewonly=True
    )


class RolePermission(Base):
    __tablename__ = "role_permissions"

    role_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    permission_code: Mapped[str] = mapped_column(
        ForeignKey("permissions.code", ondelete="CASCADE"), primary_key=True
    )


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Session(Base):
    """A signed-in device. It is also the refresh-token family.

    The refresh token is derived from (id, refresh_counter) and the server secret; rotating
    it increments the counter, so the database never holds a usable token and a replayed old
    token is recognised by its smaller counter.
    """

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Absolute end: rotation never moves it.
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    refresh_counter: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Assurance (NIST SP 800-63B level, RFC 8176 methods), kept by every refresh.
    aal: Mapped[int] = mapped_column(Integer, default=1)
    amr: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["pwd"])
    # When credentials were last proven in this session: the re-authentication window.
    authenticated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set for an OAuth grant (a client's refresh-token family): its client and scopes. Such
    # a session ends with the user's other sessions, and only /oauth2/token refreshes it.
    oauth_client_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str | None] = mapped_column(Text)
    # DPoP (RFC 9449): the thumbprint of the key the session is bound to, if the client
    # offered one when it signed in; its tokens and refreshes then need proofs by that key.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))


class SigningKey(Base):
    """A JWT signing key; the private half is encrypted with a key derived from the secret."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Published from creation; signs from activates_at until a newer key activates.
    activates_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")


class AuditEvent(Base):
    """A security-relevant event. Ids are kept, not foreign keys: events outlive their users."""

    __tablename__ = "audit_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    subject_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_audit_events_occurred_at_id", "occurred_at", "id"),
        Index("ix_audit_events_action_occurred_at", "action", "occurred_at"),
    )


class OneTimeToken(Base):
    """A password-reset, verification, email-change or invitation token.

    Only the id is stored; the token is derived from it and the secret (see security.derive).
    """

    __tablename__ = "one_time_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # What the token stands for beyond its purpose: the new address of an email change.
    payload: Mapped[str | None] = mapped_column(String(EMAIL_MAX))


class Queued:
    """The columns every outbox channel shares: what the claim and lease engine works on.

    `state` is `pending` until the row is done with (the terminal states are the channel's
    own). A pending row is due at `next_attempt_at`; a claim sets `claim` and moves
    `next_attempt_at` to the end of its lease, so a sender that dies leaves a row that
    another takes over once the short lease has run out.
    """

    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claim: Mapped[uuid.UUID | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class OutboxMessage(Queued, Base):
    """A mail to send, written in the same transaction as the change that causes it.

    It never holds a usable token: `token_id` lets the sender re-derive the link.
    States: pending, sent, failed, voided (its link was used, replaced or expired first).
    """

    __tablename__ = "outbox_messages"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    template: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(EMAIL_MAX))
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    token_id: Mapped[uuid.UUID | None]
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]  # failed or voided: when it was given up

    __table_args__ = (Index("ix_outbox_messages_due", "state", "next_attempt_at"),)


class WebhookEndpoint(Base):
    """A URL that receives signed events; its secrets are in webhook_secrets."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(String(URL_MAX))
    description: Mapped[str] = mapped_column(String(255), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[uuid.UUID | None]  # kept, not a foreign key: the endpoint outlives them
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The first failure since the last success: five days of failures disable the endpoint.
    failing_since: Mapped[datetime | None]


class WebhookSubscription(Base):
    """An event type an endpoint receives (what the fan-out joins on)."""

    __tablename__ = "webhook_subscriptions"

    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    event: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class WebhookSecret(Base):
    """A signing secret, sealed under the server secret. A rotated one signs alongside the
    new one until `retires_at`."""

    __tablename__ = "webhook_secrets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retires_at: Mapped[datetime | None]


class WebhookDelivery(Queued, Base):
    """One event for one endpoint. The body is made once, when the event happens: every
    retry and every redelivery sends the same bytes under the same `event_id`.
    States: pending, delivered, failed (the endpoint was disabled), abandoned (every attempt
    of the schedule failed)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID]
    event: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    last_response_status: Mapped[int | None]

    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_page", "endpoint_id", "created_at", "id"),
    )


class Factor(Base):
    """A second factor: an authenticator app (TOTP) or a passkey (WebAuthn).

    A user with at least one factor has MFA on. TOTP secrets are sealed under the server
    secret; a passkey keeps only its public key.
    """

    __tablename__ = "factors"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # totp | passkey
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    # TOTP: the sealed secret, and the last time step accepted (a code is good once).
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_step: Mapped[int | None] = mapped_column(BigInteger)
    # Passkeys: the credential as registered.
    credential_id: Mapped[bytes | None] = mapped_column(LargeBinary(1024), unique=True)
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    sign_count: Mapped[int | None] = mapped_column(BigInteger)
    transports: Mapped[list[str] | None] = mapped_column(JSON)
    aaguid: Mapped[str | None] = mapped_column(String(36))
    backup_eligible: Mapped[bool | None] = mapped_column(Boolean)
    backup_state: Mapped[bool | None] = mapped_column(Boolean)


class RecoveryCode(Base):
    """A single-use recovery code, kept only as an HMAC under the data key."""

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class Challenge(Base):
    """A short-lived secret of a multi-step flow: an mfaToken after the password, a TOTP
    enrolment, a passkey registration or sign-in challenge.

    Only the id is stored; the token handed out is derived from it and the server secret,
    bound to the purpose and user. Rows in the database make them work across instances.
    """

    __tablename__ = "challenges"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    purpose: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # What the flow carries between its steps (no secret in clear: see `sealed`).
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)


class DataKey(Base):
    """A random key, sealed under the server secret, for HMACs that must outlive a rotation
    of that secret (recovery codes, OAuth client secrets)."""

    __tablename__ = "data_keys"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExternalAccount(Base):
    """An account at another OpenID Connect provider that signs in to a user here.

    It is found by (provider, subject) only, never by address: the provider's `sub` is the
    one stable name it gives. `email` is what the provider said when it was linked.
    """

    __tablename__ = "external_accounts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX))
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("provider", "subject", name="uq_external_accounts_provider_subject"),
    )


class DpopProof(Base):
    """A DPoP proof seen recently (by key thumbprint and `jti`): each is good for one request.

    Every instance on the database refuses a proof another has seen; rows past `expires_at`
    are pruned by housekeeping.
    """

    __tablename__ = "dpop_proofs"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


# The OpenID Provider's tables, in a module of their own (they need Base, defined above);
# imported here so that Base.metadata always has them.
import identity.db.oauth_models  # noqa: E402, F401
