"""The raw layer end to end: the real sandbox over HTTP, real Dagster materialisations, both
warehouses. What a user relies on: every record the API serves lands exactly once or sits in
quarantine with its reason, reruns change nothing, and the checks say when a day is incomplete.
"""

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest

from daily_profit.defs.raw.assets import raw_assets
from daily_profit.defs.raw.checks import (
    COMPLETE_AGAINST_API,
    DAY_PUBLISHED,
    NO_UNKNOWN_FIELDS,
    RECONCILES_WITH_DAILY,
    raw_checks,
)
from daily_profit.defs.resources import RiskApiResource, WarehouseResource
from daily_profit.ingestion.audit import UNPUBLISHED_ATTEMPT
from daily_profit.sandbox.server import SandboxServer
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.migrate import upgrade

DAY = "2025-01-07"  # a Tuesday: every source has rows
DAILY_TABLES = [
    "raw_metrics_daily",
    "raw_metrics_hourly",
    "raw_trades_closed",
    "raw_trades_open",
    "raw_regimes_daily",
]


@pytest.fixture(scope="module")
def sandbox_data():
    return simulate(SimulationConfig(n_accounts=40, n_days=12, seed=11))


@pytest.fixture(scope="module")
def sandbox(sandbox_data):
    with SandboxServer(sandbox_data, rate_limit=None) as server:
        yield server


@pytest.fixture
def warehouse(warehouse_url):
    upgrade(warehouse_url)
    store = Warehouse(warehouse_url)
    yield store
    store.dispose()


def materialise(
    warehouse: Warehouse,
    sandbox: SandboxServer,
    *,
    day: str = DAY,
    faults: str | None = None,
    page_size: int | None = None,
    tables: list[str] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    selection = tables or DAILY_TABLES
    instance = instance or dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*raw_assets, *raw_checks],
        selection=selection,
        partition_key=day,
        resources={
            "warehouse": WarehouseResource(url=warehouse.url),
            "risk_api": RiskApiResource(
                base_url=sandbox.base_url,
                requests_per_second=0,
                sandbox_faults=faults,
                page_size=page_size,
            ),
        },
        instance=instance,
        raise_on_error=False,
    )
    # The result leaves out the events of a step that failed; the instance has them all.
    result.instance = instance  # type: ignore[attr-defined]
    return result


def served_frame(sandbox_data, name: str, day: dt.date) -> pl.DataFrame:
    frame = getattr(sandbox_data, name)
    column = "tradeDate" if name.startswith("trades") else "date"
    if frame.schema[column] == pl.String:
        return frame.filter(pl.col(column).str.slice(0, 10) == day.isoformat())
    return frame.filter(pl.col(column).cast(pl.Date) == day)


def check_evaluations(result: dg.ExecuteInProcessResult, asset: str) -> list:
    """Every check evaluation of the run on ``asset``, also those of a step that then failed."""
    events = [r.dagster_event for r in result.instance.all_logs(result.run_id)]  # type: ignore[attr-defined]
    return [
        e.event_specific_data
        for e in events
        if e is not None
        and e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.asset_key == dg.AssetKey(asset)
    ]


def checks_by_name(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, bool]:
    return {e.check_name: e.passed for e in check_evaluations(result, asset)}


def materialization_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_a_day_lands_complete_with_every_check_passing(warehouse, sandbox, sandbox_data):
    result = materialise(warehouse, sandbox)
    assert result.success
    day = dt.date.fromisoformat(DAY)
    expected = {
        "raw_metrics_daily": served_frame(sandbox_data, "metrics_daily", day).height,
        "raw_metrics_hourly": served_frame(sandbox_data, "metrics_hourly", day).height,
        "raw_trades_closed": served_frame(sandbox_data, "trades_closed", day).height,
        "raw_trades_open": served_frame(sandbox_data, "trades_open", day).height,
        "raw_regimes_daily": 1,
    }
    for table, rows in expected.items():
        assert rows > 0, table
        assert warehouse.read_partitions(table, day, day).height == rows, table
        meta = materialization_metadata(result, table)
        assert meta["rows_landed"] == meta["api_total"] == rows
        assert meta["rows_quarantined"] == 0
        assert all(checks_by_name(result, table).values()), (table, checks_by_name(result, table))
    # Null accountIds were filled from the same login's known id, never left null.
    daily = warehouse.read_partitions("raw_metrics_daily", day, day)
    assert daily["account_id"].null_count() == 0
    assert checks_by_name(result, "raw_trades_closed")[RECONCILES_WITH_DAILY]
    assert checks_by_name(result, "raw_metrics_hourly")[RECONCILES_WITH_DAILY]


