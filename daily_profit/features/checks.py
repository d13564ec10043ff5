"""Checks of the feature and label tables: pure functions returning a ``CheckResult``.

Each result says whether the check passed, how serious a failure is (``error`` blocks what is
downstream, ``warn`` reports a symptom) and carries metadata that explains a failure (counts,
the worst columns, a few offending keys). The Dagster wiring turns them into asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import polars as pl

from daily_profit.features.catalog import Feature, catalog, output_columns
from daily_profit.features.grid import ACCOUNT, DATE
from daily_profit.features.labels import LABEL_STATUSES
from daily_profit.trading_calendar import TradingCalendar, trading_calendar

Severity = Literal["error", "warn"]

KEYS: Final = [DATE, ACCOUNT]
# How many offending keys or columns a result lists in its metadata.
SAMPLE: Final = 5


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one check: ``passed``, its ``severity`` if it fails, and explaining metadata."""

    name: str
    passed: bool
    severity: Severity
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def _sample_keys(frame: pl.DataFrame) -> list[str]:
    # Account ids are pseudonymous already; previews still show only a few.
    return [f"{d}/{a}" for d, a in frame.select(KEYS).head(SAMPLE).iter_rows()]


def check_columns(features: pl.DataFrame) -> CheckResult:
    """The table has exactly the catalog's columns, in order."""
    expected = output_columns()
    missing = [c for c in expected if c not in features.columns]
    extra = [c for c in features.columns if c not in expected]
    return CheckResult(
        name="feature_columns_match_catalog",
        passed=features.columns == expected,
        severity="error",
        metadata={"missing": missing, "unexpected": extra, "n_columns": features.width},
        description="Columns are exactly the feature catalog's, in its order.",
    )


def check_unique_keys(frame: pl.DataFrame, *, name: str = "one_row_per_account_day") -> CheckResult:
    """One row per (date, account_id)."""
    dupes = frame.filter(pl.struct(KEYS).is_duplicated())
    return CheckResult(
        name=name,
        passed=dupes.height == 0,
        severity="error",
        metadata={
            "rows": frame.height,
            "duplicated_rows": dupes.height,
            "sample": _sample_keys(dupes),
        },
        description="Exactly one row per account and day.",
    )


def _bad_counts(features: pl.DataFrame, members: list[Feature], bad: Any) -> dict[str, int]:
    if not members or features.height == 0:
        return {}
    counts = features.select([bad(f).sum().alias(f.name) for f in members]).row(0, named=True)
    return {k: int(v) for k, v in counts.items() if v}


def check_required_complete(features: pl.DataFrame) -> CheckResult:
    """Required features are never null, and no float feature holds NaN or infinity."""
    required = [f for f in catalog() if not f.nullable]
    floats = [f for f in catalog() if f.dtype == "float"]
    nulls = _bad_counts(features, required, lambda f: pl.col(f.name).is_null())
    not_finite = _bad_counts(
        features, floats, lambda f: pl.col(f.name).is_nan() | pl.col(f.name).is_infinite()
    )
    worst = sorted({**nulls, **not_finite}.items(), key=lambda kv: -kv[1])[:SAMPLE]
    return CheckResult(
        name="required_features_complete",
        passed=not nulls and not not_finite,
        severity="error",
        metadata={
            "rows": features.height,
            "required_null_counts": nulls,
            "non_finite_counts": not_finite,
            "worst": dict(worst),
        },
        description="Required features are not null; no feature is NaN or infinite.",
    )


def check_ranges(features: pl.DataFrame) -> CheckResult:
    """Values lie in the catalog's ranges (shares in [0, 1], counts >= 0, ...)."""
    bounded = [f for f in catalog() if f.min_value is not None or f.max_value is not None]

    def outside(f: Feature) -> pl.Expr:
        c = pl.col(f.name)
        low = (c < f.min_value) if f.min_value is not None else pl.lit(False)
        high = (c > f.max_value) if f.max_value is not None else pl.lit(False)
        return (low | high).fill_null(False)

    violations = _bad_counts(features, bounded, outside)
    return CheckResult(
        name="feature_ranges",
        passed=not violations,
        severity="error",
        metadata={"rows": features.height, "out_of_range_counts": violations},
        description="Each feature lies within its catalog range.",
    )


def check_coverage(features: pl.DataFrame, staging: pl.DataFrame) -> CheckResult:
    """Every staging row (live funded account-day) has a feature row, and nothing else does."""
    missing = staging.select(KEYS).join(features.select(KEYS), on=KEYS, how="anti")
    extra = features.select(KEYS).join(staging.select(KEYS), on=KEYS, how="anti")
    return CheckResult(
        name="features_cover_staging",
        passed=missing.height == 0 and extra.height == 0,
        severity="error",
        metadata={
            "staging_rows": staging.height,
            "feature_rows": features.height,
            "missing_rows": missing.height,
            "unexpected_rows": extra.height,
            "sample_missing": _sample_keys(missing),
        },
        description="One feature row per staging row, none without one.",
    )


