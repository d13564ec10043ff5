"""The dense grid and the point-in-time account of each trade."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from daily_profit.features.grid import AccountHistory, build_grid

D0 = dt.date(2025, 4, 1)


def _day(k: int) -> dt.date:
    return D0 + dt.timedelta(days=k)


def test_a_reused_login_maps_each_trade_to_the_account_of_its_day() -> None:
    metrics = pl.DataFrame(
        {
            "login": ["7", "7", "7", "9"],
            "platform": [5, 5, 5, 5],
            "broker": [1, 1, 1, 1],
            "date": [_day(0), _day(2), _day(5), _day(1)],
            # Login 7 names account A until day 4, then account B.
            "account_id": ["A", "A", "B", "C"],
        }
    )
    trades = pl.DataFrame(
        {
            "login": ["7", "7", "7", "9", "9", "8"],
            "platform": [5, 5, 5, 5, 5, 5],
            "broker": [1, 1, 1, 1, 1, 1],
            "trade_date": [_day(1), _day(4), _day(6), _day(0), _day(3), _day(3)],
        }
    )
    got = AccountHistory.from_metrics(metrics).resolve(trades, date_column="trade_date")
    # Before a login's first metrics row, and for an unknown login, no account.
    assert got.to_list() == ["A", "A", "B", None, "C", None]


def test_grid_rows_cover_each_span_and_idle_days_count_zero() -> None:
    metrics = pl.DataFrame(
        {
            "account_id": ["b", "b", "a"],
            "date": [_day(0), _day(3), _day(2)],
            "net_profit": [10.0, -4.0, 7.0],
            "num_trades": [1, 2, 3],
            "starting_balance": [1000.0, 1000.0, 500.0],
        }
    )
    grid = build_grid(metrics, metrics["account_id"], history_start=_day(0), end=_day(3))
    assert grid.accounts.to_list() == ["a", "b"]
    assert grid.height == 1 + 4
    assert grid.net_profit.tolist() == [7.0, 10.0, 0.0, 0.0, -4.0]
    assert grid.pos.tolist() == [0, 0, 1, 2, 3]
    assert grid.starting_balance.tolist() == [500.0, 1000.0, 1000.0, 1000.0, 1000.0]
    rows = grid.rows(
        grid.codes(pl.Series(["b", "a", "z", "b"])), pl.Series([_day(2), _day(2), _day(2), _day(9)])
    )
    assert rows.tolist() == [3, 0, -1, -1]
    sums = grid.window_sums(grid.net_profit, (2,))[2]
    assert sums.tolist() == [7.0, 10.0, 10.0, 0.0, -4.0]
    assert np.array_equal(grid.scatter_sum(np.array([4, 4, -1, 0])), [1.0, 0.0, 0.0, 0.0, 2.0])
