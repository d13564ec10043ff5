"""Training: time-ordered split, time-series hyperparameter search, fit, conformal, calibration.

``train_profit_model`` is what the ``profit_model`` asset calls. It

1. keeps rows with a usable label (``dataset.usable_rows``) and, optionally, the last
   ``window_days`` feature days;
2. splits by date into train / calibration / test with gaps (``dataset.split_by_date``);
3. searches hyperparameters with expanding-window folds inside the train days under a budget
   of trials and seconds. Trial parameters are drawn up front from the seed, so a run that is
   stopped by the trial budget is fully deterministic; a run stopped by the clock is
   deterministic given how many trials it finished (recorded in the search report). The mean
   model is chosen by fold MSE, the quantile model by fold pinball loss, the breach classifier
   by fold log loss: proper scores only (never MAE for a mean);
4. refits the chosen models on all train days with the fold-averaged number of rounds. The
   scale model's output on the train days is cross-fitted in time blocks (``cross_fit_scale``):
   each row's scale comes from a model that never saw its block, so the mean, quantile and
   breach models never learn from the scale's in-sample (too small) residuals;
5. chooses the mean (``MeanStack``): the anchor (``fit_anchor``: the shrunk account mean
   whose strength fits the train rows, plus the share of the carried unrealised P&L they show
   realised), unless a named baseline beats it on the train and calibration rows together
   (then the mean *is* that baseline), or the stack (non-negative weights of the model and
   the baselines, fitted on the search folds' out-of-fold predictions, train days) beats it on
   the calibration days, which no fit saw, by a margin and day by day;
6. calibrates on the calibration days: Mondrian conformal offsets for the quantiles (per
   weekday x scale band), a probability calibrator for breaches. Stack weights (train days)
   and conformal offsets (calibration days) are never fitted on the same days;
7. predicts the test days, which only evaluation sees;
8. stores the train days' feature distributions in the bundle (``bundle.drift_reference``),
   weighted by the fitted model's feature importance: what ``feature_drift`` compares each
   new day with once this version is champion.

See ``bundle.py`` for what each booster models and why.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
import xgboost as xgb
from scipy.optimize import nnls

from daily_profit.modeling.baselines import (
    CARRIED_UNREALISED,
    MEAN_BASELINES,
    SHRUNK_ACCOUNT_MEANS,
    ZERO,
    min_headroom,
)
from daily_profit.modeling.boosting import LOCAL, Fitter, open_fitter
from daily_profit.modeling.breach import average_with_rule, fit_calibrator, rule_score
from daily_profit.modeling.bundle import (
    DEFAULT_SCALE_FLOOR,
    MODEL_TERM,
    RULE_INPUT,
    STACK_BASELINES,
    MeanInputs,
    MeanStack,
    ModelBundle,
    attach_baselines,
    baseline_column,
    breach_matrix,
    feature_matrix,
    learn_categories,
    mean_matrix,
    regimes,
    weekdays,
)
from daily_profit.modeling.conformal import (
    QUANTILES,
    conditional_coverage,
    fit_mondrian,
    regime_columns,
)
from daily_profit.modeling.dataset import (
    BREACH,
    DATE,
    DEFAULT_USABLE_STATUSES,
    FEATURE_SET_VERSION,
    ID,
    TARGET,
    DatasetSplit,
    SplitConfig,
    check_feature_columns,
    describe_split,
    infer_feature_columns,
    label_dates,
    split_by_date,
    time_series_folds,
    usable_rows,
)
from daily_profit.modeling.evaluate import log_loss, pinball_loss
from daily_profit.monitoring.drift import build_reference
from daily_profit.trading_calendar import TradingCalendar

# Headroom columns the breach model turns into "moves of headroom left" when the frame has them
# (feature catalog names, then the synthetic frame's).
DEFAULT_HEADROOM_CANDIDATES: tuple[str, ...] = (
    "rule_daily_loss_headroom_usd",
    "rule_drawdown_headroom_usd",
    "dist_daily_loss_limit",
    "dist_drawdown_floor",
)


@dataclass(frozen=True)
class SearchBudget:
    """How much hyperparameter search to afford: whichever limit is hit first stops it."""

    n_trials: int = 10
    max_seconds: float = 180.0
    n_folds: int = 3


@dataclass(frozen=True)
class MethodParams:
    """The hyperparameters a trained method chose for each of its models."""

    mean: dict[str, float]
    quantile: dict[str, float]
    breach: dict[str, float]

    @classmethod
    def of(cls, metadata: dict[str, Any]) -> MethodParams:
        """What a bundle's metadata says its search chose (``metadata["params"]``)."""
        params = metadata["params"]
        return cls(
            mean=dict(params["mean"]),
            quantile=dict(params["quantile"]),
            breach=dict(params["breach"]),
        )


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    split: SplitConfig = field(default_factory=SplitConfig)
    budget: SearchBudget = field(default_factory=SearchBudget)
    window_days: int | None = None
    usable_statuses: tuple[str, ...] = DEFAULT_USABLE_STATUSES
    headroom_columns: tuple[str, ...] | None = None  # None: the candidates the frame has
    # One thread by default: the data are small (a fit takes tenths of a second), and OpenMP's
    # spin-waiting makes a multi-threaded fit 10-30x slower whenever another process holds the
    # cores (parallel Dagster runs, pytest-xdist), as measured on the 2-core dev machine.
    n_threads: int | None = 1
    max_rounds: int = 500
    early_stopping_rounds: int = 30
    calibration_method: str = "auto"
    scale_floor: float = DEFAULT_SCALE_FLOOR
    # Time blocks of the scale model's cross-fit (each row's scale from the other blocks).
    scale_blocks: int = 4
    # The stack replaces the anchor only when its held-out MSE is below the anchor's by this
    # share: a few calibration days of noisy outcomes must not swap a steady mean for a noisy one.
    stack_min_gain: float = 0.005
    # A Dask scheduler (tcp://host:8786): every booster is then fitted through xgboost.dask on
    # its workers (``boosting.DaskFitter``). None: in this process, as always.
    dask_scheduler_address: str | None = None
    # A method's hyperparameters fixed (``MethodParams.of``): no search, one trial whose mean,
    # quantile and breach models take the given parameters. Promotion's backtest replays the
    # challenger's method this way, origin after origin.
    fixed_params: MethodParams | None = None
    # The train days' feature distributions for drift monitoring (``bundle.drift_reference``):
    # a served model needs them, a backtest's models are never served.
    drift_reference: bool = True

    def threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1


