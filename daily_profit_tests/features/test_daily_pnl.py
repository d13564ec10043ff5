"""The daily P&L family against a plain-Python reference, window by window."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daily_profit.features.daily_pnl import PNL_WINDOWS, run_lengths, window_stats


def _reference(days: list[float], w: int) -> dict[str, float | None]:
    """Statistics of the last ``w`` values of ``days`` (fewer if shorter), by definition."""
    x = days[-w:]
    n = len(x)
    gains = sum(v for v in x if v > 0)
    losses = -sum(v for v in x if v < 0)
    has_loss = any(v < 0 for v in x)
    mean = sum(x) / n
    std = statistics.stdev(x) if n >= 2 else None
    downside = math.sqrt(sum(min(v, 0.0) ** 2 for v in x) / n)
    # Levels of cumulative P&L: the close before the window and each close in it.
    before = sum(days[:-w]) if len(days) > w else 0.0
    levels = [before]
    for v in x:
        levels.append(levels[-1] + v)
    drawdown = min(min(levels[j] - max(levels[: j + 1]) for j in range(len(levels))), 0.0)

    def longest(flag) -> int:
        best = run = 0
        for v in x:
            run = run + 1 if flag(v) else 0
            best = max(best, run)
        return best

    return {
        "sum": sum(x),
        "mean": mean,
        "std": std,
        "min": min(x),
        "max": max(x),
        "win_share": sum(v > 0 for v in x) / n,
        "profit_factor": gains / losses if has_loss else None,
        "sharpe": mean / std if std else None,
        "sortino": mean / downside if has_loss else None,
        "drawdown": drawdown,
        "win_streak": longest(lambda v: v > 0),
        "loss_streak": longest(lambda v: v < 0),
    }


def _close(got: float, want: float | None) -> bool:
    if want is None:
        return math.isnan(got)
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


amounts = st.one_of(
    st.just(0.0),
    st.integers(-500_000, 500_000).map(lambda c: c / 100.0),
    st.sampled_from([12.5, -12.5, 1000.01]),
)


@settings(max_examples=60, deadline=None)
@given(accounts=st.lists(st.lists(amounts, min_size=1, max_size=30), min_size=1, max_size=4))
def test_window_statistics_match_the_definitions(accounts: list[list[float]]) -> None:
    pnl = np.array([v for days in accounts for v in days], dtype=np.float64)
    pos = np.concatenate([np.arange(len(days)) for days in accounts])
    stats = window_stats(pnl, pos, PNL_WINDOWS)
    wins, losses = run_lengths(pnl > 0, pos), run_lengths(pnl < 0, pos)
    row = 0
    for days in accounts:
        for t in range(len(days)):
            history = days[: t + 1]
            for w in PNL_WINDOWS:
                want = _reference(history, w)
                for key in ("sum", "mean", "std", "min", "max", "win_share"):
                    assert _close(stats[f"pnl_{key}_{w}d"][row], want[key]), (key, w, history)
                for key in ("profit_factor", "sharpe", "sortino"):
                    assert _close(stats[f"pnl_{key}_{w}d"][row], want[key]), (key, w, history)
                assert _close(stats[f"pnl_max_drawdown_{w}d"][row], want["drawdown"]), (w, history)
                assert stats[f"pnl_longest_win_streak_{w}d"][row] == want["win_streak"]
                assert stats[f"pnl_longest_loss_streak_{w}d"][row] == want["loss_streak"]
            expected_run = 0
            while expected_run <= t and _same_sign(days[t - expected_run], days[t]):
                expected_run += 1
            got_run = wins[row] if days[t] > 0 else losses[row]
            assert got_run == expected_run, history
            row += 1


def _same_sign(a: float, b: float) -> bool:
    return (a > 0 and b > 0) or (a < 0 and b < 0)


def test_idle_windows_are_exact_zeros_not_residues() -> None:
    """After a loss leaves the window, the loss sum is exactly 0: no profit factor of 1e16."""
    pnl = np.array([-0.1, 0.3, 0.2, 0.0, 0.0, 0.0, 0.7])
    pos = np.arange(pnl.size)
    stats = window_stats(pnl, pos, (3,))
    assert math.isnan(stats["pnl_profit_factor_3d"][4])
    assert stats["pnl_sum_3d"][5] == 0.0
    assert stats["pnl_std_3d"][5] == 0.0
    assert math.isnan(stats["pnl_sharpe_3d"][5])


def test_a_window_of_equal_days_has_zero_spread() -> None:
    pnl = np.array([1000.01, 1000.01, 1000.01])
    stats = window_stats(pnl, np.arange(3), (3,))
    assert stats["pnl_std_3d"][2] == 0.0
    assert math.isnan(stats["pnl_sharpe_3d"][2])


@pytest.mark.parametrize("window", PNL_WINDOWS)
def test_features_longest_streaks_fit_their_window(built, window: int) -> None:
    f = built.features
    assert (f[f"pnl_longest_win_streak_{window}d"] <= window).all()
    assert (f[f"pnl_max_drawdown_{window}d"] <= 0).all()
    # The worst drawdown over a longer window is at least as deep.
    if window > PNL_WINDOWS[0]:
        shorter = PNL_WINDOWS[PNL_WINDOWS.index(window) - 1]
        assert (f[f"pnl_max_drawdown_{window}d"] <= f[f"pnl_max_drawdown_{shorter}d"]).all()
