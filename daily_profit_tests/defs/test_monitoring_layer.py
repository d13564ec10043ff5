"""Monitoring through Dagster: feature_drift against a trained champion's reference, and the
clean skip before any champion exists."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from daily_profit.defs.features.assets import feature_assets
from daily_profit.defs.model.assets import model_assets
from daily_profit.defs.monitoring.assets import (
    DRIFTED,
    FEATURE_DRIFT,
    FEATURES_NOT_DRIFTED,
    NO_CHAMPION,
    STATUS,
    WEIGHTED_EXCESS_PSI,
    WEIGHTED_PSI,
    monitoring_assets,
)
from daily_profit.defs.resources import MlflowResource, WarehouseResource
from daily_profit.modeling.tracking import CHAMPION, TrackingTarget, load_drift_reference
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.migrate import upgrade
from daily_profit_tests.defs.landing import land_raw_layer

N_DAYS = 50
FIRST, LAST = dt.date(2025, 1, 2), dt.date(2025, 2, 15)
RANGE_TAGS = {
    "dagster/asset_partition_range_start": FIRST.isoformat(),
    "dagster/asset_partition_range_end": LAST.isoformat(),
}
# A day the champion never trained on, and a day whose features we shift.
CALM_DAY, SHIFTED_DAY = dt.date(2025, 2, 13), dt.date(2025, 2, 14)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite warehouse with 50 sandbox days landed and their features and labels built."""
    tmp = tmp_path_factory.mktemp("monitoring_layer")
    url = f"sqlite:///{tmp / 'warehouse.sqlite'}"
    upgrade(url)
    warehouse = Warehouse(url)
    data = simulate(SimulationConfig(n_accounts=200, n_days=N_DAYS, seed=7))
    land_raw_layer(warehouse, data, tmp)
    built = dg.materialize(
        feature_assets[:3],
        resources={"warehouse": WarehouseResource(url=url)},
        instance=dg.DagsterInstance.ephemeral(),
        tags=RANGE_TAGS,
    )
    assert built.success
    yield warehouse
    warehouse.dispose()


@pytest.fixture(scope="module")
def champion(store, tmp_path_factory) -> MlflowResource:
    """One trained version, made champion (by hand if promotion kept it back: the drift is
    measured against whichever version is champion)."""
    folder = tmp_path_factory.mktemp("mlflow")
    mlflow = _mlflow_under(folder)
    trained = dg.materialize(
        model_assets,
        selection=["profit_model"],
        resources={"warehouse": WarehouseResource(url=store.url), "mlflow": mlflow},
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"profit_model": {"config": {"n_trials": 1, "max_search_seconds": 60}}}},
        raise_on_error=False,
    )
    version = trained.get_asset_materialization_events()[0].materialization.metadata
    target = mlflow.target()
    target.client().set_registered_model_alias(
        target.registered_model_name, CHAMPION, version["model_version"].value
    )
    return mlflow


def _mlflow_under(folder) -> MlflowResource:
    """A tracking store whose experiment keeps its artifacts in ``folder`` too (MLflow's
    default would be ./mlruns in the working directory)."""
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{folder / 'mlflow.sqlite'}")
    target = mlflow.target()
    TrackingTarget(
        tracking_uri=target.tracking_uri,
        experiment_name=target.experiment_name,
        artifact_location=(folder / "artifacts").as_uri(),
    ).experiment_id()
    return mlflow


def _drift(store, mlflow, day: dt.date) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        monitoring_assets,
        partition_key=day.isoformat(),
        resources={"warehouse": WarehouseResource(url=store.url), "mlflow": mlflow},
        instance=dg.DagsterInstance.ephemeral(),
    )


def _outcome(result: dg.ExecuteInProcessResult) -> tuple[dict, dg.AssetCheckEvaluation]:
    [event] = result.get_asset_materialization_events()
    assert event.materialization.asset_key == FEATURE_DRIFT
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == FEATURES_NOT_DRIFTED
    return {k: v.value for k, v in event.materialization.metadata.items()}, check