# -- hyperparameters ---------------------------------------------------------------------------

# 64 histogram bins instead of 256: several times faster histograms on ~170 features, and no
# measurable loss on data this noisy.
MAX_BIN = 64

DEFAULT_TRIAL: dict[str, float] = {
    "max_depth": 4,
    "learning_rate": 0.05,
    "min_child_weight": 10.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "mean_weight_power": 1.0,
    "quantile_weight_power": 1.0,
}

# The scale model is not searched: it only sets units, and a smooth, strongly regularised fit
# is what a unit should be (its in-sample predictions also feed the other models). Shallow trees
# and a variance power near 1 held up best out of time on the sandbox (against its true std);
# its number of rounds comes from the folds' early stopping.
SCALE_PARAMS: dict[str, Any] = {
    "objective": "reg:tweedie",
    "tweedie_variance_power": 1.2,
    "max_depth": 3,
    "learning_rate": 0.05,
    "min_child_weight": 30.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 5.0,
}


def sample_trials(n: int, seed: int) -> list[dict[str, float]]:
    """Trial 0 is a sensible default; the rest are random draws from the seed."""
    rng = np.random.default_rng(seed)
    trials = [dict(DEFAULT_TRIAL)]
    for _ in range(max(0, n - 1)):
        trials.append(
            {
                "max_depth": int(rng.integers(2, 7)),
                "learning_rate": float(np.exp(rng.uniform(np.log(0.03), np.log(0.2)))),
                "min_child_weight": float(np.exp(rng.uniform(np.log(1.0), np.log(200.0)))),
                "subsample": float(rng.uniform(0.6, 1.0)),
                "colsample_bytree": float(rng.uniform(0.5, 1.0)),
                "reg_lambda": float(np.exp(rng.uniform(np.log(0.1), np.log(20.0)))),
                "mean_weight_power": float(rng.choice([0.0, 1.0, 2.0])),
                "quantile_weight_power": float(rng.choice([0.0, 1.0])),
            }
        )
    return trials[:n]


def _tree_params(trial: dict[str, float], seed: int, threads: int) -> dict[str, Any]:
    return {
        "tree_method": "hist",
        "max_bin": MAX_BIN,
        "max_depth": int(trial["max_depth"]),
        "learning_rate": trial["learning_rate"],
        "min_child_weight": trial["min_child_weight"],
        "subsample": trial["subsample"],
        "colsample_bytree": trial["colsample_bytree"],
        "reg_lambda": trial["reg_lambda"],
        "seed": seed,
        "nthread": threads,
    }


# -- data for one fit --------------------------------------------------------------------------


@dataclass
class _Part:
    """One segment's arrays."""

    x: np.ndarray
    y: np.ndarray
    breach: np.ndarray
    days: np.ndarray  # feature day of each row (days since the epoch)

    def subset(self, mask: np.ndarray) -> _Part:
        return _Part(x=self.x[mask], y=self.y[mask], breach=self.breach[mask], days=self.days[mask])

    @classmethod
    def of(
        cls,
        frame: pl.DataFrame,
        features: Sequence[str],
        categories: dict[str, list[str]],
    ) -> _Part:
        breach = (
            frame[BREACH].cast(pl.Float64).to_numpy()
            if BREACH in frame.columns
            else np.zeros(frame.height)
        )
        return cls(
            x=feature_matrix(frame, features, categories),
            y=frame[TARGET].cast(pl.Float64).to_numpy(),
            breach=breach,
            days=frame[DATE].cast(pl.Date).to_physical().to_numpy(),
        )


def _normalised_weights(scale: np.ndarray, power: float) -> np.ndarray:
    # Mean 1 keeps min_child_weight meaning the same thing whatever the power.
    w = scale**power
    return w / w.mean()


def _train(
    fitter: Fitter,
    params: dict[str, Any],
    dtrain: Any,
    rounds: int,
    dvalid: Any = None,
    early_stopping: int | None = None,
) -> tuple[xgb.Booster, int]:
    """A booster and its number of useful rounds (best iteration + 1 with early stopping).

    Every fit of training comes through here, on ``fitter``'s matrices (``_qdm``)."""
    evals = [(dvalid, "valid")] if dvalid is not None else []
    booster = fitter.train(
        params,
        dtrain,
        rounds,
        evals,
        early_stopping if dvalid is not None else None,
    )
    if dvalid is not None and early_stopping:
        return booster, int(booster.best_iteration) + 1
    return booster, rounds


