"""dispatch: drop ix_delivery_worker

No query reads deliveries by worker alone (every update by worker also names the row's id), and
the row keeps its worker id once sent, so each of a message's three row updates (claim, mark,
sent; none of them HOT) also wrote an entry into this index.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_delivery_worker", table_name="deliveries")


def downgrade() -> None:
    where = sa.text("worker_id IS NOT NULL")
    op.create_index("ix_delivery_worker", "deliveries", ["worker_id"], sqlite_where=where, postgresql_where=where)
