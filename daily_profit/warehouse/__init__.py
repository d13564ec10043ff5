"""The warehouse: raw source specs and parsing, table definitions, partition-aware polars IO.

- ``records``: field specs of each raw source (the one source of truth for column names and
  types) and ``parse_records`` (valid rows + quarantine + unknown fields).
- ``tables``: SQLAlchemy Core tables generated from those specs, plus ``raw_quarantine`` and
  ``partition_loads``.
- ``io``: ``Warehouse`` with ``replace_partitions`` / ``replace_table`` (one transaction per
  materialisation, COPY on PostgreSQL) and ``read_partitions`` / ``read_table``.
- ``migrate``: Alembic upgrade (``uv run python -m daily_profit.warehouse.migrate``).

No dagster below this package.
"""

from typing import Any

from daily_profit.warehouse.io import Warehouse, WriteResult
from daily_profit.warehouse.records import (
    SOURCES,
    ParsedRecords,
    SourceSpec,
    parse_plans_csv,
    parse_records,
    source_spec,
)

__all__ = [
    "SOURCES",
    "ParsedRecords",
    "SourceSpec",
    "Warehouse",
    "WriteResult",
    "parse_plans_csv",
    "parse_records",
    "source_spec",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    # Lazy: importing migrate here would make ``python -m daily_profit.warehouse.migrate``
    # find its own module already imported (runpy's RuntimeWarning).
    if name == "upgrade":
        from daily_profit.warehouse.migrate import upgrade

        return upgrade
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
