"""Warehouse tables (SQLAlchemy Core), generated from the source specs in ``records.py``.

Naming:

- raw tables are ``raw_<source>`` (``raw_trades_closed``); business columns are the snake_case
  API names from the spec, in the spec's order;
- every data row carries ``_run_id`` (the Dagster run that wrote it) and ``_loaded_at``;
- the primary key is the contract's natural key with the partition column first;
- ``raw_quarantine`` keeps every rejected record with its reason; ``partition_loads`` records
  every write (rows and checksum per partition), so a restatement shows as a changed checksum.

On PostgreSQL the daily tables are declaratively RANGE-partitioned by their date column, one
partition per day (see ``PARTITION_GRANULARITY`` and benchmarks/README.md for the measurement);
partitions are created on demand by ``dp_ensure_partitions`` (migration 0001). SQLite ignores
the partitioning options and stores one plain table.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

from daily_profit.warehouse.records import SOURCES, Kind, SourceSpec

metadata = sa.MetaData()

RUN_ID: Final = "_run_id"
LOADED_AT: Final = "_loaded_at"
META_COLUMNS: Final = (RUN_ID, LOADED_AT)

# One partition per day: replacing a day truncates one small partition instead of deleting
# rows out of a month (measured in benchmarks/README.md).
PARTITION_GRANULARITY: Final = "day"

QUARANTINE_TABLE: Final = "raw_quarantine"
PARTITION_LOADS_TABLE: Final = "partition_loads"
PUBLICATION_AUDIT_TABLE: Final = "raw_publication_audit"

_SA_TYPES: dict[Kind, sa.types.TypeEngine] = {
    Kind.STR: sa.Text(),
    Kind.INT: sa.BigInteger(),
    Kind.FLOAT: sa.Double(),
    Kind.BOOL: sa.Boolean(),
    Kind.DATE: sa.Date(),
    Kind.TS: sa.DateTime(timezone=True),
    Kind.JSON: sa.Text(),
}

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _raw_table(spec: SourceSpec) -> sa.Table:
    key = set(spec.natural_key)
    columns: list[sa.Column] = [
        sa.Column(
            f.column,
            _SA_TYPES[f.kind],
            # Key columns are NOT NULL in the table even where the parsed frame allows a null
            # (account_id: the raw layer resolves it before writing).
            nullable=not (f.required or f.column in key),
            comment=f"API field {f.api}",
        )
        for f in spec.fields
    ]
    columns += [
        sa.Column(RUN_ID, sa.Text(), nullable=False),
        sa.Column(LOADED_AT, sa.DateTime(timezone=True), nullable=False),
    ]
    kwargs: dict[str, str] = {}
    if spec.partition_column is not None:
        kwargs["postgresql_partition_by"] = f"RANGE ({spec.partition_column})"
    return sa.Table(
        spec.table,
        metadata,
        *columns,
        sa.PrimaryKeyConstraint(*spec.natural_key, name=f"pk_{spec.table}"),
        comment=spec.description,
        info={
            "source": spec.name,
            "partition_column": spec.partition_column,
            "natural_key": spec.natural_key,
        },
        **kwargs,
    )


RAW_TABLES: dict[str, sa.Table] = {spec.table: _raw_table(spec) for spec in SOURCES.values()}

raw_plans = RAW_TABLES["raw_plans"]
raw_metrics_alltime = RAW_TABLES["raw_metrics_alltime"]
raw_metrics_daily = RAW_TABLES["raw_metrics_daily"]
raw_metrics_hourly = RAW_TABLES["raw_metrics_hourly"]
raw_trades_closed = RAW_TABLES["raw_trades_closed"]
raw_trades_open = RAW_TABLES["raw_trades_open"]
raw_regimes_daily = RAW_TABLES["raw_regimes_daily"]

raw_quarantine = sa.Table(
    QUARANTINE_TABLE,
    metadata,
    sa.Column("id", _ID_TYPE, primary_key=True, autoincrement=True),
    # The asset (table) whose materialisation rejected the record: with partition_date, the
    # unit that a rerun replaces.
    sa.Column("asset", sa.Text(), nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    # Null for unpartitioned assets (plans, alltime metrics).
    sa.Column("partition_date", sa.Date(), nullable=True),
    sa.Column("natural_key", sa.Text(), nullable=True, comment="JSON of the raw key fields"),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("raw_payload", sa.Text(), nullable=False, comment="the record as JSON text"),
    sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.Text(), nullable=False),
    sa.Index("ix_raw_quarantine_asset_partition", "asset", "partition_date"),
    comment="Records rejected by the raw layer, with the reason; replaced per asset partition.",
)

partition_loads = sa.Table(
    PARTITION_LOADS_TABLE,
    metadata,
    sa.Column("id", _ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.Text(), nullable=False),
    # Null for a whole-table write of an unpartitioned table.
    sa.Column("partition_date", sa.Date(), nullable=True),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Column("quarantined_rows", sa.BigInteger(), nullable=False),
    sa.Column("checksum", sa.Text(), nullable=False, comment="sha256 of the business columns"),
    sa.Column("run_id", sa.Text(), nullable=False),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_partition_loads_table_partition", "table_name", "partition_date", "loaded_at"),
    comment="One row per partition per write: the history of every materialisation.",
)


raw_publication_audit = sa.Table(
    PUBLICATION_AUDIT_TABLE,
    metadata,
    sa.Column("id", _ID_TYPE, primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.Text(), nullable=False),
    # Null for a snapshot (plans, the account master).
    sa.Column("partition_date", sa.Date(), nullable=True),
    sa.Column("run_id", sa.Text(), nullable=False),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    # published | waived | withheld | kept_published (daily_profit.ingestion.audit.Outcome)
    sa.Column("outcome", sa.Text(), nullable=False),
    sa.Column("api_total", sa.BigInteger(), nullable=False),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Column("quarantined_rows", sa.BigInteger(), nullable=False),
    sa.Column("failed_checks", sa.Text(), nullable=False, comment="JSON list of check summaries"),
    sa.Column("waiver_reason", sa.Text(), nullable=True),
    sa.Column("checksum", sa.Text(), nullable=True, comment="of the rows the attempt fetched"),
    sa.Index("ix_raw_publication_audit_table_partition", "table_name", "partition_date", "id"),
    comment="One row per attempt to land a raw partition: whether its audit let it replace the "
    "published rows, and what failed.",
)


def table_for(table: str | sa.Table) -> sa.Table:
    """Resolve a table name (or a source name such as ``trades_closed``) to its Table."""
    if isinstance(table, sa.Table):
        return table
    if table in metadata.tables:
        return metadata.tables[table]
    if f"raw_{table}" in metadata.tables:
        return metadata.tables[f"raw_{table}"]
    raise KeyError(f"unknown warehouse table {table!r}; known: {sorted(metadata.tables)}")


def partitioned_tables() -> list[sa.Table]:
    """Tables RANGE-partitioned by date on PostgreSQL."""
    return [t for t in metadata.sorted_tables if t.info.get("partition_column")]


# The derived tables (staging, features, labels) register themselves on the same metadata; they
# import this module, so they come last.
from daily_profit.warehouse import derived  # noqa: E402, F401
