"""Staging, features and labels: from the raw layer to what the model learns from.

Each asset computes a whole range of days in one vectorised pass (single-run backfills: a year
is one run that reads each raw partition once, not 365 runs re-reading overlapping lookbacks),
writes the range in one transaction, and still records every day's own check results.
"""

import datetime as dt
import hashlib
import time
from collections.abc import Iterator

import dagster as dg
import polars as pl

from daily_profit.config import get_settings
from daily_profit.defs import guards
from daily_profit.defs.features import checks
from daily_profit.defs.metadata import preview, targeted
from daily_profit.defs.partitions import daily_partitions, days_in_window
from daily_profit.defs.resources import WarehouseResource
from daily_profit.features import staging as staging_core
from daily_profit.features.catalog import catalog, feature_set_version
from daily_profit.features.pipeline import (
    FEATURE_HISTORY_DAYS,
    LABEL_GRACE_DAYS,
    build_features,
    build_labels,
    build_staging,
    label_horizon_end,
    required_history_start,
)
from daily_profit.trading_calendar import trading_calendar
from daily_profit.warehouse.desk import refresh_summary
from daily_profit.warehouse.io import Warehouse

STAGING_GROUP = "staging"
FEATURES_GROUP = "features"
SINGLE_RUN = dg.BackfillPolicy.single_run()

LOOKBACK = dg.TimeWindowPartitionMapping(start_offset=-FEATURE_HISTORY_DAYS)
# A label of D reads its target span (up to the next session) and the grace days after it.
NEXT_DAYS = dg.TimeWindowPartitionMapping(
    start_offset=1,
    end_offset=trading_calendar().longest_span_days() + LABEL_GRACE_DAYS,
    allow_nonexistent_upstream_partitions=True,
)
LABEL_COLUMNS = [
    "account_id",
    "date",
    "status",
    "net_profit",
    "current_equity",
    "current_balance",
    "prior_days_balance",
]
FEATURE_METRICS_COLUMNS = [
    "account_id",
    "login",
    "platform",
    "broker",
    "date",
    "net_profit",
    "num_trades",
    "starting_balance",
]
FEATURE_HOURLY_COLUMNS = ["account_id", "date", "hour", "num_trades"]


def _range(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date, list[dt.date]]:
    days = days_in_window(context.partition_time_window)
    return days[0], days[-1], days


def _usable(
    store: Warehouse, days: list[dt.date], requirements
) -> tuple[list[dt.date], dict[dt.date, list[str]]]:
    """The days whose raw inputs are all published, and what each other day waits for."""
    blocked = guards.skipped_days(store, days, requirements)
    return [d for d in days if d not in blocked], blocked


def _only(frame: pl.DataFrame, days: list[dt.date]) -> pl.DataFrame:
    return frame.filter(pl.col("date").is_in(days)) if frame.height else frame


def _write(
    store: Warehouse, table: str, frame: pl.DataFrame, days: list[dt.date], run_id: str
) -> dict[str, object]:
    if not days:
        return {"rows": 0, "days": 0}
    written = store.replace_partitions(table, frame, dates=days, run_id=run_id)
    return {
        "rows": written.total_rows,
        "days": len(days),
        "first_day": days[0].isoformat(),
        "last_day": days[-1].isoformat(),
        "accounts": frame["account_id"].n_unique() if frame.height else 0,
        # One checksum per day would flood the UI on a year's backfill: the range's digest of
        # the per-day checksums (each is in the warehouse's partition_loads table).
        "checksum": written.checksums[days[-1]] if len(days) == 1 else _digest(written.checksums),
        "write_s": round(written.seconds, 3),
    }


def _digest(checksums: dict) -> str:
    joined = "".join(f"{k}:{v}" for k, v in sorted(checksums.items(), key=lambda kv: str(kv[0])))
    return hashlib.sha256(joined.encode()).hexdigest()


