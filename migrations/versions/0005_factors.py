"""Second factors (TOTP apps, passkeys), recovery codes, challenges, the data key; assurance
levels on sessions and roles that require MFA.

Existing sessions signed in with a password: aal 1, amr ["pwd"], authenticated long ago (so
changing factors from them asks for the password).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import identity.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", identity.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_data_keys")),
    )
    op.create_table(
        "challenges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", identity.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", identity.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", identity.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_challenges_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_challenges")),
    )
    op.create_index(op.f("ix_challenges_expires_at"), "challenges", ["expires_at"], unique=False)
    op.create_index(op.f("ix_challenges_user_id"), "challenges", ["user_id"], unique=False)
    op.create_table(
        "factors",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("created_at", identity.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", identity.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("secret", sa.LargeBinary(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("credential_id", sa.LargeBinary(length=1024), nullable=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=True),
        sa.Column("transports", sa.JSON(), nullable=True),
        sa.Column("aaguid", sa.String(length=36), nullable=True),
        sa.Column("backup_eligible", sa.Boolean(), nullable=True),
        sa.Column("backup_state", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_factors_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_factors")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_factors_credential_id")),
    )
    op.create_index(op.f("ix_factors_user_id"), "factors", ["user_id"], unique=False)
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", identity.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", identity.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint("digest", name=op.f("uq_recovery_codes_digest")),
    )
    op.create_index(op.f("ix_recovery_codes_user_id"), "recovery_codes", ["user_id"], unique=False)
    # Columns every existing row needs a value for: added with a server default, which then
    # stays for the SQL that inserts rows without naming them (none of ours does).
    with op.batch_alter_table("roles") as batch:
        batch.add_column(
            sa.Column("requires_mfa", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # Sessions that exist signed in with a password (aal 1) at a time that counts as long ago:
    # changing factors from them asks for the password. Constant defaults add the columns
    # without rewriting the table on PostgreSQL, which every request reads.
    long_ago = (
        "'1970-01-01 00:00:00.000000'"
        if op.get_bind().dialect.name == "sqlite"
        else "'1970-01-01 00:00:00+00'"
    )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("aal", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(
            sa.Column("amr", sa.JSON(), nullable=False, server_default=sa.text("'[\"pwd\"]'"))
        )
        batch.add_column(
            sa.Column(
                "authenticated_at",
                identity.db.types.UTCDateTime(timezone=True),
                nullable=False,
                server_default=sa.text(long_ago),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("authenticated_at")
        batch.drop_column("amr")
        batch.drop_column("aal")
    with op.batch_alter_table("roles") as batch:
        batch.drop_column("requires_mfa")
    op.drop_index(op.f("ix_recovery_codes_user_id"), table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_index(op.f("ix_factors_user_id"), table_name="factors")
    op.drop_table("factors")
    op.drop_index(op.f("ix_challenges_user_id"), table_name="challenges")
    op.drop_index(op.f("ix_challenges_expires_at"), table_name="challenges")
    op.drop_table("challenges")
    op.drop_table("data_keys")
