"""Rollup merge: a batch's aggregates added into their minute and hour rows in one upsert.

`INSERT ... ON CONFLICT (key) DO UPDATE` inserts the rows that are new and adds into the
rows that exist, so ingest neither reads rollup rows nor locks them ahead: the database
locks each conflicting row and computes the sums on its newest version, and concurrent
batches add up. Rows go in key order, so two batches sharing rows lock them in the same
order (and `storage.retrying` runs a transaction again should PostgreSQL still abort it).

Every figure merges as `Aggregate.merge` does: counts and sums add; minima and maxima keep
the known one; a sum of squares, or the successful calls' latency, that a row did not
record (NULL, written before migration 0006) stays NULL; the histograms add bucket by
bucket in their dense form; error types add and keep the ERROR_TYPES_MAX most frequent
(ties by name) with the rest as `other`; failing traces keep the TRACES_MAX newest, one
per trace id (the batch's entry wins). On SQLite the JSON columns merge in Python
functions registered on the connection; on PostgreSQL in SQL, with the rows sent as one
JSON parameter (see `storage.insert_events_postgresql`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from promptctl.registry.metrics.aggregate import (
    TRACES_MAX,
    Aggregate,
    cap_error_types,
    newest_traces,
)
from promptctl.registry.metrics.events import ERROR_TYPES_MAX, OTHER
from promptctl.registry.metrics.histogram import histogram_json
from promptctl.registry.metrics.storage import (
    ROLLUPS,
    RollupKey,
    moment,
    sqlite_time,
)
from promptctl.registry.store.models import utcnow

_KEY = ("prompt", "environment", "period_seconds", "period_start", "digest", "variant")
# How each JSON column merges (the SQLite function's name, the PostgreSQL expression's).
_MERGED_AS = {
    "latency_histogram": "histogram",
    "success_latency_histogram": "histogram",
    "error_types": "error_types",
    "failing_traces": "traces",
}
_JSON = tuple(_MERGED_AS)
# Added as they are (NOT NULL, or NULL meaning "not recorded", which `+` keeps).
_SUMS = (
    "count",
    "errors",
    "latency_sum",
    "input_tokens_count",
    "input_tokens_sum",
    "input_tokens_sumsq",
    "output_tokens_count",
    "output_tokens_sum",
    "output_tokens_sumsq",
    "cost_count",
    "cost_sum",
    "cost_sumsq",
    "quality_count",
    "quality_sum",
    "quality_sumsq",
)
_OUTCOMES = ("outputs_checked", "outputs_invalid", "finishes", "truncated")
_SUCCESS = ("success_latency_sum", "success_latency_min", "success_latency_max")
_FIGURES = tuple(c.name for c in ROLLUPS.c if c.name not in ("id", "updated_at", *_KEY))
_COLUMNS = (*_KEY, *_FIGURES, "updated_at")
_TABLE = ROLLUPS.name


def _set_clauses(least: str, greatest: str, merged: Mapping[str, str]) -> str:
    """The DO UPDATE SET list: `r` is the stored row, `excluded` the batch's."""
    known = (
        "r.success_latency_histogram IS NOT NULL AND excluded.success_latency_histogram IS NOT NULL"
    )
    clauses = [f"{c} = r.{c} + excluded.{c}" for c in _SUMS]
    clauses += [f"{c} = coalesce(r.{c}, 0) + excluded.{c}" for c in _OUTCOMES]
    clauses.append(f"latency_min = {least.format(a='r.latency_min', b='excluded.latency_min')}")
    clauses.append(f"latency_max = {greatest.format(a='r.latency_max', b='excluded.latency_max')}")
    # A row that did not record successful calls' latency keeps not knowing it.
    clauses.append(
        "success_latency_sum = CASE WHEN "
        f"{known} THEN coalesce(r.success_latency_sum, 0) + excluded.success_latency_sum END"
    )
    for name, pick in (("success_latency_min", least), ("success_latency_max", greatest)):
        both = pick.format(a=f"r.{name}", b=f"excluded.{name}")
        clauses.append(f"{name} = CASE WHEN {known} THEN {both} END")
    clauses += [f"{c} = {merged[c]}" for c in _JSON]
    clauses.append("updated_at = excluded.updated_at")
    assert {c.split(" = ")[0] for c in clauses} == {*_FIGURES, "updated_at"}
    return ", ".join(clauses)