def _fit_scale(
    part: _Part,
    rounds: int,
    seed: int,
    threads: int,
    valid: _Part | None = None,
    es: int = 0,
    fitter: Fitter = LOCAL,
) -> tuple[xgb.Booster, int]:
    params = {
        **SCALE_PARAMS,
        "tree_method": "hist",
        "max_bin": MAX_BIN,
        "seed": seed,
        "nthread": threads,
    }
    dtrain = _qdm(fitter, part.x, np.square(part.y), None, threads)
    dvalid = _qdm(fitter, valid.x, np.square(valid.y), None, threads, ref=dtrain) if valid else None
    return _train(fitter, params, dtrain, rounds, dvalid, es or None)


def _predict_scale(booster: xgb.Booster, x: np.ndarray, floor: float, n_rounds: int) -> np.ndarray:
    raw = booster.inplace_predict(x, iteration_range=(0, n_rounds)).astype(np.float64)
    return np.maximum(np.sqrt(raw), floor)


def scale_blocks(
    days: np.ndarray, n_blocks: int, gap_days: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(held-out rows, fitting rows) masks of each time block of the cross-fit.

    The distinct feature days are cut into ``n_blocks`` consecutive blocks; a block's rows are
    predicted by a model fitted on every other day except ``gap_days`` feature days on either
    side of the block, so no fitting row's features contain a held-out row's label (the label
    of D shows in the features of the next session) nor the other way round.
    """
    unique = np.unique(days)
    if unique.size < 2:
        raise ValueError(f"a cross-fit needs at least 2 days, got {unique.size}")
    # A short window (an early walk-forward origin, a search fold) may leave a block nothing to
    # fit on beyond its gaps: then try more (smaller) blocks, then fewer (no middle block with
    # gaps on both sides), never fewer gap days.
    first = max(2, min(n_blocks, unique.size))
    for n in [*range(first, unique.size + 1), *range(first - 1, 1, -1)]:
        out = []
        for block in np.array_split(np.arange(unique.size), n):
            held = np.isin(days, unique[block])
            near = unique[max(0, block[0] - gap_days) : block[-1] + gap_days + 1]
            out.append((held, ~np.isin(days, near)))
        if all(fit.any() for _, fit in out):
            return out
    raise ValueError(
        f"a scale cross-fit needs more than {2 * gap_days + 1} feature days "
        f"(the gap of {gap_days} days either side of a held-out day), got {unique.size}"
    )


def cross_fit_scale(
    part: _Part, rounds: int, config: TrainConfig, fitter: Fitter = LOCAL
) -> np.ndarray:
    """Out-of-block scale s(x) of every row of ``part`` (see ``scale_blocks``).

    Fitted and then used on the same rows, the scale is too small where it overfits (rms of
    y / s 0.80 in sample against 1.26 on later days, measured on the sandbox): the mean and
    quantile models would learn from residuals larger than any they will meet, and the breach
    model from headroom ratios that are off. Cross-fitting gives the train rows the kind of
    scale the calibration and test rows get: one from a model that did not see them.
    """
    out = np.empty(part.y.size)
    threads = config.threads()
    for held, fit in scale_blocks(part.days, config.scale_blocks, config.split.gap_days):
        booster, _ = _fit_scale(part.subset(fit), rounds, config.seed, threads, fitter=fitter)
        out[held] = _predict_scale(booster, part.x[held], config.scale_floor, rounds)
    return out


def rms_in_scale_units(y: np.ndarray, scale: np.ndarray) -> float:
    """Root mean square of y / s: about 1 when s is an honest size of the move."""
    return float(np.sqrt(np.mean((y / scale) ** 2)))


def _qdm(
    fitter: Fitter,
    x: np.ndarray,
    label: np.ndarray,
    weight: np.ndarray | None,
    threads: int,
    ref: Any = None,
) -> Any:
    """Training matrix with its histogram cuts computed once (validation reuses the fit's)."""
    return fitter.matrix(x, label, weight, threads, MAX_BIN, ref)


def _mean_dmatrix(
    fitter: Fitter,
    part: _Part,
    scale: np.ndarray,
    power: float,
    spec: MeanInputs,
    threads: int,
    ref: Any = None,
) -> Any:
    return _qdm(
        fitter,
        mean_matrix(part.x, scale, spec),
        part.y / scale,
        _normalised_weights(scale, power),
        threads,
        ref,
    )


def _breach_dmatrix(
    fitter: Fitter,
    part: _Part,
    scale: np.ndarray,
    headroom_idx: list[int],
    threads: int,
    ref: Any = None,
) -> Any:
    return _qdm(fitter, breach_matrix(part.x, scale, headroom_idx), part.breach, None, threads, ref)


def _mean_params(trial: dict[str, float], seed: int, threads: int) -> dict[str, Any]:
    return {**_tree_params(trial, seed, threads), "objective": "reg:squarederror"}


def _quantile_params(trial: dict[str, float], seed: int, threads: int) -> dict[str, Any]:
    return {
        **_tree_params(trial, seed, threads),
        "objective": "reg:quantileerror",
        "quantile_alpha": np.array(QUANTILES),
    }


def _breach_params(
    trial: dict[str, float], seed: int, threads: int, monotone: Sequence[int]
) -> dict[str, Any]:
    return {
        **_tree_params(trial, seed, threads),
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        # XGBoost's advice for very unbalanced logistic regression: cap each leaf's step.
        "max_delta_step": 1.0,
        "monotone_constraints": "(" + ",".join(str(m) for m in monotone) + ")",
    }


def breach_monotone(features: Sequence[str], n_headroom: int) -> list[int]:
    """Monotone constraints of the breach model's columns (features, log s, headroom / s).

    More room before a loss limit never makes a breach likelier, so every headroom column
    (the catalog's ``*headroom*`` features and the headroom / s ratios) may only lower the
    probability. With a few dozen breaches to learn from, that prior knowledge is worth more
    than the freedom trees would otherwise use to fit noise.
    """
    return [-1 if "headroom" in name else 0 for name in features] + [0] + [-1] * n_headroom


def fit_stack(y: np.ndarray, model_term: np.ndarray, baselines: np.ndarray) -> dict[str, float]:
    """Non-negative weights of the model term and each stacked baseline (columns of
    ``baselines`` in ``STACK_BASELINES`` order) minimising squared error (scipy's NNLS).

    Non-negative and without an intercept: the stack can lean on any mix of the model and the
    baselines, or shrink toward zero, but it can never bet against one of them nor add a
    constant the rows did not earn. Fitted on out-of-fold predictions only (the search folds'
    validation days), so the model term is as good here as it will be on new days.
    """
    design = np.column_stack([model_term, baselines])
    weights, _ = nnls(design, y)
    names = (MODEL_TERM, *STACK_BASELINES)
    return {name: float(w) for name, w in zip(names, weights, strict=True)}


def fit_anchor(y: np.ndarray, baselines: dict[str, np.ndarray]) -> dict[str, float]:
    """The empirical-Bayes anchor of the mean, as stack weights: the shrunk account mean whose
    strength k fits these rows best, plus the share of the carried unrealised P&L that these
    rows show realised within the span (least squares, kept within [0, 1]).

    Two numbers fitted on every train row, point in time: far steadier than free weights on a
    dozen correlated inputs, which on a firm whose outcomes are mostly noise chase that noise
    (on the seed sweep the anchor alone captured 0.47 of the headroom pooled, the free stack
    0.27).
    """
    carried = baselines[CARRIED_UNREALISED]
    energy = float(carried @ carried)
    fits = {}
    for name in SHRUNK_ACCOUNT_MEANS:
        rest = y - baselines[name]
        share = min(max(float(rest @ carried) / energy, 0.0), 1.0) if energy > 0 else 0.0
        fits[name] = (float(np.mean((rest - share * carried) ** 2)), share)
    name = min(fits, key=lambda n: fits[n][0])
    return {MODEL_TERM: 0.0, name: 1.0, CARRIED_UNREALISED: fits[name][1]}


def choose_mean(
    weights: dict[str, float],
    y: np.ndarray,
    model_term: np.ndarray,
    baselines: dict[str, np.ndarray],
    *,
    anchor: dict[str, float],
    days: np.ndarray | None = None,
    support: tuple[np.ndarray, dict[str, np.ndarray]] | None = None,
    min_gain: float = 0.0,
) -> MeanStack:
    """The mean the desk is served, chosen on these held-out rows.

    ``baselines``: every named baseline's prediction of the rows (``MEAN_BASELINES``) and the
    stack's other inputs (``STACK_BASELINES``). The mean is the ``anchor`` (``fit_anchor``),
    unless

    - a named baseline beats it on these rows and the ``support`` rows together (outcomes and
      baselines of the train rows: the anchor has two numbers fitted there, the baselines none,
      and a few calibration days of noisy outcomes cannot tell them apart): then exactly that
      baseline;
    - or the stack beats it here by at least ``min_gain`` (a share of its MSE) and
      significantly, day by day (``days``: each row's date; a one-sided paired test on the
      days' summed loss differences at 5%).

    A model without an edge never gives something worse than what it is compared with here.
    """
    stack = MeanStack(weights=weights)
    matrix = np.column_stack([baselines[b] for b in STACK_BASELINES])
    stack_loss = (y - stack.combine(model_term, matrix)) ** 2
    stack_mse = float(np.mean(stack_loss))
    mses = {b: float(np.mean((y - baselines[b]) ** 2)) for b in MEAN_BASELINES}
    best = min(MEAN_BASELINES, key=lambda b: mses[b])
    anchored = MeanStack(weights=anchor)
    anchor_loss = (y - anchored.combine(model_term, matrix)) ** 2
    anchor_mse = float(np.mean(anchor_loss))
    long_y = np.concatenate([y, support[0]]) if support else y
    long = {
        b: np.concatenate([baselines[b], support[1][b]]) if support else baselines[b]
        for b in (*MEAN_BASELINES, *STACK_BASELINES)
    }
    long_matrix = np.column_stack([long[b] for b in STACK_BASELINES])
    long_anchor = float(np.mean((long_y - long_matrix @ anchored.baseline_weights()) ** 2))
    long_mses = {b: float(np.mean((long_y - long[b]) ** 2)) for b in MEAN_BASELINES}
    long_best = min(MEAN_BASELINES, key=lambda b: long_mses[b])
    stack_wins = _beats_by_day(days, stack_loss, anchor_loss)
    evidence = {
        "rows": int(y.size),
        "stack_weights": weights,
        "stack_mse": stack_mse,
        "model_only_mse": float(np.mean((y - model_term) ** 2)),
        "best_baseline": best,
        "best_baseline_mse": mses[best],
        "baseline_mse": mses,
        "min_gain": min_gain,
        "stack_gain": 1.0 - stack_mse / mses[best] if mses[best] > 0 else 0.0,
        "anchor_weights": anchor,
        "anchor_mse": anchor_mse,
        "support_rows": int(long_y.size),
        "support_anchor_mse": long_anchor,
        "support_best_baseline": long_best,
        "support_best_baseline_mse": long_mses[long_best],
        "stack_beats_anchor_by_day": stack_wins,
    }
    if long_mses[long_best] < long_anchor:
        return MeanStack.baseline(long_best, evidence | {"kept": "fallback"})
    if stack_mse < anchor_mse * (1.0 - min_gain) and stack_wins:
        return MeanStack(weights=weights, evidence=evidence | {"kept": "stack"})
    return MeanStack(weights=anchor, evidence=evidence | {"kept": "anchor"})


def _beats_by_day(days: np.ndarray | None, loss_a: np.ndarray, loss_b: np.ndarray) -> bool:
    """Whether ``a`` has the lower loss day by day: a one-sided paired t-test at 5% on the
    days' summed loss differences (rows of one day share its market, so days are the units)."""
    if days is None:
        return False
    per_day = (
        pl.DataFrame({"day": days, "diff": loss_a - loss_b})
        .group_by("day")
        .agg(pl.col("diff").sum())["diff"]
        .to_numpy()
    )
    if per_day.size < 3:
        return False
    spread = float(per_day.std(ddof=1))
    if spread == 0.0:
        return bool(per_day.mean() < 0)
    return bool(per_day.mean() / (spread / math.sqrt(per_day.size)) < -1.645)


def mean_pinball(y: np.ndarray, q: np.ndarray, levels: Sequence[float] = QUANTILES) -> float:
    """Mean pinball loss over the quantile levels (q is (n, len(levels)))."""
    return float(np.mean([pinball_loss(y, q[:, j], tau) for j, tau in enumerate(levels)]))


# -- search ------------------------------------------------------------------------------------


@dataclass
class _FoldData:
    """One fold's arrays and its training matrices, built once and shared by every trial."""

    fit: _Part
    valid: _Part
    scale_fit: np.ndarray
    scale_valid: np.ndarray
    threads: int
    spec: MeanInputs
    fitter: Fitter = LOCAL
    _cache: dict[tuple[str, float], tuple[Any, Any]] = field(default_factory=dict)

    def normalised(self, power: float) -> tuple[Any, Any]:
        """Fit and validation matrices of y / s weighted by s^power."""
        key = ("normalised", power)
        if key not in self._cache:
            d_fit = _mean_dmatrix(
                self.fitter, self.fit, self.scale_fit, power, self.spec, self.threads
            )
            d_val = _mean_dmatrix(
                self.fitter, self.valid, self.scale_valid, power, self.spec, self.threads, d_fit
            )
            self._cache[key] = (d_fit, d_val)
        return self._cache[key]

    @cached_property
    def valid_mean_matrix(self) -> np.ndarray:
        return mean_matrix(self.valid.x, self.scale_valid, self.spec)

    def breach(self, headroom_idx: list[int]) -> tuple[Any, Any]:
        key = ("breach", 0.0)
        if key not in self._cache:
            d_fit = _breach_dmatrix(
                self.fitter, self.fit, self.scale_fit, headroom_idx, self.threads
            )
            d_val = _breach_dmatrix(
                self.fitter, self.valid, self.scale_valid, headroom_idx, self.threads, d_fit
            )
            self._cache[key] = (d_fit, d_val)
        return self._cache[key]


@dataclass
class TrialResult:
    index: int
    params: dict[str, float]  # the mean model's; the quantile and breach models' below
    mse: float
    pinball: float
    breach_log_loss: float
    mean_rounds: int
    quantile_rounds: int
    breach_rounds: int
    seconds: float
    # The mean model's model term s(x) * f(x) on the folds' validation rows, in fold order:
    # out-of-fold predictions the stack is fitted on (not in ``as_dict``).
    oof_mean: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    # A sampled trial gives every model the same parameters; a fixed method may not.
    quantile_params: dict[str, float] = field(default_factory=dict)
    breach_params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.quantile_params = self.quantile_params or self.params
        self.breach_params = self.breach_params or self.params

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "oof_mean"}


@dataclass
class SearchReport:
    trials: list[TrialResult]
    best_mean: int
    best_quantile: int
    best_breach: int
    scale_rounds: int
    n_folds: int
    stopped_by: str  # "trials", "seconds" or "fixed" (``TrainConfig.fixed_params``)
    seconds: float
    # The folds' validation rows, in the order of each trial's ``oof_mean``.
    valid_rows: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)
    # rms(y / s) with the folds' cross-fitted scale on their fit rows: about 1 when honest.
    scale_rms_fit: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "trials": [t.as_dict() for t in self.trials],
            "scale_rms_fit": self.scale_rms_fit,
            "best_mean": self.best_mean,
            "best_quantile": self.best_quantile,
            "best_breach": self.best_breach,
            "scale_rounds": self.scale_rounds,
            "n_folds": self.n_folds,
            "stopped_by": self.stopped_by,
            "seconds": self.seconds,
        }