def test_without_a_champion_drift_is_skipped_with_the_reason(store, tmp_path):
    mlflow = _mlflow_under(tmp_path)
    meta, check = _outcome(_drift(store, mlflow, CALM_DAY))
    assert meta[STATUS] == NO_CHAMPION and WEIGHTED_PSI not in meta
    assert check.passed and check.metadata[STATUS].value == NO_CHAMPION
    assert store.read_partitions("feature_drift_daily", CALM_DAY, CALM_DAY).height == 0


def test_a_shifted_day_drifts_and_a_calm_one_does_not(store, champion):
    reference = load_drift_reference(champion.target(), alias=CHAMPION)
    assert reference is not None
    calm, calm_check = _outcome(_drift(store, champion, CALM_DAY))
    print(
        "calm",
        calm["weighted_excess_psi"],
        calm[WEIGHTED_PSI],
        calm["max_psi"],
        calm["features_drifted"],
    )
    print(calm["top_drifting"])

    # Every continuous feature the champion relies on moves by two of its own standard
    # deviations on SHIFTED_DAY: what a changed upstream definition or a market shock looks like.
    day = store.read_partitions("account_features_daily", SHIFTED_DAY, SHIFTED_DAY)
    moved = [
        f.name for f in reference.reference.features if f.kind == "continuous" and f.importance > 0
    ]
    shifted = day.with_columns(
        (pl.col(c) + 2 * pl.col(c).std().fill_null(1.0) + 1.0).alias(c) for c in moved
    )
    store.replace_partitions(
        "account_features_daily", shifted, dates=[SHIFTED_DAY], run_id="shift-test"
    )
    drifted, drifted_check = _outcome(_drift(store, champion, SHIFTED_DAY))
    print(
        "shifted",
        drifted["weighted_excess_psi"],
        drifted[WEIGHTED_PSI],
        drifted["max_psi"],
        drifted["features_drifted"],
    )
    print(drifted["top_drifting"])

    assert calm[STATUS] == drifted[STATUS] == "measured"
    assert calm[DRIFTED] == 0 and calm_check.passed
    assert drifted[DRIFTED] == 1 and not drifted_check.passed
    # The verdict reads the excess over a training day's own PSI, weighted by importance.
    threshold = drifted["weighted_psi_threshold"]
    assert calm[WEIGHTED_EXCESS_PSI] <= threshold < drifted[WEIGHTED_EXCESS_PSI]
    assert drifted[WEIGHTED_EXCESS_PSI] > 10 * calm[WEIGHTED_EXCESS_PSI]
    assert calm[WEIGHTED_PSI] >= calm[WEIGHTED_EXCESS_PSI]
    assert drifted["features_drifted"] > calm["features_drifted"]
    # The table names the moved features with their values in training and on the day.
    top = drifted["top_drifting"]
    assert any(f"| {name} |" in top for name in moved) and "median" in top
    assert drifted_check.severity == dg.AssetCheckSeverity.WARN
    # Per-day numbers the UI plots, among them the champion's most important features' PSI.
    assert sum(k.startswith("psi.") for k in drifted) == 10
    assert drifted["day_level_features_not_compared"] == len(reference.reference.day_level) > 0
    # Every compared feature's numbers are kept per day in the warehouse.
    kept = store.read_partitions("feature_drift_daily", CALM_DAY, SHIFTED_DAY)
    assert kept.height == 2 * len(reference.reference.features) == 2 * drifted["rows_written"]
    assert set(kept["model_version"]) == {reference.version}
    shifted_rows = kept.filter(pl.col("date") == SHIFTED_DAY)
    assert shifted_rows["psi"].max() == pytest.approx(drifted["max_psi"])
    assert shifted_rows.filter(pl.col("excess_psi") >= 0.2).height == drifted["features_drifted"]
