"""dispatch: bounce scores, suppression kind, per-delivery bounce record

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounce_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("hard_count", sa.Integer(), nullable=False),
        sa.Column("soft_count", sa.Integer(), nullable=False),
        sa.Column("soft_score", sa.Float(), nullable=False),
        sa.Column("last_bounce_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    with op.batch_alter_table("suppressions") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=20), nullable=False, server_default="admin"))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("bounce_kind", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("bounced_at", sa.DateTime(timezone=True), nullable=True))
        # Lease renewal and crash recovery look rows up by worker.
        batch.create_index("ix_delivery_worker", ["worker_id"], unique=False)
        # Complaints (ARF) find their delivery by the Message-ID of the original.
        batch.create_index("ix_delivery_message_id", ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_delivery_message_id")
        batch.drop_index("ix_delivery_worker")
        batch.drop_column("bounced_at")
        batch.drop_column("bounce_kind")
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_column("kind")
    op.drop_table("bounce_scores")