def _run_trial(
    index: int,
    trial: dict[str, float],
    folds: list[_FoldData],
    headroom_idx: list[int],
    monotone: Sequence[int],
    config: TrainConfig,
    method: MethodParams | None = None,
) -> TrialResult:
    """One trial over the folds; ``method``: each model's own parameters (``trial`` unused)."""
    started = time.perf_counter()
    mean_t, q_t, b_t = (method.mean, method.quantile, method.breach) if method else (trial,) * 3
    threads, seed, es = config.threads(), config.seed, config.early_stopping_rounds
    mses, pins, lls, r_mean, r_q, r_b, oof = [], [], [], [], [], [], []
    for fold in folds:
        fitter = fold.fitter
        # Mean: squared error on y / s, scored in dollars.
        d_fit, d_val = fold.normalised(mean_t["mean_weight_power"])
        booster, n = _train(
            fitter, _mean_params(mean_t, seed, threads), d_fit, config.max_rounds, d_val, es
        )
        pred = fold.scale_valid * booster.inplace_predict(
            fold.valid_mean_matrix, iteration_range=(0, n)
        ).astype(np.float64)
        mses.append(float(np.mean((fold.valid.y - pred) ** 2)))
        oof.append(pred)
        r_mean.append(n)
        # Quantiles: pinball on y / s, scored in dollars.
        d_fit, d_val = fold.normalised(q_t["quantile_weight_power"])
        booster, n = _train(
            fitter, _quantile_params(q_t, seed, threads), d_fit, config.max_rounds, d_val, es
        )
        q = booster.inplace_predict(fold.valid_mean_matrix, iteration_range=(0, n)).astype(
            np.float64
        )
        pins.append(mean_pinball(fold.valid.y, q * fold.scale_valid[:, None]))
        r_q.append(n)
        # Breach: log loss; a fold without any breach to learn from scores the base rate.
        if 0 < fold.fit.breach.sum() < fold.fit.breach.size:
            d_fit, d_val = fold.breach(headroom_idx)
            booster, n = _train(
                fitter,
                _breach_params(b_t, seed, threads, monotone),
                d_fit,
                config.max_rounds,
                d_val,
                es,
            )
            p = booster.inplace_predict(
                breach_matrix(fold.valid.x, fold.scale_valid, headroom_idx),
                iteration_range=(0, n),
            )
            lls.append(log_loss(fold.valid.breach, np.asarray(p, dtype=np.float64)))
            r_b.append(n)
        else:
            rate = (fold.fit.breach.sum() + 0.5) / (fold.fit.breach.size + 1.0)
            lls.append(log_loss(fold.valid.breach, np.full(fold.valid.y.size, rate)))
    return TrialResult(
        index=index,
        params=mean_t,
        quantile_params=q_t,
        breach_params=b_t,
        mse=float(np.mean(mses)),
        pinball=float(np.mean(pins)),
        breach_log_loss=float(np.mean(lls)),
        mean_rounds=max(1, round(float(np.mean(r_mean)))),
        quantile_rounds=max(1, round(float(np.mean(r_q)))),
        breach_rounds=max(1, round(float(np.mean(r_b)))) if r_b else 50,
        seconds=time.perf_counter() - started,
        oof_mean=np.concatenate(oof),
    )


