"""The baselines a model has to beat, computed point in time from the full daily P&L history.

Every baseline predicts the same target as the label: the account's net P&L over the target span
of session D (the day after D up to and including the next session, ``trading_calendar``). The
history they learn from is the account's *span P&L*: for each session s, the sum of its daily net
P&L over the days after the previous session up to and including s (Monday's span P&L is
Saturday + Sunday + Monday). For a row of D only days dated D or earlier are used.

``history`` is the full raw daily history (``account_id``, ``date``, ``net_profit``: the raw
daily metrics, every calendar day the account has a row), not the labels: labels exist only for
funded in-window session days, which would shorten and weaken the baselines and flatter the
model. A span in which the account has no daily row is a span without a record (it does not
count in the trailing windows); "yesterday" is 0 when the span ending at D has no row.

Mean baselines (``MEAN_BASELINES``): zero, yesterday (the span P&L ending at D: the last
session's), the trailing 5- and 20-session means of span P&L, and the account's mean span P&L
over its whole history up to D. Interval baseline: the account's trailing empirical 5th and 95th
percentiles of span P&L (last ``QUANTILE_WINDOW`` recorded spans). Breach baseline: a rule on
the smallest headroom in units of the account's trailing mean absolute span P&L, mapped to a
probability by a Platt fit on the rows the model was fitted and calibrated on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from daily_profit.modeling.breach import BreachCalibrator, fit_score_calibrator, rule_score
from daily_profit.modeling.dataset import BREACH, DATE, ID
from daily_profit.trading_calendar import TradingCalendar, trading_calendar

PNL = "net_profit"
ZERO = "zero"
YESTERDAY = "yesterday"
TRAILING_5 = "trailing_5_sessions"
TRAILING_20 = "trailing_20_sessions"
ACCOUNT_MEAN = "account_mean"
MEAN_BASELINES: tuple[str, ...] = (ZERO, YESTERDAY, TRAILING_5, TRAILING_20, ACCOUNT_MEAN)
# Not baselines the model is judged against but inputs its stacked mean may lean on: the
# account mean over n recorded spans pulled toward zero by n / (n + k), the empirical-Bayes
# estimate of an edge seen through n noisy sessions (k = the noise's variance over the spread of
# true edges). A fixed weight on the plain account mean trusts 5 sessions as much as 100; these
# trust each account as far as its history allows. Four strengths, so the stack's non-negative
# weights (and the fallback) can reach the firm's own k: on the seed sweep the best k lay
# between 10 and 80 sessions depending on how much edge the firm's traders have (two strengths,
# 10 and 40: pooled headroom share 0.252; these four: 0.259).
SHRUNK_ACCOUNT_MEANS: dict[str, float] = {
    "account_mean_shrunk_10": 10.0,
    "account_mean_shrunk_20": 20.0,
    "account_mean_shrunk_40": 40.0,
    "account_mean_shrunk_80": 80.0,
}
# A stack input read from the row itself rather than from the history: the unrealised P&L of
# the positions open at D's close (the exposure feature). They close within the span, and what
# is on the table at D is an unbiased forecast of what they add to it; a linear input gives the
# stack that term exactly, which trees fitted on P&L in units of the scale only approximate.
CARRIED_UNREALISED = "carried_unrealised"
CARRIED_SOURCE = "open_unrealised_usd"
INTERVAL_BASELINE = "trailing_percentiles"
BREACH_BASELINE = "headroom_rule"
QUANTILE_WINDOW = 60
TYPICAL_MOVE_WINDOW = 20
SPAN_END = "_span_end"


def span_history(history: pl.DataFrame, calendar: TradingCalendar | None = None) -> pl.DataFrame:
    """Span P&L per account and session: ``account_id``, ``date`` (the session s ending the
    span), ``net_profit`` (the sum of the daily P&L over the days after the previous session up
    to and including s). Days after the last session of ``history`` belong to a span that is not
    complete and are left out."""
    calendar = calendar or trading_calendar()
    days = history[DATE].unique().to_list()
    if not days:
        return history.select(ID, DATE, pl.col(PNL).cast(pl.Float64))
    # A day belongs to the span of the first session on or after it.
    ends = pl.DataFrame(
        {
            DATE: days,
            SPAN_END: [d if calendar.is_session(d) else calendar.next_session(d) for d in days],
        },
        schema={DATE: pl.Date, SPAN_END: pl.Date},
    )
    last_day = max(days)
    return (
        history.select(ID, DATE, pl.col(PNL).cast(pl.Float64))
        .join(ends, on=DATE, how="left")
        .filter(pl.col(SPAN_END) <= last_day)
        .group_by(ID, SPAN_END)
        .agg(pl.col(PNL).sum())
        .rename({SPAN_END: DATE})
        .sort(ID, DATE)
    )


def _history_stats(spans: pl.DataFrame) -> pl.DataFrame:
    """Per account and span end: trailing statistics of span P&L including that span."""
    h = spans.sort([ID, DATE])
    over = ID
    return h.with_columns(
        pl.col(PNL).alias("_last"),
        pl.col(DATE).alias("_last_date"),
        pl.col(PNL).rolling_mean(5, min_samples=1).over(over).alias(TRAILING_5),
        pl.col(PNL).rolling_mean(20, min_samples=1).over(over).alias(TRAILING_20),
        (pl.col(PNL).cum_sum().over(over) / pl.col(PNL).cum_count().over(over)).alias(ACCOUNT_MEAN),
        pl.col(PNL).cum_count().over(over).cast(pl.Float64).alias("_spans"),
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


def baseline_predictions(
    rows: pl.DataFrame, history: pl.DataFrame, calendar: TradingCalendar | None = None
) -> pl.DataFrame:
    """Every named baseline's prediction of the span P&L, point in time, for each input row.

    ``rows``: the account-days to predict, ``account_id`` and ``date`` (session D; other
    columns are ignored). ``history``: the full daily P&L, ``account_id``, ``date``,
    ``net_profit`` (raw daily metrics; rows dated after a row's D may be passed, they are never
    used for it). ``calendar``: the trading calendar of the spans (default the configured one;
    every day a session makes spans single days).

    Returns one row per input row, in the input order: ``account_id``, ``date`` and the Float64
    columns ``zero``, ``yesterday``, ``trailing_5_sessions``, ``trailing_20_sessions``,
    ``account_mean`` (``MEAN_BASELINES``, in that order), ``baseline_p05``, ``baseline_p95``
    (the interval baseline), ``typical_move`` (trailing mean absolute span P&L, for the
    breach rule) and the ``SHRUNK_ACCOUNT_MEANS`` (inputs of the stacked mean). An account with no history yet gets 0 everywhere, which is what a desk would
    assume knowing nothing.
    """
    stats = _history_stats(span_history(history, calendar))
    carried = (
        pl.col(CARRIED_SOURCE).cast(pl.Float64).fill_nan(None).fill_null(0.0)
        if CARRIED_SOURCE in rows.columns
        else pl.lit(0.0, dtype=pl.Float64)
    )
    keyed = rows.select(ID, pl.col(DATE).cast(pl.Date), carried.alias(CARRIED_UNREALISED))
    keyed = keyed.with_row_index("_row")
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
    fill = [TRAILING_5, TRAILING_20, ACCOUNT_MEAN, "baseline_p05", "baseline_p95"]
    return joined.select(
        ID,
        DATE,
        pl.lit(0.0).alias(ZERO),
        # The last session's span P&L is the span ending at D; no row in it means no P&L.
        pl.when(pl.col("_last_date") == pl.col(DATE))
        .then(pl.col("_last"))
        .otherwise(0.0)
        .alias(YESTERDAY),
        *[pl.col(c).fill_null(0.0) for c in fill],
        pl.col("typical_move").fill_null(0.0),
        *[
            (pl.col(ACCOUNT_MEAN) * pl.col("_spans") / (pl.col("_spans") + k))
            .fill_null(0.0)
            .alias(name)
            for name, k in SHRUNK_ACCOUNT_MEANS.items()
        ],
        CARRIED_UNREALISED,
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
    rows: pl.DataFrame,
    history: pl.DataFrame,
    headroom_columns: Sequence[str],
    calendar: TradingCalendar | None = None,
) -> BreachRule:
    """Fit the rule's probability map on rows with labels (the model's train + calibration);
    ``history`` and ``calendar`` as for ``baseline_predictions``."""
    y = rows[BREACH].cast(pl.Float64).to_numpy()
    cols = tuple(c for c in headroom_columns if c in rows.columns)
    if not cols:
        # No headroom known: the rule can only say the (smoothed) base rate.
        rate = (float(y.sum()) + 0.5) / (y.size + 1.0)
        return BreachRule((), BreachCalibrator(method="base_rate", base_rate=rate))
    base = baseline_predictions(rows, history, calendar)
    score = rule_score(min_headroom(rows, cols), base["typical_move"].to_numpy())
    return BreachRule(cols, fit_score_calibrator(score, y))
