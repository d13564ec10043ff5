"""Raw layer: every Risk API source lands in its warehouse table, one trading day per partition.

Write, audit, publish. Each asset fetches a day through the resilient client, quarantines
invalid records with their reason, audits the new rows (complete, unique, well-typed, few
enough quarantined) and only then lets them replace the day, in one transaction. A day whose
audit fails keeps what was published before (a first landing stays empty) and its attempt is
kept in the quarantine; the step fails naming the day, the check and the numbers. A range (a
backfill, the main job) is one run: each day is fetched, audited and published on its own and
records its own check results; the run fails at the end naming the days that failed.
"""

import datetime as dt
from collections.abc import Callable, Iterator

import dagster as dg
import polars as pl
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from daily_profit.api.errors import RiskApiCircuitOpen
from daily_profit.config import get_settings
from daily_profit.defs.executor import risk_api_queue_tags
from daily_profit.defs.metadata import json_value, markdown_table, preview, targeted
from daily_profit.defs.partitions import daily_partitions, days_in_window
from daily_profit.defs.raw import checks
from daily_profit.defs.resources import RiskApiResource, WarehouseResource
from daily_profit.ingestion import sources
from daily_profit.ingestion.audit import Outcome, QuarantineThreshold
from daily_profit.ingestion.ingest import (
    IngestReport,
    ingest_api_source,
    ingest_plans_csv,
    known_account_ids,
)
from daily_profit.ingestion.sources import ApiSource

RAW_GROUP = "raw"
# Every asset that calls the Risk API joins this pool; the instance's pool limit bounds how many
# run at once (the per-key allowance itself is enforced by the client's shared limiter).
RISK_API_POOL = "risk_api"
# The breaker opening means the API is down: wait and retry the step a bounded number of times.
BREAKER_STEP_RETRIES = 3
BREAKER_STEP_WAIT_S = 60

DESCRIPTIONS = {
    sources.METRICS_DAILY: (
        "Daily metrics of every account, one row per account per trading day it existed: "
        "balances, equity, payouts, net profit and trade statistics of the day. The target "
        "source: tomorrow's net profit is what the model predicts."
    ),
    sources.METRICS_HOURLY: (
        "Hourly metrics: one row per account per hour of the trading day with activity. "
        "Shows when each account trades; its hours add up to the daily row."
    ),
    sources.TRADES_CLOSED: (
        "Trades closed on the trading day, one row per position: symbol, side, size, times, "
        "prices, stop-loss/take-profit, profit and costs. They add up to the daily metrics."
    ),
    sources.TRADES_OPEN: (
        "Open positions at the end of the trading day (snapshot): what each account carries "
        "overnight and its unrealised profit or loss."
    ),
    sources.REGIMES_DAILY: (
        "Market regime of the day: volatility regime, sentiment, risk-on/off and vol-spike "
        "probabilities, rates, and per-symbol prices, returns and volatility."
    ),
}


class RawLandingConfig(dg.Config):
    """Run config of a raw asset. Leave empty for the normal, audited landing."""

    force_publish: bool = False
    waiver_reason: str = ""


def _waiver(config: RawLandingConfig) -> str | None:
    if not config.force_publish:
        return None
    if not config.waiver_reason.strip():
        raise dg.Failure(
            "force_publish needs a waiver_reason: say why the day may be used despite its "
            "failed checks (it is recorded with the attempt and shown on the day's checks)"
        )
    return config.waiver_reason.strip()


def report_metadata(report: IngestReport) -> dict[str, dg.MetadataValue | int | float | str]:
    return {
        "outcome": report.outcome.value,
        "rows_landed": report.landed if report.outcome.published_now else 0,
        "rows_fetched_valid": report.landed,
        "rows_quarantined": report.quarantined,
        "api_total": report.api_total,
        "identical_duplicates": report.identical_duplicates,
        "conflicting_duplicates": report.conflicting_duplicates,
        "recovered_after_repaging": report.recovered,
        "api_rereads": report.rereads,
        "shortfall": report.shortfall,
        "account_ids_resolved": report.account_ids_from_known,
        "account_ids_derived": report.account_ids_derived,
        "api_calls": report.calls,
        "api_retries": report.retries,
        "api_rate_limited": report.rate_limited,
        "duration_s": round(report.seconds, 3),
        "checksum": report.checksum,
        "quarantine_reasons": json_value(report.quarantine_reasons),
        "unknown_fields": json_value(report.unknown_fields),
        # Identity values already masked by the ingestion (IngestReport.conflict_keys).
        "conflicts": json_value(report.conflict_keys),
        **(
            {"schema_drift": json_value(report.schema_drift.to_dict())}
            if report.schema_drift is not None
            else {}
        ),
        **({"waiver_reason": report.waiver_reason} if report.waiver_reason else {}),
        **({"audit_failure": report.failure} if report.failure else {}),
        "preview": preview(report.frame),
    }


