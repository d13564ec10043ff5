"""The champion's realised performance over rolling windows, against the baselines, and decay.

A window of n sessions ending at day D covers every outcome dated from the n-th trading session
back (the trading calendar) through D. Within it only the rows of the champion of D count, the
version that predicted D as champion, including the days it ran in shadow as challenger: a
window that mixed versions would blame a new champion for its predecessor's errors, and a
retrain would not clear the verdict until the window had rolled past the old version.

The baselines are the point-in-time mean baselines of evaluation (``modeling.baselines``) on
the very same rows and the same span target, from the full raw daily P&L history; the best one
(lowest RMSE in the window) is what the champion must beat. RMSE and coverage are reported on
all rows and on the rows with a non-zero outcome (``nonzero_``), the champion's and the best
baseline's.

Decay, read on the longest window: the champion's RMSE worse than the best baseline's by more
than a margin, or the coverage of its 90% interval outside a band. Judged only once the window
holds enough days of outcomes. No Dagster here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from daily_profit.modeling.baselines import MEAN_BASELINES, baseline_predictions
from daily_profit.modeling.outcomes import performance
from daily_profit.trading_calendar import TradingCalendar

WINDOWS: tuple[int, ...] = (1, 7, 28)
DECAY_WINDOW = 28
CHAMPION_ROLE = "champion"


def window_start(calendar: TradingCalendar, day: dt.date, sessions: int) -> dt.date:
    """First day of the window of ``sessions`` trading sessions ending at ``day``: the day
    itself for a one-day window (whatever the calendar says of it)."""
    if sessions <= 1:
        return day
    return calendar.sessions_back(day, sessions)[0]


def champion_version(outcomes: pl.DataFrame, day: dt.date) -> str | None:
    """The version that predicted ``day`` as champion; else the latest champion in the rows."""
    champions = outcomes.filter(pl.col("model_role") == CHAMPION_ROLE)
    if champions.height == 0:
        return None
    on_day = champions.filter(pl.col("date") == day)
    source = (
        on_day if on_day.height else champions.filter(pl.col("date") == champions["date"].max())
    )
    counts = source.group_by("model_version").len().sort(["len", "model_version"], descending=True)
    return str(counts["model_version"][0])


@dataclass(frozen=True)
class WindowPerformance:
    """One version's metrics over the outcomes dated [start, end]."""

    sessions: int
    start: dt.date
    end: dt.date
    metrics: dict[str, float]
    best_baseline: str | None  # the mean baseline with the lowest RMSE on the same rows


def window_metrics(
    outcomes: pl.DataFrame,
    history: pl.DataFrame,
    version: str,
    start: dt.date,
    end: dt.date,
    sessions: int = 1,
    calendar: TradingCalendar | None = None,
) -> WindowPerformance:
    """The version's metrics over outcomes dated [start, end], beside the best mean baseline's
    on the same rows: ``rows``, ``days``, ``rmse``, ``mae``, ``coverage``, ``interval_score``,
    ``breach_brier``, ..., ``best_baseline_rmse``, ``best_baseline_mae``,
    ``rmse_vs_best_baseline`` (the ratio; below 1 the champion wins), and on the rows with a
    non-zero outcome ``nonzero_rows``, ``nonzero_rmse``, ``nonzero_coverage``,
    ``nonzero_best_baseline_rmse``. ``history``: the full raw daily P&L (account_id, date,
    net_profit); ``calendar``: the spans' trading calendar."""
    rows = outcomes.filter(
        (pl.col("model_version") == version) & pl.col("date").is_between(start, end)
    ).sort("date", "account_id")
    metrics = performance(rows)
    metrics["days"] = float(rows["date"].n_unique()) if rows.height else 0.0
    if rows.height == 0:
        return WindowPerformance(sessions, start, end, metrics, None)
    y = rows["realised_net_profit"].to_numpy()
    metrics["mae"] = float(np.mean(np.abs(y - rows["expected_net_profit"].to_numpy())))
    base = baseline_predictions(rows.select("account_id", "date"), history, calendar)
    baseline_rmse = {
        name: float(np.sqrt(np.mean((y - base[name].to_numpy()) ** 2))) for name in MEAN_BASELINES
    }
    best = min(MEAN_BASELINES, key=lambda n: baseline_rmse[n])
    metrics["best_baseline_rmse"] = baseline_rmse[best]
    moved = y != 0
    metrics["nonzero_best_baseline_rmse"] = (
        float(np.sqrt(np.mean((y[moved] - base[best].to_numpy()[moved]) ** 2)))
        if moved.any()
        else math.nan
    )
    metrics["best_baseline_mae"] = float(np.mean(np.abs(y - base[best].to_numpy())))
    metrics["rmse_vs_best_baseline"] = (
        metrics["rmse"] / baseline_rmse[best] if baseline_rmse[best] > 0 else math.nan
    )
    return WindowPerformance(sessions, start, end, metrics, best)


@dataclass(frozen=True)
class DecayRules:
    """When the champion counts as decayed (from the settings)."""

    rmse_margin: float = 0.05
    coverage_min: float = 0.85
    coverage_max: float = 0.95
    min_days: int = 10

    @classmethod
    def from_settings(cls, settings: object | None = None) -> DecayRules:
        if settings is None:
            from daily_profit.config import get_settings

            settings = get_settings()
        return cls(
            rmse_margin=settings.model_decay_rmse_margin,  # type: ignore[attr-defined]
            coverage_min=settings.model_coverage_min,  # type: ignore[attr-defined]
            coverage_max=settings.model_coverage_max,  # type: ignore[attr-defined]
            min_days=settings.model_decay_min_days,  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class DecayVerdict:
    judged: bool
    decayed: bool
    reasons: list[str] = field(default_factory=list)


def decay_verdict(window: WindowPerformance, rules: DecayRules) -> DecayVerdict:
    """The champion's decay on the longest window (``window_metrics``)."""
    metrics = window.metrics
    days = int(metrics.get("days", 0))
    if days < rules.min_days:
        return DecayVerdict(
            judged=False,
            decayed=False,
            reasons=[f"not judged: {days} days of outcomes in the window, {rules.min_days} needed"],
        )
    reasons = []
    rmse, best = metrics["rmse"], metrics["best_baseline_rmse"]
    if rmse > best * (1 + rules.rmse_margin):
        reasons.append(
            f"RMSE {rmse:.4g} worse than the best baseline ({window.best_baseline}) "
            f"{best:.4g} by more than {rules.rmse_margin:.0%}"
        )
    cover = metrics["coverage"]
    if not rules.coverage_min <= cover <= rules.coverage_max:
        reasons.append(
            f"coverage of the 90% interval {cover:.1%} outside "
            f"{rules.coverage_min:.0%}-{rules.coverage_max:.0%}"
        )
    return DecayVerdict(judged=True, decayed=bool(reasons), reasons=reasons or ["in line"])


def rolling_performance(
    outcomes: pl.DataFrame,
    history: pl.DataFrame,
    day: dt.date,
    calendar: TradingCalendar,
    windows: Sequence[int] = WINDOWS,
) -> tuple[str | None, dict[int, WindowPerformance]]:
    """The champion of ``day`` and its metrics per window (sessions -> metrics)."""
    version = champion_version(outcomes.filter(pl.col("date") <= day), day)
    if version is None:
        return None, {}
    return version, {
        n: window_metrics(
            outcomes, history, version, window_start(calendar, day, n), day, n, calendar
        )
        for n in windows
    }
