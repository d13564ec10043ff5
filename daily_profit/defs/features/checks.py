"""Per-day checks of staging, features and labels.

A range run (a backfill of many days in one run) records each day's result itself, as one
evaluation per partition, so every day shows its own status in the UI. The same checks are
declared as partitioned asset checks too: they appear in the UI and can be re-run for a day,
reading that day back from the warehouse. All of them warn rather than block: a range run can
only warn per day, and the blocking guards stay on the raw partitions upstream.
"""

import datetime as dt
from collections.abc import Callable, Iterator
from functools import cache

import dagster as dg
import polars as pl

from daily_profit.defs.asset_keys import (
    ACCOUNT_FEATURES_DAILY,
    LABELS_NEXT_SESSION,
    STG_ACCOUNTS_DAILY,
)
from daily_profit.defs.partitions import daily_partitions, days_in_window
from daily_profit.defs.resources import WarehouseResource
from daily_profit.features import checks as core
from daily_profit.features.catalog import render_markdown
from daily_profit.warehouse.io import Warehouse

NULL_SHARE_TRAILING_DAYS = 14

ONE_ROW_PER_ACCOUNT_DAY = "one_row_per_account_day"
REQUIRED_COMPLETE = "required_features_complete"
RANGES = "feature_ranges"
COVERAGE = "coverage_against_staging"
NULL_SHARE = "null_share_in_line"
ONE_LABEL = "one_label_per_account_day"
LABEL_COVERAGE = "label_coverage"
BREACH_AGREEMENT = "breach_agrees_with_plan_rules"


@cache
def catalog_markdown() -> str:
    return render_markdown()