def search(
    train: pl.DataFrame,
    features: Sequence[str],
    categories: dict[str, list[str]],
    headroom_idx: list[int],
    config: TrainConfig,
    fitter: Fitter = LOCAL,
) -> SearchReport:
    """Expanding-window time-series CV over the train days under the configured budget."""
    started = time.perf_counter()
    threads, seed = config.threads(), config.seed
    folds_frames = time_series_folds(
        train, n_folds=config.budget.n_folds, gap_days=config.split.gap_days
    )
    folds: list[_FoldData] = []
    scale_rounds: list[int] = []
    rms_fit: list[float] = []
    for fold in folds_frames:
        fit, valid = (
            _Part.of(fold.fit, features, categories),
            _Part.of(fold.valid, features, categories),
        )
        booster, n = _fit_scale(
            fit, config.max_rounds, seed, threads, valid, config.early_stopping_rounds, fitter
        )
        scale_rounds.append(n)
        scale_fit = cross_fit_scale(fit, n, config, fitter)
        rms_fit.append(rms_in_scale_units(fit.y, scale_fit))
        folds.append(
            _FoldData(
                fit=fit,
                valid=valid,
                scale_fit=scale_fit,
                scale_valid=_predict_scale(booster, valid.x, config.scale_floor, n),
                threads=threads,
                spec=MeanInputs.for_features(features),
                fitter=fitter,
            )
        )
    results: list[TrialResult] = []
    stopped_by = "trials"
    monotone = breach_monotone(features, len(headroom_idx))
    method = config.fixed_params
    if method is not None:
        stopped_by = "fixed"
        results.append(_run_trial(0, method.mean, folds, headroom_idx, monotone, config, method))
    for i, trial in enumerate(sample_trials(config.budget.n_trials if method is None else 0, seed)):
        if results and time.perf_counter() - started > config.budget.max_seconds:
            stopped_by = "seconds"
            break
        results.append(_run_trial(i, trial, folds, headroom_idx, monotone, config))
    return SearchReport(
        trials=results,
        best_mean=min(results, key=lambda r: r.mse).index,
        best_quantile=min(results, key=lambda r: r.pinball).index,
        best_breach=min(results, key=lambda r: r.breach_log_loss).index,
        scale_rounds=max(1, round(float(np.mean(scale_rounds)))),
        n_folds=len(folds),
        stopped_by=stopped_by,
        seconds=time.perf_counter() - started,
        valid_rows=pl.concat([f.valid for f in folds_frames], how="diagonal_relaxed"),
        scale_rms_fit=float(np.mean(rms_fit)),
    )


