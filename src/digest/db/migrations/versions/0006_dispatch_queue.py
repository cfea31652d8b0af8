"""dispatch: deliveries without per-row foreign keys; partial indexes for the queue

The three foreign keys of `deliveries` (edition, subscriber, variant; ON DELETE CASCADE) cost PostgreSQL a
trigger call per inserted row, more than the insert itself on a million-row enqueue. The code deletes a
subscriber's, an edition's or a variant's deliveries explicitly instead (`digest.db.deliveries`).

Indexes: `ix_delivery_state_due` (state, next_attempt_at) made every claim sort all due rows; it is replaced by
`ix_delivery_due` (next_attempt_at, id) over due rows only, read in claim order, and `ix_delivery_lease`
(lease_until) over the few rows in a worker's hands (expired claims, ambiguous rows). `ix_delivery_worker` and
`ix_delivery_message_id` become partial: most rows have no worker, and no Message-ID before they are sent.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DUE = "state IN ('queued', 'deferred')"
HELD = "state IN ('claimed', 'transmitting')"
# SQLite's foreign keys have no names; batch mode names them by this convention so they can be dropped.
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
FKS = [("edition_id", "editions"), ("subscriber_id", "subscribers"), ("variant_id", "edition_variants")]


def _partial(sql: str) -> dict[str, sa.TextClause]:
    return {"sqlite_where": sa.text(sql), "postgresql_where": sa.text(sql)}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("deliveries", recreate="always", naming_convention=NAMING) as batch:
            for column, table in FKS:
                batch.drop_constraint(f"fk_deliveries_{column}_{table}", type_="foreignkey")
    else:
        for fk in sa.inspect(op.get_bind()).get_foreign_keys("deliveries"):
            op.drop_constraint(fk["name"], "deliveries", type_="foreignkey")
    op.drop_index("ix_delivery_state_due", table_name="deliveries")
    op.drop_index("ix_delivery_worker", table_name="deliveries")
    op.drop_index("ix_delivery_message_id", table_name="deliveries")
    op.create_index("ix_delivery_due", "deliveries", ["next_attempt_at", "id"], **_partial(DUE))
    op.create_index("ix_delivery_lease", "deliveries", ["lease_until"], **_partial(HELD))
    op.create_index("ix_delivery_worker", "deliveries", ["worker_id"], **_partial("worker_id IS NOT NULL"))
    op.create_index("ix_delivery_message_id", "deliveries", ["message_id"], **_partial("message_id <> ''"))


def downgrade() -> None:
    op.drop_index("ix_delivery_message_id", table_name="deliveries")
    op.drop_index("ix_delivery_worker", table_name="deliveries")
    op.drop_index("ix_delivery_lease", table_name="deliveries")
    op.drop_index("ix_delivery_due", table_name="deliveries")
    op.create_index("ix_delivery_message_id", "deliveries", ["message_id"])
    op.create_index("ix_delivery_worker", "deliveries", ["worker_id"])
    op.create_index("ix_delivery_state_due", "deliveries", ["state", "next_attempt_at"])
    # Rows whose edition, subscriber or variant is gone would fail the constraints: they go first.
    for column, table in FKS:
        op.execute(f"DELETE FROM deliveries WHERE {column} NOT IN (SELECT id FROM {table})")
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("deliveries") as batch:
        for column, table in FKS:
            name = f"fk_deliveries_{column}_{table}" if sqlite else f"deliveries_{column}_fkey"
            batch.create_foreign_key(name, table, [column], ["id"], ondelete="CASCADE")
