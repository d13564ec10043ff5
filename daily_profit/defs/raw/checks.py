"""Per-day checks of the raw layer.

The raw assets audit each day's new rows *before* writing them (``daily_profit.ingestion.
audit``): a day whose blocking checks fail is not published. Each asset records every day's
results itself, one evaluation per partition, so a range run (a backfill, the main job) shows
each day's status. The same checks are declared as partitioned asset checks: the UI lists them,
and re-running one for a day reads that day's last attempt back from the warehouse's audit table.

Blocking: the schema of the new rows, natural-key uniqueness, completeness against the API's own
total, the quarantined share, and ``day_published`` (the day holds rows that passed their audit:
downstream layers use only such days). Warnings: row counts out of line with recent days, fields
the contract does not know, trades or hourly rows that do not add up to the daily metrics.
"""

import datetime as dt
import json
from collections.abc import Iterator

import dagster as dg
import polars as pl

from daily_profit.defs.metadata import frame_table, json_value
from daily_profit.defs.partitions import daily_partitions, days_in_window
from daily_profit.defs.resources import WarehouseResource
from daily_profit.ingestion import audit, sources
from daily_profit.ingestion.audit import CheckOutcome, Outcome
from daily_profit.ingestion.ingest import IngestReport
from daily_profit.ingestion.reconcile import (
    Reconciliation,
    closed_trades_vs_daily,
    hourly_vs_daily,
)
from daily_profit.privacy import IDENTITY_COLUMNS, mask_value
from daily_profit.warehouse import records
from daily_profit.warehouse.io import Warehouse

SCHEMA_VALID = audit.SCHEMA_VALID
NATURAL_KEY_UNIQUE = audit.NATURAL_KEY_UNIQUE
COMPLETE_AGAINST_API = audit.COMPLETE_AGAINST_API
QUARANTINE_SHARE = audit.QUARANTINE_SHARE
NO_UNKNOWN_FIELDS = audit.NO_UNKNOWN_FIELDS
DAY_PUBLISHED = audit.DAY_PUBLISHED
ROW_COUNT_IN_LINE = "row_count_in_line"
RECONCILES_WITH_DAILY = "reconciles_with_daily_metrics"

# A day's row count is compared with the same kind of day (weekday or weekend) among the last
# TRAILING_DAYS partitions; outside [1/ANOMALY_RATIO, ANOMALY_RATIO] x their median is flagged.
TRAILING_DAYS = 14
MIN_HISTORY = 3
ANOMALY_RATIO = 2.0

# (name, blocking, description) of every check a raw asset records for each attempt.
AUDIT_CHECKS: list[tuple[str, bool, str]] = [
    (
        SCHEMA_VALID,
        True,
        "Every new row has the contract's types, nullability and value rules (pandera).",
    ),
    (NATURAL_KEY_UNIQUE, True, "No two new rows share the natural key."),
    (
        COMPLETE_AGAINST_API,
        True,
        "Rows landed + rows quarantined = the total the API reported, with no shortfall left "
        "after the re-reads: nothing served was lost, nothing the API holds was skipped.",
    ),
    (
        QUARANTINE_SHARE,
        True,
        "The share of the day's records sent to quarantine stays under the configured "
        "threshold (default 2% for a source-day of at least 50 records; a smaller day fails "
        "only when nothing valid landed).",
    ),
    (
        NO_UNKNOWN_FIELDS,
        False,
        "Warns when records carry fields the contract does not name (schema drift upstream).",
    ),
    (
        audit.SCHEMA_NOT_DRIFTED,
        True,
        "No field the record kind must carry is missing from every record of the day, and no "
        "field arrives in a type the contract does not allow: schema drift on the API's side "
        "(the field, the source and the day are named).",
    ),
    (
        audit.FIELDS_IN_LINE,
        False,
        "Warns when an optional field turned all-null or an integer field widened to float.",
    ),
]
PUBLISHED_DESCRIPTION = (
    "The day holds rows that passed their audit (or a recorded waiver). Fails (blocking) when "
    "the day's first landing failed: nothing is published and downstream skips the day. "
    "Warns when a re-fetch failed its audit: the rows published earlier stay in use."
)
ROW_COUNT_DESCRIPTION = (
    "Warns when the day's row count is far from recent days of the same kind (weekday or weekend)."
)


