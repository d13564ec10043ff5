"""Staging, features and labels through Dagster: a range of days in one run, with every day's
own check results, on both warehouses."""

import datetime as dt

import dagster as dg
import pytest

from daily_profit.defs.features.assets import feature_assets
from daily_profit.defs.features.checks import COVERAGE, LABEL_COVERAGE, feature_checks
from daily_profit.defs.resources import WarehouseResource
from daily_profit.features.catalog import feature_set_version, output_columns
from daily_profit.sandbox.simulation import SimulationConfig, simulate
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
    labels = store.read_partitions("labels_next_day", FIRST_FEATURE_DAY, LAST_FEATURE_DAY)
    assert features.height == staging.height == labels.height > 0
    assert features.columns == output_columns()
    assert set(features["feature_set_version"].unique()) == {feature_set_version()}
    assert features["date"].n_unique() == days

    # Every day of the range has its own result for each check, in the instance.
    for asset, check in [("account_features_daily", COVERAGE), ("labels_next_day", LABEL_COVERAGE)]:
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(asset), check), limit=100
        )
        by_day = {r.partition: r.status.value for r in records if r.partition}
        assert len(by_day) == days, (asset, check, by_day)
        assert set(by_day.values()) == {"SUCCEEDED"}, by_day


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
