"""``stg_accounts_daily``: the point-in-time state of every live funded account on each day.

One row per account per day D on which the account is funded (phase 4) and not breached
(status != 3), built only from what was known at the end of D:

- the plan is the ``plan_id`` of D's own metrics row, with that plan's rules from the plans CSV
  (plans carry no effective date: their rules are treated as constant over time);
- balances and equity at the start (``prior_days_*``) and end (``current_*``) of D;
- cumulative state (high-water mark, active trading days, payouts so far) over the account's
  whole history up to D, never a lookback window: pass all daily metrics rows of the needed
  columns (one row per account-day, cheap), or a ``prior_state`` frame carried from an earlier
  run (see ``cumulative_state``);
- distances to each plan limit, in USD and in % of the starting balance;
- static attributes (trader, platform, broker, country) from the account master (alltime
  metrics). Nothing time-varying is taken from the master: its balances and lifetime statistics
  describe the account as of now and would leak the future into a past day.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl

from daily_profit.features.grid import ACCOUNT, DATE, IN_MEMORY

FUNDED_PHASE: Final = 4
BREACHED_STATUS: Final = 3

# Columns of raw_metrics_daily staging reads (the whole history of these, or a prior state).
METRICS_DAILY_COLUMNS: Final = (
    "date",
    "account_id",
    "login",
    "plan_id",
    "trader",
    "status",
    "type",
    "phase",
    "broker",
    "platform",
    "country",
    "starting_balance",
    "prior_days_balance",
    "prior_days_equity",
    "current_balance",
    "current_equity",
    "approved_payouts",
    "pending_payouts",
    "todays_payouts",
    "days_to_next_payout",
    "first_trade_date",
    "days_since_first_trade",
    "num_trades",
    "net_profit",
)

# Static attributes staging takes from the account master; nothing else of it is read.
MASTER_STATIC_COLUMNS: Final = ("trader", "platform", "broker", "country")

PLAN_RULE_COLUMNS: Final = (
    "profit_target_pct",
    "daily_loss_limit_pct",
    "max_trailing_drawdown_pct",
    "make_drawdown_static",
    "daily_drawdown_by_balance_equity",
    "profit_share_pct",
    "leverage",
    "liquidate_friday",
    "enable_consistency",
    "inactivity_period",
    "minimum_required_active_trading_days",
    "maximum_time",
)

# Cumulative state of an account at the end of ``state_date``: what ``prior_state`` carries.
STATE_SCHEMA: Final = pl.Schema(
    {
        ACCOUNT: pl.String(),
        "state_date": pl.Date(),
        "first_seen_date": pl.Date(),
        "hwm_equity": pl.Float64(),
        "active_trading_days": pl.Int64(),
        "payout_days": pl.Int64(),
    }
)

STAGING_SCHEMA: Final = pl.Schema(
    {
        DATE: pl.Date(),
        ACCOUNT: pl.String(),
        "login": pl.String(),
        "trader": pl.String(),
        "platform": pl.Int64(),
        "broker": pl.Int64(),
        "country": pl.String(),
        "plan_id": pl.Int64(),
        "type": pl.Int64(),
        "phase": pl.Int64(),
        "status": pl.Int64(),
        "plan_found": pl.Boolean(),
        "starting_balance": pl.Float64(),
        "profit_target_pct": pl.Float64(),
        "daily_loss_limit_pct": pl.Float64(),
        "max_trailing_drawdown_pct": pl.Float64(),
        "make_drawdown_static": pl.Boolean(),
        "daily_drawdown_by_balance_equity": pl.Boolean(),
        "profit_share_pct": pl.Float64(),
        "leverage": pl.Int64(),
        "liquidate_friday": pl.Boolean(),
        "enable_consistency": pl.Boolean(),
        "inactivity_period": pl.Int64(),
        "minimum_required_active_trading_days": pl.Int64(),
        "maximum_time": pl.Int64(),
        "sod_balance": pl.Float64(),
        "sod_equity": pl.Float64(),
        "eod_balance": pl.Float64(),
        "eod_equity": pl.Float64(),
        "net_profit": pl.Float64(),
        "num_trades": pl.Int64(),
        "todays_payouts": pl.Float64(),
        "hwm_equity": pl.Float64(),
        "first_seen_date": pl.Date(),
        "account_age_days": pl.Int64(),
        "days_since_first_trade": pl.Int64(),
        "active_trading_days_to_date": pl.Int64(),
        "payout_days_to_date": pl.Int64(),
        "payouts_to_date_usd": pl.Float64(),
        "days_to_next_payout": pl.Int64(),
        "daily_loss_limit_usd": pl.Float64(),
        "daily_loss_floor_today_usd": pl.Float64(),
        "dist_daily_loss_today_usd": pl.Float64(),
        "daily_loss_floor_next_usd": pl.Float64(),
        "dist_daily_loss_usd": pl.Float64(),
        "dist_daily_loss_pct": pl.Float64(),
        "drawdown_floor_usd": pl.Float64(),
        "dist_drawdown_usd": pl.Float64(),
        "dist_drawdown_pct": pl.Float64(),
        "profit_target_usd": pl.Float64(),
        "dist_profit_target_usd": pl.Float64(),
        "dist_profit_target_pct": pl.Float64(),
    }
)


def latest_plans(plans: pl.DataFrame) -> pl.DataFrame:
    """One row per ``plan_id`` with its rules; where an export repeats a plan, the last row wins."""
    return plans.unique(subset="plan_id", keep="last", maintain_order=True).select(
        "plan_id", *PLAN_RULE_COLUMNS
    )


def _with_cumulative(rows: pl.LazyFrame, prior_state: pl.DataFrame | None) -> pl.LazyFrame:
    """Running high-water mark, active days and payout days over each account's history.

    With a ``prior_state``, the running values continue from the state and only rows after its
    ``state_date`` count; without one, ``rows`` must be the account's whole history.
    """
    if prior_state is not None:
        state = prior_state.lazy().select(
            ACCOUNT,
            "state_date",
            pl.col("first_seen_date").alias("_prior_first"),
            pl.col("hwm_equity").alias("_prior_hwm"),
            pl.col("active_trading_days").alias("_prior_active"),
            pl.col("payout_days").alias("_prior_payouts"),
        )
        # Rows on or before the state date are already inside the state.
        rows = rows.join(state, on=ACCOUNT, how="left").filter(
            pl.col("state_date").is_null() | (pl.col(DATE) > pl.col("state_date"))
        )
    # The high-water mark starts at the starting balance: an account that has only lost since
    # its first day still has its opening equity as the peak its trailing floor hangs from.
    peak = pl.max_horizontal("current_equity", "starting_balance")
    # Running values follow row order inside each account: date order is all they need, and
    # sorting by date alone is far cheaper than by account and date.
    rows = rows.sort(DATE, maintain_order=True).with_columns(
        peak.cum_max().over(ACCOUNT).alias("hwm_equity"),
        (pl.col("num_trades") > 0)
        .cast(pl.Int64)
        .cum_sum()
        .over(ACCOUNT)
        .alias("active_trading_days"),
        (pl.col("todays_payouts") > 0).cast(pl.Int64).cum_sum().over(ACCOUNT).alias("payout_days"),
        pl.col(DATE).min().over(ACCOUNT).alias("first_seen_date"),
    )
    if prior_state is None:
        return rows
    return rows.with_columns(
        pl.max_horizontal("hwm_equity", "_prior_hwm").alias("hwm_equity"),
        (pl.col("active_trading_days") + pl.col("_prior_active").fill_null(0)),
        (pl.col("payout_days") + pl.col("_prior_payouts").fill_null(0)),
        pl.coalesce("_prior_first", "first_seen_date").alias("first_seen_date"),
    ).drop("state_date", "_prior_first", "_prior_hwm", "_prior_active", "_prior_payouts")


def cumulative_state(
    metrics_daily: pl.DataFrame,
    *,
    through: dt.date,
    prior_state: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Each account's cumulative state at the end of ``through`` (``STATE_SCHEMA``).

    Lets a caller carry the whole history forward without re-reading it: the state at the end
    of day S plus daily metrics rows after S give the same staging as the full history.
    """
    rows = metrics_daily.lazy().filter(pl.col(DATE) <= through)
    running = _with_cumulative(
        rows.select(
            ACCOUNT, DATE, "current_equity", "starting_balance", "num_trades", "todays_payouts"
        ),
        prior_state,
    )
    latest = running.group_by(ACCOUNT).agg(pl.all().sort_by(DATE).last())
    out = latest.select(
        ACCOUNT,
        pl.lit(through).alias("state_date"),
        "first_seen_date",
        "hwm_equity",
        "active_trading_days",
        "payout_days",
    ).collect(engine=IN_MEMORY)
    if prior_state is not None:
        # Accounts with no row since the prior state keep their state unchanged.
        carried = prior_state.join(out, on=ACCOUNT, how="anti").with_columns(
            pl.lit(through).alias("state_date")
        )
        out = pl.concat([out, carried.select(out.columns)])
    return out.cast(dict(STATE_SCHEMA)).sort(ACCOUNT)