def check_label_coverage(
    labels: pl.DataFrame, features: pl.DataFrame, calendar: TradingCalendar | None = None
) -> CheckResult:
    """Every feature row of a trading session has a label row (the other days have none by
    design); reports how many labels are usable and why not.

    Fails when a label row is missing or when a label that should be decided by now is
    neither observed nor explained (``label_status`` covers every case by construction, so
    this is about rows, not values).
    """
    features = (calendar or trading_calendar()).only_sessions(features, DATE)
    missing = features.select(KEYS).join(labels.select(KEYS), on=KEYS, how="anti")
    statuses = dict(labels.group_by("label_status").len().iter_rows()) if labels.height else {}
    by_status = {s: int(statuses.get(s, 0)) for s in LABEL_STATUSES}
    available = int(labels["label_available"].sum()) if labels.height else 0
    return CheckResult(
        name="labels_cover_features",
        passed=missing.height == 0,
        severity="error",
        metadata={
            "session_feature_rows": features.height,
            "label_rows": labels.height,
            "missing_label_rows": missing.height,
            "labels_available": available,
            "available_share": available / labels.height if labels.height else None,
            "by_status": by_status,
        },
        description="One label row per feature row of a session; usable labels by status.",
    )


def check_breach_agreement(
    labels: pl.DataFrame, *, max_disagreement_share: float = 0.05
) -> CheckResult:
    """The API's breach flag against the plan rules on end-of-day equity (a warning).

    The API can see an intraday breach that the close does not show (API yes, rules no): some
    of those are expected. A close that breaks the rules without an API breach (rules yes, API
    no) points at a rule or data fault and is counted separately.
    """
    both = labels.filter(pl.col("breach_by_rules").is_not_null())
    api_only = both.filter(pl.col("breached_next_session") & ~pl.col("breach_by_rules")).height
    rules_only = both.filter(~pl.col("breached_next_session") & pl.col("breach_by_rules")).height
    share = (api_only + rules_only) / both.height if both.height else 0.0
    return CheckResult(
        name="breach_label_matches_rules",
        passed=rules_only == 0 and share <= max_disagreement_share,
        severity="warn",
        metadata={
            "compared_rows": both.height,
            "api_breach_not_by_rules": api_only,
            "rules_breach_not_by_api": rules_only,
            "disagreement_share": share,
        },
        description="API breach flags agree with the plan rules applied to end-of-day equity.",
    )


def null_shares(features: pl.DataFrame) -> pl.DataFrame:
    """Share of nulls of every nullable feature per day: (date, feature, null_share)."""
    nullable = [f.name for f in catalog() if f.nullable]
    return (
        features.group_by(DATE)
        .agg([pl.col(n).null_count().truediv(pl.len()).alias(n) for n in nullable])
        .unpivot(index=DATE, variable_name="feature", value_name="null_share")
        .sort(DATE, "feature")
    )


def check_null_share_drift(
    today: pl.DataFrame,
    trailing: pl.DataFrame,
    *,
    tolerance: float = 0.15,
    spread: float = 4.0,
) -> CheckResult:
    """A nullable feature's null share today against its trailing average (a warning).

    ``today``: the feature rows of one day. ``trailing``: ``null_shares`` of the days before
    (e.g. the last 20). A feature whose null share rose above its trailing mean by more than
    ``tolerance`` and by more than ``spread`` trailing standard deviations points at a feed
    that went missing (regimes, hourly metrics, open trades); the second condition keeps the
    ordinary week rhythm (quiet weekends empty short windows) from raising it.
    """
    current = null_shares(today).group_by("feature").agg(pl.col("null_share").mean().alias("today"))
    baseline = trailing.group_by("feature").agg(
        pl.col("null_share").mean().alias("trailing_mean"),
        pl.col("null_share").std().fill_null(0.0).alias("trailing_std"),
        pl.col(DATE).n_unique().alias("days"),
    )
    compared = current.join(baseline, on="feature", how="inner").with_columns(
        (pl.col("today") - pl.col("trailing_mean")).alias("rise")
    )
    drifted = compared.filter(
        (pl.col("rise") > tolerance) & (pl.col("rise") > spread * pl.col("trailing_std"))
    ).sort("rise", descending=True)
    return CheckResult(
        name="null_share_vs_trailing",
        passed=drifted.height == 0,
        severity="warn",
        metadata={
            "features_compared": compared.height,
            "trailing_days": int(baseline["days"].max() or 0) if baseline.height else 0,
            "tolerance": tolerance,
            "drifted": {
                r["feature"]: {
                    "today": round(r["today"], 4),
                    "trailing": round(r["trailing_mean"], 4),
                }
                for r in drifted.head(SAMPLE * 2).iter_rows(named=True)
            },
        },
        description="Null shares of nullable features stay near their trailing average.",
    )


def check_feature_set_version(features: pl.DataFrame, expected: str) -> CheckResult:
    """Every row carries the feature-set version of the code that wrote it."""
    versions = features["feature_set_version"].unique().to_list() if features.height else []
    return CheckResult(
        name="feature_set_version_current",
        passed=all(v == expected for v in versions),
        severity="error",
        metadata={"expected": expected, "found": versions[:SAMPLE]},
        description="Rows carry the current feature-set version.",
    )


def run_feature_checks(
    features: pl.DataFrame, staging: pl.DataFrame, labels: pl.DataFrame | None = None
) -> list[CheckResult]:
    """The structural checks of one feature build (and its labels, when given)."""
    results = [
        check_columns(features),
        check_unique_keys(features),
        check_required_complete(features),
        check_ranges(features),
        check_coverage(features, staging),
    ]
    if labels is not None:
        results += [
            check_unique_keys(labels, name="one_label_per_account_day"),
            check_label_coverage(labels, features),
            check_breach_agreement(labels),
        ]
    return results
