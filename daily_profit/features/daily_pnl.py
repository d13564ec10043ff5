"""Daily P&L family: how the account's net profit moved over the last 1, 3, 5, 10 and 20 days.

Every window is calendar days ending at D on the dense grid (``grid.py``): an idle day is a day
of zero P&L. An account younger than a window is measured over the days it has existed (the
catalog says which features need two or more days). Drawdowns are in USD and negative (a
drawdown of -1,200 is a 1,200 fall from a peak of cumulative P&L within the window); streaks
count calendar days with a positive (win) or negative (loss) net P&L.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from daily_profit.features.grid import Grid

PNL_WINDOWS: Final = (3, 5, 10, 20)
# Current streaks are capped so that they need no more history than the longest window.
STREAK_CAP_DAYS: Final = 20
# Rows per block: a block's lag matrices (rows x 21 days) stay around a hundred megabytes.
BLOCK_ROWS: Final = 250_000


def lag_matrix(
    values: np.ndarray, pos: np.ndarray, rows: np.ndarray, depth: int, fill: float
) -> np.ndarray:
    """Column k holds ``values`` k days before each row of ``rows`` (``fill`` before the
    account's first day): a (len(rows), depth) matrix, column-major so that every step
    below runs down whole columns."""
    out = np.empty((rows.size, depth), dtype=np.float64, order="F")
    row_pos = pos[rows]
    for k in range(depth):
        out[:, k] = np.where(row_pos >= k, values[np.maximum(rows - k, 0)], fill)
    return out


def window_stats(
    pnl: np.ndarray, pos: np.ndarray, windows: tuple[int, ...], rows: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Every windowed daily P&L feature for each row of ``rows`` (default: every row).

    One pass walks back from D one day at a time over the lags (one vectorised step per day,
    on whole columns), keeping running sums, extremes, the lowest cumulative level and the
    current winning or losing run; each window's figures are read off when the walk reaches
    its first day.

    Sums are direct, day by day, not a running total that adds the new day and subtracts the
    one leaving: that leaves residues of 1e-13 where the true value is 0, and a profit factor
    or Sortino divided by such a residue is garbage. Here a window of zeros sums to exactly 0.
    Null (NaN here) follows exact rules: std needs two days and is 0 when every day in the
    window is equal; a ratio is null when its denominator is.

    Drawdowns: the window of w days sees w + 1 levels of cumulative P&L, the close before its
    first day and each of its w closes; measured from D's close, the level k days back is
    minus the sum of the k latest days, and before the account's first day the sum stops
    growing (the account had made nothing yet). Streaks: the longest run of winning (losing)
    days inside the window; a run is the same read from either end, so the walk back finds it.
    """
    rows = np.arange(pnl.size) if rows is None else rows
    longest = max(windows)
    lags = lag_matrix(pnl, pos, rows, longest, 0.0)
    row_pos = pos[rows]
    size = rows.size
    total, gains, losses, down2, wins, loss_days = (np.zeros(size) for _ in range(6))
    low, high = np.full(size, np.inf), np.full(size, -np.inf)
    lowest_level, drawdown = np.zeros(size), np.zeros(size)
    win_run, loss_run = np.zeros(size), np.zeros(size)
    best_win, best_loss = np.zeros(size), np.zeros(size)
    snap: dict[int, dict[str, np.ndarray]] = {}
    for k in range(longest):
        v = lags[:, k]
        inside = row_pos >= k
        total += v
        gains += np.maximum(v, 0.0)
        losses += np.maximum(-v, 0.0)
        down2 += np.minimum(v, 0.0) ** 2
        won, lost = v > 0, v < 0
        wins += won
        loss_days += lost
        np.minimum(low, np.where(inside, v, np.inf), out=low)
        np.maximum(high, np.where(inside, v, -np.inf), out=high)
        level = -total  # cumulative P&L k + 1 days back, relative to D's close
        np.minimum(lowest_level, level, out=lowest_level)
        np.minimum(drawdown, lowest_level - level, out=drawdown)
        win_run = (win_run + 1.0) * won
        loss_run = (loss_run + 1.0) * lost
        np.maximum(best_win, win_run, out=best_win)
        np.maximum(best_loss, loss_run, out=best_loss)
        if k + 1 in windows:
            snap[k + 1] = {
                "total": total.copy(),
                "gains": gains.copy(),
                "losses": losses.copy(),
                "down2": down2.copy(),
                "wins": wins.copy(),
                "loss_days": loss_days.copy(),
                "low": low.copy(),
                "high": high.copy(),
                "drawdown": drawdown.copy(),
                "best_win": best_win.copy(),
                "best_loss": best_loss.copy(),
            }
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for w in windows:
            s = snap[w]
            n = np.minimum(row_pos + 1, w).astype(np.float64)
            mean = s["total"] / n
            # Two-pass variance over the window's own days: exact 0 for a window of equal days.
            squares = np.zeros(size)
            for k in range(w):
                d = lags[:, k] - mean
                squares += np.where(row_pos >= k, d * d, 0.0)
            std = np.sqrt(squares / (n - 1.0))
            std[n < 2] = np.nan
            std[(s["low"] == s["high"]) & (n >= 2)] = 0.0
            has_loss = s["loss_days"] > 0
            downside = np.sqrt(s["down2"] / n)
            out[f"pnl_sum_{w}d"] = s["total"]
            out[f"pnl_mean_{w}d"] = mean
            out[f"pnl_std_{w}d"] = std
            out[f"pnl_min_{w}d"] = s["low"]
            out[f"pnl_max_{w}d"] = s["high"]
            out[f"pnl_win_share_{w}d"] = s["wins"] / n
            out[f"pnl_profit_factor_{w}d"] = np.where(has_loss, s["gains"] / s["losses"], np.nan)
            out[f"pnl_sharpe_{w}d"] = np.where(std > 0, mean / std, np.nan)
            out[f"pnl_sortino_{w}d"] = np.where(has_loss, mean / downside, np.nan)
            out[f"pnl_max_drawdown_{w}d"] = s["drawdown"]
            out[f"pnl_longest_win_streak_{w}d"] = s["best_win"].astype(np.int64)
            out[f"pnl_longest_loss_streak_{w}d"] = s["best_loss"].astype(np.int64)
    return out


def run_lengths(flag: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Consecutive days with ``flag`` ending at each day, restarting at each account."""
    idx = np.arange(flag.size)
    last_break = np.maximum.accumulate(np.where(~flag, idx, -1))
    account_start = idx - pos
    return idx - np.maximum(last_break, account_start - 1)


def _block(grid: Grid, rows: np.ndarray) -> dict[str, np.ndarray]:
    pos, pnl = grid.pos, grid.net_profit
    balance = grid.starting_balance[rows]
    day = pnl[rows]
    columns: dict[str, np.ndarray] = {"pnl_1d": day, "pnl_1d_pct": day / balance * 100.0}
    columns.update(window_stats(pnl, pos, PNL_WINDOWS, rows))
    for w in PNL_WINDOWS:
        columns[f"pnl_sum_{w}d_pct"] = columns[f"pnl_sum_{w}d"] / balance * 100.0
    return columns


def daily_pnl_features(grid: Grid, target_rows: np.ndarray) -> pl.DataFrame:
    """The daily P&L family for each grid row of ``target_rows``, in that order.

    Only the target rows are computed, in blocks, each from its own lags of the grid.
    """
    pnl, pos = grid.net_profit, grid.pos
    # Current streaks: the run ending at D, capped at STREAK_CAP_DAYS.
    win_runs = np.minimum(run_lengths(pnl > 0, pos), STREAK_CAP_DAYS)[target_rows]
    loss_runs = np.minimum(run_lengths(pnl < 0, pos), STREAK_CAP_DAYS)[target_rows]
    blocks = [
        _block(grid, target_rows[i : i + BLOCK_ROWS])
        for i in range(0, max(target_rows.size, 1), BLOCK_ROWS)
    ]
    columns = {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}
    day = pnl[target_rows]
    columns["pnl_current_streak_days"] = np.where(day > 0, win_runs, -loss_runs).astype(np.int64)
    # NaN marks "no value" above; the table says null.
    return pl.DataFrame(columns).fill_nan(None)
