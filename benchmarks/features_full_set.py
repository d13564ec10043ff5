"""Feature layer speed: the whole feature set over a year of a simulated firm, in one pass.

    uv run python benchmarks/features_full_set.py [--quick]

Simulates the sandbox firm at its default trade density (2,000 accounts x 365 days; ``--quick``:
300 x 120), turns it into the raw tables through the warehouse's ``parse_records``, then times:

- ``features_full_set``: ``build_staging`` + ``build_features`` for every day of the range
  (staging from the whole history), in live funded account-days (feature rows) per second.
  Baseline: the pandas daily P&L family below, on the same account-days: the whole polars
  feature set against pandas computing only one family of it.
- ``features_daily_pnl_family``: the daily P&L family alone (``daily_pnl_features``) against
  a vectorised pandas implementation of the same features (groupby + rolling, no per-row
  Python) on the same dense grid. The two outputs are checked equal to 1e-9 relative before
  anything is reported.
- ``features_labels``: ``build_labels`` for the range (no baseline).

Figures are medians of repeated runs; one JSON line per figure on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import log, median_time, report
from daily_profit.features.daily_pnl import PNL_WINDOWS, STREAK_CAP_DAYS, daily_pnl_features
from daily_profit.features.grid import Grid, build_grid
from daily_profit.features.pipeline import (
    build_features,
    build_labels,
    build_staging,
    required_history_start,
)
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit_tests.support import raw_frames_from_sandbox

# Equality of the two implementations: relative, with a floor of a billionth of a dollar (or of
# a ratio) so that an exact 0 and a 1e-13 running-sum residue compare equal.
REL_TOL = 1e-9
ABS_TOL = 1e-9


def pandas_daily_pnl(frame: pd.DataFrame, windows: tuple[int, ...]) -> pd.DataFrame:
    """The daily P&L family in pandas: groupby + rolling, vectorised, no per-row Python.

    ``frame``: the dense grid (``account``, ``pos``, ``pnl``, ``starting_balance``), sorted by
    account and date. Same definitions as ``daily_profit.features.daily_pnl``.
    """
    pnl = frame["pnl"]
    pos = frame["pos"]
    account = frame["account"]
    aux = pd.DataFrame(
        {
            "pnl": pnl,
            "gains": pnl.clip(lower=0.0),
            "losses": (-pnl).clip(lower=0.0),
            "win": (pnl > 0).astype(np.float64),
            "loss_day": (pnl < 0).astype(np.float64),
        }
    )
    grouped = aux.groupby(account, sort=False)
    # Day k back within the account (NaN before its first day): a global shift is the
    # per-account one wherever pos >= k, as the grid is dense and sorted.
    lags = {k: pnl.shift(k).where(pos >= k) for k in range(max(windows))}
    out: dict[str, pd.Series] = {
        "pnl_1d": pnl,
        "pnl_1d_pct": pnl / frame["starting_balance"] * 100.0,
    }
    for w in windows:
        rolling = grouped.rolling(w, min_periods=1)
        sums = rolling.sum().droplevel(0)
        n = rolling["pnl"].count().droplevel(0)
        mean = rolling["pnl"].mean().droplevel(0)
        low = rolling["pnl"].min().droplevel(0)
        high = rolling["pnl"].max().droplevel(0)
        # Two-pass standard deviation over the window's own days. pandas' rolling std updates
        # a running variance as days enter and leave, which drifts by up to 1e-8 relative
        # after large days leave a window of small ones; both report the exact value.
        squares = sum(((lags[k] - mean) ** 2).fillna(0.0) for k in range(w))
        std = np.sqrt(squares / (n - 1.0)).where(n >= 2)
        std = std.where(~((low == high) & (n >= 2)), 0.0)
        has_loss = sums["loss_day"] > 0
        # Sums of squares by the same two-pass route: a running sum of squares (1e5 and up on
        # big days) cannot resolve the 1e-4 of a window of cent-sized losses.
        down2 = sum((lags[k].clip(upper=0.0) ** 2).fillna(0.0) for k in range(w))
        downside = np.sqrt(down2 / n)
        out |= {
            f"pnl_sum_{w}d": sums["pnl"],
            f"pnl_sum_{w}d_pct": sums["pnl"] / frame["starting_balance"] * 100.0,
            f"pnl_mean_{w}d": mean,
            f"pnl_std_{w}d": std,
            f"pnl_min_{w}d": low,
            f"pnl_max_{w}d": high,
            f"pnl_win_share_{w}d": sums["win"] / n,
            f"pnl_profit_factor_{w}d": (sums["gains"] / sums["losses"]).where(has_loss),
            f"pnl_sharpe_{w}d": (mean / std).where(std > 0),
            f"pnl_sortino_{w}d": (mean / downside).where(has_loss),
        }
    # Drawdowns: walk back one day at a time over the running total's levels.
    cum = pnl.groupby(account, sort=False).cumsum()
    running_min = cum.copy()
    worst = pd.Series(0.0, index=frame.index)
    for k in range(1, max(windows) + 1):
        level = cum.shift(k).where(pos >= k, 0.0)
        running_min = np.minimum(running_min, level)
        worst = np.minimum(worst, running_min - level)
        if k in windows:
            out[f"pnl_max_drawdown_{k}d"] = worst.copy()
    # Streaks: run lengths restart at every non-win (non-loss) day and every account start.
    for kind, flag in (("win", pnl > 0), ("loss", pnl < 0)):
        breaks = ((~flag) | (pos == 0)).cumsum()
        runs = flag.astype(np.int64).groupby(breaks, sort=False).cumsum()
        if kind == "win":
            win_runs = runs
        else:
            loss_runs = runs
        for w in windows:
            best = np.minimum(runs, w)
            for k in range(1, w):
                best = np.maximum(best, np.minimum(runs.shift(k).where(pos >= k, 0), w - k))
            out[f"pnl_longest_{kind}_streak_{w}d"] = best.astype(np.int64)
    out["pnl_current_streak_days"] = pd.Series(
        np.where(
            pnl > 0, np.minimum(win_runs, STREAK_CAP_DAYS), -np.minimum(loss_runs, STREAK_CAP_DAYS)
        ),
        index=frame.index,
    ).astype(np.int64)
    return pd.DataFrame(out)


def _grid_frame(grid: Grid) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account": grid.account,
            "pos": grid.pos,
            "pnl": grid.net_profit,
            "starting_balance": grid.starting_balance,
        }
    )


def _max_relative_difference(ours: pl.DataFrame, theirs: pd.DataFrame) -> float:
    """Largest relative difference over every column (values of at least 1e-6 in size);
    raises where the two disagree beyond ``REL_TOL`` relative (``ABS_TOL`` near zero)."""
    worst = 0.0
    for name in ours.columns:
        a = ours[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
        b = theirs[name].to_numpy(dtype=np.float64)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            raise AssertionError(f"{name}: null patterns differ")
        both = ~np.isnan(a)
        diff = np.abs(a[both] - b[both])
        scale = np.maximum(np.abs(a[both]), np.abs(b[both]))
        if not np.all(diff <= REL_TOL * scale + ABS_TOL):
            raise AssertionError(f"{name}: differs by more than {REL_TOL:g} relative")
        # Relative difference of the values that are not rounding noise around zero.
        meaningful = scale >= ABS_TOL * 1e3
        rel = diff[meaningful] / scale[meaningful]
        worst = max(worst, float(rel.max(initial=0.0)))
    return worst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 accounts x 120 days")
    args = parser.parse_args(argv)
    n_accounts, n_days, repeat = (300, 120, 3) if args.quick else (2000, 365, 5)
    config = SimulationConfig(n_accounts=n_accounts, n_days=n_days)
    log(f"simulating {n_accounts} accounts x {n_days} days ...")
    data = simulate(config)
    log("parsing through the warehouse's parse_records ...")
    raw = raw_frames_from_sandbox(data)
    start, end = config.start_date, config.end_date
    daily = raw["metrics_daily"]

    def staging() -> pl.DataFrame:
        return build_staging(daily, raw["plans"], raw["metrics_alltime"], start=start, end=end)

    def full_set() -> pl.DataFrame:
        return build_features(
            staging(),
            daily,
            raw["metrics_hourly"],
            raw["trades_closed"],
            raw["trades_open"],
            raw["regimes_daily"],
            start=start,
            end=end,
        )

    stg = staging()
    features = full_set()
    rows = features.height
    params: dict[str, Any] = {
        "accounts": n_accounts,
        "days": n_days,
        "trades_per_active_day": config.trades_per_active_day,
        "closed_trades": raw["trades_closed"].height,
        "metrics_daily_rows": daily.height,
        "feature_rows": rows,
        "features": features.width - 3,
        "repeat": repeat,
        "cpus": os.cpu_count(),
        "polars_threads": pl.thread_pool_size(),
    }
    log(f"{rows} live funded account-days, {features.width - 3} features")

    # The daily P&L family, ours and pandas, on the same dense grid and the same rows.
    grid = build_grid(
        daily, stg["account_id"], history_start=required_history_start(start), end=end
    )
    target = grid.rows(grid.codes(stg["account_id"]), stg["date"])
    frame = _grid_frame(grid)
    ours = daily_pnl_features(grid, target)
    theirs = pandas_daily_pnl(frame, PNL_WINDOWS).iloc[target].reset_index(drop=True)
    worst = _max_relative_difference(ours, theirs[ours.columns])
    log(f"daily P&L family: polars and pandas agree (max relative difference {worst:.2e})")

    t_pnl = median_time(lambda: daily_pnl_features(grid, target), repeat)
    t_pandas = median_time(lambda: pandas_daily_pnl(frame, PNL_WINDOWS).iloc[target], repeat)
    cpu_before = time.process_time()
    t_full = median_time(full_set, repeat)
    # CPU seconds of one full build (all threads): on a shared machine the wall clock also
    # measures the neighbours, the CPU time does not.
    cpu_full = (time.process_time() - cpu_before) / repeat
    t_labels = median_time(lambda: build_labels(stg, daily, start=start, end=end), repeat)
    params["load_average_1m"] = round(os.getloadavg()[0], 2)

    pandas_rate = rows / t_pandas
    report(
        "features_full_set",
        rows / t_full,
        "account-days/s",
        baseline=pandas_rate,
        params={
            **params,
            "seconds": round(t_full, 3),
            "cpu_seconds": round(cpu_full, 3),
            "baseline": "pandas daily P&L family only",
        },
    )
    report(
        "features_daily_pnl_family",
        rows / t_pnl,
        "account-days/s",
        baseline=pandas_rate,
        params={
            **params,
            "features": ours.width,
            "seconds": round(t_pnl, 4),
            "pandas_seconds": round(t_pandas, 3),
            "max_relative_difference": worst,
        },
    )
    report(
        "features_labels",
        rows / t_labels,
        "account-days/s",
        params={**params, "seconds": round(t_labels, 4)},
    )


if __name__ == "__main__":
    main()
