"""The pandera (polars) schema of ``account_features_daily``, generated from the catalog.

Types, nullability and ranges come from ``catalog.py``: a feature added there is validated here
without another edit. ``validate_features`` returns a ``CheckResult`` with pandera's failure
cases summarised (column, check, a few failing values), ready for asset-check metadata.
"""

from __future__ import annotations

from functools import cache

import pandera.polars as pa
import polars as pl

from daily_profit.features.catalog import catalog, feature_set_version
from daily_profit.features.checks import SAMPLE, CheckResult


def _checks(minimum: float | None, maximum: float | None) -> list[pa.Check]:
    if minimum is not None and maximum is not None:
        return [pa.Check.in_range(minimum, maximum)]
    if minimum is not None:
        return [pa.Check.ge(minimum)]
    if maximum is not None:
        return [pa.Check.le(maximum)]
    return []


@cache
def feature_schema() -> pa.DataFrameSchema:
    """Columns in catalog order, strict: no column the catalog does not define."""
    columns: dict[str, pa.Column] = {
        "date": pa.Column(pl.Date, nullable=False),
        "account_id": pa.Column(pl.String, nullable=False),
        "feature_set_version": pa.Column(
            pl.String, nullable=False, checks=[pa.Check.eq(feature_set_version())]
        ),
    }
    for f in catalog():
        columns[f.name] = pa.Column(
            f.polars_dtype,
            nullable=f.nullable,
            checks=_checks(f.min_value, f.max_value),
            description=f.description,
        )
    return pa.DataFrameSchema(
        columns,
        strict=True,
        ordered=True,
        unique=["date", "account_id"],
        name="account_features_daily",
    )


def validate_features(features: pl.DataFrame) -> CheckResult:
    """Validate against ``feature_schema`` (all failures collected, not just the first)."""
    try:
        feature_schema().validate(features, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        summary = (
            cases.group_by("column", "check")
            .agg(pl.len().alias("failures"), pl.col("failure_case").head(SAMPLE).alias("examples"))
            .sort("failures", descending=True)
        )
        return CheckResult(
            name="feature_schema",
            passed=False,
            severity="error",
            metadata={
                "failure_cases": cases.height,
                "by_column": [
                    {
                        "column": r["column"],
                        "check": r["check"],
                        "failures": r["failures"],
                        "examples": [str(v) for v in r["examples"]],
                    }
                    for r in summary.head(SAMPLE * 4).iter_rows(named=True)
                ],
            },
            description="Pandera schema generated from the feature catalog.",
        )
    return CheckResult(
        name="feature_schema",
        passed=True,
        severity="error",
        metadata={"rows": features.height, "columns": features.width},
        description="Pandera schema generated from the feature catalog.",
    )