def test_the_preview_masks_trader_identities(warehouse, sandbox, sandbox_data):
    result = materialise(warehouse, sandbox, tables=["raw_metrics_daily"])
    preview = materialization_metadata(result, "raw_metrics_daily")["preview"]
    logins = set(sandbox_data.metrics_daily["login"].cast(pl.String).to_list())
    traders = set(sandbox_data.metrics_daily["trader"].cast(pl.String).to_list())
    shown = [record.data for record in preview.records]
    assert shown
    for row in shown:
        assert row["login"].startswith("h:") and row["login"] not in logins
        assert row["trader"].startswith("h:") and row["trader"] not in traders


def test_materialising_a_day_twice_gives_the_same_rows_and_checksums(warehouse, sandbox):
    day = dt.date.fromisoformat(DAY)
    first = materialise(warehouse, sandbox)
    rows_first = {t: warehouse.read_partitions(t, day, day) for t in DAILY_TABLES}
    second = materialise(warehouse, sandbox)
    assert first.success and second.success
    for table in DAILY_TABLES:
        again = warehouse.read_partitions(table, day, day)
        assert again.equals(rows_first[table]), table
        assert (
            materialization_metadata(first, table)["checksum"]
            == materialization_metadata(second, table)["checksum"]
        )


def test_under_a_fault_storm_every_record_lands_once_or_is_quarantined(
    warehouse, sandbox, sandbox_data, settings_env
):
    # The storm quarantines more than the default 2%: this test is about exactly-once.
    settings_env(raw_quarantine_max_share=0.5)
    storm = (
        "429=0.3, retry_after=0, 5xx=0.3, fail=0.2, shift=0.3, conflict=0.3, malformed=0.3, "
        "extra=0.3, seed=5"
    )
    result = materialise(
        warehouse, sandbox, faults=storm, page_size=10, tables=["raw_trades_closed"]
    )
    assert result.success, result.all_events
    day = dt.date.fromisoformat(DAY)
    served = served_frame(sandbox_data, "trades_closed", day)
    landed = warehouse.read_partitions("raw_trades_closed", day, day)
    quarantined = warehouse.read_quarantine("raw_trades_closed", day, day)
    meta = materialization_metadata(result, "raw_trades_closed")
    assert meta["api_retries"] > 0
    # Conflicting copies are quarantined too: the API's total counts their key once.
    conflicts = quarantined.filter(pl.col("reason").str.starts_with("conflicting_copy"))
    assert conflicts.height == meta["conflicting_duplicates"] > 0
    assert landed.height + quarantined.height - conflicts.height == served.height
    assert served.height == meta["api_total"]
    # Exactly once: no position twice, and every served position is in one of the two places.
    assert landed["position"].is_unique().all()
    rejected = quarantined.filter(~pl.col("reason").str.starts_with("conflicting_copy"))
    quarantined_keys = {json.loads(k)["position"] for k in rejected["natural_key"].to_list()}
    served_keys = set(served["position"].cast(pl.String).to_list())
    assert set(landed["position"].to_list()) | quarantined_keys == served_keys
    assert not set(landed["position"].to_list()) & quarantined_keys
    assert {json.loads(k)["position"] for k in conflicts["natural_key"].to_list()} <= served_keys
    assert quarantined.height > 0 and all(quarantined["reason"].str.len_chars() > 0)
    checks = checks_by_name(result, "raw_trades_closed")
    assert checks[COMPLETE_AGAINST_API]
    assert not checks[NO_UNKNOWN_FIELDS]


