"""Locally adaptive conformalised quantile regression (CQR), one offset per quantile.

The quantile model proposes p05, p50 and p95 of next-day net profit. On the calibration days
each proposal is shifted by a constant number of *predicted scale units* s(x), so that:

- the 5% and 95% bounds each miss on at most their own 5% of calibration rows, with the usual
  finite-sample correction ((n + 1) instead of n), so the 90% interval covers >= 90% on
  exchangeable rows. The two misses are disjoint events (below p05, above p95), so calibrating
  each tail on its own gives the interval's level *and* calibrated individual quantiles, which
  the symmetric CQR score would not;
- p50 is moved to the median of the scaled residuals, so half the outcomes lie below it.

Normalising residuals by s(x) (locally adaptive conformal) keeps intervals narrow for quiet
accounts and wide for wild ones, instead of one dollar offset for every account.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

LOWER_Q = 0.05
MEDIAN_Q = 0.5
UPPER_Q = 0.95
QUANTILES: tuple[float, float, float] = (LOWER_Q, MEDIAN_Q, UPPER_Q)


@dataclass(frozen=True)
class ConformalOffsets:
    """Offsets in scale units added to the raw p05, p50 and p95."""

    lower: float
    median: float
    upper: float
    n_calibration: int
    lower_level: float = LOWER_Q
    upper_level: float = UPPER_Q

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _order_stat(sorted_values: np.ndarray, k: int) -> float:
    """The k-th smallest value (1-based), clipped into range (infinite beyond it)."""
    n = sorted_values.size
    if k > n:
        return math.inf
    if k < 1:
        return -math.inf
    return float(sorted_values[k - 1])


def fit_offsets(
    raw_quantiles: np.ndarray,
    y: np.ndarray,
    scale: np.ndarray,
    lower_level: float = LOWER_Q,
    upper_level: float = UPPER_Q,
) -> ConformalOffsets:
    """Offsets from calibration rows: ``raw_quantiles`` is (n, 3) of p05, p50, p95 proposals."""
    n = y.size
    if n < 20:
        raise ValueError(f"conformal calibration needs at least 20 rows, got {n}")
    r = (y[:, None] - raw_quantiles) / scale[:, None]
    # Lower bound: shift so that at most floor(lower_level (n+1)) - 1 residuals fall strictly
    # below it; taking the floor((n+1) a)-th smallest residual does that (conservative side).
    k_lo = math.floor(lower_level * (n + 1))
    k_hi = math.ceil(upper_level * (n + 1))
    lower = _order_stat(np.sort(r[:, 0]), k_lo)
    upper = _order_stat(np.sort(r[:, 2]), k_hi)
    if not math.isfinite(lower) or not math.isfinite(upper):
        raise ValueError(f"{n} calibration rows are too few for levels {lower_level}/{upper_level}")
    median = float(np.median(r[:, 1]))
    return ConformalOffsets(
        lower=lower,
        median=median,
        upper=upper,
        n_calibration=n,
        lower_level=lower_level,
        upper_level=upper_level,
    )


def apply_offsets(
    raw_quantiles: np.ndarray, scale: np.ndarray, offsets: ConformalOffsets
) -> np.ndarray:
    """Calibrated (n, 3) quantiles, sorted per row so that p05 <= p50 <= p95 always holds."""
    shift = np.array([offsets.lower, offsets.median, offsets.upper])
    out = raw_quantiles + scale[:, None] * shift[None, :]
    # Sorting is the rearrangement of Chernozhukov et al.: it never worsens pinball loss.
    return np.sort(out, axis=1)
