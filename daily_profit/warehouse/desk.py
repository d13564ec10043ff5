"""The desk's account performance summary (migration 0004): refresh and read."""

from __future__ import annotations

import polars as pl
import sqlalchemy as sa

from daily_profit.warehouse.io import Warehouse

SUMMARY_VIEW = "account_performance_summary"


def refresh_summary(store: Warehouse) -> pl.DataFrame:
    """Refresh the summary (PostgreSQL: concurrently, readers keep the old rows meanwhile) and
    return it. On SQLite it is a plain view, always current."""
    with store.engine.connect() as conn:
        if store.is_postgres:
            # CONCURRENTLY cannot fill a never-populated view; the first refresh is plain.
            populated = conn.execute(
                sa.text("SELECT ispopulated FROM pg_matviews WHERE matviewname = :v"),
                {"v": SUMMARY_VIEW},
            ).scalar_one()
            concurrently = " CONCURRENTLY" if populated else ""
            conn.execute(sa.text(f"REFRESH MATERIALIZED VIEW{concurrently} {SUMMARY_VIEW}"))
            conn.commit()
        result = conn.execute(sa.text(f"SELECT * FROM {SUMMARY_VIEW} ORDER BY account_id"))
        rows = result.fetchall()
        columns = list(result.keys())
    return pl.DataFrame(
        [tuple(r) for r in rows], schema=columns, orient="row", infer_schema_length=None
    )
