"""Webhooks (endpoints, subscriptions, secrets, deliveries), app and user metadata, and the
outbox's shared claim columns (a state of its own for voided mail).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import identity.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERMISSIONS = {
    "webhooks:read": "See webhook endpoints and their deliveries.",
    "webhooks:write": "Create, edit and delete webhook endpoints; rotate secrets, redeliver.",
}

DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

permissions = sa.table(
    "permissions", sa.column("code", sa.String), sa.column("description", sa.String)
)
role_permissions = sa.table(
    "role_permissions", sa.column("role_id", sa.Uuid), sa.column("permission_code", sa.String)
)


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, identity.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # Metadata: every existing user starts with empty objects.
    for column in ("app_metadata", "user_metadata"):
        op.add_column(
            "users",
            sa.Column(column, DOCUMENT, nullable=False, server_default=sa.text("'{}'")),
        )

    # The outbox's shared claim columns; what a message's timestamps said becomes its state
    # (mail voided before delivery was recorded as failed with "skipped: …").
    op.add_column(
        "outbox_messages",
        sa.Column("state", sa.String(length=16), nullable=False, server_default="pending"),
    )
    op.add_column("outbox_messages", sa.Column("claim", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE outbox_messages SET state = CASE"
        " WHEN sent_at IS NOT NULL THEN 'sent'"
        " WHEN failed_at IS NOT NULL AND last_error LIKE 'skipped:%' THEN 'voided'"
        " WHEN failed_at IS NOT NULL THEN 'failed'"
        " ELSE 'pending' END"
    )
    op.drop_index("ix_outbox_messages_pending", table_name="outbox_messages")
    op.create_index("ix_outbox_messages_due", "outbox_messages", ["state", "next_attempt_at"])

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=255), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        _time("failing_since", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_subscriptions_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("endpoint_id", "event", name=op.f("pk_webhook_subscriptions")),
    )
    op.create_index(op.f("ix_webhook_subscriptions_event"), "webhook_subscriptions", ["event"])
    op.create_table(
        "webhook_secrets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        _time("created_at"),
        _time("retires_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_secrets_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_secrets")),
    )
    op.create_index(op.f("ix_webhook_secrets_endpoint_id"), "webhook_secrets", ["endpoint_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _time("created_at"),
        _time("delivered_at", nullable=True),
        sa.Column("last_response_status", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("next_attempt_at"),
        sa.Column("claim", sa.Uuid(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["state", "next_attempt_at"])
    op.create_index(
        "ix_webhook_deliveries_endpoint_page",
        "webhook_deliveries",
        ["endpoint_id", "created_at", "id"],
    )

    op.bulk_insert(permissions, [{"code": c, "description": d} for c, d in PERMISSIONS.items()])
    # The admin role holds every permission (if it is there: it always is, from 0002).
    for code in PERMISSIONS:
        op.execute(
            role_permissions.insert().from_select(
                ["role_id", "permission_code"],
                sa.select(sa.column("id", sa.Uuid), sa.literal(code))
                .select_from(sa.table("roles", sa.column("id", sa.Uuid), sa.column("name")))
                .where(sa.column("name") == "admin"),
            )
        )


def downgrade() -> None:
    op.execute(
        role_permissions.delete().where(role_permissions.c.permission_code.in_(list(PERMISSIONS)))
    )
    op.execute(permissions.delete().where(permissions.c.code.in_(list(PERMISSIONS))))
    op.drop_index("ix_webhook_deliveries_endpoint_page", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index(op.f("ix_webhook_secrets_endpoint_id"), table_name="webhook_secrets")
    op.drop_table("webhook_secrets")
    op.drop_index(op.f("ix_webhook_subscriptions_event"), table_name="webhook_subscriptions")
    op.drop_table("webhook_subscriptions")
    op.drop_table("webhook_endpoints")

    op.drop_index("ix_outbox_messages_due", table_name="outbox_messages")
    op.create_index(
        "ix_outbox_messages_pending", "outbox_messages", ["sent_at", "failed_at", "next_attempt_at"]
    )
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("claim")
        batch.drop_column("state")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("user_metadata")
        batch.drop_column("app_metadata")
