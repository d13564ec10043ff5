"""The model layer through Dagster: train, log, register and promote, then predict a range of
days with champion and challenger rows kept per model version; outcomes once D+1 is known."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from daily_profit.config import get_settings
from daily_profit.defs.features.assets import feature_assets
from daily_profit.defs.model.assets import (
    CHAMPION_PROMOTION,
    champion_registered,
    model_assets,
    prediction_checks,
)
from daily_profit.defs.resources import MlflowResource, WarehouseResource
from daily_profit.modeling.tracking import CHALLENGER, CHAMPION, load_backtest, load_version
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit.trading_calendar import trading_calendar
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.migrate import upgrade
from daily_profit_tests.defs.landing import land_raw_layer

N_DAYS = 50
FIRST, LAST = dt.date(2025, 1, 2), dt.date(2025, 2, 15)
RANGE_TAGS = {
    "dagster/asset_partition_range_start": FIRST.isoformat(),
    "dagster/asset_partition_range_end": LAST.isoformat(),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite warehouse with 50 sandbox days landed and their features and labels built."""
    tmp = tmp_path_factory.mktemp("model_layer")
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


def _train(store, mlflow, instance, n_trials: int, seed: int) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        model_assets,
        selection=["profit_model"],
        resources={"warehouse": WarehouseResource(url=store.url), "mlflow": mlflow},
        instance=instance,
        run_config={
            "ops": {
                "profit_model": {
                    "config": {"n_trials": n_trials, "max_search_seconds": 60, "seed": seed}
                }
            }
        },
        raise_on_error=False,
    )