# -- SQLite: one prepared upsert run for every row (executemany), JSON merged in Python --

_SQLITE_UPSERT = (
    f"INSERT INTO {_TABLE} AS r ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + _set_clauses(
        # SQLite's two-argument min() and max() are NULL when either is.
        "coalesce(min({a}, {b}), {a}, {b})",
        "coalesce(max({a}, {b}), {a}, {b})",
        {c: f"promptctl_{_MERGED_AS[c]}(r.{c}, excluded.{c})" for c in _JSON},
    )
)


def merged_histograms(stored: str | None, batch: str | None) -> str | None:
    """Add two stored histograms (JSON text); None when either is (not recorded)."""
    if stored is None or batch is None:
        return None
    zero = 0
    buckets: dict[int, int] = {}
    for histogram in (json.loads(stored), json.loads(batch)):
        zero += histogram.get("zero", 0)
        for index, n in enumerate(histogram.get("counts") or (), histogram.get("offset", 0)):
            if n:
                buckets[index] = buckets.get(index, 0) + n
    return json.dumps(histogram_json(buckets, zero))


def merged_error_types(stored: str | None, batch: str | None) -> str | None:
    """Add two rows' counts per error type (JSON text), keeping the most frequent."""
    if stored is None or batch is None:
        return batch if stored is None else stored
    types: dict[str, int] = json.loads(stored)
    for name, n in json.loads(batch).items():
        types[name] = types.get(name, 0) + n
    return json.dumps(cap_error_types(types))


def merged_traces(stored: str | None, batch: str | None) -> str | None:
    """The newest failing traces of two rows (JSON text)."""
    if stored is None or batch is None:
        return batch if stored is None else stored
    newest = newest_traces([tuple(t) for t in json.loads(stored)], json.loads(batch))
    return json.dumps([list(t) for t in newest])


def _register(connection: Any) -> None:
    """Give this SQLite connection the merge functions (cheap; done per batch, so a
    connection from anywhere, the pool's or a test's, has them)."""
    for name, function in (
        ("histogram", merged_histograms),
        ("error_types", merged_error_types),
        ("traces", merged_traces),
    ):
        connection.create_function(f"promptctl_{name}", 2, function, deterministic=True)


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _merge_sqlite(
    session: Session, aggregates: Mapping[RollupKey, Aggregate], now: datetime
) -> None:
    connection = session.connection()
    _register(connection.connection.driver_connection)
    at = sqlite_time(now)
    rows = []
    for key in sorted(aggregates):
        prompt, environment, seconds, start, digest, variant = key
        values = aggregates[key].values()
        for name in _JSON:
            values[name] = _json_text(values[name])
        rows.append(
            (
                prompt,
                environment,
                seconds,
                sqlite_time(moment(start)),
                digest,
                variant,
                *(values[name] for name in _FIGURES),
                at,
            )
        )
    connection.exec_driver_sql(_SQLITE_UPSERT, rows)


# -- PostgreSQL: one INSERT ... SELECT FROM json_to_recordset, JSON merged in SQL ---------


def _pg_histogram(a: str, b: str) -> str:
    # Both dense arrays read by index over the union of their ranges (jsonb: parsed once,
    # and its elements reached directly; a negative index would count from the end).
    def span(edge: str, counts: str) -> str:
        return f"CASE WHEN jsonb_array_length({counts}) > 0 THEN {edge} END"

    def count(first: str, counts: str) -> str:
        return f"coalesce(CASE WHEN g.i >= {first} THEN ({counts}->(g.i - {first}))::bigint END, 0)"

    low = f"LEAST({span('fa', 'ca')}, {span('fb', 'cb')})"
    high = (
        f"GREATEST({span('fa + jsonb_array_length(ca) - 1', 'ca')}, "
        f"{span('fb + jsonb_array_length(cb) - 1', 'cb')})"
    )
    return f"""CASE WHEN {a} IS NOT NULL AND {b} IS NOT NULL THEN (
  WITH h AS MATERIALIZED (
    SELECT (x->>'offset')::int AS fa, x->'counts' AS ca, (y->>'offset')::int AS fb,
      y->'counts' AS cb,
      coalesce((x->>'zero')::bigint, 0) + coalesce((y->>'zero')::bigint, 0) AS zero
    FROM (SELECT {a}::jsonb AS x, {b}::jsonb AS y) AS pair
  )
  SELECT json_build_object(
    'zero', max(h.zero),
    'offset', coalesce(min(g.i), 0),
    'counts', coalesce(
      json_agg({count("fa", "ca")} + {count("fb", "cb")} ORDER BY g.i)
        FILTER (WHERE g.i IS NOT NULL),
      '[]'::json
    )
  )
  FROM h LEFT JOIN LATERAL generate_series({low}, {high}) AS g(i) ON true
) END"""


