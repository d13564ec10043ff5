"""Behaviour and exposure families: window counts, concentration, escalation, sessions."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from daily_profit.features.behaviour import (
    asset_class,
    behaviour_features,
    sparse_symbol_concentration,
    symbol_concentration,
)
from daily_profit.features.catalog import catalog
from daily_profit.features.grid import build_grid

D0 = dt.date(2025, 3, 3)


def _metrics(spans: dict[str, tuple[int, int]], pnl: dict[tuple[str, int], float]) -> pl.DataFrame:
    rows = [
        {
            "account_id": acc,
            "date": D0 + dt.timedelta(days=d),
            "net_profit": pnl.get((acc, d), 0.0),
            "num_trades": 0,
            "starting_balance": 10_000.0,
        }
        for acc, (first, last) in spans.items()
        for d in range(first, last + 1)
    ]
    return pl.DataFrame(rows)


@settings(max_examples=40, deadline=None)
@given(
    trades=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 29), st.integers(0, 5)), max_size=80
    ),
    window=st.sampled_from([1, 5, 20]),
)
def test_concentration_dense_and_sparse_paths_agree_with_a_direct_count(
    trades: list[tuple[int, int, int]], window: int
) -> None:
    metrics = _metrics({"a": (0, 29), "b": (3, 25)}, {})
    grid = build_grid(metrics, metrics["account_id"], history_start=D0, end=D0 + dt.timedelta(30))
    accounts = ["a", "b"]
    codes = grid.codes(pl.Series([accounts[a] for a, _, _ in trades], dtype=pl.String))
    rows = grid.rows(codes, np.array([grid.first_day[0] + d for _, d, _ in trades], dtype=np.int64))
    symbols = np.array([s for _, _, s in trades], dtype=np.int64)
    dense = symbol_concentration(grid, rows, symbols, (window,))[window]
    on = rows >= 0
    sparse = sparse_symbol_concentration(grid, rows[on], symbols[on], 6, (window,))[window]
    for r in range(grid.height):
        acc, day = grid.account[r], grid.day[r]
        counts = Counter(
            s
            for (a, d, s), row in zip(trades, rows, strict=True)
            if row >= 0 and grid.account[row] == acc and 0 <= day - grid.day[row] < window
        )
        squares = sum(c * c for c in counts.values())
        assert dense[0][r] == squares and sparse[0][r] == squares
        assert dense[1][r] == len(counts) and sparse[1][r] == len(counts)


def _trade(day: int, symbol: str, lots: float, side: str = "Buy", net: float = 10.0) -> dict:
    return {
        "trade_date": D0 + dt.timedelta(days=day),
        "std_symbol": symbol,
        "lots": lots,
        "volume_usd": lots * 100_000.0,
        "duration": 2.0,
        "stop_loss": 1.0 if side == "Buy" else None,
        "take_profit": 0.0,
        "side": side,
        "profit": net,
        "commission": 0.0,
        "fee": 0.0,
        "swap": 0.0,
    }


def test_behaviour_of_a_hand_built_account() -> None:
    # Day 0 loses, day 1 trades big after the loss; day 2 wins, day 3 trades small after it.
    metrics = _metrics({"a": (0, 4)}, {("a", 0): -50.0, ("a", 2): 80.0})
    grid = build_grid(metrics, metrics["account_id"], history_start=D0, end=D0 + dt.timedelta(4))
    trades = pl.DataFrame(
        [
            _trade(0, "EURUSD", 1.0, net=-50.0),
            _trade(1, "XAUUSD", 4.0, "Sell"),
            _trade(1, "XAUUSD", 2.0),
            _trade(2, "NDX100", 1.0, net=80.0),
            _trade(3, "BTCUSD", 1.0),
        ]
    )
    rows = grid.rows(np.zeros(trades.height, dtype=np.int64), trades["trade_date"])
    hourly = pl.DataFrame(
        {"hour": [3, 9, 15, 15], "num_trades": [1, 1, 2, 1]},
        schema={"hour": pl.Int64, "num_trades": pl.Int64},
    )
    hourly_rows = np.array([0, 1, 1, 3])
    target = np.array([3, 4])
    f = behaviour_features(grid, trades, rows, hourly, hourly_rows, target)
    day3 = f.row(0, named=True)
    assert day3["trade_count_20d"] == 5
    assert day3["active_days_20d"] == 4
    assert day3["trade_count_5d"] == 5
    assert day3["lots_per_trade_20d"] == 9.0 / 5
    assert day3["buy_share_20d"] == 4 / 5
    assert day3["stop_loss_share_20d"] == 4 / 5
    assert day3["take_profit_share_20d"] == 0.0  # a level of 0 means none
    assert day3["trade_win_share_20d"] == 4 / 5
    assert day3["distinct_symbols_20d"] == 4
    assert day3["symbol_hhi_20d"] == (1 + 4 + 1 + 1) / 25
    assert day3["asset_share_metals_20d"] == 2 / 5
    assert day3["asset_share_crypto_20d"] == 1 / 5
    assert day3["session_share_asia_20d"] == 1 / 5
    assert day3["session_share_london_20d"] == 1 / 5
    assert day3["session_share_new_york_20d"] == 3 / 5
    # After the losing day 0: day 1 (2 trades, 6 lots). After the winning day 2: day 3 (1 lot).
    assert day3["lots_per_trade_after_loss_20d"] == 3.0
    assert day3["lots_per_trade_after_win_20d"] == 1.0
    assert day3["size_escalation_after_loss_20d"] == 3.0
    # Day 4 is idle: the windows still hold the trades, nothing is null.
    assert f.row(1, named=True)["trade_count_5d"] == 5


def test_asset_classes_of_the_sandbox_symbols() -> None:
    symbols = ["EURUSD", "USDJPY", "XAUUSD", "NDX100", "US30", "SPX500", "BTCUSD", "USOIL", "ABC"]
    got = pl.select(asset_class(pl.lit(pl.Series(symbols)))).to_series().to_list()
    assert got == [
        "fx",
        "fx",
        "metals",
        "indices",
        "indices",
        "indices",
        "crypto",
        "energy",
        "other",
    ]


def _named(prefix: str) -> list[pl.Expr]:
    return [pl.col(f.name) for f in catalog() if f.name.startswith(prefix)]


def test_shares_and_exposure_on_the_simulated_firm(built) -> None:
    f = built.features
    shares = [feature.name for feature in catalog() if feature.unit == "share"]
    assert len(shares) > 20
    for c in shares:
        values = f[c].drop_nulls()
        assert values.is_between(0.0, 1.0).all(), c
    # Where defined, the class and session shares each add up to 1 (sum_horizontal counts a
    # null as 0, so rows without trades are left out first).
    traded = f.filter(pl.col("trade_count_20d") > 0)
    classes = traded.select(pl.sum_horizontal(_named("asset_share_"))).to_series()
    assert ((classes - 1.0).abs() < 1e-12).all()
    hourly = f.filter(pl.col("session_share_asia_20d").is_not_null())
    sessions = hourly.select(pl.sum_horizontal(_named("session_share_"))).to_series()
    assert ((sessions - 1.0).abs() < 1e-12).all()
    # The sandbox carries positions overnight: some accounts hold a book at the close.
    assert (f["open_positions"] > 0).sum() > 0
    book = f.filter(pl.col("open_positions") > 0)
    assert book["open_net_direction"].is_between(-1.0, 1.0).all()
    assert f.filter(pl.col("open_positions") == 0)["open_net_direction"].is_null().all()