def test_train_promote_predict_and_keep_every_version(store, tmp_path, monkeypatch):
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.sqlite'}")
    instance = dg.DagsterInstance.ephemeral()

    first = _train(store, mlflow, instance, n_trials=1, seed=0)
    [materialised] = first.get_asset_materialization_events()
    meta = materialised.materialization.metadata
    assert meta["model_version"].value == "1"
    assert meta["mlflow_run"].value.startswith("http")
    [decision] = [
        e for e in first.get_asset_check_evaluations() if e.check_name == CHAMPION_PROMOTION
    ]
    assert decision.metadata["decision"].value in {"promoted", "kept"}
    assert decision.metadata["reasons"].value  # the reasons are always visible
    # 50 days are too few for a walk-forward origin (56 days of history by default): judged on
    # the challenger's test days, and it says so.
    assert decision.metadata["evidence"].value.endswith("no walk-forward")
    target = mlflow.target()
    assert load_version(target, alias=CHALLENGER).version == "1"
    champion = load_version(target, alias=CHAMPION)
    assert (champion is not None) == decision.passed

    predicted = dg.materialize(
        [*model_assets, *prediction_checks],
        selection=["daily_predictions"],
        resources={"warehouse": WarehouseResource(url=store.url), "mlflow": mlflow},
        instance=instance,
        tags=RANGE_TAGS,
    )
    assert predicted.success
    # The latest days' intervals were recalibrated on the outcomes of the sessions before them.
    scored = predicted.get_asset_materialization_events()[-1]  # one per day, alike
    stretch = scored.materialization.metadata["interval_stretch"].value
    values = [v for by_day in stretch.values() for v in by_day.values()]
    assert len(values) == 5 and all(0.5 <= v <= 3.0 for v in values)
    assert any(v != 1.0 for v in values)
    rows = store.read_partitions("daily_predictions", FIRST, LAST)
    # Predictions only for sessions, each saying the span it is for (Friday: Saturday..Monday).
    features = trading_calendar().only_sessions(
        store.read_partitions("account_features_daily", FIRST, LAST)
    )
    assert rows.filter(pl.col("model_version") == "1").height == features.height
    spans = rows.select("date", "target_start", "target_end").unique()
    assert (spans["target_start"] == spans["date"] + dt.timedelta(days=1)).all()
    fridays = spans.filter(pl.col("date").dt.weekday() == 5)
    assert (
        fridays.height and (fridays["target_end"] == fridays["date"] + dt.timedelta(days=3)).all()
    )
    assert (rows["p05"] <= rows["p50"]).all() and (rows["p50"] <= rows["p95"]).all()
    assert rows["in_sample"].any() and not rows["in_sample"].all()
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("daily_predictions"), "quantiles_ordered"), limit=200
    )
    # One result per day of the range (plus the range summary of the declared check).
    assert len({r.partition for r in records if r.partition}) == (LAST - FIRST).days + 1

    # A second training with other settings: a new challenger, compared with reasons recorded;
    # its predictions are added beside version 1's, never over them. Origins from day 35 on,
    # every 5 days: the challenger is judged on its method's walk-forward days, which its run keeps.
    monkeypatch.setenv("DAILY_PROFIT_WALK_FORWARD_MIN_TRAIN_DAYS", "35")
    monkeypatch.setenv("DAILY_PROFIT_WALK_FORWARD_STEP_DAYS", "5")
    get_settings.cache_clear()
    try:
        second = _train(store, mlflow, instance, n_trials=2, seed=1)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert (
        second.get_asset_materialization_events()[0].materialization.metadata["model_version"].value
        == "2"
    )
    [decision2] = [
        e for e in second.get_asset_check_evaluations() if e.check_name == CHAMPION_PROMOTION
    ]
    assert decision2.metadata["challenger_version"].value == "2"
    assert decision2.metadata["reasons"].value
    evidence = decision2.metadata["evidence"].value
    assert evidence.startswith("the challenger's walk-forward: ")
    assert "(60 asked: all the history allows)" in evidence
    assert decision2.metadata["days_compared"].value >= 5  # of the 8 sessions from day 35
    kept = load_backtest(target, load_version(target, version="2").run_id)
    assert kept is not None and kept["date"].min() >= FIRST + dt.timedelta(days=35)
    if champion is not None:
        # Version 1 kept no backtest: met on the days after its own fitted window only.
        assert "0 of its stored walk-forward" in evidence
    version_one_before = rows.filter(pl.col("model_version") == "1").drop("scored_run_id")
    again = dg.materialize(
        model_assets,
        selection=["daily_predictions"],
        resources={"warehouse": WarehouseResource(url=store.url), "mlflow": mlflow},
        instance=instance,
        tags=RANGE_TAGS,
    )
    assert again.success
    after = store.read_partitions("daily_predictions", FIRST, LAST)
    assert set(after["model_version"].unique()) == {"1", "2"}
    assert (
        after.filter(pl.col("model_version") == "1")
        .drop("scored_run_id")
        .equals(version_one_before)
    )

    outcomes = dg.materialize(
        model_assets,
        selection=["prediction_outcomes"],
        resources={"warehouse": WarehouseResource(url=store.url), "mlflow": mlflow},
        instance=instance,
        tags=RANGE_TAGS,
    )
    assert outcomes.success
    realised = store.read_partitions("prediction_outcomes", FIRST, LAST)
    assert realised.height > 0 and set(realised["model_version"].unique()) == {"1", "2"}


def test_the_champion_check_reads_the_registry_when_it_runs(tmp_path):
    # What a person does after promoting a version by hand: the check, executed on its own,
    # reads the alias as it is now.
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.sqlite'}")
    target = mlflow.target()
    assert not champion_registered(mlflow=mlflow).passed  # no registered model yet
    client = target.client()
    client.create_registered_model(target.registered_model_name)
    version = client.create_model_version(
        target.registered_model_name, source=str(tmp_path / "model")
    ).version
    unaliased = champion_registered(mlflow=mlflow)
    assert not unaliased.passed and unaliased.metadata["champion_version"].value == "none"
    client.set_registered_model_alias(target.registered_model_name, CHAMPION, version)
    aliased = champion_registered(mlflow=mlflow)
    assert aliased.passed and aliased.metadata["champion_version"].value == str(version)
