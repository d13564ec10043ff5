"""Training on the small synthetic firm: coverage within binomial tolerance, determinism."""

from __future__ import annotations

import polars as pl

from daily_profit.modeling.dataset import DATE
from daily_profit.modeling.evaluate import binomial_tolerance
from daily_profit.modeling.synthetic import SyntheticData
from daily_profit.modeling.train import TrainResult, train_profit_model
from daily_profit_tests.modeling.conftest import small_config


def _coverage(result: TrainResult) -> tuple[float, int]:
    tp = result.test_predictions
    y = tp["net_profit_next_session"].to_numpy()
    inside = (y >= tp["p05"].to_numpy()) & (y <= tp["p95"].to_numpy())
    return float(inside.mean()), y.size


def test_coverage_of_a_small_test_set_within_binomial_tolerance(
    trained_synthetic: TrainResult,
) -> None:
    """~1,500 test rows: 3 binomial standard deviations plus conformal's finite-sample slack."""
    coverage, n = _coverage(trained_synthetic)
    n_cal = trained_synthetic.bundle.offsets.n_calibration
    tol = binomial_tolerance(n, z=3.0) + 2.0 / (n_cal + 1)
    assert abs(coverage - 0.90) <= tol, (coverage, tol)


def test_same_seed_same_predictions(
    synthetic: SyntheticData, trained_synthetic: TrainResult
) -> None:
    again = train_profit_model(synthetic.frame, synthetic.feature_columns, small_config())
    assert again.test_predictions.equals(trained_synthetic.test_predictions)
    assert again.bundle.offsets == trained_synthetic.bundle.offsets
    assert again.bundle.calibrator == trained_synthetic.bundle.calibrator
    assert again.bundle.mean_shrinkage == trained_synthetic.bundle.mean_shrinkage


def test_unusable_labels_are_not_trained_on(synthetic: SyntheticData) -> None:
    frame = synthetic.frame.with_columns(
        pl.when(pl.col(DATE) == pl.col(DATE).max())
        .then(None)
        .otherwise(pl.col("net_profit_next_session"))
        .alias("net_profit_next_session")
    )
    result = train_profit_model(frame, synthetic.feature_columns, small_config())
    assert result.split.test[DATE].max() < frame[DATE].max()
