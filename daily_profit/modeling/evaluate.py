"""Scores of the model and of every baseline on the same test rows, by proper scoring rules.

The target is the label's: the net P&L over the target span of session D (the day after D up to
and including the next session). Every mean and interval metric is reported on all rows and, as
``<metric>_nonzero``, on the rows with a non-zero outcome (``rows_nonzero`` of them): a span
without trading is an easy zero that pads RMSE and coverage.

Mean (expected net profit of the span): RMSE, MSE, MSE skill (1 - MSE / MSE of a baseline), R2,
direction accuracy (sign agreement on rows with a non-zero outcome). The mean is never chosen or
judged by MAE; MAE appears only for p50, the quantity MAE is proper for.

Interval (p05-p95, nominal 90%): coverage, mean width, interval (Winkler) score
``width + (2/alpha) * distance outside``, and pinball loss of the quantiles.

Breach (probability of a breach in the span): Brier, log loss, AUC, and precision of the top-k
flagged accounts per day (averaged over days).

With ground truth (the sandbox's expected net profit of the span, ``truth_over_spans``): the
oracle's MSE, the share of
the achievable improvement (best mean baseline -> oracle) the model captures, and every mean
predictor's MSE to the true mean (``mse_to_true_mean``), the precise comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from daily_profit.modeling.baselines import (
    BREACH_BASELINE,
    INTERVAL_BASELINE,
    MEAN_BASELINES,
    baseline_predictions,
    fit_breach_rule,
)
from daily_profit.modeling.dataset import BREACH, DATE, ID, TARGET
from daily_profit.modeling.recalibration import recent_known, served
from daily_profit.trading_calendar import TradingCalendar, trading_calendar

if TYPE_CHECKING:
    from daily_profit.modeling.train import TrainResult

ALPHA = 0.10  # the interval is the central 90%
MODEL = "model"
# The model's intervals as served: recalibrated on the last sessions' outcomes.
SERVED = "model_served"
ORACLE = "oracle"
TRUTH_MEAN = "expected_next_day_net_profit"
TRUTH_STD = "next_day_std"


# -- single metrics ----------------------------------------------------------------------------


def mse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean((y - pred) ** 2))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    sst = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / sst if sst > 0 else math.nan


def direction_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Share of rows with a non-zero outcome whose sign the prediction got right."""
    moved = y != 0
    if not moved.any():
        return math.nan
    return float(np.mean(np.sign(pred[moved]) == np.sign(y[moved])))


def pinball_loss(y: np.ndarray, q: np.ndarray, tau: float) -> float:
    d = y - q
    return float(np.mean(np.maximum(tau * d, (tau - 1.0) * d)))


