"""Sign-in with other OpenID Connect providers: the external accounts linked to users.

Existing users keep signing in as before; none has an external account yet.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import identity.db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "external_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("linked_at", identity.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", identity.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_external_accounts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_accounts")),
        sa.UniqueConstraint(
            "provider", "subject", name=op.f("uq_external_accounts_provider_subject")
        ),
    )
    op.create_index(
        op.f("ix_external_accounts_user_id"), "external_accounts", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_external_accounts_user_id"), table_name="external_accounts")
    op.drop_table("external_accounts")
