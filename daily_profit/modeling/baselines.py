"""The baselines a model has to beat, computed point in time from P&L history.

Inputs:

- ``rows``: the account-days to predict (``account_id``, ``date`` = feature day D); for the
  breach rule also the loss-limit headroom columns (USD distance to the daily loss limit and to
  the drawdown floor, from the features) and, to fit it, ``breached_next_session``;
- ``history``: daily net profit per account-day, ``account_id``, ``date``, ``net_profit``. Only
  history dated D or earlier is used for a row of D. An account-day without a row counts as a
  day without P&L, so "yesterday" (the P&L of D) is 0 when the account has no row on D, and the
  trailing windows count recorded days. Pass the daily metrics (longest history) or derive it
  from the labels with ``history_from_labels`` (the label of D-1 is realised on D).

Mean baselines: zero, yesterday's P&L, trailing 5- and 20-day means, the account's mean so far.
Interval baseline: the account's trailing empirical 5th and 95th percentiles (last
``QUANTILE_WINDOW`` recorded days). Breach baseline: a rule on the smallest headroom in units of
the account's trailing mean absolute P&L, mapped to a probability by a Platt fit on the rows
the model was fitted and calibrated on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from daily_profit.modeling.breach import BreachCalibrator, fit_score_calibrator, rule_score
from daily_profit.modeling.dataset import BREACH, DATE, ID, TARGET, label_dates

PNL = "net_profit"
MEAN_BASELINES: tuple[str, ...] = (
    "zero",
    "yesterday",
    "trailing_5d",
    "trailing_20d",
    "account_mean",
)
INTERVAL_BASELINE = "trailing_percentiles"
BREACH_BASELINE = "headroom_rule"
QUANTILE_WINDOW = 60
TYPICAL_MOVE_WINDOW = 20


def history_from_labels(frame: pl.DataFrame) -> pl.DataFrame:
    """Daily net profit per account-day from the labels: the label of D is the P&L of D+1."""
    return (
        frame.select(
            pl.col(ID),
            label_dates(frame).alias(DATE),
            pl.col(TARGET).alias(PNL),
        )
        .drop_nulls()
        .unique(subset=[ID, DATE], keep="last")
        .sort([ID, DATE])
    )


def _history_stats(history: pl.DataFrame) -> pl.DataFrame:
    """Per account-day of history: trailing statistics including that day."""
    h = history.select(ID, DATE, pl.col(PNL).cast(pl.Float64)).sort([ID, DATE])
    over = ID
    return h.with_columns(
        pl.col(PNL).alias("_last"),
        pl.col(DATE).alias("_last_date"),
        pl.col(PNL).rolling_mean(5, min_samples=1).over(over).alias("trailing_5d"),
        pl.col(PNL).rolling_mean(20, min_samples=1).over(over).alias("trailing_20d"),
        (pl.col(PNL).cum_sum().over(over) / pl.col(PNL).cum_count().over(over)).alias(
            "account_mean"
        ),
        pl.col(PNL)
        .rolling_quantile(0.05, "linear", window_size=QUANTILE_WINDOW, min_samples=1)
        .over(over)
        .alias("baseline_p05"),
        pl.col(PNL)
        .rolling_quantile(0.95, "linear", window_size=QUANTILE_WINDOW, min_samples=1)
        .over(over)
        .alias("baseline_p95"),
        pl.col(PNL)
        .abs()
        .rolling_mean(TYPICAL_MOVE_WINDOW, min_samples=1)
        .over(over)
        .alias("typical_move"),
    ).drop(PNL)


def baseline_predictions(rows: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """One row per input row (same order): account_id, date and every baseline's prediction.

    Columns: zero, yesterday, trailing_5d, trailing_20d, account_mean, baseline_p05,
    baseline_p95, typical_move. An account with no history yet gets 0 everywhere (and a
    typical move of 0), which is what a desk would assume knowing nothing.
    """
    stats = _history_stats(history)
    keyed = rows.select(ID, DATE).with_row_index("_row")
    joined = (
        keyed.sort(DATE)
        .join_asof(
            stats.sort(DATE),
            on=DATE,
            by=ID,
            strategy="backward",
            check_sortedness=False,
        )
        .sort("_row")
    )
    fill = ["trailing_5d", "trailing_20d", "account_mean", "baseline_p05", "baseline_p95"]
    return joined.select(
        ID,
        DATE,
        pl.lit(0.0).alias("zero"),
        # Yesterday's P&L is the P&L of D itself; no row on D means no P&L on D.
        pl.when(pl.col("_last_date") == pl.col(DATE))
        .then(pl.col("_last"))
        .otherwise(0.0)
        .alias("yesterday"),
        *[pl.col(c).fill_null(0.0) for c in fill],
        pl.col("typical_move").fill_null(0.0),
    )


def min_headroom(rows: pl.DataFrame, headroom_columns: Sequence[str]) -> np.ndarray:
    """The smallest USD headroom to any loss limit per row (inf when no column is known)."""
    if not headroom_columns:
        return np.full(rows.height, np.inf)
    values = rows.select([pl.col(c).cast(pl.Float64) for c in headroom_columns]).to_numpy()
    values = np.where(np.isfinite(values), values, np.inf)
    return values.min(axis=1)


@dataclass(frozen=True)
class BreachRule:
    """The rule baseline: headroom in typical moves, calibrated to a probability."""

    headroom_columns: tuple[str, ...]
    calibrator: BreachCalibrator

    def score(self, rows: pl.DataFrame, baselines: pl.DataFrame) -> np.ndarray:
        return rule_score(
            min_headroom(rows, self.headroom_columns), baselines["typical_move"].to_numpy()
        )

    def predict(self, rows: pl.DataFrame, baselines: pl.DataFrame) -> np.ndarray:
        if not self.headroom_columns:
            return self.calibrator(np.full(rows.height, 0.5))
        return self.calibrator(1.0 / (1.0 + np.exp(-self.score(rows, baselines))))


def fit_breach_rule(
    rows: pl.DataFrame, history: pl.DataFrame, headroom_columns: Sequence[str]
) -> BreachRule:
    """Fit the rule's probability map on rows with labels (the model's train + calibration)."""
    y = rows[BREACH].cast(pl.Float64).to_numpy()
    cols = tuple(c for c in headroom_columns if c in rows.columns)
    if not cols:
        # No headroom known: the rule can only say the (smoothed) base rate.
        rate = (float(y.sum()) + 0.5) / (y.size + 1.0)
        return BreachRule((), BreachCalibrator(method="base_rate", base_rate=rate))
    base = baseline_predictions(rows, history)
    score = rule_score(min_headroom(rows, cols), base["typical_move"].to_numpy())
    return BreachRule(cols, fit_score_calibrator(score, y))
