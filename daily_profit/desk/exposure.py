"""Where the firm's open exposure sits: open positions by symbol, asset class and trader.

From the end-of-day snapshot of open positions (``raw_trades_open`` of day D) of the live
funded accounts; each position's USD notional (``volumeUSD``) is signed by its side (buy +,
sell -). Net is the signed sum (the direction the firm carries), gross the unsigned sum (how
much is at stake); a symbol's class comes from the configured map
(``DAILY_PROFIT_DESK_SYMBOL_CLASSES``), a symbol missing from it from the naming rules of the
feature catalog (``features.behaviour.asset_class``), and the report lists such symbols.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from daily_profit.features.behaviour import asset_class
from daily_profit.features.grid import AccountHistory

POSITION_COLUMNS = ("account_id", "trader", "symbol", "asset_class", "signed_usd", "gross_usd")


def open_positions(
    trades_open: pl.DataFrame,
    accounts: pl.DataFrame,
    symbol_classes: Mapping[str, str],
) -> tuple[pl.DataFrame, dict[str, object]]:
    """The open positions of day D that belong to live funded accounts, with their account,
    trader, symbol, class and signed and gross notional; and how they were matched.

    ``accounts``: the staging rows of D (``date, account_id, login, platform, broker,
    trader``). Positions of accounts not funded on D (evaluations) are left out and counted.
    """
    if trades_open.height == 0:
        empty = pl.DataFrame(
            schema={
                "account_id": pl.String,
                "trader": pl.String,
                "symbol": pl.String,
                "asset_class": pl.String,
                "signed_usd": pl.Float64,
                "gross_usd": pl.Float64,
            }
        )
        return empty, {"positions": 0, "positions_not_funded": 0, "symbols_by_rule": []}
    history = AccountHistory.from_metrics(
        accounts.select("date", "account_id", "login", "platform", "broker")
    )
    resolved = trades_open.with_columns(
        history.resolve(trades_open, date_column="trade_date").alias("account_id")
    )
    funded = resolved.join(accounts.select("account_id", "trader"), on="account_id", how="inner")
    mapping = pl.DataFrame(
        {"symbol": list(symbol_classes), "_mapped": list(symbol_classes.values())},
        schema={"symbol": pl.String, "_mapped": pl.String},
    )
    volume = pl.col("volume_usd").cast(pl.Float64)
    positions = (
        funded.select(
            "account_id",
            pl.col("trader").cast(pl.String),
            pl.col("std_symbol").alias("symbol"),
            pl.when(pl.col("side") == "Buy").then(volume).otherwise(-volume).alias("signed_usd"),
            volume.alias("gross_usd"),
        )
        .join(mapping, on="symbol", how="left")
        .with_columns(
            pl.coalesce(pl.col("_mapped"), asset_class(pl.col("symbol"))).alias("asset_class")
        )
    )
    by_rule = sorted(positions.filter(pl.col("_mapped").is_null())["symbol"].unique().to_list())
    matched = {
        "positions": positions.height,
        "positions_not_funded": trades_open.height - funded.height,
        "symbols_by_rule": by_rule,
    }
    return positions.select(POSITION_COLUMNS), matched


def _aggregate(positions: pl.DataFrame, by: list[str], extra: list[pl.Expr]) -> pl.DataFrame:
    firm_gross = float(positions["gross_usd"].sum()) or 1.0
    return (
        positions.group_by(by)
        .agg(
            pl.len().alias("positions"),
            pl.col("account_id").n_unique().alias("accounts"),
            pl.col("signed_usd").sum().alias("net_usd"),
            pl.col("gross_usd").sum().alias("gross_usd"),
            pl.col("signed_usd").filter(pl.col("signed_usd") > 0).sum().alias("long_usd"),
            (-pl.col("signed_usd").filter(pl.col("signed_usd") < 0).sum()).alias("short_usd"),
            *extra,
        )
        .with_columns((pl.col("gross_usd") / firm_gross).alias("share_of_gross"))
        .sort("gross_usd", *by, descending=[True] + [False] * len(by))
    )


def by_symbol(positions: pl.DataFrame) -> pl.DataFrame:
    """Per symbol (and its class): positions, accounts, net, gross, long, short, share."""
    return _aggregate(positions, ["symbol", "asset_class"], [])


def by_class(positions: pl.DataFrame) -> pl.DataFrame:
    """Per asset class: the same measures."""
    return _aggregate(positions, ["asset_class"], [pl.col("symbol").n_unique().alias("symbols")])


def by_trader(positions: pl.DataFrame) -> pl.DataFrame:
    """Per trader (across the trader's accounts): the same measures and the largest symbol."""
    largest = (
        positions.group_by("trader", "symbol")
        .agg(pl.col("gross_usd").sum())
        .sort("gross_usd", "symbol", descending=[True, False])
        .group_by("trader", maintain_order=True)
        .first()
        .select("trader", pl.col("symbol").alias("largest_symbol"))
    )
    return _aggregate(positions, ["trader"], []).join(
        largest, on="trader", how="left", maintain_order="left"
    )


def concentrations(positions: pl.DataFrame, top_n: int) -> pl.DataFrame:
    """The largest single concentrations: a trader in a symbol, by gross notional, with its
    share of the firm's gross."""
    return _aggregate(positions, ["trader", "symbol", "asset_class"], []).head(top_n)