def _severity(blocking: bool) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN


def _masked_failures(frame: pl.DataFrame) -> pl.DataFrame:
    """Pandera's failure cases, with a failing identity value shown only as its hash."""
    if "failure_case" not in frame.columns or "column" not in frame.columns:
        return frame
    return frame.with_columns(
        pl.struct("column", "failure_case")
        .map_elements(
            lambda r: (
                mask_value(str(r["failure_case"]))
                if r["column"] in IDENTITY_COLUMNS and r["failure_case"] is not None
                else None
                if r["failure_case"] is None
                else str(r["failure_case"])
            ),
            return_dtype=pl.String,
        )
        .alias("failure_case")
    )


def _metadata_value(value: object) -> object:
    if isinstance(value, pl.DataFrame):
        return frame_table(_masked_failures(value), rows=20)
    if isinstance(value, dict | list):
        return json_value(value)
    return value


def _outcome_metadata(outcome: CheckOutcome) -> dict[str, object]:
    return {k: _metadata_value(v) for k, v in outcome.metadata.items()}


def _evaluation(
    asset: str,
    name: str,
    *,
    passed: bool,
    blocking: bool,
    day: dt.date | None,
    metadata: dict[str, object],
    description: str | None = None,
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset),
        check_name=name,
        passed=passed,
        partition=day.isoformat() if day else None,
        severity=_severity(blocking),
        metadata=metadata,
        description=description,
    )


def audit_evaluations(report: IngestReport) -> Iterator[dg.AssetCheckEvaluation]:
    """The audit's verdicts on one attempt, as the day's check results.

    A waived attempt records its failed checks as passing, tagged with the waiver and its
    reason. On a re-fetch that kept the published rows, failures are warnings: the day stays
    usable downstream and ``day_published`` says what happened.
    """
    kept = report.outcome is Outcome.KEPT_PUBLISHED
    for outcome in report.checks:
        metadata = _outcome_metadata(outcome)
        passed = outcome.passed
        if report.outcome is Outcome.WAIVED and not passed:
            metadata.update(
                waived=True,
                waiver_reason=report.waiver_reason or "",
                failed_before_waiver=True,
            )
            passed = True
        yield _evaluation(
            report.table,
            outcome.name,
            passed=passed,
            blocking=outcome.blocking and not kept,
            day=report.partition,
            metadata=metadata,
        )
    yield _evaluation(
        report.table,
        DAY_PUBLISHED,
        passed=report.outcome.published_now,
        blocking=report.outcome is Outcome.WITHHELD,
        day=report.partition,
        metadata={
            "outcome": report.outcome.value,
            "rows_published": report.landed if report.outcome.published_now else 0,
            "failed_checks": json_value([o.summary() for o in report.failed_checks]),
            **({"waiver_reason": report.waiver_reason} if report.waiver_reason else {}),
        },
        description=report.failure,
    )


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


def daily_evaluations(
    report: IngestReport, store: Warehouse, day: dt.date
) -> Iterator[dg.AssetCheckEvaluation]:
    yield from audit_evaluations(report)
    history = store.partition_row_counts(report.table, day - dt.timedelta(days=TRAILING_DAYS), day)
    passed, evidence = row_count_verdict(report.landed, day, history)
    yield _evaluation(
        report.table, ROW_COUNT_IN_LINE, passed=passed, blocking=False, day=day, metadata=evidence
    )


# --- the declared checks: visible in the UI, re-run for a day from the audit table ----------


def _last_attempts(store: Warehouse, table: str, days: list[dt.date] | None) -> pl.DataFrame:
    attempts = store.read_publication_audit(
        table, days[0] if days else None, days[-1] if days else None
    )
    if days is None:
        attempts = attempts.filter(pl.col("partition_date").is_null())
    return attempts.group_by("partition_date").agg(pl.all().sort_by("id").last())


def _failed_names(failed_checks: str) -> set[str]:
    return {summary.split(" (", 1)[0] for summary in json.loads(failed_checks)}


