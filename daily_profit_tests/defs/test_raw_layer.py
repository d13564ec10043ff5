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
    NO_UNKNOWN_FIELDS,
    RECONCILES_WITH_DAILY,
    raw_checks,
)
from daily_profit.defs.resources import RiskApiResource, WarehouseResource
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
    return dg.materialize(
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
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def served_frame(sandbox_data, name: str, day: dt.date) -> pl.DataFrame:
    frame = getattr(sandbox_data, name)
    column = "tradeDate" if name.startswith("trades") else "date"
    if frame.schema[column] == pl.String:
        return frame.filter(pl.col(column).str.slice(0, 10) == day.isoformat())
    return frame.filter(pl.col(column).cast(pl.Date) == day)


def checks_by_name(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, bool]:
    return {
        e.check_name: e.passed
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey(asset)
    }


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
    warehouse, sandbox, sandbox_data
):
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
    assert not result.success  # a blocking check failed
    checks = checks_by_name(result, "raw_trades_closed")
    assert checks[COMPLETE_AGAINST_API] is False
    meta = materialization_metadata(result, "raw_trades_closed")
    assert meta["shortfall"] > 0


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


def test_malformed_records_are_quarantined_with_their_reason(warehouse, sandbox):
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
