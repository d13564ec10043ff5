"""model_performance through Dagster on a known outcomes table: the day, the 7- and 28-session
windows beside the best baseline, and the decay check."""

import math

import dagster as dg
import polars as pl
import pytest

from daily_profit.defs.model.assets import (
    DECAYED,
    MODEL_NOT_DECAYED,
    MODEL_PERFORMANCE,
    model_performance,
)
from daily_profit.defs.resources import WarehouseResource
from daily_profit.warehouse.io import Warehouse, table_info
from daily_profit.warehouse.migrate import upgrade
from daily_profit_tests.monitoring.outcomes_factory import (
    LAST_DAY,
    known_history,
    known_labels,
    known_outcomes,
    weekdays,
)


def _raw_daily(history: pl.DataFrame) -> pl.DataFrame:
    """Raw daily metrics rows carrying ``history``'s P&L (what the baselines read); the other
    required fields hold placeholders of their type."""
    info = table_info("raw_metrics_daily")
    filler = {
        c: pl.lit("x") if info.schema[c] == pl.String else pl.lit(0).cast(info.schema[c])
        for c in info.not_null
        if c not in history.columns
    }
    rows = history.with_columns(**filler)
    absent = [pl.lit(None, info.schema[c]).alias(c) for c in info.business if c not in rows.columns]
    return rows.with_columns(absent).select(info.business)


@pytest.fixture
def store(sqlite_url):
    upgrade(sqlite_url)
    warehouse = Warehouse(sqlite_url)
    days = weekdays()
    warehouse.replace_partitions("labels_next_session", known_labels(), dates=days, run_id="test")
    history = known_history()
    warehouse.replace_partitions(
        "raw_metrics_daily",
        _raw_daily(history),
        dates=sorted(set(history["date"].to_list())),
        run_id="test",
    )
    warehouse.replace_partitions("prediction_outcomes", known_outcomes(), dates=days, run_id="test")
    yield warehouse
    warehouse.dispose()


def _performance(store) -> tuple[dict, dg.AssetCheckEvaluation]:
    result = dg.materialize(
        [model_performance],
        partition_key=LAST_DAY.isoformat(),
        resources={"warehouse": WarehouseResource(url=store.url)},
        instance=dg.DagsterInstance.ephemeral(),
    )
    [event] = result.get_asset_materialization_events()
    assert event.materialization.asset_key == MODEL_PERFORMANCE
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == MODEL_NOT_DECAYED
    return {k: v.value for k, v in event.materialization.metadata.items()}, check


def test_windows_beside_the_day_and_a_model_in_line(store):
    meta, check = _performance(store)
    # The single day per role, as before.
    assert meta["champion_rmse"] == pytest.approx(1.0) and meta["rows"] == 20
    # Numeric metadata per window, for the UI's plots.
    assert meta["champion_1d_rmse"] == pytest.approx(1.0)
    assert meta["champion_7d_rmse"] == pytest.approx(1.0)
    assert meta["champion_28d_rmse"] == pytest.approx(math.sqrt((7 + 21 * 4) / 28))
    assert meta["champion_28d_mae"] == pytest.approx((7 + 21 * 2) / 28)
    assert meta["champion_28d_days"] == 28 and meta["champion_28d_coverage"] == pytest.approx(0.9)
    assert meta["champion_28d_rmse_vs_best_baseline"] < 0.25
    assert meta["window_7d"] == "2025-03-06..2025-03-14"
    assert meta["champion_version"] == "1" and meta[DECAYED] == 0
    assert check.passed and check.severity == dg.AssetCheckSeverity.WARN


def test_a_champion_worse_than_the_baselines_has_decayed(store):
    worse = known_outcomes().with_columns(
        pl.when(pl.col("model_role") == "champion")
        .then(pl.col("realised_net_profit") + 30.0)
        .otherwise(pl.col("expected_net_profit"))
        .alias("expected_net_profit")
    )
    store.replace_partitions("prediction_outcomes", worse, dates=weekdays(), run_id="worse")
    meta, check = _performance(store)
    assert meta[DECAYED] == 1 and meta["champion_28d_rmse"] == pytest.approx(30.0)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "worse than the best baseline" in check.description
    assert "worse than the best baseline" in meta["decay_reasons"]
