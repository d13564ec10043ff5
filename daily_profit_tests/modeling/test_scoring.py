"""Scoring output: ordered quantiles, finite numbers, faithful drivers, a monotone risk score."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st

from daily_profit.modeling.bundle import STACK_BASELINES, MeanStack, baseline_column
from daily_profit.modeling.scoring import risk_score, score_accounts
from daily_profit.modeling.train import TrainResult


@pytest.fixture(scope="module")
def scored(trained_synthetic: TrainResult) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows = trained_synthetic.split.test
    return rows, score_accounts(trained_synthetic.bundle, rows, model_version="7", exact_top_n=100)


def test_one_ordered_finite_row_per_account(scored: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    rows, out = scored
    assert out.height == rows.height
    assert out.select("account_id", "date").equals(rows.select("account_id", "date"))
    assert ((out["p05"] <= out["p50"]) & (out["p50"] <= out["p95"])).all()
    for c in ("expected_net_profit", "p05", "p50", "p95", "breach_probability", "risk_score"):
        assert np.isfinite(out[c].to_numpy()).all(), c
    assert out["risk_score"].is_between(0, 100).all()
    assert (out["model_version"] == "7").all()
    assert (out["feature_set_version"] == rows["feature_set_version"]).all()


def test_exact_shap_goes_to_the_riskiest_accounts(
    scored: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    _, out = scored
    exact = out.filter(pl.col("drivers_method") == "tree_shap")
    rest = out.filter(pl.col("drivers_method") == "saabas")
    assert exact.height == 100 and rest.height == out.height - 100
    assert exact["risk_score"].min() >= rest["risk_score"].max()


def test_drivers_are_the_largest_contributions_and_add_up(
    trained_synthetic: TrainResult,
) -> None:
    rows = trained_synthetic.split.test
    # The synthetic firm's own mean fell back to a baseline; a stack of the model and the
    # account mean gives every kind of driver something to say.
    bundle = replace(
        trained_synthetic.bundle,
        stack=MeanStack(weights={"model": 1.0, "account_mean": 0.5}),
    )
    out = score_accounts(bundle, rows, model_version="7", exact_top_n=100)
    names = bundle.mean_input_names() + [baseline_column(b) for b in STACK_BASELINES]
    for c in ("driver_1_feature", "driver_2_feature", "driver_3_feature"):
        assert out[c].is_in(names).all()
    mags = np.abs(out.select(f"driver_{j}_contribution" for j in (1, 2, 3)).to_numpy())
    assert (mags[:, 0] >= mags[:, 1]).all() and (mags[:, 1] >= mags[:, 2]).all()
    # Exact TreeSHAP rows: all contributions plus w * s(x) * bias, plus the stacked baselines'
    # terms, add up to the expected profit.
    x = bundle.matrix(rows)
    scale = bundle.predict_scale(x)
    mx = bundle.mean_model_matrix(x, scale)
    phi = bundle.boosters["mean"].predict(xgb.DMatrix(mx), pred_contribs=True)
    stacked = bundle.baseline_matrix(rows) * bundle.stack.baseline_weights()[None, :]
    total = bundle.mean_unit(scale) * phi.sum(axis=1, dtype=np.float64) + stacked.sum(axis=1)
    np.testing.assert_allclose(total, out["expected_net_profit"].to_numpy(), rtol=1e-4, atol=1e-3)
    exact = (out["drivers_method"] == "tree_shap").to_numpy()
    usd = np.hstack([phi[:, :-1] * bundle.mean_unit(scale)[:, None], stacked])
    top = np.abs(usd).argmax(axis=1)
    assert (np.asarray(names)[top[exact]] == out["driver_1_feature"].to_numpy()[exact]).all()
    assert out["driver_1_feature"].is_in([baseline_column("account_mean")]).any()
    assert not out["driver_1_feature"].str.starts_with("baseline_").all()


def test_a_mean_that_is_a_baseline_has_that_baseline_as_its_only_driver_and_zero_none(
    trained_synthetic: TrainResult,
) -> None:
    """The desk reads the drivers as why the expected P&L is what it is: a mean that is exactly
    the account mean is driven by it alone; a mean that is the zero baseline by nothing, and the
    drivers say so (empty) rather than naming features at +0 USD."""
    rows = trained_synthetic.split.test
    bundle = trained_synthetic.bundle
    on_mean = score_accounts(
        replace(bundle, stack=MeanStack.baseline("account_mean")), rows, model_version="1"
    )
    moved = on_mean.filter(pl.col("expected_net_profit") != 0)
    assert moved.height > 0
    assert (moved["driver_1_feature"] == baseline_column("account_mean")).all()
    np.testing.assert_array_equal(
        moved["driver_1_contribution"].to_numpy(), moved["expected_net_profit"].to_numpy()
    )
    assert moved["driver_2_feature"].is_null().all()
    on_zero = score_accounts(
        replace(bundle, stack=MeanStack.baseline("zero")), rows, model_version="1"
    )
    assert (on_zero["expected_net_profit"] == 0).all()
    for j in (1, 2, 3):
        assert on_zero[f"driver_{j}_feature"].is_null().all()
        assert on_zero[f"driver_{j}_contribution"].is_null().all()


def test_scoring_is_deterministic(trained_synthetic: TrainResult) -> None:
    rows = trained_synthetic.split.test
    a = score_accounts(trained_synthetic.bundle, rows, model_version="1")
    b = score_accounts(trained_synthetic.bundle, rows, model_version="1")
    assert a.equals(b)


@settings(max_examples=200, deadline=None)
@given(
    p=st.floats(0, 1),
    dp=st.floats(0, 1),
    loss=st.floats(-1e5, 1e5),
    dloss=st.floats(0, 1e5),
    equity=st.floats(1, 1e7),
)
def test_risk_score_is_monotone(
    p: float, dp: float, loss: float, dloss: float, equity: float
) -> None:
    """More breach probability or a deeper p05 loss never lowers the score."""
    p2 = min(1.0, p + dp)
    base = risk_score(np.array([p]), np.array([loss]), np.array([equity]))[0]
    more_p = risk_score(np.array([p2]), np.array([loss]), np.array([equity]))[0]
    deeper = risk_score(np.array([p]), np.array([loss - dloss]), np.array([equity]))[0]
    assert 0 <= base <= 100
    assert more_p >= base - 1e-9
    assert deeper >= base - 1e-9


def test_risk_score_edges() -> None:
    assert risk_score(np.array([0.0]), np.array([100.0]), np.array([1e4]))[0] == 0.0
    assert risk_score(np.array([0.2]), np.array([-50.0]), np.array([0.0]))[0] == 100.0
    # Unknown equity: only the breach probability speaks.
    assert risk_score(np.array([0.3]), np.array([-50.0]), np.array([np.nan]))[0] == pytest.approx(
        30.0
    )