def _evaluation(
    asset: dg.AssetKey, name: str, result: core.CheckResult, day: dt.date
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=asset,
        check_name=name,
        passed=result.passed,
        partition=day.isoformat(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={k: _plain(v) for k, v in result.metadata.items()},
        description=result.description or None,
    )


def _plain(value: object) -> object:
    if isinstance(value, dict | list):
        return dg.MetadataValue.json(value)
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def _by_day(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    return frame.filter(pl.col("date") == day)


# The frames one day's checks read: each layer's rows by its asset, and the features' trailing
# window (the null-share baseline, not cut to the day) under TRAILING.
TRAILING = "trailing"
DayFrames = dict[dg.AssetKey | str, pl.DataFrame]

# Each check: (asset, name, description, how to evaluate one day from that day's frames).
CHECKS: list[tuple[dg.AssetKey, str, str, Callable[[DayFrames], core.CheckResult]]] = [
    (
        STG_ACCOUNTS_DAILY,
        ONE_ROW_PER_ACCOUNT_DAY,
        "One row per live funded account per day.",
        lambda f: core.check_unique_keys(f[STG_ACCOUNTS_DAILY]),
    ),
    (
        ACCOUNT_FEATURES_DAILY,
        ONE_ROW_PER_ACCOUNT_DAY,
        "One feature row per account-day.",
        lambda f: core.check_unique_keys(f[ACCOUNT_FEATURES_DAILY]),
    ),
    (
        ACCOUNT_FEATURES_DAILY,
        REQUIRED_COMPLETE,
        "Features the catalog marks required are present and finite on every row.",
        lambda f: core.check_required_complete(f[ACCOUNT_FEATURES_DAILY]),
    ),
    (
        ACCOUNT_FEATURES_DAILY,
        RANGES,
        "Shares within [0, 1], counts and sizes >= 0, as the catalog declares.",
        lambda f: core.check_ranges(f[ACCOUNT_FEATURES_DAILY]),
    ),
    (
        ACCOUNT_FEATURES_DAILY,
        COVERAGE,
        "Every staging account-day has its feature row, and no feature row lacks one.",
        lambda f: core.check_coverage(f[ACCOUNT_FEATURES_DAILY], f[STG_ACCOUNTS_DAILY]),
    ),
    (
        ACCOUNT_FEATURES_DAILY,
        NULL_SHARE,
        "A nullable feature's share of nulls is in line with its trailing average.",
        lambda f: core.check_null_share_drift(
            f[ACCOUNT_FEATURES_DAILY], core.null_shares(f[TRAILING])
        ),
    ),
    (
        LABELS_NEXT_SESSION,
        ONE_LABEL,
        "One label row per account-day.",
        lambda f: core.check_unique_keys(f[LABELS_NEXT_SESSION], name=ONE_LABEL),
    ),
    (
        LABELS_NEXT_SESSION,
        LABEL_COVERAGE,
        "Every feature row has a label row; how many labels are usable and why not.",
        lambda f: core.check_label_coverage(f[LABELS_NEXT_SESSION], f[ACCOUNT_FEATURES_DAILY]),
    ),
    (
        LABELS_NEXT_SESSION,
        BREACH_AGREEMENT,
        "The API's breach status against the plan rules on end-of-day equity.",
        lambda f: core.check_breach_agreement(f[LABELS_NEXT_SESSION]),
    ),
]


def _evaluate(
    asset: dg.AssetKey, frames: DayFrames, day: dt.date
) -> Iterator[dg.AssetCheckEvaluation]:
    day_frames = {k: (_by_day(v, day) if k != TRAILING else v) for k, v in frames.items()}
    for target, name, _, evaluate in CHECKS:
        if target == asset:
            yield _evaluation(asset, name, evaluate(day_frames), day)


def staging_evaluations(frame: pl.DataFrame, days: list[dt.date]) -> Iterator:
    for day in days:
        yield from _evaluate(STG_ACCOUNTS_DAILY, {STG_ACCOUNTS_DAILY: frame}, day)


def feature_evaluations(
    frame: pl.DataFrame, stg: pl.DataFrame, trailing: pl.DataFrame, days: list[dt.date]
) -> Iterator:
    history = pl.concat([trailing, frame], how="vertical_relaxed") if trailing.height else frame
    for day in days:
        window = history.filter(
            pl.col("date").is_between(
                day - dt.timedelta(days=NULL_SHARE_TRAILING_DAYS), day, "left"
            )
        )
        yield from _evaluate(
            ACCOUNT_FEATURES_DAILY,
            {ACCOUNT_FEATURES_DAILY: frame, STG_ACCOUNTS_DAILY: stg, TRAILING: window},
            day,
        )


def label_evaluations(frame: pl.DataFrame, features: pl.DataFrame, days: list[dt.date]) -> Iterator:
    for day in days:
        yield from _evaluate(
            LABELS_NEXT_SESSION,
            {LABELS_NEXT_SESSION: frame, ACCOUNT_FEATURES_DAILY: features},
            day,
        )


def _frames_for(store: Warehouse, asset: dg.AssetKey, start: dt.date, end: dt.date) -> DayFrames:
    # Each layer's warehouse table is named like its asset.
    frames: DayFrames = {asset: store.read_partitions(asset.to_user_string(), start, end)}
    if asset != STG_ACCOUNTS_DAILY:
        frames[ACCOUNT_FEATURES_DAILY] = store.read_partitions("account_features_daily", start, end)
    if asset == ACCOUNT_FEATURES_DAILY:
        frames[STG_ACCOUNTS_DAILY] = store.read_partitions("stg_accounts_daily", start, end)
        frames[TRAILING] = store.read_partitions(
            "account_features_daily",
            start - dt.timedelta(days=NULL_SHARE_TRAILING_DAYS),
            start - dt.timedelta(days=1),
        )
    return frames


def _build_check(
    asset: dg.AssetKey, name: str, description: str, evaluate
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name=name,
        partitions_def=daily_partitions,
        description=description,
    )
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        # Re-run for a day from the UI: read the day back and evaluate. In a range run the
        # asset has already recorded one result per day; this sums them up for the range.
        days = days_in_window(context.partition_time_window)
        frames = _frames_for(warehouse.get(), asset, days[0], days[-1])
        results = {
            day: evaluate({k: (_by_day(v, day) if k != TRAILING else v) for k, v in frames.items()})
            for day in days
        }
        failed = [d.isoformat() for d, r in results.items() if not r.passed]
        metadata: dict[str, object] = {"days": len(days), "days_failed": len(failed)}
        if len(days) == 1:
            metadata.update({k: _plain(v) for k, v in results[days[0]].metadata.items()})
        else:
            metadata["failed_days"] = dg.MetadataValue.json(failed[:50])
        return dg.AssetCheckResult(
            passed=not failed, severity=dg.AssetCheckSeverity.WARN, metadata=metadata
        )

    return _check


feature_checks = [_build_check(*spec) for spec in CHECKS]
