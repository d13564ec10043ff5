"""Open exposure by symbol, class and trader, net and gross, from the open positions of the
funded accounts."""

import datetime as dt

import polars as pl
import pytest

from daily_profit.config import DEFAULT_SYMBOL_CLASSES
from daily_profit.desk import exposure

DAY = dt.date(2025, 3, 3)


def _accounts() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [DAY] * 3,
            "account_id": ["acc1", "acc2", "acc3"],
            "login": ["100", "101", "102"],
            "platform": [5, 5, 4],
            "broker": [1, 1, 2],
            "trader": ["T1", "T1", "T2"],
        }
    )


def _open(rows: list[tuple[str, str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "trade_date": [DAY] * len(rows),
            "login": [r[0] for r in rows],
            "platform": [5 if r[0] != "102" else 4 for r in rows],
            "broker": [1 if r[0] != "102" else 2 for r in rows],
            "std_symbol": [r[1] for r in rows],
            "side": [r[2] for r in rows],
            "volume_usd": [r[3] for r in rows],
        }
    )


def test_net_gross_by_symbol_class_and_trader():
    trades = _open(
        [("100", "EURUSD", "Buy", 1_000.0), ("101", "EURUSD", "Sell", 400.0),
         ("102", "XAUUSD", "Buy", 2_000.0), ("102", "GER40", "Sell", 600.0),
         ("999", "EURUSD", "Buy", 5_000.0)]
    )  # fmt: skip
    positions, matched = exposure.open_positions(trades, _accounts(), DEFAULT_SYMBOL_CLASSES)
    assert matched == {"positions": 4, "positions_not_funded": 1, "symbols_by_rule": ["GER40"]}
    symbols = exposure.by_symbol(positions)
    eur = symbols.filter(pl.col("symbol") == "EURUSD").row(0, named=True)
    assert (eur["net_usd"], eur["gross_usd"], eur["long_usd"], eur["short_usd"]) == (
        600.0,
        1_400.0,
        1_000.0,
        400.0,
    )
    assert eur["accounts"] == 2 and eur["asset_class"] == "fx"
    assert symbols["symbol"][0] == "XAUUSD"  # the largest gross first
    assert symbols["share_of_gross"].sum() == pytest.approx(1.0)
    classes = {r["asset_class"]: r for r in exposure.by_class(positions).iter_rows(named=True)}
    assert classes["indices"]["net_usd"] == -600.0  # GER40 by the naming rule
    assert classes["metals"]["gross_usd"] == 2_000.0
    traders = {r["trader"]: r for r in exposure.by_trader(positions).iter_rows(named=True)}
    assert traders["T1"]["accounts"] == 2 and traders["T1"]["net_usd"] == 600.0
    assert traders["T2"]["largest_symbol"] == "XAUUSD"
    top = exposure.concentrations(positions, top_n=2)
    assert top.select("trader", "symbol").rows() == [("T2", "XAUUSD"), ("T1", "EURUSD")]


def test_no_open_positions_gives_empty_tables():
    positions, matched = exposure.open_positions(_open([]), _accounts(), DEFAULT_SYMBOL_CLASSES)
    assert matched["positions"] == 0
    assert exposure.by_symbol(positions).height == 0
