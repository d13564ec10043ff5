"""Cross-source reconciliation of one day: closed trades and hourly metrics against daily metrics.

The contract says that for every account and day, the closed trades add up to the daily row's
``numTrades`` and ``netProfit`` (profit + commission + fee + swap, to the cent), and so do the
hourly rows. Real data breaks this now and then; these functions find where, by how much, and
leave the deciding to the check that reports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

ACCOUNT = ("login", "platform", "broker")
# Money is compared to the cent; float sums of cent amounts need half a cent of slack.
CENT_TOLERANCE = 0.005


@dataclass(frozen=True)
class Reconciliation:
    """Accounts of one day whose detail does not add up to their daily row."""

    accounts_compared: int
    mismatches: pl.DataFrame  # account identity, expected and found trades and net profit

    @property
    def ok(self) -> bool:
        return self.mismatches.height == 0


def _compare(daily: pl.DataFrame, detail: pl.DataFrame, on: list[str]) -> Reconciliation:
    expected = daily.group_by(on).agg(
        pl.col("num_trades").sum().alias("daily_num_trades"),
        pl.col("net_profit").sum().alias("daily_net_profit"),
    )
    joined = expected.join(detail, on=on, how="full", coalesce=True).with_columns(
        pl.col("daily_num_trades", "detail_num_trades").fill_null(0),
        pl.col("daily_net_profit", "detail_net_profit").fill_null(0.0),
    )
    mismatches = joined.filter(
        (pl.col("daily_num_trades") != pl.col("detail_num_trades"))
        | ((pl.col("daily_net_profit") - pl.col("detail_net_profit")).abs() > CENT_TOLERANCE)
    ).with_columns(
        (pl.col("detail_net_profit") - pl.col("daily_net_profit")).round(2).alias("difference")
    )
    return Reconciliation(accounts_compared=joined.height, mismatches=mismatches.sort(on))


def closed_trades_vs_daily(trades: pl.DataFrame, daily: pl.DataFrame) -> Reconciliation:
    """Closed trades of a day against that day's daily metrics, per account."""
    detail = trades.group_by(list(ACCOUNT)).agg(
        pl.len().cast(pl.Int64).alias("detail_num_trades"),
        (pl.col("profit") + pl.col("commission") + pl.col("fee") + pl.col("swap"))
        .sum()
        .alias("detail_net_profit"),
    )
    return _compare(daily, detail, list(ACCOUNT))


def hourly_vs_daily(hourly: pl.DataFrame, daily: pl.DataFrame) -> Reconciliation:
    """Hourly metrics of a day against that day's daily metrics, per account."""
    detail = hourly.group_by("account_id").agg(
        pl.col("num_trades").sum().alias("detail_num_trades"),
        pl.col("net_profit").sum().alias("detail_net_profit"),
    )
    return _compare(daily, detail, ["account_id"])