def _audit_check_result(
    store: Warehouse, table: str, name: str, blocking: bool, days: list[dt.date] | None
) -> dg.AssetCheckResult:
    last = _last_attempts(store, table, days)
    missing = (len(days) if days else 1) - last.height
    failed, withheld = [], []
    for row in last.iter_rows(named=True):
        day = row["partition_date"].isoformat() if row["partition_date"] else "snapshot"
        is_failed = (
            name in _failed_names(row["failed_checks"])
            if name != DAY_PUBLISHED
            else row["outcome"] not in (Outcome.PUBLISHED, Outcome.WAIVED)
        )
        if is_failed and row["outcome"] != Outcome.WAIVED:
            failed.append(day)
            if row["outcome"] == Outcome.WITHHELD:
                withheld.append(day)
    return dg.AssetCheckResult(
        passed=not failed and missing == 0,
        # Only a day with nothing published blocks: a failed re-fetch keeps its rows in use.
        severity=_severity(blocking and (bool(withheld) or missing > 0)),
        metadata={
            "days": len(days) if days else 1,
            "days_never_attempted": missing,
            "days_failed": len(failed),
            "failed_days": json_value(failed[:50]),
            "source": "the last attempt of each day in raw_publication_audit",
        },
    )


def _build_audit_check(
    asset: str, name: str, blocking: bool, description: str, partitioned: bool
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name=name,
        blocking=blocking,
        partitions_def=daily_partitions if partitioned else None,
        description=description,
    )
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        days = days_in_window(context.partition_time_window) if partitioned else None
        return _audit_check_result(warehouse.get(), asset, name, blocking, days)

    return _check


def _declared_checks(asset: str, *, partitioned: bool) -> list[dg.AssetChecksDefinition]:
    specs = [*AUDIT_CHECKS, (DAY_PUBLISHED, True, PUBLISHED_DESCRIPTION)]
    return [_build_audit_check(asset, *spec, partitioned=partitioned) for spec in specs]


def _row_count_check(asset: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name=ROW_COUNT_IN_LINE,
        partitions_def=daily_partitions,
        description=ROW_COUNT_DESCRIPTION,
    )
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        days = days_in_window(context.partition_time_window)
        store = warehouse.get()
        history = store.partition_row_counts(
            asset, days[0] - dt.timedelta(days=TRAILING_DAYS), days[-1]
        )
        verdicts = {d: row_count_verdict(history.get(d, 0), d, history) for d in days}
        off = [d.isoformat() for d, (ok, _) in verdicts.items() if not ok]
        metadata = (
            dict(verdicts[days[0]][1])
            if len(days) == 1
            else {"days": len(days), "anomalous_days": json_value(off[:50])}
        )
        return dg.AssetCheckResult(
            passed=not off, severity=dg.AssetCheckSeverity.WARN, metadata=metadata
        )

    return _check


def _reconcile_window(
    context: dg.AssetCheckExecutionContext, store: Warehouse, table: str
) -> dg.AssetCheckResult:
    """Each day of the run's window reconciled on its own, the mismatches listed together."""
    compare = closed_trades_vs_daily if table == sources.TRADES_CLOSED.table else hourly_vs_daily
    results = []
    for day in days_in_window(context.partition_time_window):
        detail = store.read_partitions(table, day, day)
        daily = store.read_partitions(sources.METRICS_DAILY.table, day, day)
        found = compare(detail, daily)
        dated = found.mismatches.with_columns(pl.lit(day).alias("date"))
        results.append(Reconciliation(found.accounts_compared, dated))
    return _reconciliation_result(results)


def _reconciliation_result(results: list[Reconciliation]) -> dg.AssetCheckResult:
    mismatches = pl.concat([r.mismatches for r in results], how="vertical_relaxed")
    return dg.AssetCheckResult(
        passed=all(r.ok for r in results),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "accounts_compared": sum(r.accounts_compared for r in results),
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
    return _reconcile_window(context, warehouse.get(), sources.TRADES_CLOSED.table)


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
    return _reconcile_window(context, warehouse.get(), sources.METRICS_HOURLY.table)


reconciliation_checks = [closed_trades_reconcile, hourly_reconcile]

raw_checks = [
    *(
        check
        for source in sources.DAILY_API_SOURCES
        for check in (
            *_declared_checks(source.table, partitioned=True),
            _row_count_check(source.table),
        )
    ),
    *(
        check
        for table in (records.PLANS.table, sources.METRICS_ALLTIME.table)
        for check in _declared_checks(table, partitioned=False)
    ),
    closed_trades_reconcile,
    hourly_reconcile,
]
