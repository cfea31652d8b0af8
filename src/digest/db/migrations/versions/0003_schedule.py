"""schedule: per-subscription frequency and weekday, edition kind

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("frequency", sa.String(length=10), nullable=False, server_default="daily"))
        batch.add_column(sa.Column("weekly_day", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=10), nullable=False, server_default="daily"))


def downgrade() -> None:
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("weekly_day")
        batch.drop_column("frequency")
