"""Conformal offsets: valid coverage on exchangeable rows, monotone quantiles always."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from daily_profit.modeling.conformal import apply_offsets, fit_offsets
from daily_profit.modeling.evaluate import binomial_tolerance


def _heavy_tailed(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    scale = np.exp(rng.normal(5.0, 1.0, n))  # quiet and wild accounts, 3 orders of magnitude
    active = rng.random(n) < 0.7
    y = np.where(active, scale * rng.standard_t(3, n), 0.0)
    return y, scale


def test_badly_miscalibrated_quantiles_become_calibrated() -> None:
    rng = np.random.default_rng(0)
    y_cal, s_cal = _heavy_tailed(rng, 5_000)
    y_test, s_test = _heavy_tailed(rng, 20_000)
    # A proposal far too narrow and off-centre: conformal has to fix both tails.
    proposal = np.array([-0.3, 0.2, 0.4])
    offsets = fit_offsets(proposal * s_cal[:, None], y_cal, s_cal)
    q = apply_offsets(proposal * s_test[:, None], s_test, offsets)
    inside = (y_test >= q[:, 0]) & (y_test <= q[:, 2])
    tol = binomial_tolerance(y_test.size) + binomial_tolerance(y_cal.size)
    assert abs(inside.mean() - 0.90) <= tol
    assert abs(np.mean(y_test < q[:, 0]) - 0.05) <= tol
    assert abs(np.mean(y_test > q[:, 2]) - 0.05) <= tol
    # Locally adaptive: the interval scales with the account, not one dollar width for all.
    width = q[:, 2] - q[:, 0]
    np.testing.assert_allclose(width / s_test, width[0] / s_test[0], rtol=1e-9)


@settings(max_examples=50, deadline=None)
@given(
    raw=arrays(np.float64, (30, 3), elements=st.floats(-1e6, 1e6)),
    scale=arrays(np.float64, 30, elements=st.floats(1.0, 1e5)),
    offsets=st.tuples(*[st.floats(-50, 50)] * 3),
)
def test_applied_quantiles_are_monotone(raw: np.ndarray, scale: np.ndarray, offsets: tuple) -> None:
    from daily_profit.modeling.conformal import ConformalOffsets

    q = apply_offsets(raw, scale, ConformalOffsets(*offsets, n_calibration=100))
    assert np.all(q[:, 0] <= q[:, 1]) and np.all(q[:, 1] <= q[:, 2])
