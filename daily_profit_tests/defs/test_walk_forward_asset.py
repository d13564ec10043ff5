"""model_walk_forward through Dagster on a small landed warehouse: per-origin metrics in MLflow
with the origin as step, the table and the plot in the UI's metadata."""

import datetime as dt
import itertools

import dagster as dg
import pytest

from daily_profit.defs.features.assets import feature_assets
from daily_profit.defs.model.walk_forward import WALK_FORWARD, model_walk_forward, origin_step
from daily_profit.defs.resources import MlflowResource, WarehouseResource
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.migrate import upgrade
from daily_profit_tests.defs.landing import land_raw_layer

N_DAYS = 63
FIRST, LAST = dt.date(2025, 1, 2), dt.date(2025, 2, 14)
RANGE_TAGS = {
    "dagster/asset_partition_range_start": FIRST.isoformat(),
    "dagster/asset_partition_range_end": LAST.isoformat(),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite warehouse with 63 sandbox days of 60 accounts landed and their features and labels built."""
    tmp = tmp_path_factory.mktemp("walk_forward")
    url = f"sqlite:///{tmp / 'warehouse.sqlite'}"
    upgrade(url)
    warehouse = Warehouse(url)
    data = simulate(SimulationConfig(n_accounts=60, n_days=N_DAYS, seed=7))
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


def test_walk_forward_materialises_with_plots_in_the_ui_and_mlflow(store, tmp_path):
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.sqlite'}")
    result = dg.materialize(
        [model_walk_forward],
        resources={"warehouse": WarehouseResource(url=store.url), "mlflow": mlflow},
        instance=dg.DagsterInstance.ephemeral(),
        run_config={
            "ops": {
                WALK_FORWARD: {
                    "config": {"step_days": 7, "min_train_days": 35, "n_trials": 1, "seed": 0}
                }
            }
        },
    )
    assert result.success
    [event] = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    origins = meta["origins"].value
    # Labels run to the day before the last landed day; origins every 7 days from day 35.
    assert origins >= 2
    assert 0 < meta["out_of_sample_trading_days"].value <= meta["out_of_sample_days"].value
    assert meta["plot"].value.startswith("![walk-forward](data:image/png;base64,")
    table = meta["per_origin"].value
    assert table.count("\n") == origins + 1  # header, rule, one row per origin
    assert "best_baseline_rmse" in table and "oracle_rmse" in table
    for name in ("pooled_model_rmse", "pooled_best_baseline_rmse", "pooled_coverage_overall"):
        assert isinstance(meta[name].value, float)
    assert "outcome:nonzero" in meta["conditional_coverage"].value

    client = mlflow.target().client()
    run_id = meta["mlflow_run"].value.rsplit("/", 1)[-1]
    history = client.get_metric_history(run_id, "wf_model_rmse")
    steps = sorted(m.step for m in history)
    assert len(steps) == origins
    first_origin = dt.date.fromisoformat(
        client.get_run(run_id).data.tags["walk_forward.first_origin"]
    )
    assert steps[0] == origin_step(first_origin)
    assert all(b - a == 7 for a, b in itertools.pairwise(steps))
    for key in ("wf_zero_rmse", "wf_account_mean_rmse", "wf_headroom_rule_brier"):
        assert len(client.get_metric_history(run_id, key)) == origins
    artifacts = [a.path for a in client.list_artifacts(run_id, "walk_forward")]
    assert "walk_forward/per_origin.png" in artifacts
    assert "walk_forward/per_origin.csv" in artifacts