# -- the whole fit -----------------------------------------------------------------------------


@dataclass
class TrainResult:
    bundle: ModelBundle
    split: DatasetSplit
    search: SearchReport
    test_predictions: pl.DataFrame  # account_id, date, label columns and the predictions
    calibration_predictions: pl.DataFrame
    description: dict[str, Any]
    seconds: float
    # The daily P&L the stacked baselines were computed from (evaluation reuses it).
    history: pl.DataFrame = field(default_factory=pl.DataFrame)

    def conditional_coverage(self) -> pl.DataFrame:
        """Coverage of the test days' 90% intervals overall, on non-zero outcomes, and by
        weekday, regime and predicted-scale decile (``conformal.conditional_coverage``)."""
        return coverage_table(self.split.test, self.test_predictions)


def coverage_table(rows: pl.DataFrame, predictions: pl.DataFrame) -> pl.DataFrame:
    """``conformal.conditional_coverage`` of ``predictions`` (``predictions_frame`` of
    ``rows``, same order): the regime comes from the rows' features."""
    frame = rows.select(DATE, *regime_columns(rows.columns)).hstack(
        predictions.select(TARGET, "p05", "p95")
    )
    return conditional_coverage(frame, predictions["scale"].to_numpy())


def _rule_scores(rows: pl.DataFrame, headroom: Sequence[str]) -> np.ndarray:
    """The headroom rule's score of rows carrying the attached baselines."""
    typical = rows[baseline_column(RULE_INPUT)].cast(pl.Float64).to_numpy()
    return rule_score(min_headroom(rows, headroom), typical)