def test_records_paging_cannot_recover_fail_the_completeness_check(warehouse, sandbox):
    # Every page, also the smaller re-reads, skips two records: the shortfall is permanent.
    result = materialise(
        warehouse, sandbox, faults="shift=1, shift_by=2", page_size=10, tables=["raw_trades_closed"]
    )
    assert not result.success  # a blocking check failed: the day is not published
    checks = checks_by_name(result, "raw_trades_closed")
    assert checks[COMPLETE_AGAINST_API] is False
    assert checks[DAY_PUBLISHED] is False
    day = dt.date.fromisoformat(DAY)
    assert warehouse.read_partitions("raw_trades_closed", day, day).height == 0
    [attempt] = warehouse.read_publication_audit("raw_trades_closed").to_dicts()
    assert attempt["outcome"] == "withheld"
    assert "complete_against_api" in attempt["failed_checks"]


def test_skipped_records_are_recovered_by_repaging(warehouse, sandbox, sandbox_data):
    result = materialise(
        warehouse,
        sandbox,
        faults="shift=0.5, max_shift=3, seed=2",
        page_size=10,
        tables=["raw_metrics_hourly"],
    )
    assert result.success
    meta = materialization_metadata(result, "raw_metrics_hourly")
    assert meta["shortfall"] == 0
    assert meta["recovered_after_repaging"] > 0
    assert meta["rows_landed"] + meta["rows_quarantined"] == meta["api_total"]


def test_malformed_records_are_quarantined_with_their_reason(warehouse, sandbox, settings_env):
    settings_env(raw_quarantine_max_share=0.5)
    day = dt.date.fromisoformat(DAY)
    for kind in ["missing", "type", "value"]:
        result = materialise(
            warehouse,
            sandbox,
            faults=f"malformed=1, malformed_kind={kind}, seed=1",
            tables=["raw_metrics_daily"],
        )
        assert result.success, kind
        quarantined = warehouse.read_quarantine("raw_metrics_daily", day, day)
        assert quarantined.height >= 1, kind
        for reason in quarantined["reason"].to_list():
            assert ":" in reason, reason  # "<field>: <what is wrong>"
    # The payload is kept whole, so nothing is lost.
    assert all(json.loads(p) for p in quarantined["raw_payload"].to_list())


SHORTFALL = "shift=1, shift_by=2"  # every page skips two records: a permanent shortfall


def test_a_failed_first_landing_stays_empty_and_keeps_what_was_served(warehouse, sandbox):
    day = dt.date.fromisoformat(DAY)
    result = materialise(
        warehouse, sandbox, faults=SHORTFALL, page_size=10, tables=["raw_trades_closed"]
    )
    assert not result.success
    # The step's error names the day, the check and the numbers.
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.message
    assert DAY in message and COMPLETE_AGAINST_API in message and "missing=2" in message
    assert warehouse.read_partitions("raw_trades_closed", day, day).height == 0
    # Every record the attempt received is kept in the quarantine, never published.
    kept = warehouse.read_quarantine("raw_trades_closed", day, day)
    [attempt] = warehouse.read_publication_audit("raw_trades_closed", day, day).to_dicts()
    assert attempt["outcome"] == "withheld" and attempt["run_id"] == result.run_id
    assert kept.height == attempt["rows"] + attempt["quarantined_rows"] > 0
    assert set(kept["reason"].str.slice(0, len(UNPUBLISHED_ATTEMPT))) == {UNPUBLISHED_ATTEMPT}
    assert not warehouse.has_published("raw_trades_closed", day)


def test_a_failed_refetch_keeps_the_published_day_in_use_and_warns(warehouse, sandbox):
    day = dt.date.fromisoformat(DAY)
    good = materialise(warehouse, sandbox, tables=["raw_trades_closed"])
    assert good.success
    published = warehouse.read_partitions("raw_trades_closed", day, day)
    again = materialise(
        warehouse, sandbox, faults=SHORTFALL, page_size=10, tables=["raw_trades_closed"]
    )
    # Not blocking: the day keeps rows that passed their audit, downstream may use them.
    assert again.success
    assert warehouse.read_partitions("raw_trades_closed", day, day).equals(published)
    # The asset's own result for the day, then the declared check's re-evaluation: both warn.
    own, declared = [
        e for e in check_evaluations(again, "raw_trades_closed") if e.check_name == DAY_PUBLISHED
    ]
    for evaluation in (own, declared):
        assert not evaluation.passed
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert own.metadata["outcome"].value == "kept_published"
    outcomes = warehouse.read_publication_audit("raw_trades_closed", day, day)["outcome"]
    assert outcomes.to_list() == ["published", "kept_published"]
    # A later good landing replaces the day; the failed attempt's evidence stays.
    kept = warehouse.read_quarantine("raw_trades_closed", day, day).height
    assert materialise(warehouse, sandbox, tables=["raw_trades_closed"]).success
    assert warehouse.read_quarantine("raw_trades_closed", day, day).height == kept > 0


