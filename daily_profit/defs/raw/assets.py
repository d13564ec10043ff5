"""Raw layer: every Risk API source lands in its warehouse table, one trading day per partition.

Each asset fetches one day through the resilient client, quarantines invalid records with their
reason, replaces the day in one transaction and checks, for that day, that what landed is
complete, unique, well-typed and in line with recent days.
"""

from collections.abc import Callable

import dagster as dg

from daily_profit.api.errors import RiskApiCircuitOpen
from daily_profit.config import get_settings
from daily_profit.defs.metadata import json_value, preview
from daily_profit.defs.partitions import daily_partitions, partition_day
from daily_profit.defs.raw import checks
from daily_profit.defs.resources import RiskApiResource, WarehouseResource
from daily_profit.ingestion import sources
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


def report_metadata(report: IngestReport) -> dict[str, dg.MetadataValue | int | float | str]:
    return {
        "rows_landed": report.landed,
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
        "conflicts": json_value(report.conflict_keys),
        **(
            {"schema_drift": json_value(report.schema_drift.to_dict())}
            if report.schema_drift is not None
            else {}
        ),
        "preview": preview(report.frame),
    }


def _ingest_with_step_retry(run: Callable[[], IngestReport]) -> IngestReport:
    """Dagster's step retry only for an open breaker (the API is down), bounded in count."""
    try:
        return run()
    except RiskApiCircuitOpen as exc:
        raise dg.RetryRequested(
            max_retries=BREAKER_STEP_RETRIES, seconds_to_wait=BREAKER_STEP_WAIT_S
        ) from exc


def build_daily_raw_asset(source: ApiSource) -> dg.AssetsDefinition:
    """One daily-partitioned raw asset for an API source, with its per-day checks."""
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
        pool=RISK_API_POOL,
        deps=deps,
        description=DESCRIPTIONS[source],
        check_specs=checks.daily_check_specs(name),
        kinds={"python", "sql"},
        tags={"layer": "raw", "source": source.endpoint.replace("/", "_")},
    )
    def _raw_daily(
        context: dg.AssetExecutionContext,
        risk_api: RiskApiResource,
        warehouse: WarehouseResource,
    ):
        day = partition_day(context.partition_key)
        store = warehouse.get()
        known = known_account_ids(store) if "account_id" in source.spec.columns else None

        def run() -> IngestReport:
            with risk_api.client() as client:
                return ingest_api_source(
                    client, store, source, day, run_id=context.run.run_id, known_accounts=known
                )

        report = _ingest_with_step_retry(run)
        context.log.info(
            f"{name} {day}: {report.landed} landed, {report.quarantined} quarantined of "
            f"{report.api_total} served in {report.calls} calls"
        )
        yield dg.MaterializeResult(metadata=report_metadata(report))
        yield from checks.daily_check_results(name, report, store, day)

    return _raw_daily


raw_daily_assets = [build_daily_raw_asset(source) for source in sources.DAILY_API_SOURCES]


@dg.asset(
    name=sources.METRICS_ALLTIME.table,
    group_name=RAW_GROUP,
    pool=RISK_API_POOL,
    check_specs=checks.snapshot_check_specs(sources.METRICS_ALLTIME.table),
    kinds={"python", "sql"},
    tags={"layer": "raw"},
)
def raw_metrics_alltime(
    context: dg.AssetExecutionContext,
    risk_api: RiskApiResource,
    warehouse: WarehouseResource,
):
    """The account master: one row per account as of now (plan, trader, platform, broker,
    country, lifetime statistics). Refreshed whole on each materialisation. Only its static
    attributes may feed features: its balances and statistics describe today, not a past day."""
    store = warehouse.get()

    def run() -> IngestReport:
        with risk_api.client() as client:
            return ingest_api_source(
                client, store, sources.METRICS_ALLTIME, None, run_id=context.run.run_id
            )

    report = _ingest_with_step_retry(run)
    yield dg.MaterializeResult(metadata=report_metadata(report))
    yield from checks.snapshot_check_results(sources.METRICS_ALLTIME.table, report)


@dg.asset(
    name="raw_plans",
    group_name=RAW_GROUP,
    check_specs=checks.snapshot_check_specs("raw_plans"),
    kinds={"python", "sql"},
    tags={"layer": "raw"},
)
def raw_plans(
    context: dg.AssetExecutionContext,
    risk_api: RiskApiResource,
    warehouse: WarehouseResource,
):
    """Trading plans from the firm's plans CSV export: starting balance, profit target, daily
    loss limit, trailing or static drawdown, profit share and the other rules. The last row of a
    planId in the export wins; an account's plan on a day is the planId of that day's metrics."""
    settings = get_settings()
    if settings.uses_sandbox:
        # The sandbox writes its plans export into the data folder when it starts.
        risk_api.resolved_base_url()
    report = ingest_plans_csv(
        warehouse.get(), settings.resolved_plans_csv_path, run_id=context.run.run_id
    )
    yield dg.MaterializeResult(metadata=report_metadata(report))
    yield from checks.snapshot_check_results("raw_plans", report)


raw_assets = [raw_plans, raw_metrics_alltime, *raw_daily_assets]