def _pct_of_start(column: str) -> pl.Expr:
    return pl.col(column) / pl.col("starting_balance") * 100.0


def build_staging(
    metrics_daily: pl.DataFrame,
    plans: pl.DataFrame,
    accounts: pl.DataFrame,
    *,
    start: dt.date,
    end: dt.date,
    prior_state: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``stg_accounts_daily`` rows for every day in [start, end] (``STAGING_SCHEMA``).

    ``metrics_daily``: the ``METRICS_DAILY_COLUMNS`` of raw_metrics_daily for every day up to
    ``end`` (the whole history: cumulative state needs it), or for the days after
    ``prior_state``'s ``state_date`` when a prior state is given. ``plans``: raw_plans.
    ``accounts``: raw_metrics_alltime (only ``account_id`` and ``MASTER_STATIC_COLUMNS`` are
    read). Rows dated after ``end`` are ignored, so a later partition can never reach D.
    """
    rows = metrics_daily.lazy().filter(pl.col(DATE) <= end).select(METRICS_DAILY_COLUMNS)
    rows = _with_cumulative(rows, prior_state).filter(pl.col(DATE).is_between(start, end))
    live = rows.filter((pl.col("phase") == FUNDED_PHASE) & (pl.col("status") != BREACHED_STATUS))
    master = (
        accounts.lazy()
        .select(ACCOUNT, *[pl.col(c).alias(f"_master_{c}") for c in MASTER_STATIC_COLUMNS])
        .unique(subset=ACCOUNT, keep="last")
    )
    plan_rules = latest_plans(plans).lazy().with_columns(pl.lit(True).alias("plan_found"))
    joined = live.join(master, on=ACCOUNT, how="left").join(plan_rules, on="plan_id", how="left")

    limit_usd = pl.col("daily_loss_limit_pct") / 100.0 * pl.col("starting_balance")
    by_equity = pl.col("daily_drawdown_by_balance_equity")
    # The plan rule: tomorrow's floor hangs from today's closing balance (or equity, when the
    # plan measures the daily loss by equity) minus the daily limit.
    floor_next = (
        pl.when(by_equity).then(pl.col("current_equity")).otherwise(pl.col("current_balance"))
        - limit_usd
    )
    floor_today = (
        pl.when(by_equity).then(pl.col("prior_days_equity")).otherwise(pl.col("prior_days_balance"))
        - limit_usd
    )
    dd_pct = pl.col("max_trailing_drawdown_pct") / 100.0
    drawdown_floor = (
        pl.when(pl.col("make_drawdown_static"))
        .then(pl.col("starting_balance") * (1.0 - dd_pct))
        .otherwise(pl.col("hwm_equity") - dd_pct * pl.col("starting_balance"))
    )
    target = pl.col("profit_target_pct")
    profit_target = (
        pl.when(target > 0)
        .then(pl.col("starting_balance") * (1.0 + target / 100.0))
        .otherwise(None)
    )

    staged = joined.select(
        DATE,
        ACCOUNT,
        "login",
        # The master's static attributes, falling back to the day's own row for an account the
        # master does not list yet.
        *[pl.coalesce(f"_master_{c}", c).alias(c) for c in MASTER_STATIC_COLUMNS],
        "plan_id",
        "type",
        "phase",
        "status",
        pl.col("plan_found").fill_null(False),
        "starting_balance",
        *PLAN_RULE_COLUMNS,
        pl.col("prior_days_balance").alias("sod_balance"),
        pl.col("prior_days_equity").alias("sod_equity"),
        pl.col("current_balance").alias("eod_balance"),
        pl.col("current_equity").alias("eod_equity"),
        "net_profit",
        "num_trades",
        "todays_payouts",
        "hwm_equity",
        "first_seen_date",
        (pl.col(DATE) - pl.col("first_seen_date")).dt.total_days().alias("account_age_days"),
        "days_since_first_trade",
        pl.col("active_trading_days").alias("active_trading_days_to_date"),
        pl.col("payout_days").alias("payout_days_to_date"),
        (pl.col("approved_payouts") + pl.col("pending_payouts")).alias("payouts_to_date_usd"),
        "days_to_next_payout",
        limit_usd.alias("daily_loss_limit_usd"),
        floor_today.alias("daily_loss_floor_today_usd"),
        (pl.col("current_equity") - floor_today).alias("dist_daily_loss_today_usd"),
        floor_next.alias("daily_loss_floor_next_usd"),
        (pl.col("current_equity") - floor_next).alias("dist_daily_loss_usd"),
        drawdown_floor.alias("drawdown_floor_usd"),
        (pl.col("current_equity") - drawdown_floor).alias("dist_drawdown_usd"),
        profit_target.alias("profit_target_usd"),
        (profit_target - pl.col("current_equity")).alias("dist_profit_target_usd"),
    ).with_columns(
        _pct_of_start("dist_daily_loss_usd").alias("dist_daily_loss_pct"),
        _pct_of_start("dist_drawdown_usd").alias("dist_drawdown_pct"),
        _pct_of_start("dist_profit_target_usd").alias("dist_profit_target_pct"),
    )
    return (
        staged.select(list(STAGING_SCHEMA.names()))
        .collect(engine=IN_MEMORY)
        .cast(dict(STAGING_SCHEMA))
        .sort(DATE, ACCOUNT)
    )
