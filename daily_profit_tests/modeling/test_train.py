"""Training on the small synthetic firm: coverage within its days' tolerance, determinism."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from daily_profit.modeling import train
from daily_profit.modeling.baselines import CARRIED_UNREALISED, SHRUNK_ACCOUNT_MEANS
from daily_profit.modeling.bundle import STACK_BASELINES
from daily_profit.modeling.dataset import DATE
from daily_profit.modeling.promotion import PromotionCriteria, coverage_band
from daily_profit.modeling.synthetic import SYNTHETIC_CALENDAR, SyntheticData
from daily_profit.modeling.train import (
    DEFAULT_TRIAL,
    MethodParams,
    TrainConfig,
    TrainResult,
    choose_mean,
    train_profit_model,
)
from daily_profit_tests.modeling.conftest import small_config


def _coverage(predictions: pl.DataFrame) -> tuple[float, float]:
    """Coverage of the rows with a non-zero outcome (what the intervals are calibrated for: a
    day without trading is inside almost any interval), and its day-clustered standard error
    (the accounts of a day share its shock: rows are not independent trials)."""
    moved = predictions.filter(pl.col("net_profit_next_session") != 0)
    y = moved["net_profit_next_session"].to_numpy()
    inside = (y >= moved["p05"].to_numpy()) & (y <= moved["p95"].to_numpy())
    coverage, se, _, _ = coverage_band(moved[DATE].to_numpy(), inside, PromotionCriteria())
    return coverage, se


def test_coverage_of_a_small_test_set_holds_where_it_matters(
    trained_synthetic: TrainResult,
) -> None:
    """~1,000 moving test rows on 12 days, calibrated on 12 earlier days: their coverage is in
    the band the desk is promised for rows that moved (85-95%) and within 5 points of the
    level calibrated for. Not tighter: on this firm the test days cover 3.6 points more than
    the calibration days on every weekday alike (0.901 against 0.865, 4 day-clustered standard
    errors): one window's shift from the next, which the seed sweep's walk-forward measures
    over months and firms, not a single split."""
    coverage, se = _coverage(trained_synthetic.test_predictions)
    level = trained_synthetic.bundle.conformal.level
    assert 0.85 <= coverage <= 0.95, (coverage, level, se)
    assert abs(coverage - level) <= 0.05, (coverage, level, se)


def test_same_seed_same_predictions(
    synthetic: SyntheticData, trained_synthetic: TrainResult
) -> None:
    again = train_profit_model(
        synthetic.frame,
        synthetic.feature_columns,
        small_config(),
        history=synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
    )
    assert again.test_predictions.equals(trained_synthetic.test_predictions)
    assert again.bundle.offsets == trained_synthetic.bundle.offsets
    assert again.bundle.calibrator == trained_synthetic.bundle.calibrator
    assert again.bundle.stack == trained_synthetic.bundle.stack
    assert again.bundle.conformal == trained_synthetic.bundle.conformal


def test_a_method_replayed_with_its_hyperparameters_fixed_is_the_same_model(
    synthetic: SyntheticData, trained_synthetic: TrainResult
) -> None:
    """What promotion's backtest relies on: fixing the parameters the search chose (for the
    mean, quantile and breach models each) skips the search and trains the same models."""
    chosen = MethodParams.of(trained_synthetic.bundle.metadata)
    replayed = train_profit_model(
        synthetic.frame,
        synthetic.feature_columns,
        replace(small_config(), fixed_params=chosen),
        history=synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
    )
    assert replayed.search.stopped_by == "fixed" and len(replayed.search.trials) == 1
    assert MethodParams.of(replayed.bundle.metadata) == chosen
    assert (
        replayed.bundle.metadata["params"]["rounds"]
        == (trained_synthetic.bundle.metadata["params"]["rounds"])
    )
    assert replayed.test_predictions.equals(trained_synthetic.test_predictions)
    # Each model takes its own parameters, not the mean model's.
    mixed = MethodParams(
        mean=dict(DEFAULT_TRIAL),
        quantile={**DEFAULT_TRIAL, "max_depth": 2, "quantile_weight_power": 0.0},
        breach={**DEFAULT_TRIAL, "max_depth": 3, "min_child_weight": 50.0},
    )
    fitted = train_profit_model(
        synthetic.frame,
        synthetic.feature_columns,
        replace(small_config(), fixed_params=mixed),
        history=synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
    )
    assert MethodParams.of(fitted.bundle.metadata) == mixed

    def depth(model: str) -> str:
        config = json.loads(fitted.bundle.boosters[model].save_config())
        return config["learner"]["gradient_booster"]["tree_train_param"]["max_depth"]

    assert (depth("mean"), depth("quantile"), depth("breach")) == ("4", "2", "3")


def test_unusable_labels_are_not_trained_on(synthetic: SyntheticData) -> None:
    frame = synthetic.frame.with_columns(
        pl.when(pl.col(DATE) == pl.col(DATE).max())
        .then(None)
        .otherwise(pl.col("net_profit_next_session"))
        .alias("net_profit_next_session")
    )
    result = train_profit_model(
        frame,
        synthetic.feature_columns,
        small_config(),
        history=synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
    )
    assert result.split.test[DATE].max() < frame[DATE].max()


# -- the stacked mean and its fallback ----------------------------------------------------------


def _no_edge_world(
    seed: int, n: int = 6_000
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Outcomes driven by the account's mean; a model term that is pure noise."""
    rng = np.random.default_rng(seed)
    account_mean = rng.normal(0.0, 50.0, n)
    y = account_mean + 300.0 * rng.standard_t(4, n)
    baselines = {
        "zero": np.zeros(n),
        "yesterday": account_mean + rng.normal(0.0, 300.0, n),
        "trailing_5_sessions": account_mean + rng.normal(0.0, 140.0, n),
        "trailing_20_sessions": account_mean + rng.normal(0.0, 70.0, n),
        "account_mean": account_mean + rng.normal(0.0, 10.0, n),
    }
    # The shrunk means: the account mean pulled toward zero, as for short histories.
    for name, k in SHRUNK_ACCOUNT_MEANS.items():
        baselines[name] = baselines["account_mean"] * 40.0 / (40.0 + k)
    baselines[CARRIED_UNREALISED] = np.zeros(n)  # no position open overnight
    return y, rng.normal(0.0, 200.0, n), baselines