@dg.asset(
    group_name=STAGING_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    deps=["raw_metrics_daily", "raw_plans", "raw_metrics_alltime"],
    kinds={"polars", "sql"},
    tags={"layer": "staging"},
)
def stg_accounts_daily(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation]:
    """Point-in-time state of every live funded account (phase 4, not breached) on each day:
    the plan of that day with its rules, start- and end-of-day balance and equity, high-water
    mark, distance in USD and % of starting balance to the daily loss limit, the drawdown floor
    and the profit target, days since first trade, active trading days and payouts so far, days
    to the next payout. Cumulative state comes from the account's whole history up to that day;
    trader, platform, broker and country from the account master (static attributes only)."""
    started = time.perf_counter()
    start, end, days = _range(context)
    store = warehouse.get()
    usable, blocked = _usable(store, days, guards.staging_requirements())
    history = store.read_partitions(
        "raw_metrics_daily",
        get_settings().start_date,
        end,
        columns=list(staging_core.METRICS_DAILY_COLUMNS),
    )
    frame = build_staging(
        history,
        store.read_table("raw_plans"),
        store.read_table("raw_metrics_alltime"),
        start=start,
        end=end,
    )
    frame = _only(frame, usable)
    meta = _write(store, "stg_accounts_daily", frame, usable, context.run.run_id)
    yield dg.MaterializeResult(
        metadata={
            **meta,
            **guards.guard_metadata(blocked),
            "duration_s": round(time.perf_counter() - started, 3),
            "preview": preview(frame),
        }
    )
    yield from targeted(context, guards.guard_evaluations("stg_accounts_daily", days, blocked))
    yield from targeted(context, checks.staging_evaluations(frame, usable))


@dg.asset(
    group_name=FEATURES_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    deps=[
        dg.AssetDep("stg_accounts_daily"),
        dg.AssetDep("raw_metrics_daily", partition_mapping=LOOKBACK),
        dg.AssetDep("raw_metrics_hourly", partition_mapping=LOOKBACK),
        dg.AssetDep("raw_trades_closed", partition_mapping=LOOKBACK),
        dg.AssetDep("raw_regimes_daily", partition_mapping=LOOKBACK),
        dg.AssetDep("raw_trades_open"),
    ],
    kinds={"polars", "sql"},
    tags={"layer": "features"},
)
def account_features_daily(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation]:
    """Features of each live funded account-day D, computed only from data dated D or earlier:
    daily P&L over 1-20 calendar days (idle days count as zero), trading behaviour from closed
    trades, session mix, size escalation after losses, open exposure at the end of D, distance
    to the plan's limits relative to the account's usual swing, the market regime of D and the
    calendar. Every column is described in the feature catalog (metadata below and
    docs/feature_catalog.md); rows carry the feature-set version."""
    started = time.perf_counter()
    start, end, days = _range(context)
    store = warehouse.get()
    usable, blocked = _usable(store, days, guards.feature_requirements())
    history_start = required_history_start(start)
    stg = store.read_partitions("stg_accounts_daily", start, end)
    frame = build_features(
        stg,
        store.read_partitions(
            "raw_metrics_daily", history_start, end, columns=FEATURE_METRICS_COLUMNS
        ),
        store.read_partitions(
            "raw_metrics_hourly", history_start, end, columns=FEATURE_HOURLY_COLUMNS
        ),
        store.read_partitions("raw_trades_closed", history_start, end),
        store.read_partitions("raw_trades_open", start, end),
        store.read_partitions("raw_regimes_daily", history_start, end),
        start=start,
        end=end,
    )
    frame = _only(frame, usable)
    stg = _only(stg, usable)
    meta = _write(store, "account_features_daily", frame, usable, context.run.run_id)
    yield dg.MaterializeResult(
        metadata={
            **meta,
            **guards.guard_metadata(blocked),
            "feature_set_version": feature_set_version(),
            "features": len(catalog()),
            "catalog": dg.MetadataValue.md(checks.catalog_markdown()),
            "duration_s": round(time.perf_counter() - started, 3),
            "account_days_per_s": round(frame.height / max(time.perf_counter() - started, 1e-9)),
            "preview": preview(frame),
        }
    )
    trailing = store.read_partitions(
        "account_features_daily",
        start - dt.timedelta(days=checks.NULL_SHARE_TRAILING_DAYS),
        start - dt.timedelta(days=1),
    )
    yield from targeted(context, guards.guard_evaluations("account_features_daily", days, blocked))
    yield from targeted(context, checks.feature_evaluations(frame, stg, trailing, usable))


