"""Per-day checks of the raw layer.

Blocking (a failure stops what is downstream in the run): the schema of what landed, natural-key
uniqueness, and completeness against the API's own total. Warnings (a symptom worth a look, the
data still flows): row counts out of line with recent days, fields the contract does not know,
and trades or hourly rows that do not add up to the daily metrics.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import polars as pl

from daily_profit.defs.metadata import frame_table, json_value
from daily_profit.defs.partitions import daily_partitions, partition_day
from daily_profit.defs.resources import WarehouseResource
from daily_profit.ingestion import sources
from daily_profit.ingestion.ingest import IngestReport
from daily_profit.ingestion.reconcile import (
    Reconciliation,
    closed_trades_vs_daily,
    hourly_vs_daily,
)
from daily_profit.ingestion.schemas import schema_failures
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.records import source_spec

SCHEMA_VALID = "schema_valid"
NATURAL_KEY_UNIQUE = "natural_key_unique"
COMPLETE_AGAINST_API = "complete_against_api"
ROW_COUNT_IN_LINE = "row_count_in_line"
NO_UNKNOWN_FIELDS = "no_unknown_fields"
RECONCILES_WITH_DAILY = "reconciles_with_daily_metrics"

# A day's row count is compared with the same kind of day (weekday or weekend) among the last
# TRAILING_DAYS partitions; outside [1/ANOMALY_RATIO, ANOMALY_RATIO] x their median is flagged.
TRAILING_DAYS = 14
MIN_HISTORY = 3
ANOMALY_RATIO = 2.0


def _specs(asset: str, *, partitioned: bool) -> list[dg.AssetCheckSpec]:
    partitions = daily_partitions if partitioned else None
    specs = [
        dg.AssetCheckSpec(
            SCHEMA_VALID,
            asset=asset,
            blocking=True,
            partitions_def=partitions,
            description="Every landed row has the contract's types, nullability and value rules "
            "(pandera).",
        ),
        dg.AssetCheckSpec(
            NATURAL_KEY_UNIQUE,
            asset=asset,
            blocking=True,
            partitions_def=partitions,
            description="No two landed rows share the natural key.",
        ),
        dg.AssetCheckSpec(
            COMPLETE_AGAINST_API,
            asset=asset,
            blocking=True,
            partitions_def=partitions,
            description="Rows landed + rows quarantined = the total the API reported: nothing "
            "served was lost, nothing the API holds was skipped by paging.",
        ),
        dg.AssetCheckSpec(
            NO_UNKNOWN_FIELDS,
            asset=asset,
            partitions_def=partitions,
            description="Warns when records carry fields the contract does not name "
            "(schema drift upstream).",
        ),
    ]
    if partitioned:
        specs.append(
            dg.AssetCheckSpec(
                ROW_COUNT_IN_LINE,
                asset=asset,
                partitions_def=partitions,
                description="Warns when the day's row count is far from recent days of the "
                "same kind (weekday or weekend).",
            )
        )
    return specs


def daily_check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    return _specs(asset, partitioned=True)


def snapshot_check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    return _specs(asset, partitioned=False)


def _common_results(asset: str, report: IngestReport) -> Iterator[dg.AssetCheckResult]:
    spec = source_spec(asset)
    frame = report.frame
    failures = schema_failures(spec.name, frame)
    yield dg.AssetCheckResult(
        asset_key=asset,
        check_name=SCHEMA_VALID,
        passed=failures is None,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rows_checked": frame.height,
            **({"failure_cases": frame_table(failures)} if failures is not None else {}),
        },
    )
    key = list(spec.natural_key)
    duplicated = (
        frame.filter(pl.struct(key).is_duplicated()).select(key).unique()
        if frame.height
        else pl.DataFrame()
    )
    yield dg.AssetCheckResult(
        asset_key=asset,
        check_name=NATURAL_KEY_UNIQUE,
        passed=duplicated.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "natural_key": ", ".join(key),
            "duplicated_keys": duplicated.height,
            **({"examples": frame_table(duplicated, rows=20)} if duplicated.height else {}),
        },
    )
    yield dg.AssetCheckResult(
        asset_key=asset,
        check_name=COMPLETE_AGAINST_API,
        passed=report.complete,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "api_total": report.api_total,
            "rows_landed": report.landed,
            "rows_quarantined": report.quarantined,
            "missing": report.api_total - report.accounted,
            "recovered_after_repaging": report.recovered,
            "identical_duplicates_dropped": report.identical_duplicates,
            "conflicting_duplicates": report.conflicting_duplicates,
        },
    )
    yield dg.AssetCheckResult(
        asset_key=asset,
        check_name=NO_UNKNOWN_FIELDS,
        passed=not report.unknown_fields,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"unknown_fields": json_value(report.unknown_fields)},
    )


def snapshot_check_results(asset: str, report: IngestReport) -> Iterator[dg.AssetCheckResult]:
    yield from _common_results(asset, report)


def row_count_verdict(
    rows: int, day: dt.date, history: dict[dt.date, int]
) -> tuple[bool, dict[str, float | int | str]]:
    """Whether ``rows`` is in line with earlier days of the same kind, and the evidence."""
    weekend = day.weekday() >= 5
    same_kind = sorted(
        count for d, count in history.items() if d < day and (d.weekday() >= 5) == weekend
    )
    if len(same_kind) < MIN_HISTORY:
        return True, {
            "rows": rows,
            "comparable_days": len(same_kind),
            "verdict": "too little history",
        }
    median = float(pl.Series(same_kind).median())
    if median == 0:
        in_line = rows == 0 or rows <= MIN_HISTORY
    else:
        ratio = rows / median
        in_line = 1 / ANOMALY_RATIO <= ratio <= ANOMALY_RATIO
    return in_line, {
        "rows": rows,
        "trailing_median": median,
        "comparable_days": len(same_kind),
        "verdict": "in line" if in_line else "anomalous",
    }


def daily_check_results(
    asset: str, report: IngestReport, store: Warehouse, day: dt.date
) -> Iterator[dg.AssetCheckResult]:
    yield from _common_results(asset, report)
    history = store.partition_row_counts(asset, day - dt.timedelta(days=TRAILING_DAYS), day)
    passed, evidence = row_count_verdict(report.landed, day, history)
    yield dg.AssetCheckResult(
        asset_key=asset,
        check_name=ROW_COUNT_IN_LINE,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=evidence,
    )


def _reconciliation_result(result: Reconciliation) -> dg.AssetCheckResult:
    mismatches = result.mismatches
    return dg.AssetCheckResult(
        passed=result.ok,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "accounts_compared": result.accounts_compared,
            "accounts_mismatched": mismatches.height,
            "net_profit_difference_total": float(mismatches["difference"].abs().sum())
            if mismatches.height
            else 0.0,
            **({"mismatches": frame_table(mismatches)} if mismatches.height else {}),
        },
    )


@dg.asset_check(
    asset=sources.TRADES_CLOSED.table,
    name=RECONCILES_WITH_DAILY,
    additional_deps=[sources.METRICS_DAILY.table],
    partitions_def=daily_partitions,
    description="Closed trades of each account add up to its daily metrics: number of trades, "
    "and net profit (profit + commission + fee + swap) to the cent. Mismatching accounts and "
    "amounts are listed.",
)
def closed_trades_reconcile(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    day = partition_day(context.partition_key)
    store = warehouse.get()
    trades = store.read_partitions(sources.TRADES_CLOSED.table, day, day)
    daily = store.read_partitions(sources.METRICS_DAILY.table, day, day)
    return _reconciliation_result(closed_trades_vs_daily(trades, daily))


@dg.asset_check(
    asset=sources.METRICS_HOURLY.table,
    name=RECONCILES_WITH_DAILY,
    additional_deps=[sources.METRICS_DAILY.table],
    partitions_def=daily_partitions,
    description="The hourly rows of each account add up to its daily row (trades and net "
    "profit). Mismatching accounts and amounts are listed.",
)
def hourly_reconcile(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    day = partition_day(context.partition_key)
    store = warehouse.get()
    hourly = store.read_partitions(sources.METRICS_HOURLY.table, day, day)
    daily = store.read_partitions(sources.METRICS_DAILY.table, day, day)
    return _reconciliation_result(hourly_vs_daily(hourly, daily))


raw_checks = [closed_trades_reconcile, hourly_reconcile]