def _matrix(baselines: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([baselines[b] for b in STACK_BASELINES])


def test_trained_mean_is_no_worse_than_the_best_baseline_where_it_was_chosen(
    trained_synthetic: TrainResult,
) -> None:
    stack = trained_synthetic.bundle.stack
    evidence = stack.evidence
    cal = trained_synthetic.calibration_predictions
    y = cal["net_profit_next_session"].to_numpy()
    mse = float(np.mean((y - cal["expected_net_profit"].to_numpy()) ** 2))
    if evidence["kept"] == "stack":
        # Kept on the calibration days only by beating the anchor there, day by day.
        assert evidence["stack_beats_anchor_by_day"]
        assert mse <= evidence["best_baseline_mse"] * (1 + 1e-9)
    elif evidence["kept"] == "anchor":
        assert evidence["support_anchor_mse"] <= evidence["support_best_baseline_mse"]
        assert mse == pytest.approx(evidence["anchor_mse"])
    else:
        assert stack.fallback == evidence["support_best_baseline"]


def _anchor_world(
    seed: int, n_days: int = 20, per_day: int = 300
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Each account's outcome is its mean shrunk as by k = 20, plus 60% of what it carries
    overnight, plus noise; the dates of the rows."""
    rng = np.random.default_rng(seed)
    n = n_days * per_day
    _, _, base = _no_edge_world(seed, n)
    # Edges large enough for the strengths of shrinkage to differ by more than the noise.
    base["account_mean"] = rng.normal(0.0, 400.0, n)
    for name, k in SHRUNK_ACCOUNT_MEANS.items():
        base[name] = base["account_mean"] * 40.0 / (40.0 + k)
    carried = np.where(rng.random(n) < 0.3, rng.normal(0.0, 200.0, n), 0.0)
    base[CARRIED_UNREALISED] = carried
    y = base["account_mean_shrunk_20"] + 0.6 * carried + 300.0 * rng.standard_t(4, n)
    return y, np.repeat(np.arange(n_days), per_day), base


def test_the_anchor_finds_the_shrinkage_and_the_share_of_the_carried_pnl_realised() -> None:
    y, _, base = _anchor_world(0)
    anchor = train.fit_anchor(y, base)
    assert anchor["account_mean_shrunk_20"] == 1.0
    assert anchor["model"] == 0.0
    assert anchor[CARRIED_UNREALISED] == pytest.approx(0.6, abs=0.08)
    # A carried P&L that goes the other way is not bet against: its share stays at 0.
    flipped = dict(base, **{CARRIED_UNREALISED: -base[CARRIED_UNREALISED]})
    assert train.fit_anchor(y, flipped)[CARRIED_UNREALISED] == 0.0


def test_a_stack_ahead_by_noise_on_a_few_days_does_not_replace_the_anchor() -> None:
    y_fit, _, base_fit = _anchor_world(0)
    anchor = train.fit_anchor(y_fit, base_fit)
    y, days, base = _anchor_world(1, n_days=8)
    rng = np.random.default_rng(5)
    # The stack's weights overshoot the anchor's inputs; the model term is noise.
    weights = {"model": 0.1, "account_mean_shrunk_80": 1.7, CARRIED_UNREALISED: 2.0}
    model = rng.normal(0.0, 300.0, y.size)
    support = (y_fit, base_fit)
    stack = choose_mean(weights, y, model, base, anchor=anchor, days=days, support=support)
    assert stack.evidence["kept"] == "anchor"
    assert stack.weights == anchor
    # The same stack, day after day ahead of the anchor (it knows part of the noise), wins.
    knowing = 0.5 * (y - base["account_mean_shrunk_20"] - 0.6 * base[CARRIED_UNREALISED])
    good = {"model": 1.0} | {k: v for k, v in anchor.items() if k != "model"}
    kept = choose_mean(good, y, knowing, base, anchor=anchor, days=days, support=support)
    assert kept.evidence["kept"] == "stack"
    assert kept.evidence["stack_beats_anchor_by_day"]


def test_a_firm_without_edge_falls_back_from_the_anchor_to_the_best_baseline() -> None:
    # Outcomes are pure noise around zero: the shrunk means only add their own noise.
    rng = np.random.default_rng(7)
    y_fit, _, base_fit = _anchor_world(0)
    y_fit = 300.0 * rng.standard_t(4, y_fit.size)
    y, days, base = _anchor_world(1, n_days=8)
    y = 300.0 * rng.standard_t(4, y.size)
    anchor = train.fit_anchor(y_fit, base_fit)
    stack = choose_mean(
        anchor, y, np.zeros(y.size), base, anchor=anchor, days=days, support=(y_fit, base_fit)
    )
    assert stack.fallback == "zero"
    np.testing.assert_array_equal(stack.combine(np.zeros(y.size), _matrix(base)), 0.0)


# -- the cross-fitted scale ---------------------------------------------------------------------


def test_no_rows_scale_comes_from_a_model_trained_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each fit records the days it saw; each prediction checks its rows' days are not among
    them (nor within the gap). The day is the first feature column here."""
    days = np.repeat(np.arange(40), 5)
    part = train._Part(
        x=np.column_stack([days, np.zeros(days.size)]).astype(np.float32),
        y=np.ones(days.size),
        breach=np.zeros(days.size),
        days=days,
    )
    fitted: list[set[int]] = []

    def fake_fit(p: train._Part, *args: object, **kwargs: object) -> tuple[object, int]:
        fitted.append(set(p.days.tolist()))
        return len(fitted) - 1, 1

    def fake_predict(booster: int, x: np.ndarray, floor: float, n: int) -> np.ndarray:
        seen = fitted[booster]
        predicted = set(x[:, 0].astype(int).tolist())
        assert not predicted & seen
        gap = {d + k for d in predicted for k in (-1, 1)}
        assert not gap & seen, "a fitting day next to a predicted one"
        return np.ones(x.shape[0])

    monkeypatch.setattr(train, "_fit_scale", fake_fit)
    monkeypatch.setattr(train, "_predict_scale", fake_predict)
    config = TrainConfig(scale_blocks=4)
    out = train.cross_fit_scale(part, 10, config)
    assert out.shape == (days.size,) and len(fitted) == 4
    # Every row predicted exactly once: the blocks partition the days.
    blocks = train.scale_blocks(days, 4, 1)
    assert (sum(held.astype(int) for held, _ in blocks) == 1).all()


def test_cross_fitted_scale_is_honest_on_train_rows(trained_synthetic: TrainResult) -> None:
    """In sample the scale is too small (rms of y / s well below 1); cross-fitted it is not."""
    diag = trained_synthetic.bundle.metadata["scale_diagnostics"]
    assert diag["rms_y_over_s_train_in_sample"] < diag["rms_y_over_s_train_cross_fitted"]
    assert abs(diag["rms_y_over_s_train_cross_fitted"] - diag["rms_y_over_s_calibration"]) < abs(
        diag["rms_y_over_s_train_in_sample"] - diag["rms_y_over_s_calibration"]
    )


def test_a_short_window_changes_the_blocks_never_the_gaps() -> None:
    """6 feature days with 2 gap days: 4 blocks leave a middle block nothing to fit on, 5 do
    not; 5 days cannot be cross-fitted at all and say why."""
    days = np.repeat(np.arange(6), 3)
    blocks = train.scale_blocks(days, 4, 2)
    assert len(blocks) == 5
    for held, fit in blocks:
        assert fit.any()
        held_days, fit_days = np.unique(days[held]), np.unique(days[fit])
        assert np.abs(held_days[:, None] - fit_days[None, :]).min() > 2
    with pytest.raises(ValueError, match="more than 5 feature days"):
        train.scale_blocks(np.arange(5), 4, 2)
