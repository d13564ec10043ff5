"""Account state and rule proximity families, from the staging row of D.

Account state: the plan the account trades under on D, its age, activity and payouts so far,
and where its equity stands against its start and its high-water mark.

Rule proximity: how far end-of-day equity is from each plan limit, in USD, in % of the starting
balance and in units of the account's own typical daily swing (the 20-day standard deviation of
its daily P&L): 2.0 means "two ordinary days of swing away from a breach". The binding headroom
is the nearer of the daily-loss and drawdown limits.
"""

from __future__ import annotations

import polars as pl

from daily_profit.features.grid import ACCOUNT, DATE


def _per(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


def account_state_features(staging: pl.DataFrame) -> pl.DataFrame:
    """The account family per staging row: ``account_id``, ``date`` and the features."""
    sb = pl.col("starting_balance")
    return staging.select(
        ACCOUNT,
        DATE,
        sb.alias("acct_starting_balance"),
        pl.col("platform").alias("acct_platform"),
        pl.col("broker").alias("acct_broker"),
        pl.col("country").alias("acct_country"),
        pl.col("type").alias("acct_plan_type"),
        pl.col("profit_share_pct").alias("acct_profit_share_pct"),
        pl.col("leverage").cast(pl.Int64).alias("acct_leverage"),
        pl.col("daily_loss_limit_pct").alias("acct_plan_daily_loss_limit_pct"),
        pl.col("max_trailing_drawdown_pct").alias("acct_plan_max_drawdown_pct"),
        pl.col("make_drawdown_static").cast(pl.Int8).alias("acct_plan_drawdown_static"),
        pl.col("daily_drawdown_by_balance_equity")
        .cast(pl.Int8)
        .alias("acct_plan_daily_loss_by_equity"),
        pl.col("account_age_days").alias("acct_age_days"),
        pl.col("days_since_first_trade").alias("acct_days_since_first_trade"),
        pl.col("active_trading_days_to_date").alias("acct_active_trading_days_to_date"),
        _per(
            pl.col("active_trading_days_to_date").cast(pl.Float64),
            pl.col("account_age_days").cast(pl.Float64) + 1.0,
        ).alias("acct_active_day_share_to_date"),
        pl.col("payout_days_to_date").alias("acct_payout_days_to_date"),
        (pl.col("payouts_to_date_usd") / sb * 100.0).alias("acct_payouts_to_date_pct"),
        pl.col("days_to_next_payout").alias("acct_days_to_next_payout"),
        ((pl.col("eod_equity") - sb) / sb * 100.0).alias("acct_return_since_start_pct"),
        ((pl.col("eod_equity") / pl.col("hwm_equity") - 1.0) * 100.0).alias(
            "acct_equity_below_hwm_pct"
        ),
        ((pl.col("eod_equity") - pl.col("eod_balance")) / sb * 100.0).alias(
            "acct_floating_pnl_pct"
        ),
    )


def rule_proximity_features(staging: pl.DataFrame, pnl_std_20d: pl.Series) -> pl.DataFrame:
    """The rule proximity family per staging row.

    ``pnl_std_20d`` is the daily P&L family's ``pnl_std_20d`` aligned with ``staging``'s rows.
    """
    sb = pl.col("starting_balance")
    daily = pl.col("dist_daily_loss_usd")
    drawdown = pl.col("dist_drawdown_usd")
    binding = pl.min_horizontal(daily, drawdown)
    std = pl.col("_std")
    return staging.with_columns(pnl_std_20d.alias("_std")).select(
        ACCOUNT,
        DATE,
        daily.alias("rule_daily_loss_headroom_usd"),
        pl.col("dist_daily_loss_pct").alias("rule_daily_loss_headroom_pct"),
        (pl.col("dist_daily_loss_today_usd") / sb * 100.0).alias(
            "rule_daily_loss_margin_today_pct"
        ),
        drawdown.alias("rule_drawdown_headroom_usd"),
        pl.col("dist_drawdown_pct").alias("rule_drawdown_headroom_pct"),
        binding.alias("rule_binding_headroom_usd"),
        (binding / sb * 100.0).alias("rule_binding_headroom_pct"),
        (pl.col("dist_daily_loss_usd") <= pl.col("dist_drawdown_usd"))
        .cast(pl.Int8)
        .alias("rule_binding_is_daily_loss"),
        pl.col("dist_profit_target_pct").alias("rule_profit_target_distance_pct"),
        _per(daily, std).alias("rule_daily_loss_headroom_in_std_20d"),
        _per(drawdown, std).alias("rule_drawdown_headroom_in_std_20d"),
        _per(binding, std).alias("rule_binding_headroom_in_std_20d"),
        _per(pl.col("dist_profit_target_usd"), std).alias("rule_profit_target_distance_in_std_20d"),
    )
