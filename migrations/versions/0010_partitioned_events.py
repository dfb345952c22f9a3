"""partitioned events: PostgreSQL keeps metric events in a table partitioned by day

The events table becomes `PARTITION BY RANGE (ts)` with a partition per UTC day
(`metric_events_pYYYYMMDD`), its primary key (event_id, ts); retention drops whole days
instead of deleting rows (registry.metrics.partitions). The rows there are copied into
the partitions of their days, and the partitions of yesterday, today and the next three
days are created. SQLite keeps its plain table: nothing changes there.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OLD = "metric_events_unpartitioned"


def _partition(day: date) -> str:
    low = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (
        f"CREATE TABLE IF NOT EXISTS metric_events_p{day:%Y%m%d} PARTITION OF metric_events "
        f"FOR VALUES FROM ('{low.isoformat()}') TO ('{(low + timedelta(days=1)).isoformat()}')"
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE metric_events RENAME TO {OLD}")
    op.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT pk_metric_events TO pk_{OLD}")
    op.execute(
        f"CREATE TABLE metric_events (LIKE {OLD} INCLUDING DEFAULTS) PARTITION BY RANGE (ts)"
    )
    op.execute(
        "ALTER TABLE metric_events ADD CONSTRAINT pk_metric_events PRIMARY KEY (event_id, ts)"
    )
    today = datetime.now(UTC).date()
    days = {today + timedelta(days=n) for n in range(-1, 4)}
    stored = bind.exec_driver_sql(
        f"SELECT DISTINCT CAST(ts AT TIME ZONE 'UTC' AS date) FROM {OLD}"
    ).scalars()
    days.update(stored)
    for day in sorted(days):
        op.execute(_partition(day))
    op.execute(f"INSERT INTO metric_events SELECT * FROM {OLD}")
    op.execute(f"DROP TABLE {OLD}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE TABLE {OLD} (LIKE metric_events INCLUDING DEFAULTS)")
    op.execute(f"ALTER TABLE {OLD} ADD CONSTRAINT pk_{OLD} PRIMARY KEY (event_id)")
    # Unique per (event_id, ts) becomes unique per event_id again: the first of a repeated
    # id (an event sent twice without ts) is kept.
    op.execute(f"INSERT INTO {OLD} SELECT * FROM metric_events ORDER BY ts ON CONFLICT DO NOTHING")
    op.execute("DROP TABLE metric_events CASCADE")  # and its partitions
    op.execute(f"ALTER TABLE {OLD} RENAME TO metric_events")
    op.execute(f"ALTER TABLE metric_events RENAME CONSTRAINT pk_{OLD} TO pk_metric_events")
