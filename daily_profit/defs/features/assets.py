"""Staging, features and labels: from the raw layer to what the model learns from.

Each asset computes a whole range of days in one run (single-run backfills: a year is one run,
not 365 runs re-reading overlapping lookbacks), vectorised over chunks of whole days of at most
``features_chunk_account_days`` account-days (``pipeline.chunk_ranges``): each chunk reads its
days with only the lookback it needs, is written (one transaction per chunk) and dropped before
the next, so memory follows the chunk, not the history or the firm's size over a year. Every
day still records its own check results.
"""

import datetime as dt
import hashlib
import time
from collections.abc import Iterator

import dagster as dg
import polars as pl

from daily_profit.config import get_settings
from daily_profit.defs import guards
from daily_profit.defs.asset_keys import (
    ACCOUNT_FEATURES_DAILY,
    LABELS_NEXT_SESSION,
    RAW_METRICS_ALLTIME,
    RAW_METRICS_DAILY,
    RAW_METRICS_HOURLY,
    RAW_PLANS,
    RAW_REGIMES_DAILY,
    RAW_TRADES_CLOSED,
    RAW_TRADES_OPEN,
    STG_ACCOUNTS_DAILY,
)
from daily_profit.defs.features import checks
from daily_profit.defs.metadata import preview, targeted
from daily_profit.defs.partitions import daily_partitions, days_in_window
from daily_profit.defs.resources import WarehouseResource
from daily_profit.features import staging as staging_core
from daily_profit.features.catalog import catalog, feature_set_version
from daily_profit.features.pipeline import (
    FEATURE_HISTORY_DAYS,
    LABEL_GRACE_DAYS,
    Reader,
    chunk_ranges,
    features_in_chunks,
    label_horizon_end,
    labels_in_chunks,
    staging_in_chunks,
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


def _reader(store: Warehouse) -> Reader:
    def read(table: str, first: dt.date, last: dt.date, columns) -> pl.DataFrame:
        return store.read_partitions(table, first, last, columns=list(columns) or None)

    return read


def _chunks(store: Warehouse, first: dt.date, last: dt.date) -> list[tuple[dt.date, dt.date]]:
    """[first, last] in chunks sized by the account-days of raw_metrics_daily they hold."""
    rows_per_day = store.partition_row_counts("raw_metrics_daily", first, last)
    return chunk_ranges(rows_per_day, first, last, get_settings().features_chunk_account_days)


def _within(days: list[dt.date], first: dt.date, last: dt.date) -> list[dt.date]:
    return [d for d in days if first <= d <= last]


class _Written:
    """What the chunks of a range run wrote, gathered for the materialisation's metadata."""

    def __init__(self, store: Warehouse, table: str, run_id: str) -> None:
        self.store, self.table, self.run_id = store, table, run_id
        self.rows, self.seconds, self.chunks = 0, 0.0, 0
        self.days: list[dt.date] = []
        self.checksums: dict = {}
        self.accounts: set[str] = set()
        self.last_frame: pl.DataFrame | None = None

    def write(self, frame: pl.DataFrame, days: list[dt.date]) -> None:
        self.chunks += 1
        if frame.height:
            self.last_frame = frame.head(10)
            self.accounts.update(frame["account_id"].unique().to_list())
        if not days:
            return
        written = self.store.replace_partitions(self.table, frame, dates=days, run_id=self.run_id)
        self.rows += written.total_rows
        self.seconds += written.seconds
        self.days.extend(days)
        self.checksums.update(written.checksums)

    def metadata(self) -> dict[str, object]:
        if not self.days:
            return {"rows": 0, "days": 0, "chunks": self.chunks}
        days = self.days
        return {
            "rows": self.rows,
            "days": len(days),
            "first_day": days[0].isoformat(),
            "last_day": days[-1].isoformat(),
            "accounts": len(self.accounts),
            # One checksum per day would flood the UI on a year's backfill: the range's digest
            # of the per-day checksums (each is in the warehouse's partition_loads table).
            "checksum": self.checksums[days[-1]] if len(days) == 1 else _digest(self.checksums),
            "write_s": round(self.seconds, 3),
            "chunks": self.chunks,
        }

    def preview(self) -> dg.MetadataValue:
        return preview(self.last_frame if self.last_frame is not None else pl.DataFrame())


def _digest(checksums: dict) -> str:
    joined = "".join(f"{k}:{v}" for k, v in sorted(checksums.items(), key=lambda kv: str(kv[0])))
    return hashlib.sha256(joined.encode()).hexdigest()


@dg.asset(
    group_name=STAGING_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    deps=[RAW_METRICS_DAILY, RAW_PLANS, RAW_METRICS_ALLTIME],
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
    first_partition = get_settings().start_date
    # The days before the range only feed the cumulative state, read a chunk at a time.
    history = (
        _chunks(store, first_partition, start - dt.timedelta(days=1))
        if start > first_partition
        else []
    )
    written = _Written(store, "stg_accounts_daily", context.run.run_id)
    evaluations: list[dg.AssetCheckEvaluation] = []
    for first, last, frame in staging_in_chunks(
        _reader(store),
        store.read_table("raw_plans"),
        store.read_table(
            "raw_metrics_alltime", columns=["account_id", *staging_core.MASTER_STATIC_COLUMNS]
        ),
        _chunks(store, start, end),
        history=history,
    ):
        chunk_usable = _within(usable, first, last)
        frame = _only(frame, chunk_usable)
        written.write(frame, chunk_usable)
        evaluations.extend(checks.staging_evaluations(frame, chunk_usable))
    yield dg.MaterializeResult(
        metadata={
            **written.metadata(),
            "history_chunks": len(history),
            **guards.guard_metadata(blocked),
            "duration_s": round(time.perf_counter() - started, 3),
            "preview": written.preview(),
        }
    )
    yield from targeted(context, guards.guard_evaluations(STG_ACCOUNTS_DAILY, days, blocked))
    yield from targeted(context, evaluations)


@dg.asset(
    group_name=FEATURES_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    deps=[
        dg.AssetDep(STG_ACCOUNTS_DAILY),
        dg.AssetDep(RAW_METRICS_DAILY, partition_mapping=LOOKBACK),
        dg.AssetDep(RAW_METRICS_HOURLY, partition_mapping=LOOKBACK),
        dg.AssetDep(RAW_TRADES_CLOSED, partition_mapping=LOOKBACK),
        dg.AssetDep(RAW_REGIMES_DAILY, partition_mapping=LOOKBACK),
        dg.AssetDep(RAW_TRADES_OPEN),
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
    written = _Written(store, "account_features_daily", context.run.run_id)
    evaluations: list[dg.AssetCheckEvaluation] = []
    for first, last, stg, frame in features_in_chunks(_reader(store), _chunks(store, start, end)):
        chunk_usable = _within(usable, first, last)
        frame = _only(frame, chunk_usable)
        written.write(frame, chunk_usable)
        # The trailing days of the null-share check include the chunks written before this one.
        trailing = store.read_partitions(
            "account_features_daily",
            first - dt.timedelta(days=checks.NULL_SHARE_TRAILING_DAYS),
            first - dt.timedelta(days=1),
        )
        evaluations.extend(
            checks.feature_evaluations(frame, _only(stg, chunk_usable), trailing, chunk_usable)
        )
    elapsed = time.perf_counter() - started
    yield dg.MaterializeResult(
        metadata={
            **written.metadata(),
            **guards.guard_metadata(blocked),
            "feature_set_version": feature_set_version(),
            "features": len(catalog()),
            "catalog": dg.MetadataValue.md(checks.catalog_markdown()),
            "duration_s": round(elapsed, 3),
            "account_days_per_s": round(written.rows / max(elapsed, 1e-9)),
            "preview": written.preview(),
        }
    )
    yield from targeted(context, guards.guard_evaluations(ACCOUNT_FEATURES_DAILY, days, blocked))
    yield from targeted(context, evaluations)


@dg.asset(
    group_name=FEATURES_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    deps=[
        dg.AssetDep(STG_ACCOUNTS_DAILY),
        dg.AssetDep(RAW_METRICS_DAILY, partition_mapping=NEXT_DAYS),
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
    horizon = label_horizon_end(end, calendar)
    loaded = store.partition_row_counts("raw_metrics_daily", start, horizon)
    available_through = max(loaded) if loaded else None
    # A target day that failed its audit is a hole, not an idle day: its labels wait.
    usable, blocked = _usable(store, days, guards.label_requirements())
    written = _Written(store, "labels_next_session", context.run.run_id)
    evaluations: list[dg.AssetCheckEvaluation] = []
    status_counts: dict[str, int] = {}
    usable_labels = 0
    chunks = chunk_ranges(loaded, start, end, get_settings().features_chunk_account_days)
    for first, last, frame in labels_in_chunks(
        _reader(store), chunks, available_through=available_through, calendar=calendar
    ):
        chunk_usable = _within(usable, first, last)
        frame = _only(frame, chunk_usable)
        written.write(frame, chunk_usable)
        for status, n in frame.group_by("label_status").len().iter_rows():
            status_counts[str(status)] = status_counts.get(str(status), 0) + n
        usable_labels += int(frame["label_available"].sum()) if frame.height else 0
        features = store.read_partitions(
            "account_features_daily", first, last, columns=["date", "account_id"]
        )
        evaluations.extend(checks.label_evaluations(frame, features, chunk_usable))
    yield dg.MaterializeResult(
        metadata={
            **written.metadata(),
            "trading_calendar": calendar.description,
            "sessions": sum(calendar.is_session(d) for d in days),
            "label_status": dg.MetadataValue.json(dict(sorted(status_counts.items()))),
            "usable_labels": usable_labels,
            **guards.guard_metadata(blocked),
            "duration_s": round(time.perf_counter() - started, 3),
            "preview": written.preview(),
        }
    )
    yield from targeted(context, guards.guard_evaluations(LABELS_NEXT_SESSION, days, blocked))
    yield from targeted(context, evaluations)


@dg.asset(
    group_name=FEATURES_GROUP,
    deps=[STG_ACCOUNTS_DAILY, ACCOUNT_FEATURES_DAILY, RAW_METRICS_DAILY],
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
