"""Recent recalibration: the last sessions' outcomes widen or narrow the next interval.

Conformal offsets hold when the days predicted look like the calibration days. A regime the
calibration days never saw breaks that: on the seed sweep, a model calibrated in a calm regime
covered 62-66% of the moves of the volatile weeks that followed, and no fit on past days can
know a regime it has not met. What is known at D's close is how the last sessions went: their
outcomes are realised (the target of the session before D ends on D). The **stretch** of D is the
factor by which the intervals of the last ``RECENT_SESSIONS`` sessions (rows that moved; further
back, up to ``MAX_RECENT_SESSIONS``, while they hold fewer than ``MIN_RECENT_ROWS``) would have had to widen, or could have narrowed, about their median to cover the model's calibrated
level (the conformal (n + 1) rule), bounded to ``STRETCH_BOUNDS``; D's interval is stretched by
it about its p50. In a steady regime the stretch stays near 1; a few sessions into a new one it
has caught up, where the offsets alone would stay wrong until the next retraining.

The expected profit, p50 and the breach probability are not touched: only the interval's width.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

from daily_profit.modeling.bundle import ModelBundle
from daily_profit.modeling.conformal import conformal_stretch
from daily_profit.modeling.dataset import DATE, LABEL_DATE, TARGET, label_dates

# Five sessions: a week of outcomes (about a thousand moving rows at the sandbox's size), recent
# enough to follow a regime within days, and the conformal quantile of a thousand rows moves
# by about a point of coverage.
RECENT_SESSIONS = 5
# Fewer moving rows than this in the window: it reaches further back, up to MAX_RECENT_SESSIONS;
# still fewer: no stretch (1), too few to say more than noise.
MIN_RECENT_ROWS = 200
# Four weeks: a small firm (40 moving accounts a day) gathers its 200 rows in five to six
# sessions; with a fixed week it went unstretched on a quarter of its days (seed sweep, seed 4:
# 523 of 1,893 moving rows, covered 79.5%) right after the volatile weeks it had to learn from.
MAX_RECENT_SESSIONS = 20
# A week of outcomes may halve an interval or make it three times as wide, not more.
STRETCH_BOUNDS = (0.5, 3.0)
NO_STRETCH = 1.0


def stretch_for(
    y: np.ndarray,
    quantiles: np.ndarray,
    level: float,
    *,
    min_rows: int = MIN_RECENT_ROWS,
    bounds: tuple[float, float] = STRETCH_BOUNDS,
) -> float:
    """The stretch the rows ask for: the conformal ``level`` quantile of ``needed_stretch``
    over the rows that moved, bounded; ``NO_STRETCH`` with fewer than ``min_rows`` of them."""
    moved = y != 0
    n = int(moved.sum())
    if n < min_rows:
        return NO_STRETCH
    return float(np.clip(conformal_stretch(y[moved], quantiles[moved], level), *bounds))


def recent_windows(
    recent: pl.DataFrame,
    days: Sequence[dt.date],
    *,
    sessions: int = RECENT_SESSIONS,
    max_sessions: int = MAX_RECENT_SESSIONS,
    min_rows: int = MIN_RECENT_ROWS,
) -> dict[dt.date, list[dt.date]]:
    """The feature days each day of ``days`` reads its stretch from: rows of ``recent`` with
    their outcome (``date``, ``target_end`` (the day the outcome is known), the target). Day D
    reads the ``sessions`` latest feature days before D whose outcomes are all known by D, point
    in time: nothing realised after D is used; while those hold fewer than ``min_rows`` moving
    rows, earlier ones too, up to ``max_sessions``."""
    per_day = (
        recent.group_by(DATE)
        .agg(pl.col(LABEL_DATE).max(), (pl.col(TARGET) != 0).sum().alias("moving"))
        .sort(DATE)
    )
    feature_days = per_day[DATE].to_list()
    realised_by = dict(zip(feature_days, per_day[LABEL_DATE].to_list(), strict=True))
    moving = dict(zip(feature_days, per_day["moving"].to_list(), strict=True))
    out: dict[dt.date, list[dt.date]] = {}
    for day in days:
        known = [d for d in feature_days if d < day and realised_by[d] <= day]
        reach = min(sessions, len(known))
        while sum(moving[d] for d in known[len(known) - reach :]) < min_rows and reach < min(
            max_sessions, len(known)
        ):
            reach += 1
        out[day] = known[len(known) - reach :]
    return out


def recent_stretches(
    recent: pl.DataFrame,
    days: Sequence[dt.date],
    level: float,
    *,
    sessions: int = RECENT_SESSIONS,
    max_sessions: int = MAX_RECENT_SESSIONS,
    min_rows: int = MIN_RECENT_ROWS,
) -> dict[dt.date, float]:
    """The stretch of each day of ``days`` from ``recent``: rows predicted by the model with
    their outcome (``date``, ``target_end``, the target, ``p05``, ``p50``, ``p95``), read over
    each day's ``recent_windows``."""
    windows = recent_windows(
        recent, days, sessions=sessions, max_sessions=max_sessions, min_rows=min_rows
    )
    by_day = {
        d: part
        for (d,), part in recent.partition_by(DATE, as_dict=True, maintain_order=True).items()
    }
    out: dict[dt.date, float] = {}
    for day, window in windows.items():
        if not window:
            out[day] = NO_STRETCH
            continue
        rows = pl.concat([by_day[d] for d in window])
        out[day] = stretch_for(
            rows[TARGET].cast(pl.Float64).to_numpy(),
            rows.select("p05", "p50", "p95").to_numpy().astype(np.float64),
            level,
            min_rows=min_rows,
        )
    return out


