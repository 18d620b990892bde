"""identity as an OpenID Provider: OAuth clients, the consents users gave them, and grants
as sessions that belong to a client.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import identity.db.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERMISSIONS = {
    "clients:read": "See the OAuth clients (apps that sign in with identity).",
    "clients:write": "Register, edit and delete OAuth clients; rotate their secrets.",
}

permissions = sa.table(
    "permissions", sa.column("code", sa.String), sa.column("description", sa.String)
)
role_permissions = sa.table(
    "role_permissions", sa.column("role_id", sa.Uuid), sa.column("permission_code", sa.String)
)


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, identity.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("is_confidential", sa.Boolean(), nullable=False),
        sa.Column("is_first_party", sa.Boolean(), nullable=False),
        sa.Column("allowed_scopes", sa.JSON(), nullable=False),
        sa.Column("secret_digest", sa.LargeBinary(length=32), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_clients")),
        sa.UniqueConstraint("client_id", name=op.f("uq_oauth_clients_client_id")),
    )
    op.create_table(
        "oauth_consents",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        _time("granted_at"),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.id"],
            name=op.f("fk_oauth_consents_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_oauth_consents_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "client_id", name=op.f("pk_oauth_consents")),
    )
    op.create_index(op.f("ix_oauth_consents_client_id"), "oauth_consents", ["client_id"])
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("oauth_client_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("scope", sa.Text(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_sessions_oauth_client_id_oauth_clients"),
            "oauth_clients",
            ["oauth_client_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_sessions_oauth_client_id"), ["oauth_client_id"])

    op.bulk_insert(permissions, [{"code": c, "description": d} for c, d in PERMISSIONS.items()])
    # The admin role holds every permission.
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
    op.execute("DELETE FROM sessions WHERE oauth_client_id IS NOT NULL")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index(op.f("ix_sessions_oauth_client_id"))
        batch.drop_constraint(op.f("fk_sessions_oauth_client_id_oauth_clients"), type_="foreignkey")
        batch.drop_column("scope")
        batch.drop_column("oauth_client_id")
    op.drop_index(op.f("ix_oauth_consents_client_id"), table_name="oauth_consents")
    op.drop_table("oauth_consents")
    op.drop_table("oauth_clients")