def range_metadata(reports: list[IngestReport]) -> dict[str, dg.MetadataValue | int | float | str]:
    """A range run's summary: totals, and one line per day (the UI shows it as a table)."""
    per_day = pl.DataFrame(
        {
            "date": [r.partition.isoformat() if r.partition else "" for r in reports],
            "outcome": [r.outcome.value for r in reports],
            "rows_landed": [r.landed if r.outcome.published_now else 0 for r in reports],
            "rows_quarantined": [r.quarantined for r in reports],
            "api_total": [r.api_total for r in reports],
            "failed_checks": [", ".join(o.name for o in r.failed_checks) for r in reports],
        },
        schema={
            "date": pl.String,
            "outcome": pl.String,
            "rows_landed": pl.Int64,
            "rows_quarantined": pl.Int64,
            "api_total": pl.Int64,
            "failed_checks": pl.String,
        },
    )
    outcomes: dict[str, int] = {}
    for r in reports:
        outcomes[r.outcome.value] = outcomes.get(r.outcome.value, 0) + 1
    return {
        "days": len(reports),
        "outcomes": json_value(outcomes),
        "rows_landed": int(per_day["rows_landed"].sum()),
        "rows_quarantined": int(per_day["rows_quarantined"].sum()),
        "api_total": int(per_day["api_total"].sum()),
        "api_calls": sum(r.calls for r in reports),
        "api_rate_limited": sum(r.rate_limited for r in reports),
        "duration_s": round(sum(r.seconds for r in reports), 3),
        "days_table": dg.MetadataValue.md(markdown_table(per_day.head(400))),
    }


def _ingest_with_step_retry(run: Callable[[], IngestReport]) -> IngestReport:
    """Dagster's step retry only for an open breaker (the API is down), bounded in count."""
    try:
        return run()
    except RiskApiCircuitOpen as exc:
        raise dg.RetryRequested(
            max_retries=BREAKER_STEP_RETRIES, seconds_to_wait=BREAKER_STEP_WAIT_S
        ) from exc


def _raise_for_withheld(reports: list[IngestReport]) -> None:
    withheld = [r for r in reports if r.outcome is Outcome.WITHHELD]
    if not withheld:
        return
    days = ", ".join(r.partition.isoformat() if r.partition else "snapshot" for r in withheld)
    details = "\n".join(f"- {r.failure}" for r in withheld)
    raise dg.Failure(
        description=f"{withheld[0].table}: {len(withheld)} day(s) failed their audit and were "
        f"not published: {days}\n{details}",
        metadata={"failed_days": json_value([d.strip() for d in days.split(",")])},
    )


def _day_materializations(
    name: str, reports: list[IngestReport]
) -> Iterator[dg.AssetMaterialization]:
    """One materialisation per day that holds published rows, versioned by their checksum."""
    for report in reports:
        if report.outcome is Outcome.WITHHELD or report.partition is None:
            continue
        yield dg.AssetMaterialization(
            asset_key=name,
            partition=report.partition.isoformat(),
            metadata=report_metadata(report),
            tags={DATA_VERSION_TAG: report.published_checksum},
        )


