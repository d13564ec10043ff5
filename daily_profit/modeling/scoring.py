"""Batch scoring of one feature day: every account's next-day outlook, risk score and drivers.

Per account (row of ``account_features_daily`` for day D):

- ``expected_net_profit``: the model's conditional mean of D+1 net profit (USD);
- ``p05``, ``p50``, ``p95``: conformal quantiles, monotone per row (p05 <= p50 <= p95);
- ``breach_probability``: calibrated probability of a loss-limit breach on D+1;
- ``risk_score``: 0-100, see ``risk_score``;
- ``driver_{1,2,3}_feature`` / ``driver_{1,2,3}_contribution``: the three features that move the
  expected P&L most for this account (largest absolute contribution, USD), from the mean
  model's own decomposition of this prediction; ``drivers_method`` says which decomposition:
  ``tree_shap`` (exact TreeSHAP, ``pred_contribs``) for the ``exact_top_n`` highest risk scores,
  where the desk looks, and ``saabas`` (``approx_contribs``, the path-based attribution, which
  is exact in sum and orders drivers almost always the same) for the rest, because exact SHAP
  for every account would blow the time budget;
- ``model_version``, ``feature_set_version``.

The expected profit is the stack w * s(x) * f(x) + sum of w_b * baseline_b (``bundle.py``); each
feature's contribution is w * s(x) times its contribution to f(x) and each stacked baseline's is
w_b * baseline_b (named ``baseline_<name>``), so all contributions plus ``w * s(x) * bias`` add up
to the expected profit exactly. When the mean fell back to a baseline, that baseline is the
only non-zero driver; a driver whose contribution is exactly zero is left empty (null), so a
mean that is the zero baseline has none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import xgboost as xgb

from daily_profit.modeling.bundle import (
    STACK_BASELINES,
    ModelBundle,
    baseline_column,
    regimes,
    weekdays,
)
from daily_profit.modeling.dataset import DATE, FEATURE_SET_VERSION, ID
from daily_profit.modeling.recalibration import apply_stretch

N_DRIVERS = 3
DEFAULT_EXACT_TOP_N = 1_000
# A p05 loss of this share of equity (a typical daily loss limit) weighs like a 63% breach
# chance in ``risk_score``.
LOSS_REFERENCE_SHARE = 0.05
EQUITY_COLUMNS = ("current_equity", "eod_equity", "equity")


def equity_of(frame: pl.DataFrame) -> np.ndarray:
    """End-of-day equity of D per row, NaN where it cannot be known.

    Taken from an equity column when the frame has one, else rebuilt from the feature catalog's
    ``acct_starting_balance * (1 + acct_return_since_start_pct / 100)``.
    """
    for c in EQUITY_COLUMNS:
        if c in frame.columns:
            return frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
    if {"acct_starting_balance", "acct_return_since_start_pct"} <= set(frame.columns):
        return (
            frame.select(
                pl.col("acct_starting_balance").cast(pl.Float64)
                * (1.0 + pl.col("acct_return_since_start_pct").cast(pl.Float64) / 100.0)
            )
            .to_series()
            .fill_null(np.nan)
            .to_numpy()
        )
    return np.full(frame.height, np.nan)


def risk_score(
    breach_probability: np.ndarray,
    p05: np.ndarray,
    equity: np.ndarray,
    loss_reference: float = LOSS_REFERENCE_SHARE,
) -> np.ndarray:
    """The 0-100 risk score of an account for D+1.

    ``risk = 100 * (1 - (1 - p) * exp(-L / r))`` where ``p`` is the breach probability,
    ``L = max(0, -p05) / equity`` the 5%-quantile loss as a share of end-of-day equity and
    ``r = loss_reference`` (default 0.05: a p05 loss of 5% of equity, a typical daily loss
    limit, counts like a 63% chance of trouble on its own).

    Read it as "the chance that tomorrow is bad", combining two independent warnings: a breach,
    or a large loss in the bad 5% of days. It is 0 only with no breach risk and no p05 loss,
    rises strictly with ``p`` and with ``L``, and stays below 100. Where equity is unknown
    (null or <= 0 would mean a blown account) the loss term counts fully: risk = 100 for
    equity <= 0 with any p05 loss, and for unknown equity only ``p`` is used.
    """
    p = np.clip(np.asarray(breach_probability, dtype=np.float64), 0.0, 1.0)
    loss = np.maximum(-np.asarray(p05, dtype=np.float64), 0.0)
    eq = np.asarray(equity, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(eq > 0, loss / eq, np.where(loss > 0, np.inf, 0.0))
    share = np.where(np.isnan(eq), 0.0, share)
    return 100.0 * (1.0 - (1.0 - p) * np.exp(-share / loss_reference))


@dataclass
class ScoringTimings:
    seconds: dict[str, float] = field(default_factory=dict)

    def lap(self, name: str, started: float) -> float:
        now = time.perf_counter()
        self.seconds[name] = now - started
        return now


def top_drivers(
    contribs: np.ndarray, scale: np.ndarray, k: int = N_DRIVERS
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, k) and USD contributions (n, k) of the k largest |contributions| per row.

    ``contribs`` is XGBoost's (n, p + 1) matrix (last column the bias), in units of f(x).
    """
    phi = contribs[:, :-1]
    k = min(k, phi.shape[1])
    mag = np.abs(phi, dtype=np.float32)
    rows = np.arange(phi.shape[0])
    idx = np.empty((phi.shape[0], k), dtype=np.int64)
    # k passes of argmax beat argpartition + sort several times over for k = 3 (one linear
    # scan each); ties go to the first feature, so the choice is deterministic.
    for j in range(k):
        idx[:, j] = mag.argmax(axis=1)
        mag[rows, idx[:, j]] = -1.0
    values = np.take_along_axis(phi, idx, axis=1).astype(np.float64) * scale[:, None]
    return idx, values