def test_an_operator_waiver_publishes_a_failing_day_and_says_so(warehouse, sandbox):
    day = dt.date.fromisoformat(DAY)
    waived = dg.materialize(
        [*raw_assets, *raw_checks],
        selection=["raw_trades_closed"],
        partition_key=DAY,
        resources={
            "warehouse": WarehouseResource(url=warehouse.url),
            "risk_api": RiskApiResource(
                base_url=sandbox.base_url,
                requests_per_second=0,
                sandbox_faults=SHORTFALL,
                page_size=10,
            ),
        },
        run_config={
            "ops": {
                "raw_trades_closed": {
                    "config": {"force_publish": True, "waiver_reason": "API bug #42 confirmed"}
                }
            }
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert waived.success
    assert warehouse.read_partitions("raw_trades_closed", day, day).height > 0
    [attempt] = warehouse.read_publication_audit("raw_trades_closed", day, day).to_dicts()
    assert attempt["outcome"] == "waived"
    assert attempt["waiver_reason"] == "API bug #42 confirmed"
    meta = materialization_metadata(waived, "raw_trades_closed")
    assert meta["waiver_reason"] == "API bug #42 confirmed"
    # The asset's own result for the day: passing, tagged with the waiver.
    complete = next(
        e
        for e in waived.get_asset_check_evaluations()
        if e.check_name == COMPLETE_AGAINST_API and e.partition == DAY
    )
    assert complete.passed and complete.metadata["waived"].value is True


def test_a_range_run_publishes_the_days_that_pass_and_fails_naming_the_others(
    warehouse, sandbox, sandbox_data
):
    # One malformed record per page of 10: about 9% of a day quarantined. Days of 50 records or
    # more fail the quarantined share; smaller days pass (some of their records are valid).
    days = [dt.date(2025, 1, 3) + dt.timedelta(days=i) for i in range(4)]
    result = dg.materialize(
        [*raw_assets, *raw_checks],
        selection=["raw_trades_closed"],
        resources={
            "warehouse": WarehouseResource(url=warehouse.url),
            "risk_api": RiskApiResource(
                base_url=sandbox.base_url,
                requests_per_second=0,
                sandbox_faults="malformed=1, malformed_kind=value, seed=1",
                page_size=10,
            ),
        },
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
        instance=(instance := dg.DagsterInstance.ephemeral()),
        raise_on_error=False,
    )
    served = {d: served_frame(sandbox_data, "trades_closed", d).height for d in days}
    big = {d for d, n in served.items() if n >= 50}
    assert big and big != set(days)  # the test needs both kinds of day
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    for day in big:
        assert day.isoformat() in failure.event_specific_data.error.message
    status = {}
    for record in instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("raw_trades_closed"), DAY_PUBLISHED), limit=50
    ):
        status[record.partition] = record.status.value
    assert status == {d.isoformat(): "FAILED" if d in big else "SUCCEEDED" for d in days}
    for day in days:
        landed = warehouse.read_partitions("raw_trades_closed", day, day).height
        rejected = warehouse.read_quarantine("raw_trades_closed", day, day)
        if day in big:
            assert landed == 0
            assert rejected["reason"].str.starts_with(UNPUBLISHED_ATTEMPT).all()
        else:
            assert landed + rejected.height == served[day]
    materialised = instance.get_materialized_partitions(dg.AssetKey("raw_trades_closed"))
    assert materialised == {d.isoformat() for d in days if d not in big}