def build_daily_raw_asset(source: ApiSource) -> dg.AssetsDefinition:
    """One daily-partitioned raw asset for an API source, audited and published day by day."""
    name = source.table
    deps = (
        [sources.METRICS_ALLTIME.table]
        if source in (sources.METRICS_DAILY, sources.METRICS_HOURLY)
        else []
    )

    @dg.asset(
        name=name,
        group_name=RAW_GROUP,
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=RISK_API_POOL,
        op_tags=risk_api_queue_tags(),
        deps=deps,
        description=DESCRIPTIONS[source],
        kinds={"python", "sql"},
        tags={"layer": "raw", "source": source.endpoint.replace("/", "_")},
    )
    def _raw_daily(
        context: dg.AssetExecutionContext,
        config: RawLandingConfig,
        risk_api: RiskApiResource,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation]:
        days = days_in_window(context.partition_time_window)
        store = warehouse.get()
        known = known_account_ids(store) if "account_id" in source.spec.columns else None
        threshold = QuarantineThreshold.from_settings()
        waiver = _waiver(config)
        reports: list[IngestReport] = []
        evaluations: list[dg.AssetCheckEvaluation] = []
        with risk_api.client() as client:
            for day in days:

                def run(day: dt.date = day) -> IngestReport:
                    return ingest_api_source(
                        client,
                        store,
                        source,
                        day,
                        run_id=context.run.run_id,
                        known_accounts=known,
                        threshold=threshold,
                        waiver_reason=waiver,
                    )

                report = _ingest_with_step_retry(run)
                reports.append(report)
                level = context.log.info if report.failure is None else context.log.error
                level(
                    f"{name} {day}: {report.outcome.value}, {report.landed} valid, "
                    f"{report.quarantined} quarantined of {report.api_total} served in "
                    f"{report.calls} calls" + (f": {report.failure}" if report.failure else "")
                )
                evaluations.extend(checks.daily_evaluations(report, store, day))

        def log_checks() -> None:
            # After the days' materialisations: each result must target its day's latest one.
            for evaluation in targeted(context.instance, evaluations):
                context.log_event(evaluation)

        if any(r.outcome is Outcome.WITHHELD for r in reports):
            # The days that passed are published: record them, then fail naming the others.
            for event in _day_materializations(name, reports):
                context.log_event(event)
            log_checks()
            _raise_for_withheld(reports)
        if len(reports) == 1:
            report = reports[0]
            yield dg.MaterializeResult(
                metadata=report_metadata(report),
                data_version=dg.DataVersion(report.published_checksum),
            )
            log_checks()
            return
        yield dg.MaterializeResult(metadata=range_metadata(reports))
        # A range's result stands for every day alike: each day's own record follows it, with
        # the day's checksum as its data version (what the automation compares night to night).
        for event in _day_materializations(name, reports):
            context.log_event(event)
        log_checks()

    return _raw_daily


raw_daily_assets = [build_daily_raw_asset(source) for source in sources.DAILY_API_SOURCES]


def _snapshot_result(
    context: dg.AssetExecutionContext, report: IngestReport
) -> Iterator[dg.MaterializeResult]:
    evaluations = list(checks.audit_evaluations(report))
    if report.outcome is Outcome.WITHHELD:
        for evaluation in evaluations:
            context.log_event(evaluation)
        _raise_for_withheld([report])
    yield dg.MaterializeResult(
        metadata=report_metadata(report), data_version=dg.DataVersion(report.published_checksum)
    )
    for evaluation in targeted(context.instance, evaluations):
        context.log_event(evaluation)


@dg.asset(
    name=sources.METRICS_ALLTIME.table,
    group_name=RAW_GROUP,
    pool=RISK_API_POOL,
    op_tags=risk_api_queue_tags(),
    kinds={"python", "sql"},
    tags={"layer": "raw"},
)
def raw_metrics_alltime(
    context: dg.AssetExecutionContext,
    config: RawLandingConfig,
    risk_api: RiskApiResource,
    warehouse: WarehouseResource,
) -> Iterator[dg.MaterializeResult]:
    """The account master: one row per account as of now (plan, trader, platform, broker,
    country, lifetime statistics). Refreshed whole on each materialisation, audited first: a
    failing refresh keeps the master in force. Only its static attributes may feed features:
    its balances and statistics describe today, not a past day."""
    store = warehouse.get()
    waiver = _waiver(config)

    def run() -> IngestReport:
        with risk_api.client() as client:
            return ingest_api_source(
                client,
                store,
                sources.METRICS_ALLTIME,
                None,
                run_id=context.run.run_id,
                waiver_reason=waiver,
            )

    yield from _snapshot_result(context, _ingest_with_step_retry(run))


@dg.asset(
    name="raw_plans",
    group_name=RAW_GROUP,
    kinds={"python", "sql"},
    tags={"layer": "raw"},
)
def raw_plans(
    context: dg.AssetExecutionContext,
    config: RawLandingConfig,
    risk_api: RiskApiResource,
    warehouse: WarehouseResource,
) -> Iterator[dg.MaterializeResult]:
    """Trading plans from the firm's plans CSV export: starting balance, profit target, daily
    loss limit, trailing or static drawdown, profit share and the other rules. The last row of a
    planId in the export wins; an account's plan on a day is the planId of that day's metrics.
    Audited like the API sources: a failing export keeps the plans in force."""
    settings = get_settings()
    if settings.uses_sandbox:
        # The sandbox writes its plans export into the data folder when it starts.
        risk_api.resolved_base_url()
    report = ingest_plans_csv(
        warehouse.get(),
        settings.resolved_plans_csv_path,
        run_id=context.run.run_id,
        waiver_reason=_waiver(config),
    )
    yield from _snapshot_result(context, report)


raw_assets = [raw_plans, raw_metrics_alltime, *raw_daily_assets]