def _pg_error_types(a: str, b: str) -> str:
    # cap_error_types in SQL: names compared by code point (COLLATE "C"), as Python does.
    return f"""CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL THEN {a} ELSE (
  WITH sums AS (
    SELECT key, sum(value::bigint) AS n
    FROM (SELECT * FROM json_each_text({a}) UNION ALL SELECT * FROM json_each_text({b})) AS e
    GROUP BY key
  ), ranked AS (
    SELECT key, n, row_number() OVER (ORDER BY n DESC, key COLLATE "C") AS k
    FROM sums WHERE key <> '{OTHER}'
  )
  SELECT json_object_agg(key, n) FROM (
    SELECT key, n FROM ranked WHERE k <= {ERROR_TYPES_MAX}
    UNION ALL
    SELECT '{OTHER}', sum(n) FROM (
      SELECT n FROM sums WHERE key = '{OTHER}'
      UNION ALL SELECT n FROM ranked WHERE k > {ERROR_TYPES_MAX}
    ) AS rest HAVING count(*) > 0
  ) AS kept
) END"""


def _pg_traces(a: str, b: str) -> str:
    # newest_traces in SQL: one entry per trace id (the batch's wins), newest first.
    order = 'ts DESC, id COLLATE "C" DESC, why COLLATE "C" DESC'
    return f"""CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL THEN {a} ELSE (
  SELECT json_agg(json_build_array(ts, id, why) ORDER BY {order}) FROM (
    SELECT ts, id, why FROM (
      SELECT DISTINCT ON (t->>1) (t->>0)::float8 AS ts, t->>1 AS id, t->>2 AS why
      FROM (
        SELECT t, 0 AS side FROM json_array_elements({a}) AS t
        UNION ALL SELECT t, 1 FROM json_array_elements({b}) AS t
      ) AS both_sides
      ORDER BY t->>1, side DESC
    ) AS distinct_ids
    ORDER BY {order} LIMIT {TRACES_MAX}
  ) AS newest
) END"""


def _postgresql_upsert() -> Any:
    dialect = postgresql.dialect()
    types = ", ".join(f"{c} {ROLLUPS.c[c].type.compile(dialect=dialect)}" for c in _COLUMNS)
    functions = {"histogram": _pg_histogram, "error_types": _pg_error_types, "traces": _pg_traces}
    merged = {c: functions[_MERGED_AS[c]](f"r.{c}", f"excluded.{c}") for c in _JSON}
    sets = _set_clauses("LEAST({a}, {b})", "GREATEST({a}, {b})", merged)
    columns = ", ".join(_COLUMNS)
    return text(
        f"INSERT INTO {_TABLE} AS r ({columns}) "
        f"SELECT {columns} FROM json_to_recordset(:rows) AS t({types}) "
        f"ORDER BY {', '.join(_KEY)} "
        f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {sets}"
    )


_POSTGRESQL_UPSERT = _postgresql_upsert()


def _merge_postgresql(
    session: Session, aggregates: Mapping[RollupKey, Aggregate], now: datetime
) -> None:
    rows = []
    for key in sorted(aggregates):
        prompt, environment, seconds, start, digest, variant = key
        rows.append(
            {
                "prompt": prompt,
                "environment": environment,
                "period_seconds": seconds,
                "period_start": moment(start),
                "digest": digest,
                "variant": variant,
                "updated_at": now,
                **aggregates[key].values(),
            }
        )
    session.execute(_POSTGRESQL_UPSERT, {"rows": orjson.dumps(rows).decode()})


def merge_rollups(session: Session, aggregates: Mapping[RollupKey, Aggregate]) -> None:
    """Add aggregates into their rollup rows, creating the missing ones: one statement."""
    if not aggregates:
        return
    if session.get_bind().dialect.name == "postgresql":
        _merge_postgresql(session, aggregates, utcnow())
    else:
        _merge_sqlite(session, aggregates, utcnow())
