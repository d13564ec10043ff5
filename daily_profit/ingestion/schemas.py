"""pandera (polars) schemas of the raw tables, generated from the same specs as the tables.

The parser already refuses bad records; these schemas check what actually landed, so a bug in
the parser or the write path shows up as a failing check instead of a silent bad row.
"""

from __future__ import annotations

from functools import cache

import pandera.polars as pa
import polars as pl

from daily_profit.warehouse.records import FieldSpec, source_spec


def _checks(spec: FieldSpec) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if spec.gt is not None:
        checks.append(pa.Check.gt(spec.gt))
    if spec.ge is not None:
        checks.append(pa.Check.ge(spec.ge))
    if spec.lt is not None:
        checks.append(pa.Check.lt(spec.lt))
    if spec.le is not None:
        checks.append(pa.Check.le(spec.le))
    if spec.choices is not None:
        checks.append(pa.Check.isin(list(spec.choices)))
    return checks


@cache
def raw_schema(source: str) -> pa.DataFrameSchema:
    """The schema of a raw table's business columns: types, nullability and value rules."""
    spec = source_spec(source)
    key = set(spec.natural_key)
    columns = {
        f.column: pa.Column(
            f.dtype,
            checks=_checks(f),
            nullable=not (f.required or f.column in key),
            coerce=False,
        )
        for f in spec.fields
    }
    # Key uniqueness is its own check (natural_key_unique), so it is not repeated here.
    return pa.DataFrameSchema(columns, strict=False)


def schema_failures(source: str, frame: pl.DataFrame, limit: int = 20) -> pl.DataFrame | None:
    """None when the frame conforms; otherwise pandera's failure cases (column, check, case)."""
    try:
        raw_schema(source).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        return cases.select(
            [c for c in ("column", "check", "failure_case", "index") if c in cases.columns]
        ).head(limit)
    return None
