"""The benchmark's pandas baseline computes the same daily P&L family (so its speed compares)."""

from __future__ import annotations

from daily_profit.features.daily_pnl import PNL_WINDOWS, daily_pnl_features
from daily_profit.features.grid import build_grid
from daily_profit.features.pipeline import required_history_start


def test_pandas_baseline_matches_the_daily_pnl_family(firm, built) -> None:
    from benchmarks.features_full_set import (
        _grid_frame,
        _max_relative_difference,
        pandas_daily_pnl,
    )

    staging = built.staging
    grid = build_grid(
        firm.raw["metrics_daily"],
        staging["account_id"],
        history_start=required_history_start(firm.start),
        end=firm.end,
    )
    target = grid.rows(grid.codes(staging["account_id"]), staging["date"])
    ours = daily_pnl_features(grid, target)
    theirs = pandas_daily_pnl(_grid_frame(grid), PNL_WINDOWS).iloc[target].reset_index(drop=True)
    assert _max_relative_difference(ours, theirs[ours.columns]) < 1e-9