@dg.asset(
    group_name=FEATURES_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    deps=[
        dg.AssetDep("stg_accounts_daily"),
        dg.AssetDep("raw_metrics_daily", partition_mapping=NEXT_DAYS),
    ],
    kinds={"polars", "sql"},
    tags={"layer": "features"},
)
def labels_next_session(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation]:
    """What the model learns to predict, for each trading session D (no rows for the other
    days): the account's net profit from the day after D up to and including the next session
    (Friday: Saturday + Sunday + Monday; `target_start`..`target_end`) and whether it breached
    in that span (the API's status, cross-checked against the plan rules on end-of-day equity).
    A day of the span without a row counts as idle (0) when the balance proves it, leaves the
    label unknown when the balance moved, and the label is pending until the span's last day
    has been ingested: see label_status. The sessions come from the trading calendar
    (DAILY_PROFIT_TRADING_WEEKDAYS, DAILY_PROFIT_TRADING_HOLIDAYS)."""
    started = time.perf_counter()
    start, end, days = _range(context)
    store = warehouse.get()
    calendar = trading_calendar()
    # Through the last span's end - 1: the rules hold each day to the floors of the day before.
    stg = store.read_partitions(
        "stg_accounts_daily", start, calendar.target_span(end)[1] - dt.timedelta(days=1)
    )
    horizon = label_horizon_end(end, calendar)
    next_days = store.read_partitions(
        "raw_metrics_daily", start + dt.timedelta(days=1), horizon, columns=LABEL_COLUMNS
    )
    loaded = store.partition_row_counts("raw_metrics_daily", start, horizon)
    available_through = max(loaded) if loaded else None
    # A target day that failed its audit is a hole, not an idle day: its labels wait.
    usable, blocked = _usable(store, days, guards.label_requirements())
    frame = build_labels(
        stg,
        next_days,
        start=start,
        end=end,
        available_through=available_through,
        calendar=calendar,
    )
    frame = _only(frame, usable)
    meta = _write(store, "labels_next_session", frame, usable, context.run.run_id)
    status_counts = frame.group_by("label_status").len().sort("label_status")
    yield dg.MaterializeResult(
        metadata={
            **meta,
            "trading_calendar": calendar.description,
            "sessions": sum(calendar.is_session(d) for d in days),
            "label_status": dg.MetadataValue.json(
                {str(k): v for k, v in status_counts.iter_rows()}
            ),
            "usable_labels": int(frame["label_available"].sum()) if frame.height else 0,
            **guards.guard_metadata(blocked),
            "duration_s": round(time.perf_counter() - started, 3),
            "preview": preview(frame),
        }
    )
    features = store.read_partitions(
        "account_features_daily", start, end, columns=["date", "account_id"]
    )
    yield from targeted(context, guards.guard_evaluations("labels_next_session", days, blocked))
    yield from targeted(context, checks.label_evaluations(frame, features, usable))


@dg.asset(
    group_name=FEATURES_GROUP,
    deps=["stg_accounts_daily", "account_features_daily", "raw_metrics_daily"],
    kinds={"sql"},
    tags={"layer": "desk"},
)
def account_performance_summary(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """For the desk, one row per funded account: lifetime, last-5-day and last-20-day net
    profit, win rate over active days, worst drawdown of end-of-day equity from its peak, and
    today's distance to the daily loss limit and to the drawdown floor. A materialised view on
    PostgreSQL (refreshed here, concurrently, so readers never wait); a view on SQLite."""
    started = time.perf_counter()
    summary = refresh_summary(warehouse.get())
    return dg.MaterializeResult(
        metadata={
            "accounts": summary.height,
            "duration_s": round(time.perf_counter() - started, 3),
            "closest_to_daily_loss_limit": preview(
                summary.sort("dist_daily_loss_usd", nulls_last=True).head(10)
            )
            if summary.height
            else "no funded accounts yet",
        }
    )


guard_checks = guards.declared_guard_checks()

feature_assets = [
    stg_accounts_daily,
    account_features_daily,
    labels_next_session,
    account_performance_summary,
]