def interval_score(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, alpha: float = ALPHA) -> float:
    """Mean Winkler score: width plus 2/alpha times how far outside the outcome fell."""
    below = np.maximum(lo - y, 0.0)
    above = np.maximum(y - hi, 0.0)
    return float(np.mean((hi - lo) + (2.0 / alpha) * (below + above)))


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    return float(np.mean((y >= lo) & (y <= hi)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC, NaN when the rows hold only one class."""
    if y.min() == y.max():
        return math.nan
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def precision_at_k(dates: np.ndarray, y: np.ndarray, p: np.ndarray, k: int) -> float:
    """Per day, the share of the k highest-probability accounts that breached; mean over days."""
    frame = pl.DataFrame({"d": dates, "y": y, "p": p})
    per_day = (
        frame.sort(["d", "p"], descending=[False, True])
        .group_by("d", maintain_order=True)
        .head(k)
        .group_by("d")
        .agg(pl.col("y").mean())
    )
    return float(per_day["y"].mean()) if per_day.height else math.nan  # type: ignore[arg-type]


def binomial_tolerance(n: int, level: float = 1 - ALPHA, z: float = 3.0) -> float:
    """How far an empirical coverage of n independent rows may stray from ``level`` by chance."""
    return z * math.sqrt(level * (1 - level) / max(n, 1))


# -- the report --------------------------------------------------------------------------------


@dataclass
class EvaluationReport:
    """Metrics per predictor (model, each baseline, oracle) on one set of rows."""

    metrics: dict[str, dict[str, float]]
    n_rows: int
    n_days: int
    window: dict[str, str]
    best_mean_baseline: str
    extras: dict[str, Any] = field(default_factory=dict)

    def flat(self, prefix: str = "test") -> dict[str, float]:
        """``{prefix}_{predictor}_{metric}`` for MLflow, without NaNs (MLflow rejects none)."""
        out: dict[str, float] = {}
        for predictor, values in self.metrics.items():
            for metric, value in values.items():
                if value is not None and math.isfinite(value):
                    out[f"{prefix}_{predictor}_{metric}"] = float(value)
        return out

    def get(self, predictor: str, metric: str) -> float:
        return self.metrics.get(predictor, {}).get(metric, math.nan)

    def table(self) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {"predictor": p, "metric": m, "value": v}
                for p, values in self.metrics.items()
                for m, v in values.items()
            ]
        )


def _mean_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    out = {
        "mse": mse(y, pred),
        "rmse": math.sqrt(mse(y, pred)),
        "r2": r2(y, pred),
        "direction_accuracy": direction_accuracy(y, pred),
    }
    moved = y != 0
    if moved.any():
        out["mse_nonzero"] = mse(y[moved], pred[moved])
        out["rmse_nonzero"] = math.sqrt(out["mse_nonzero"])
    return out


def _interval_metrics(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[str, float]:
    out = {
        "coverage": coverage(y, lo, hi),
        "mean_width": float(np.mean(hi - lo)),
        "interval_score": interval_score(y, lo, hi),
        "pinball_tails": 0.5 * (pinball_loss(y, lo, 0.05) + pinball_loss(y, hi, 0.95)),
    }
    moved = y != 0
    if moved.any():
        y, lo, hi = y[moved], lo[moved], hi[moved]
        out["coverage_nonzero"] = coverage(y, lo, hi)
        out["mean_width_nonzero"] = float(np.mean(hi - lo))
        out["interval_score_nonzero"] = interval_score(y, lo, hi)
    return out


def _breach_metrics(dates: np.ndarray, y: np.ndarray, p: np.ndarray, k: int) -> dict[str, float]:
    return {
        "brier": brier(y, p),
        "log_loss": log_loss(y, p),
        "auc": auc(y, p),
        f"precision_top{k}": precision_at_k(dates, y, p, k),
    }


def evaluate_predictions(
    predictions: pl.DataFrame,
    baselines: pl.DataFrame,
    breach_rule_probability: np.ndarray | None = None,
    truth: pl.DataFrame | None = None,
    top_k: int = 10,
) -> EvaluationReport:
    """Score model and baselines on the same rows.

    ``predictions``: account_id, date, net_profit_next_session, breached_next_session,
    expected_net_profit, p05, p50, p95, breach_probability. ``baselines``: the same rows in the
    same order, from ``baselines.baseline_predictions``. ``truth`` (optional): account_id,
    date, expected_next_day_net_profit (next_day_std optional): the expected P&L of the same
    target as the label (for the sandbox's daily truth, ``truth_over_spans``).
    """
    if baselines.height != predictions.height:
        raise ValueError("baselines must hold the same rows as predictions, in the same order")
    y = predictions[TARGET].cast(pl.Float64).to_numpy()
    dates = predictions[DATE].to_numpy()
    metrics: dict[str, dict[str, float]] = {}

    expected = predictions["expected_net_profit"].to_numpy()
    lo, mid, hi = (predictions[c].to_numpy() for c in ("p05", "p50", "p95"))
    model = _mean_metrics(y, expected)
    model.update(_interval_metrics(y, lo, hi))
    model["pinball"] = float(
        np.mean([pinball_loss(y, q, t) for q, t in ((lo, 0.05), (mid, 0.5), (hi, 0.95))])
    )
    model["p50_mae"] = float(np.mean(np.abs(y - mid)))
    metrics[MODEL] = model

    for name in MEAN_BASELINES:
        metrics[name] = _mean_metrics(y, baselines[name].to_numpy())
    best = min(MEAN_BASELINES, key=lambda n: metrics[n]["mse"])
    for name in MEAN_BASELINES:
        model[f"mse_skill_vs_{name}"] = 1.0 - model["mse"] / metrics[name]["mse"]
    model["mse_skill_vs_best_baseline"] = 1.0 - model["mse"] / metrics[best]["mse"]
    model["rows_nonzero"] = float(np.count_nonzero(y))

    metrics[INTERVAL_BASELINE] = _interval_metrics(
        y, baselines["baseline_p05"].to_numpy(), baselines["baseline_p95"].to_numpy()
    )

    if BREACH in predictions.columns:
        yb = predictions[BREACH].cast(pl.Float64).to_numpy()
        model.update(
            _breach_metrics(dates, yb, predictions["breach_probability"].to_numpy(), top_k)
        )
        model["breach_rate"] = float(yb.mean())
        if breach_rule_probability is not None:
            metrics[BREACH_BASELINE] = _breach_metrics(dates, yb, breach_rule_probability, top_k)

    extras: dict[str, Any] = {}
    if truth is not None:
        joined = predictions.select(ID, DATE).join(
            truth.select(ID, DATE, TRUTH_MEAN), on=[ID, DATE], how="left", maintain_order="left"
        )
        oracle = joined[TRUTH_MEAN].to_numpy()
        known = np.isfinite(oracle)
        if known.any():
            yk = y[known]
            metrics[ORACLE] = _mean_metrics(yk, oracle[known])
            mse_best = mse(yk, baselines[best].to_numpy()[known])
            mse_model = mse(yk, expected[known])
            gap = mse_best - metrics[ORACLE]["mse"]
            model["share_of_achievable_mse_gain"] = (
                (mse_best - mse_model) / gap if gap > 0 else math.nan
            )
            # Distance to the true mean itself, not to the noisy outcome: on a few thousand
            # heavy-tailed outcomes a handful of extreme days decide realised MSE, while this
            # one separates predictors precisely (sandbox only).
            truth_k = oracle[known]
            model["mse_to_true_mean"] = mse(truth_k, expected[known])
            for name in MEAN_BASELINES:
                metrics[name]["mse_to_true_mean"] = mse(truth_k, baselines[name].to_numpy()[known])
            extras["oracle_rows"] = int(known.sum())

    days = predictions[DATE]
    return EvaluationReport(
        metrics=metrics,
        n_rows=predictions.height,
        n_days=days.n_unique(),
        window={"start": str(days.min()), "end": str(days.max())},
        best_mean_baseline=best,
        extras=extras,
    )


def evaluate_result(
    result: TrainResult,
    history: pl.DataFrame,
    truth: pl.DataFrame | None = None,
    top_k: int = 10,
    calendar: TradingCalendar | None = None,
) -> EvaluationReport:
    """Evaluate a ``train.TrainResult`` on its test days against every baseline.

    ``history``: the full raw daily P&L (account_id, date, net_profit) the baselines are
    computed from, point in time (``baselines.baseline_predictions``; not the labels, which
    exist only for funded in-window sessions). ``calendar``: the spans' trading calendar
    (default the configured one). The breach rule is fitted on the train and calibration rows.
    """
    split = result.split
    test = split.test
    base = baseline_predictions(test, history, calendar)
    rule = fit_breach_rule(
        pl.concat([split.train, split.calibration], how="diagonal_relaxed"),
        history,
        result.bundle.headroom_columns,
        calendar,
    )
    report = evaluate_predictions(
        result.test_predictions,
        base,
        breach_rule_probability=rule.predict(test, base),
        truth=truth,
        top_k=top_k,
    )
    report.extras["breach_rule_columns"] = list(rule.headroom_columns)
    # The intervals the desk is served: the model's stretched each night by the outcomes known
    # at that day's close (``recalibration.served``), what the walk-forward and promotion judge.
    known = recent_known((split.train, split.calibration), test)
    stretched = served(result.bundle, result.test_predictions, known)
    y = stretched[TARGET].cast(pl.Float64).to_numpy()
    report.metrics[SERVED] = _interval_metrics(
        y, stretched["p05"].to_numpy(), stretched["p95"].to_numpy()
    )
    return report


def truth_over_spans(truth: pl.DataFrame, calendar: TradingCalendar | None = None) -> pl.DataFrame:
    """The sandbox's daily truth on the label's target: for each session D, the sum of the
    expected daily P&L over D's span (and the standard deviation of the sum, days taken as
    independent).

    ``truth``: account_id, date (day t), expected_next_day_net_profit and next_day_std (of day
    t + 1). A span whose days are not all known (the account ended inside it) gets no row.
    """
    calendar = calendar or trading_calendar()
    sessions = calendar.span_table(truth[DATE].unique().to_list()).filter("is_session")
    # The truth of day t is about t + 1: the span of D is covered by the truth of D .. end - 1.
    days = sessions.select(
        pl.col(DATE).alias("_session"),
        pl.date_ranges(DATE, pl.col("target_end") - pl.duration(days=1)).alias(DATE),
        ((pl.col("target_end") - pl.col(DATE)).dt.total_days()).alias("_span_days"),
    ).explode(DATE)
    std = [pl.col(TRUTH_STD).pow(2).sum().sqrt().alias(TRUTH_STD)] if TRUTH_STD in truth else []
    return (
        truth.join(days, on=DATE, how="inner")
        .group_by(ID, "_session")
        .agg(
            pl.col(TRUTH_MEAN).sum(),
            *std,
            pl.len().alias("_known"),
            pl.col("_span_days").first(),
        )
        .filter(pl.col("_known") == pl.col("_span_days"))
        .select(ID, pl.col("_session").alias(DATE), TRUTH_MEAN, *([TRUTH_STD] if std else []))
        .sort(ID, DATE)
    )


def coverage_by_decile(predictions: pl.DataFrame, by: str = "scale") -> pl.DataFrame:
    """Coverage, mean width and row count per decile of a predicted quantity (default s(x))."""
    frame = predictions.with_columns(
        ((pl.col(by).rank("ordinal") - 1) * 10 // pl.len()).alias("decile"),
        ((pl.col(TARGET) >= pl.col("p05")) & (pl.col(TARGET) <= pl.col("p95"))).alias("_in"),
        (pl.col("p95") - pl.col("p05")).alias("_width"),
    )
    return (
        frame.group_by("decile")
        .agg(
            pl.col("_in").mean().alias("coverage"),
            pl.col("_width").mean().alias("mean_width"),
            pl.len().alias("rows"),
        )
        .sort("decile")
    )


def compare_reports(
    reports: Mapping[str, EvaluationReport], metrics: Sequence[str]
) -> dict[str, dict[str, float]]:
    """``{name: {metric: value}}`` of the model rows of several reports (for promotion)."""
    return {name: {m: r.get(MODEL, m) for m in metrics} for name, r in reports.items()}
