"""dispatch: drop ix_delivery_message_id

A complaint that names its original only by Message-ID is found by the delivery id the Message-ID
carries (`<edition.delivery.tag@domain>`, `dispatch.worker.message_id_for`) and checked against the
stored value, so no index is needed for it. The index took an entry on two of a message's three row
updates (the `transmitting` mark and `sent`; none of them HOT).

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_delivery_message_id", table_name="deliveries")


def downgrade() -> None:
    where = sa.text("message_id <> ''")
    op.create_index("ix_delivery_message_id", "deliveries", ["message_id"], sqlite_where=where,
                    postgresql_where=where)
