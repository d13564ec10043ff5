"""Metadata every asset attaches: previews with identities masked, counts, JSON summaries."""

import datetime as dt
from typing import Any

import dagster as dg
import polars as pl

from daily_profit.privacy import mask_identities

PREVIEW_ROWS = 10
PREVIEW_COLUMNS = 14


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def preview(frame: pl.DataFrame, *, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """A few rows as a UI table; logins, trader and account ids shown only as hashes."""
    head = mask_identities(frame.head(rows).select(frame.columns[:PREVIEW_COLUMNS]))
    records = [
        dg.TableRecord({k: _cell(v) for k, v in row.items()}) for row in head.iter_rows(named=True)
    ]
    return dg.MetadataValue.table(
        records=records,
        schema=dg.TableSchema(
            columns=[dg.TableColumn(name=c, type=str(t)) for c, t in head.schema.items()]
        ),
    )


def frame_table(frame: pl.DataFrame, *, rows: int = 50) -> dg.MetadataValue:
    """A small result frame (check failures, mismatches) as a UI table, identities masked."""
    return preview(frame, rows=rows)


def json_value(value: Any) -> dg.MetadataValue:
    return dg.MetadataValue.json(value)
