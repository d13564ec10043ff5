"""The model on the real road at default size: sandbox -> features -> labels -> train -> score.

One file on purpose: pytest-xdist (``--dist loadfile``) builds session fixtures per worker, so
every test that needs the sandbox-trained bundle lives here and it is trained once.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from daily_profit.modeling.baselines import MEAN_BASELINES
from daily_profit.modeling.bundle import (
    STACK_BASELINES,
    ModelBundle,
    attach_baselines,
    baseline_column,
)
from daily_profit.modeling.dataset import DATE, label_dates
from daily_profit.modeling.evaluate import evaluate_result
from daily_profit.modeling.scoring import score_accounts
from daily_profit.modeling.tracking import ProfitModelPyfunc, model_input
from daily_profit.modeling.train import TrainResult
from daily_profit_tests.modeling.sandbox_frame import SandboxFrame


def test_coverage_on_sandbox_test_days_where_it_matters(trained: TrainResult) -> None:
    """Default-size sandbox (~1,500 test rows over ~17 sessions): on rows with a non-zero outcome
    the 90% interval covers within 85-95%, overall and in every weekday, regime and
    predicted-scale decile cell of at least 300 rows."""
    table = trained.conditional_coverage()
    assert table.filter(pl.col("dimension") == "all")["rows"][0] > 1_200
    moving = table.filter(pl.col("dimension") != "all")
    assert (moving["rows"] >= 300).all()
    assert moving["coverage"].is_between(0.85, 0.95).all(), moving


def test_segments_do_not_leak(trained: TrainResult) -> None:
    s = trained.split
    assert label_dates(s.train).max() < s.calibration[DATE].min()
    assert label_dates(s.calibration).max() < s.test[DATE].min()
    assert s.train[DATE].max() < s.calibration[DATE].min() < s.test[DATE].min()
    # The last label the fit saw is recorded, and the test days come after it.
    assert str(label_dates(s.calibration).max()) == trained.bundle.metadata["fit_label_end"]


def test_outputs_are_finite_and_ordered(trained: TrainResult) -> None:
    tp = trained.test_predictions
    cols = ["expected_net_profit", "p05", "p50", "p95", "breach_probability"]
    assert all(np.isfinite(tp[c].to_numpy()).all() for c in cols)
    assert (tp["p05"] <= tp["p50"]).all() and (tp["p50"] <= tp["p95"]).all()
    p = tp["breach_probability"].to_numpy()
    assert ((p > 0) & (p < 1)).all()


def test_model_against_baselines(sandbox: SandboxFrame, trained: TrainResult) -> None:
    report = evaluate_result(trained, history=sandbox.history, truth=sandbox.truth)
    for predictor in ("model", *MEAN_BASELINES):
        assert math.isfinite(report.get(predictor, "rmse")), predictor
    assert math.isfinite(report.get("oracle", "mse"))
    assert "test_model_share_of_achievable_mse_gain" in report.flat()
    # The interval is the model's clearest win: well ahead of the trailing percentiles.
    assert report.get("model", "interval_score") < report.get(
        "trailing_percentiles", "interval_score"
    )
    # The mean never does worse than predicting zero by more than noise (shrinkage guards it).
    assert report.get("model", "rmse") <= report.get("zero", "rmse") * 1.005
    assert report.extras["breach_rule_columns"], "headroom columns from the catalog were found"
    # Beside the model's own intervals, the ones the desk is served (stretched each night by the
    # outcomes known at the day's close), in MLflow's metrics too.
    assert "test_model_served_coverage" in report.flat()
    width, served_width = (
        report.get("model", "mean_width"),
        report.get("model_served", "mean_width"),
    )
    assert served_width != width
    assert 0.5 * width <= served_width <= 3.0 * width  # the stretch's bounds
    assert math.isfinite(report.get("headroom_rule", "brier"))


def test_scoring_a_sandbox_day(sandbox: SandboxFrame, trained: TrainResult) -> None:
    last = sandbox.frame.filter(pl.col(DATE) == sandbox.frame[DATE].max())
    day = attach_baselines(last, sandbox.history)
    out = score_accounts(trained.bundle, day, model_version="1", exact_top_n=10)
    assert out.height == day.height
    assert ((out["p05"] <= out["p50"]) & (out["p50"] <= out["p95"])).all()
    assert out["risk_score"].is_between(0, 100).all()
    names = trained.bundle.mean_input_names() + [baseline_column(b) for b in STACK_BASELINES]
    assert out["driver_1_feature"].is_in(names).all()
    assert (out["drivers_method"] == "tree_shap").sum() == min(10, day.height)
    assert out["feature_set_version"].n_unique() == 1


def test_saved_bundle_and_pyfunc_reproduce_predictions(
    tmp_path: Path, trained: TrainResult
) -> None:
    """Save/load and the MLflow pyfunc path (pandas in, string categories included) are exact."""
    rows = trained.split.test
    loaded = ModelBundle.load(trained.bundle.save(tmp_path / "bundle"))
    assert loaded.categories == trained.bundle.categories
    assert loaded.drift_reference == trained.bundle.drift_reference is not None
    expected = trained.bundle.predict(rows).as_frame()
    assert loaded.predict(rows).as_frame().equals(expected)
    wrapper = ProfitModelPyfunc()
    wrapper.bundle = loaded
    served = wrapper.predict(None, model_input(rows, loaded))  # type: ignore[arg-type]
    assert pl.from_pandas(served.drop(columns=["account_id"])).equals(expected)