def score_accounts(
    bundle: ModelBundle,
    frame: pl.DataFrame,
    *,
    model_version: str,
    feature_set_version: str | None = None,
    exact_top_n: int = DEFAULT_EXACT_TOP_N,
    n_threads: int | None = None,
    timings: ScoringTimings | None = None,
    interval_stretch: np.ndarray | None = None,
) -> pl.DataFrame:
    """Score every row of ``frame`` (account_id, date, the bundle's feature columns).

    The feature-set version comes from the frame's ``feature_set_version`` column when present,
    else from the argument. ``interval_stretch``: each row's ``recalibration`` stretch of the
    interval (None: none). Returns one row per input row, in input order.
    """
    timings = timings or ScoringTimings()
    t = time.perf_counter()
    if n_threads is not None:
        bundle.set_threads(n_threads)
    x = bundle.matrix(frame)
    baselines = bundle.baseline_matrix(frame)
    t = timings.lap("matrix", t)
    preds = bundle.predict_matrix(
        x, baselines, weekdays(frame), regimes(frame), bundle.rule_scores(frame)
    )
    t = timings.lap("predict", t)
    q = preds.quantiles
    if interval_stretch is not None:
        q = apply_stretch(q, interval_stretch)
    risk = risk_score(preds.breach_probability, q[:, 0], equity_of(frame))

    # Exact TreeSHAP where the desk looks (highest risk), path attribution elsewhere.
    n = frame.height
    n_exact = min(max(exact_top_n, 0), n)
    exact_rows = np.argpartition(-risk, n_exact - 1)[:n_exact] if 0 < n_exact < n else None
    exact = np.zeros(n, dtype=bool)
    if n_exact == n:
        exact[:] = True
    elif exact_rows is not None:
        exact[exact_rows] = True
    mean_booster = bundle.boosters["mean"]
    mx = bundle.mean_model_matrix(x, preds.scale)
    threads = n_threads or 0  # 0: XGBoost's default, every core
    if exact.all():
        contribs = mean_booster.predict(
            xgb.DMatrix(mx, missing=np.nan, nthread=threads), pred_contribs=True
        )
    else:
        # The path attribution of every row, then exact SHAP over the few that matter: cheaper
        # than copying the other 99% of rows out into a matrix of their own.
        contribs = mean_booster.predict(
            xgb.DMatrix(mx, missing=np.nan, nthread=threads),
            pred_contribs=True,
            approx_contribs=True,
        )
    t = timings.lap("saabas", t)
    if exact.any() and not exact.all():
        contribs[exact] = mean_booster.predict(
            xgb.DMatrix(mx[exact], missing=np.nan, nthread=threads), pred_contribs=True
        )
    t = timings.lap("tree_shap", t)
    # USD contributions of the features, then of the stacked baselines (bias column last).
    usd = contribs[:, :-1] * bundle.mean_unit(preds.scale)[:, None]
    stacked = baselines * bundle.stack.baseline_weights()[None, :]
    idx, values = top_drivers(
        np.hstack([usd, stacked, contribs[:, -1:]]), np.ones(n, dtype=np.float64)
    )
    t = timings.lap("drivers", t)

    # Everything below is columnar: names are gathered by index and constants broadcast, so
    # no Python string is built per row.
    names = pl.Series(
        "name",
        bundle.mean_input_names() + [baseline_column(b) for b in STACK_BASELINES],
        dtype=pl.String,
    )
    columns: list[pl.Series] = [
        pl.Series("expected_net_profit", preds.expected),
        pl.Series("p05", q[:, 0]),
        pl.Series("p50", q[:, 1]),
        pl.Series("p95", q[:, 2]),
        pl.Series("breach_probability", preds.breach_probability),
        pl.Series("risk_score", risk),
    ]
    for j in range(idx.shape[1]):
        # Nothing moved the mean (a mean that is exactly the zero baseline): no driver, rather
        # than the first features in the list at +0 USD.
        moved = pl.Series(values[:, j] != 0.0)
        feature, contribution = names.gather(idx[:, j]), pl.Series(values[:, j])
        columns.extend(
            pl.select(
                pl.when(moved).then(feature).alias(f"driver_{j + 1}_feature"),
                pl.when(moved).then(contribution).alias(f"driver_{j + 1}_contribution"),
            ).get_columns()
        )
    keys = [c for c in (ID, DATE) if c in frame.columns]
    if feature_set_version is None and FEATURE_SET_VERSION in frame.columns:
        fsv = pl.col(FEATURE_SET_VERSION).cast(pl.String)
    else:
        fsv = pl.lit(feature_set_version, dtype=pl.String)
    out = (
        frame.select(*keys, fsv.alias(FEATURE_SET_VERSION))
        .hstack(columns)
        .with_columns(
            pl.when(pl.Series(exact))
            .then(pl.lit("tree_shap"))
            .otherwise(pl.lit("saabas"))
            .alias("drivers_method"),
            pl.lit(str(model_version), dtype=pl.String).alias("model_version"),
        )
        .select(
            *keys,
            *[c.name for c in columns],
            "drivers_method",
            "model_version",
            FEATURE_SET_VERSION,
        )
    )
    timings.lap("assemble", t)
    return out
