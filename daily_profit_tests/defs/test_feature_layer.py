"""Staging, features and labels through Dagster: a range of days in one run, with every day's
own check results, on both warehouses."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from daily_profit.api.client import RiskApiClient
from daily_profit.defs.features.assets import feature_assets, guard_checks
from daily_profit.defs.features.checks import COVERAGE, LABEL_COVERAGE, feature_checks
from daily_profit.defs.resources import WarehouseResource
from daily_profit.features.catalog import feature_set_version, output_columns
from daily_profit.ingestion.audit import Outcome
from daily_profit.ingestion.ingest import ingest_api_source
from daily_profit.ingestion.publication import RAW_INPUTS_PUBLISHED
from daily_profit.ingestion.sources import TRADES_CLOSED
from daily_profit.sandbox.faults import FAULTS_HEADER
from daily_profit.sandbox.server import SandboxServer
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit.trading_calendar import trading_calendar
from daily_profit.warehouse.desk import refresh_summary
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.migrate import upgrade
from daily_profit_tests.defs.landing import land_raw_layer

START = dt.date(2025, 1, 1)
N_DAYS = 24
FIRST_FEATURE_DAY = dt.date(2025, 1, 5)
LAST_FEATURE_DAY = dt.date(2025, 1, 20)


@pytest.fixture(scope="module")
def sandbox_data():
    return simulate(SimulationConfig(n_accounts=60, n_days=N_DAYS, seed=5))


@pytest.fixture
def loaded_warehouse(warehouse_url, sandbox_data, tmp_path):
    """The raw layer of the sandbox's days, landed through the raw assets' own code path."""
    upgrade(warehouse_url)
    store = Warehouse(warehouse_url)
    land_raw_layer(store, sandbox_data, tmp_path)
    yield store
    store.dispose()


def test_a_range_of_days_is_one_run_with_a_check_result_per_day(loaded_warehouse):
    store = loaded_warehouse
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*feature_assets, *feature_checks],
        selection=[a.key for a in feature_assets],
        resources={"warehouse": WarehouseResource(url=store.url)},
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": FIRST_FEATURE_DAY.isoformat(),
            "dagster/asset_partition_range_end": LAST_FEATURE_DAY.isoformat(),
        },
        raise_on_error=False,
    )
    assert result.success
    days = (LAST_FEATURE_DAY - FIRST_FEATURE_DAY).days + 1

    features = store.read_partitions("account_features_daily", FIRST_FEATURE_DAY, LAST_FEATURE_DAY)
    staging = store.read_partitions("stg_accounts_daily", FIRST_FEATURE_DAY, LAST_FEATURE_DAY)
    labels = store.read_partitions("labels_next_session", FIRST_FEATURE_DAY, LAST_FEATURE_DAY)
    assert features.height == staging.height > 0
    # Labels only for the sessions of the trading calendar (Monday to Friday by default).
    assert labels.height == trading_calendar().only_sessions(features).height > 0
    assert labels["date"].map_elements(lambda d: d.weekday() < 5, pl.Boolean).all()
    assert features.columns == output_columns()
    assert set(features["feature_set_version"].unique()) == {feature_set_version()}
    assert features["date"].n_unique() == days

    # Every day of the range has its own result for each check, in the instance.
    for asset, check in [
        ("account_features_daily", COVERAGE),
        ("labels_next_session", LABEL_COVERAGE),
    ]:
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(asset), check), limit=100
        )
        by_day = {r.partition: r.status.value for r in records if r.partition}
        assert len(by_day) == days, (asset, check, by_day)
        assert set(by_day.values()) == {"SUCCEEDED"}, by_day


def test_a_day_whose_raw_landing_failed_is_skipped_downstream_and_reported(
    warehouse_url, sandbox_data, tmp_path
):
    # 2025-01-09's closed trades fail their first landing (a shortfall paging cannot
    # recover): nothing is published for it. Staging of that day needs only daily metrics;
    # features need the day itself and the 20 before it of every source, so features of the 9th
    # and every later day of the range wait, and are reported, never computed over the hole.
    failed_day = dt.date(2025, 1, 9)
    upgrade(warehouse_url)
    store = Warehouse(warehouse_url)
    land_raw_layer(
        store, sandbox_data, tmp_path, skip=frozenset({("raw_trades_closed", failed_day)})
    )
    with (
        SandboxServer(sandbox_data, rate_limit=None) as server,
        RiskApiClient(
            server.base_url,
            server.api_key,
            page_size=5,
            extra_headers={FAULTS_HEADER: "shift=1, shift_by=2"},
        ) as client,
    ):
        report = ingest_api_source(client, store, TRADES_CLOSED, failed_day, run_id="faulty")
    assert report.outcome is Outcome.WITHHELD
    assert store.read_partitions("raw_trades_closed", failed_day, failed_day).height == 0

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*feature_assets, *feature_checks, *guard_checks],
        selection=[a.key for a in feature_assets],
        resources={"warehouse": WarehouseResource(url=store.url)},
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": FIRST_FEATURE_DAY.isoformat(),
            "dagster/asset_partition_range_end": LAST_FEATURE_DAY.isoformat(),
        },
        raise_on_error=False,
    )
    features = store.read_partitions("account_features_daily", FIRST_FEATURE_DAY, LAST_FEATURE_DAY)
    computed = set(features["date"].unique().to_list())
    expected = {
        FIRST_FEATURE_DAY + dt.timedelta(days=i)
        for i in range((failed_day - FIRST_FEATURE_DAY).days)
    }
    assert computed == expected
    staging = store.read_partitions("stg_accounts_daily", FIRST_FEATURE_DAY, LAST_FEATURE_DAY)
    assert failed_day in set(staging["date"].to_list())
    # Each skipped day has its own failed blocking check naming what it waits for.
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("account_features_daily"), RAW_INPUTS_PUBLISHED), limit=100
    )
    by_day = {r.partition: r for r in records if r.partition}
    skipped = [d for d, r in by_day.items() if r.status.value == "FAILED"]
    assert sorted(skipped) == [
        d.isoformat()
        for d in sorted(
            FIRST_FEATURE_DAY + dt.timedelta(days=i)
            for i in range((LAST_FEATURE_DAY - FIRST_FEATURE_DAY).days + 1)
        )
        if d >= failed_day
    ]
    evaluation = by_day[failed_day.isoformat()].event.dagster_event.event_specific_data
    assert (
        f"raw_trades_closed {failed_day.isoformat()}"
        in evaluation.metadata["unpublished_raw_partitions"].value
    )
    meta = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("account_features_daily")
    )
    assert meta["days_skipped"].value == len(skipped)
    store.dispose()


def test_rerunning_a_range_keeps_one_row_per_account_day(loaded_warehouse):
    store = loaded_warehouse
    for _ in range(2):
        result = dg.materialize(
            feature_assets,
            resources={"warehouse": WarehouseResource(url=store.url)},
            instance=dg.DagsterInstance.ephemeral(),
            tags={
                "dagster/asset_partition_range_start": FIRST_FEATURE_DAY.isoformat(),
                "dagster/asset_partition_range_end": LAST_FEATURE_DAY.isoformat(),
            },
        )
        assert result.success
    features = store.read_partitions("account_features_daily", FIRST_FEATURE_DAY, LAST_FEATURE_DAY)
    assert features.select("date", "account_id").is_unique().all()


def test_the_desk_summary_refreshes_after_the_features(loaded_warehouse):
    store = loaded_warehouse
    result = dg.materialize(
        feature_assets,
        resources={"warehouse": WarehouseResource(url=store.url)},
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": FIRST_FEATURE_DAY.isoformat(),
            "dagster/asset_partition_range_end": LAST_FEATURE_DAY.isoformat(),
        },
        selection=["stg_accounts_daily"],
    )
    assert result.success
    summary = dg.materialize(
        feature_assets,
        resources={"warehouse": WarehouseResource(url=store.url)},
        instance=dg.DagsterInstance.ephemeral(),
        selection=["account_performance_summary"],
    )
    assert summary.success
    [event] = summary.get_asset_materialization_events()
    staging = store.read_partitions("stg_accounts_daily", FIRST_FEATURE_DAY, LAST_FEATURE_DAY)
    assert event.materialization.metadata["accounts"].value == staging["account_id"].n_unique()
    daily = store.read_partitions("raw_metrics_daily", START, START + dt.timedelta(days=N_DAYS))
    one = staging["account_id"][0]
    lifetime = daily.filter(daily["account_id"] == one)["net_profit"].sum()
    frame = refresh_summary(store)
    row = frame.filter(frame["account_id"] == one)
    assert abs(row["lifetime_net_profit"][0] - lifetime) < 0.01