def attached_baselines(rows: pl.DataFrame, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named baselines' predictions of ``rows`` from the ``baseline_<name>`` columns
    ``bundle.attach_baselines`` gave them (``zero`` is the constant 0): computed once per row,
    on the calendar training was given."""
    return {
        b: np.zeros(rows.height)
        if b == ZERO
        else rows[baseline_column(b)].cast(pl.Float64).to_numpy()
        for b in names
    }


def resolve_headroom(
    frame: pl.DataFrame, config: TrainConfig, features: Sequence[str]
) -> list[str]:
    wanted = (
        config.headroom_columns
        if config.headroom_columns is not None
        else DEFAULT_HEADROOM_CANDIDATES
    )
    return [c for c in wanted if c in features and c in frame.columns]


def restrict_window(frame: pl.DataFrame, window_days: int | None) -> pl.DataFrame:
    """The last ``window_days`` distinct feature days of the frame (all when None)."""
    if window_days is None:
        return frame
    days = frame[DATE].unique().sort().to_list()[-window_days:]
    return frame.filter(pl.col(DATE).is_in(days))


def predictions_frame(rows: pl.DataFrame, bundle: ModelBundle) -> pl.DataFrame:
    """Keys, labels and the bundle's predictions (plus scale s(x)) for each row."""
    preds = bundle.predict(rows)
    keep = [c for c in (ID, DATE, TARGET, BREACH) if c in rows.columns]
    return pl.concat(
        [
            rows.select(keep),
            preds.as_frame(),
            pl.DataFrame({"scale": preds.scale}),
        ],
        how="horizontal",
    )


def train_profit_model(
    frame: pl.DataFrame,
    feature_columns: Sequence[str] | None = None,
    config: TrainConfig | None = None,
    *,
    history: pl.DataFrame,
    calendar: TradingCalendar | None = None,
) -> TrainResult:
    """Train, calibrate and test the whole method (scale, stacked mean, Mondrian conformal
    quantiles, breach) on a window of rows: the one entry point of the asset, the walk-forward
    backtest and the seed sweep.

    ``frame``: account_id, date, the feature columns, net_profit_next_session,
    breached_next_session, label_status (optional target_end, feature_set_version). Rows with
    unusable labels are dropped here, so the caller may pass the raw join of features and
    labels. ``history``: the full raw daily P&L (account_id, date, net_profit) the stacked
    baselines are computed from, point in time, on the span target of ``calendar`` (default
    the configured trading calendar).
    """
    started = time.perf_counter()
    config = config or TrainConfig()
    features = list(feature_columns) if feature_columns else infer_feature_columns(frame)
    check_feature_columns(features)
    rows = restrict_window(usable_rows(frame, config.usable_statuses), config.window_days)
    rows = rows.sort([DATE, ID])  # a fixed row order keeps the fit deterministic
    # Every segment carries the stacked baselines, as any caller's rows must to be predicted.
    rows = attach_baselines(rows, history, calendar)
    split = split_by_date(rows, config.split)
    headroom = resolve_headroom(rows, config, features)
    headroom_idx = [features.index(c) for c in headroom]
    threads, seed = config.threads(), config.seed

    # String features are coded from the train days only, like everything else that is learned.
    categories = learn_categories(split.train, features)
    # Every fit of search and refit through one fitter: all in this process, or all on the
    # configured Dask cluster (the client is closed once the boosters are back here).
    with open_fitter(config.dask_scheduler_address) as fitter:
        report = search(split.train, features, categories, headroom_idx, config, fitter)
        trials = {t.index: t for t in report.trials}
        best_mean, best_q, best_b = (
            trials[report.best_mean],
            trials[report.best_quantile],
            trials[report.best_breach],
        )

        spec = MeanInputs.for_features(features)
        train = _Part.of(split.train, features, categories)
        scale_booster, _ = _fit_scale(train, report.scale_rounds, seed, threads, fitter=fitter)
        # Everything fitted on the train days learns from the cross-fitted scale, never from
        # the scale booster's own in-sample output.
        scale_train = cross_fit_scale(train, report.scale_rounds, config, fitter)
        mean_power = best_mean.params["mean_weight_power"]
        mean_booster, _ = _train(
            fitter,
            _mean_params(best_mean.params, seed, threads),
            _mean_dmatrix(fitter, train, scale_train, mean_power, spec, threads),
            best_mean.mean_rounds,
        )
        quantile_power = best_q.quantile_params["quantile_weight_power"]
        quantile_booster, _ = _train(
            fitter,
            _quantile_params(best_q.quantile_params, seed, threads),
            _mean_dmatrix(fitter, train, scale_train, quantile_power, spec, threads),
            best_q.quantile_rounds,
        )
        breach_booster, _ = _train(
            fitter,
            _breach_params(
                best_b.breach_params, seed, threads, breach_monotone(features, len(headroom))
            ),
            _breach_dmatrix(fitter, train, scale_train, headroom_idx, threads),
            best_b.breach_rounds if 0 < train.breach.sum() < train.breach.size else 1,
        )
        trained_on = fitter.describe()

    # The stack's weights, from the chosen mean trial's out-of-fold predictions (train days).
    oof_rows = report.valid_rows
    oof_base = attached_baselines(oof_rows, STACK_BASELINES)
    weights = fit_stack(
        oof_rows[TARGET].cast(pl.Float64).to_numpy(),
        best_mean.oof_mean,
        np.column_stack([oof_base[b] for b in STACK_BASELINES]),
    )
    train_base = attached_baselines(split.train, (*MEAN_BASELINES, *STACK_BASELINES))
    anchor = fit_anchor(
        split.train[TARGET].cast(pl.Float64).to_numpy(),
        {b: train_base[b] for b in STACK_BASELINES},
    )

    # Calibration days, which no fit above saw: keep the stack or fall back to the best
    # baseline; conformal offsets per cell; breach probability map.
    cal = _Part.of(split.calibration, features, categories)
    scale_cal = _predict_scale(scale_booster, cal.x, config.scale_floor, report.scale_rounds)
    cal_mx = mean_matrix(cal.x, scale_cal, spec)
    stack = choose_mean(
        weights,
        cal.y,
        scale_cal * mean_booster.inplace_predict(cal_mx).astype(np.float64),
        attached_baselines(split.calibration, (*MEAN_BASELINES, *STACK_BASELINES)),
        anchor=anchor,
        days=split.calibration[DATE].to_numpy(),
        support=(split.train[TARGET].cast(pl.Float64).to_numpy(), train_base),
        min_gain=config.stack_min_gain,
    )
    q_raw = quantile_booster.inplace_predict(cal_mx).astype(np.float64) * scale_cal[:, None]
    conformal = fit_mondrian(
        q_raw, cal.y, scale_cal, weekdays(split.calibration), regimes(split.calibration)
    )
    raw_p = breach_booster.inplace_predict(breach_matrix(cal.x, scale_cal, headroom_idx))
    # The headroom rule's score of the calibration rows: the calibrator stacks it beside the
    # classifier (``breach.py``); without headroom columns there is no rule to stack.
    rule = _rule_scores(split.calibration, headroom) if headroom else None
    calibrator = fit_calibrator(
        np.asarray(raw_p, dtype=np.float64),
        cal.breach,
        method=config.calibration_method,
        rule=rule,
    )
    if rule is not None:
        # The rule's own map learns from the train days' breaches too (it has no fitted
        # classifier whose in-sample output could flatter it there).
        calibrator = average_with_rule(
            calibrator,
            np.concatenate([_rule_scores(split.train, headroom), rule]),
            np.concatenate([train.breach, cal.breach]),
        )
    scale_diagnostics = {
        "rms_y_over_s_train_in_sample": rms_in_scale_units(
            train.y, _predict_scale(scale_booster, train.x, config.scale_floor, report.scale_rounds)
        ),
        "rms_y_over_s_train_cross_fitted": rms_in_scale_units(train.y, scale_train),
        "rms_y_over_s_calibration": rms_in_scale_units(cal.y, scale_cal),
        "rms_y_over_s_search_folds_fit": report.scale_rms_fit,
        "blocks": config.scale_blocks,
    }

    versions = (
        sorted(rows[FEATURE_SET_VERSION].unique().to_list())
        if FEATURE_SET_VERSION in rows.columns
        else []
    )
    ranges = split.ranges()
    bundle = ModelBundle(
        feature_columns=features,
        boosters={
            "scale": scale_booster,
            "mean": mean_booster,
            "quantile": quantile_booster,
            "breach": breach_booster,
        },
        conformal=conformal,
        calibrator=calibrator,
        mean_weight_power=best_mean.params["mean_weight_power"],
        stack=stack,
        headroom_columns=headroom,
        categories=categories,
        scale_floor=config.scale_floor,
        metadata={
            "seed": seed,
            "feature_set_versions": versions,
            "train_window": ranges["train"].as_dict(),
            "calibration_window": ranges["calibration"].as_dict(),
            "test_window": ranges["test"].as_dict(),
            # The last day whose label any fitted part saw: later feature days are out of sample.
            "fit_label_end": str(label_dates(split.calibration).max()),
            "scale_diagnostics": scale_diagnostics,
            "params": {
                "mean": best_mean.params,
                "quantile": best_q.quantile_params,
                "breach": best_b.breach_params,
                "scale": dict(SCALE_PARAMS),
                "rounds": {
                    "scale": report.scale_rounds,
                    "mean": best_mean.mean_rounds,
                    "quantile": best_q.quantile_rounds,
                    "breach": best_b.breach_rounds,
                },
            },
        },
    )
    bundle.set_threads(threads)
    # The train days only: what the boosters learned from (calibration days tune, not teach).
    if config.drift_reference:
        bundle.drift_reference = build_reference(
            split.train, features, bundle.feature_importance(), seed=seed, day_column=DATE
        )

    description = describe_split(split)
    description["features"] = features
    description["headroom_columns"] = headroom
    description["feature_set_versions"] = versions
    description["stack"] = stack.as_dict()
    description["scale_diagnostics"] = scale_diagnostics
    if trained_on["backend"] != "local":
        # Only when it is news: a local fit's description stays what it always was.
        description["trained_on"] = trained_on
    return TrainResult(
        bundle=bundle,
        split=split,
        search=report,
        test_predictions=predictions_frame(split.test, bundle),
        calibration_predictions=predictions_frame(split.calibration, bundle),
        description=description,
        seconds=time.perf_counter() - started,
        history=history,
    )
