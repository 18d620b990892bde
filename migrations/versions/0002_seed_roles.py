"""Seed the permission catalogue and the system roles `admin` and `user`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:30:00
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import identity.db.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERMISSIONS = {
    "users:read": "See users, their roles and sessions.",
    "users:write": "Create, edit, verify and deactivate users; end their sessions.",
    "users:delete": "Delete users.",
    "roles:read": "See roles and the permission catalogue.",
    "roles:write": "Create, edit and delete roles.",
    "roles:assign": "Give roles to users and take them away.",
    "audit:read": "Read the audit log.",
}
ADMIN_ID = uuid.UUID("5b0c1f9e-2d6a-5c3e-9a51-0c6f0a1d0001")
USER_ID = uuid.UUID("5b0c1f9e-2d6a-5c3e-9a51-0c6f0a1d0002")

permissions = sa.table(
    "permissions", sa.column("code", sa.String), sa.column("description", sa.String)
)
roles = sa.table(
    "roles",
    sa.column("id", sa.Uuid),
    sa.column("name", sa.String),
    sa.column("description", sa.String),
    sa.column("is_system", sa.Boolean),
    sa.column("created_at", identity.db.types.UTCDateTime),
    sa.column("updated_at", identity.db.types.UTCDateTime),
)
role_permissions = sa.table(
    "role_permissions", sa.column("role_id", sa.Uuid), sa.column("permission_code", sa.String)
)


def upgrade() -> None:
    now = datetime.now(UTC)
    op.bulk_insert(permissions, [{"code": c, "description": d} for c, d in PERMISSIONS.items()])
    op.bulk_insert(
        roles,
        [
            {
                "id": ADMIN_ID,
                "name": "admin",
                "description": "Every permission.",
                "is_system": True,
                "created_at": now,
                "updated_at": now,
            },
            {
                "id": USER_ID,
                "name": "user",
                "description": "Given at registration; no admin permission.",
                "is_system": True,
                "created_at": now,
                "updated_at": now,
            },
        ],
    )
    op.bulk_insert(
        role_permissions, [{"role_id": ADMIN_ID, "permission_code": c} for c in PERMISSIONS]
    )


def downgrade() -> None:
    op.execute(role_permissions.delete().where(role_permissions.c.role_id.in_([ADMIN_ID, USER_ID])))
    op.execute(roles.delete().where(roles.c.id.in_([ADMIN_ID, USER_ID])))
    op.execute(permissions.delete().where(permissions.c.code.in_(list(PERMISSIONS))))