def apply_stretch(quantiles: np.ndarray, stretch: np.ndarray) -> np.ndarray:
    """(n, 3) quantiles with each row's interval stretched about its p50 by ``stretch``."""
    median = quantiles[:, 1:2]
    return median + np.asarray(stretch, dtype=np.float64)[:, None] * (quantiles - median)


STRETCH_COLUMN = "interval_stretch"


def model_stretches(
    bundle: ModelBundle, known_rows: pl.DataFrame, days: Sequence[dt.date]
) -> dict[dt.date, float]:
    """The stretch of each of ``days`` for ``bundle`` from ``known_rows``: feature rows of
    earlier sessions (with the stacked baselines attached) joined with their labels
    (``target_end``, ``net_profit_next_session``). The bundle predicts them afresh, so the
    stretch measures its own calibrated intervals, never earlier stretched ones."""
    if known_rows.is_empty():
        return {day: NO_STRETCH for day in days}
    q = bundle.predict(known_rows).quantiles
    known = known_rows.select(DATE, LABEL_DATE, TARGET).with_columns(
        pl.Series("p05", q[:, 0]), pl.Series("p50", q[:, 1]), pl.Series("p95", q[:, 2])
    )
    return recent_stretches(known, days, bundle.conformal.level)


def day_stretch(dates: pl.Series, stretches: dict[dt.date, float]) -> np.ndarray:
    """Each row's stretch from its day's (``NO_STRETCH`` for a day without one)."""
    return (
        dates.replace_strict(stretches, default=NO_STRETCH, return_dtype=pl.Float64)
        .to_numpy()
        .astype(np.float64)
    )


def stretch_frame(predictions: pl.DataFrame, stretches: dict[dt.date, float]) -> pl.DataFrame:
    """``predictions`` (``date``, ``p05``, ``p50``, ``p95``) with each day's interval stretched
    and the stretch in ``interval_stretch``."""
    s = day_stretch(predictions[DATE], stretches)
    q = apply_stretch(predictions.select("p05", "p50", "p95").to_numpy().astype(np.float64), s)
    return predictions.with_columns(
        pl.Series("p05", q[:, 0]), pl.Series("p95", q[:, 2]), pl.Series(STRETCH_COLUMN, s)
    )


def recent_known(
    earlier: pl.DataFrame | Sequence[pl.DataFrame], rows: pl.DataFrame
) -> pl.DataFrame:
    """The rows whose outcomes the stretches of ``rows``' days may read: the last
    ``MAX_RECENT_SESSIONS`` feature days of ``earlier`` (one frame, or several, such as a
    split's train and calibration segments: only their last sessions are copied) and ``rows``
    themselves (each day reads only what was realised by its close), with the day each label
    was realised."""
    parts = [earlier] if isinstance(earlier, pl.DataFrame) else list(earlier)
    days = sorted({d for part in parts for d in part[DATE].unique().to_list()})
    recent = days[-MAX_RECENT_SESSIONS:]
    known = pl.concat(
        [*(part.filter(pl.col(DATE).is_in(recent)) for part in parts), rows],
        how="diagonal_relaxed",
    )
    return known.with_columns(label_dates(known).alias(LABEL_DATE))


def served(bundle: ModelBundle, predictions: pl.DataFrame, known: pl.DataFrame) -> pl.DataFrame:
    """``predictions`` by ``bundle`` as the nightly predictions serve them: each day's interval
    stretched by the outcomes of ``known`` (``recent_known``, the stacked baselines attached)
    realised by its close."""
    days = predictions[DATE].unique().sort().to_list()
    return stretch_frame(predictions, model_stretches(bundle, known, days))
