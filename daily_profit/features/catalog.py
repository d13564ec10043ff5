"""The feature catalog: every column of ``account_features_daily``, defined once, in code.

The catalog drives the computation's output (the pipeline emits exactly these columns, in this
order, after the keys), the pandera schema and checks (type, nullability, ranges), and the risk
desk's documentation: ``uv run python -m daily_profit.features.catalog > docs/feature_catalog.md``
renders it.

The feature-set version is a short hash of every definition here plus ``FEATURE_CODE_VERSION``:
renaming a feature, changing a description, a window, a type or a range changes it, and so does
a deliberate bump of the code version when a computation changes under an unchanged definition.
Each feature row and each prediction carries it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache
from typing import Final, Literal

import polars as pl

# Bump when a computation changes while its catalog definition stays the same.
FEATURE_CODE_VERSION: Final = "2025.1"

KEY_COLUMNS: Final = ("date", "account_id", "feature_set_version")

Dtype = Literal["float", "int", "flag", "str"]

POLARS_DTYPES: Final[dict[str, pl.DataType]] = {
    "float": pl.Float64(),
    "int": pl.Int64(),
    "flag": pl.Int8(),
    "str": pl.String(),
}

FAMILIES: Final = {
    "account": "Account state: the plan on D, age, activity and payouts so far, equity position.",
    "rules": "Rule proximity: distance of end-of-day equity to each plan limit.",
    "daily_pnl": "Daily P&L: net profit over the last 1 to 20 calendar days.",
    "behaviour": "Trading behaviour from closed trades and hourly metrics (5 and 20 days).",
    "exposure": "Open exposure carried into the next day (end-of-D snapshot).",
    "market": "Market regime of D and the markets the account trades.",
    "calendar": "Where D falls in the week and month.",
}


@dataclass(frozen=True, slots=True)
class Feature:
    """One feature as the risk desk reads it.

    ``window`` is the number of calendar days ending at D the feature looks at (None: a value
    of D itself or cumulative over the whole history). ``nullable`` features say in
    ``null_when`` when they are null; required features are never null for a live funded
    account-day with its plan known, and a null there is a data fault the checks report.
    """

    name: str
    family: str
    window: int | None
    description: str
    unit: str
    dtype: Dtype
    nullable: bool
    null_when: str = ""
    min_value: float | None = None
    max_value: float | None = None

    @property
    def polars_dtype(self) -> pl.DataType:
        return POLARS_DTYPES[self.dtype]


def _f(
    name: str,
    family: str,
    description: str,
    unit: str,
    *,
    window: int | None = None,
    dtype: Dtype = "float",
    null_when: str = "",
    min_value: float | None = None,
    max_value: float | None = None,
) -> Feature:
    return Feature(
        name=name,
        family=family,
        window=window,
        description=description,
        unit=unit,
        dtype=dtype,
        nullable=bool(null_when),
        null_when=null_when,
        min_value=min_value,
        max_value=max_value,
    )


# Reasons a feature is null, worded once.
NO_TRADES = "no closed trade in the window"
NO_LOSS_DAY = "no losing day in the window (no downside to divide by)"
FLAT_WINDOW = "fewer than 2 days of history, or P&L identical every day (no swing)"
YOUNG = "the account has fewer than 2 days of history"
NO_BOOK = "no open position at the end of D"
NO_REGIME = "the regime feed has no row for D, or left this optional field empty"
NO_PRICED_TRADES = "no closed trade in the last 20 days in a symbol the regime feed prices on D"
NO_TARGET = "the plan has no profit target"
NO_PAYOUT_CYCLE = "the API reports no payout schedule for the account on D"
NO_COUNTRY = "the account master and the day's row carry no country"
NO_SWING = "the 20-day P&L standard deviation is null or zero (no typical swing yet)"


def _account() -> list[Feature]:
    a = "account"
    return [
        _f(
            "acct_starting_balance",
            a,
            "Starting balance of the account's plan.",
            "USD",
            min_value=0,
        ),
        _f(
            "acct_platform",
            a,
            "Trading platform code (from the account master).",
            "code",
            dtype="int",
        ),
        _f("acct_broker", a, "Broker code (from the account master).", "code", dtype="int"),
        _f(
            "acct_country",
            a,
            "Trader's country, ISO-3166 alpha-2 (from the account master).",
            "code",
            dtype="str",
            null_when=NO_COUNTRY,
        ),
        _f(
            "acct_plan_type",
            a,
            "Account type code of D's metrics row (1 two-step, 2 one-step, 3 instant in the sandbox).",
            "code",
            dtype="int",
        ),
        _f(
            "acct_profit_share_pct",
            a,
            "Trader's share of profits under the plan of D.",
            "%",
            min_value=0,
            max_value=100,
        ),
        _f("acct_leverage", a, "Leverage of the plan of D.", "x", dtype="int", min_value=0),
        _f(
            "acct_plan_daily_loss_limit_pct",
            a,
            "Daily loss limit of the plan, in % of the starting balance.",
            "%",
            min_value=0,
        ),
        _f(
            "acct_plan_max_drawdown_pct",
            a,
            "Maximum (trailing or static) drawdown of the plan, in % of the starting balance.",
            "%",
            min_value=0,
        ),
        _f(
            "acct_plan_drawdown_static",
            a,
            "1 when the plan's drawdown floor is static (starting balance minus the limit), 0 when it trails the high-water mark.",
            "flag",
            dtype="flag",
            min_value=0,
            max_value=1,
        ),
        _f(
            "acct_plan_daily_loss_by_equity",
            a,
            "1 when the daily loss is measured from the previous day's equity, 0 from its balance.",
            "flag",
            dtype="flag",
            min_value=0,
            max_value=1,
        ),
        _f(
            "acct_age_days",
            a,
            "Calendar days since the account's first daily metrics row (whole history).",
            "days",
            dtype="int",
            min_value=0,
        ),
        _f(
            "acct_days_since_first_trade",
            a,
            "Days since the account's first trade, as the API reports on D.",
            "days",
            dtype="int",
            min_value=0,
        ),
        _f(
            "acct_active_trading_days_to_date",
            a,
            "Days with at least one closed trade over the account's whole history up to D.",
            "days",
            dtype="int",
            min_value=0,
        ),
        _f(
            "acct_active_day_share_to_date",
            a,
            "Share of the account's days (whole history) with at least one closed trade.",
            "share",
            min_value=0,
            max_value=1,
        ),
        _f(
            "acct_payout_days_to_date",
            a,
            "Number of days a payout was paid out, over the whole history up to D.",
            "count",
            dtype="int",
            min_value=0,
        ),
        _f(
            "acct_payouts_to_date_pct",
            a,
            "Approved plus pending payouts so far, in % of the starting balance.",
            "%",
            min_value=0,
        ),
        _f(
            "acct_days_to_next_payout",
            a,
            "Days until the account's next payout request, as the API reports on D.",
            "days",
            dtype="int",
            null_when=NO_PAYOUT_CYCLE,
        ),
        _f(
            "acct_return_since_start_pct", a, "End-of-day equity against the starting balance.", "%"
        ),
        _f(
            "acct_equity_below_hwm_pct",
            a,
            "End-of-day equity against the high-water mark (max of starting balance and every end-of-day equity so far); 0 at a new high.",
            "%",
            max_value=0,
        ),
        _f(
            "acct_floating_pnl_pct",
            a,
            "Equity minus balance at the end of D (unrealised P&L of open positions), in % of the starting balance.",
            "%",
        ),
    ]


def _rules() -> list[Feature]:
    r = "rules"
    return [
        _f(
            "rule_daily_loss_headroom_usd",
            r,
            "How much the account can lose tomorrow before breaching the daily loss limit: end-of-day equity minus tomorrow's floor (today's closing balance, or equity for by-equity plans, minus the daily limit). Negative means already past the line.",
            "USD",
        ),
        _f(
            "rule_daily_loss_headroom_pct",
            r,
            "Daily loss headroom in % of the starting balance.",
            "%",
        ),
        _f(
            "rule_daily_loss_margin_today_pct",
            r,
            "How far D's closing equity stayed above D's own daily loss floor, in % of the starting balance.",
            "%",
        ),
        _f(
            "rule_drawdown_headroom_usd",
            r,
            "End-of-day equity minus the drawdown floor (high-water mark minus the limit, or the static floor).",
            "USD",
        ),
        _f("rule_drawdown_headroom_pct", r, "Drawdown headroom in % of the starting balance.", "%"),
        _f(
            "rule_binding_headroom_usd",
            r,
            "The nearer of the daily loss and drawdown headrooms: the loss tomorrow that breaches first.",
            "USD",
        ),
        _f("rule_binding_headroom_pct", r, "Binding headroom in % of the starting balance.", "%"),
        _f(
            "rule_binding_is_daily_loss",
            r,
            "1 when the daily loss limit is the nearer limit, 0 when the drawdown floor is.",
            "flag",
            dtype="flag",
            min_value=0,
            max_value=1,
        ),
        _f(
            "rule_profit_target_distance_pct",
            r,
            "Equity still to make to reach the plan's profit target (from the starting balance), in % of the starting balance; negative once above it.",
            "%",
            null_when=NO_TARGET,
        ),
        _f(
            "rule_daily_loss_headroom_in_std_20d",
            r,
            "Daily loss headroom in units of the account's 20-day daily P&L standard deviation: how many ordinary days of swing from a breach.",
            "std",
            window=20,
            null_when=NO_SWING,
        ),
        _f(
            "rule_drawdown_headroom_in_std_20d",
            r,
            "Drawdown headroom in units of the 20-day daily P&L standard deviation.",
            "std",
            window=20,
            null_when=NO_SWING,
        ),
        _f(
            "rule_binding_headroom_in_std_20d",
            r,
            "Binding headroom in units of the 20-day daily P&L standard deviation.",
            "std",
            window=20,
            null_when=NO_SWING,
        ),
        _f(
            "rule_profit_target_distance_in_std_20d",
            r,
            "Distance to the profit target in units of the 20-day daily P&L standard deviation.",
            "std",
            window=20,
            null_when=f"{NO_TARGET}, or {NO_SWING}",
        ),
    ]


def _daily_pnl() -> list[Feature]:
    p = "daily_pnl"
    out = [
        _f(
            "pnl_1d",
            p,
            "Net profit of D (trades closed on D, after commission, fee and swap).",
            "USD",
            window=1,
        ),
        _f("pnl_1d_pct", p, "Net profit of D in % of the starting balance.", "%", window=1),
        _f(
            "pnl_current_streak_days",
            p,
            "Days in a row up to D with a positive (+) or negative (-) net profit, capped at 20; 0 when D was flat or idle.",
            "days",
            dtype="int",
            min_value=-20,
            max_value=20,
        ),
    ]
    for w in (3, 5, 10, 20):
        days = f"the last {w} days"
        out += [
            _f(f"pnl_sum_{w}d", p, f"Net profit over {days}.", "USD", window=w),
            _f(
                f"pnl_sum_{w}d_pct",
                p,
                f"Net profit over {days}, in % of the starting balance.",
                "%",
                window=w,
            ),
            _f(
                f"pnl_mean_{w}d",
                p,
                f"Mean daily net profit over {days} (idle days count as 0).",
                "USD",
                window=w,
            ),
            _f(
                f"pnl_std_{w}d",
                p,
                f"Standard deviation of daily net profit over {days}.",
                "USD",
                window=w,
                null_when=YOUNG,
                min_value=0,
            ),
            _f(f"pnl_min_{w}d", p, f"Worst day's net profit over {days}.", "USD", window=w),
            _f(f"pnl_max_{w}d", p, f"Best day's net profit over {days}.", "USD", window=w),
            _f(
                f"pnl_win_share_{w}d",
                p,
                f"Share of the days in {days} with a positive net profit.",
                "share",
                window=w,
                min_value=0,
                max_value=1,
            ),
            _f(
                f"pnl_profit_factor_{w}d",
                p,
                f"Sum of winning days over the absolute sum of losing days, over {days}.",
                "ratio",
                window=w,
                null_when=NO_LOSS_DAY,
                min_value=0,
            ),
            _f(
                f"pnl_sharpe_{w}d",
                p,
                f"Mean over standard deviation of daily net profit over {days} (daily, not annualised).",
                "ratio",
                window=w,
                null_when=FLAT_WINDOW,
            ),
            _f(
                f"pnl_sortino_{w}d",
                p,
                f"Mean daily net profit over its downside deviation (root mean square of losing days, idle and winning days as 0) over {days}.",
                "ratio",
                window=w,
                null_when=NO_LOSS_DAY,
            ),
            _f(
                f"pnl_max_drawdown_{w}d",
                p,
                f"Worst fall of cumulative net profit from a peak within {days} (including the level before the first day); 0 when it only rose.",
                "USD",
                window=w,
                max_value=0,
            ),
            _f(
                f"pnl_longest_win_streak_{w}d",
                p,
                f"Longest run of consecutive winning days inside {days}.",
                "days",
                window=w,
                dtype="int",
                min_value=0,
                max_value=w,
            ),
            _f(
                f"pnl_longest_loss_streak_{w}d",
                p,
                f"Longest run of consecutive losing days inside {days}.",
                "days",
                window=w,
                dtype="int",
                min_value=0,
                max_value=w,
            ),
        ]
    return out


def _behaviour() -> list[Feature]:
    b = "behaviour"
    out: list[Feature] = []
    for w in (5, 20):
        days = f"the last {w} days"
        out += [
            _f(
                f"trade_count_{w}d",
                b,
                f"Trades closed over {days}.",
                "count",
                window=w,
                dtype="int",
                min_value=0,
            ),
            _f(
                f"active_days_{w}d",
                b,
                f"Days with at least one closed trade in {days}.",
                "days",
                window=w,
                dtype="int",
                min_value=0,
                max_value=w,
            ),
            _f(
                f"trades_per_active_day_{w}d",
                b,
                f"Closed trades per active day over {days}.",
                "count",
                window=w,
                null_when=NO_TRADES,
                min_value=0,
            ),
            _f(
                f"lots_per_trade_{w}d",
                b,
                f"Mean size of a closed trade over {days}.",
                "lots",
                window=w,
                null_when=NO_TRADES,
                min_value=0,
            ),
            _f(
                f"volume_usd_per_trade_{w}d",
                b,
                f"Mean USD notional of a closed trade over {days}.",
                "USD",
                window=w,
                null_when=NO_TRADES,
                min_value=0,
            ),
            _f(
                f"duration_hours_mean_{w}d",
                b,
                f"Mean holding time of the trades closed in {days}.",
                "hours",
                window=w,
                null_when=NO_TRADES,
                min_value=0,
            ),
            _f(
                f"stop_loss_share_{w}d",
                b,
                f"Share of the trades closed in {days} that had a stop loss.",
                "share",
                window=w,
                null_when=NO_TRADES,
                min_value=0,
                max_value=1,
            ),
            _f(
                f"take_profit_share_{w}d",
                b,
                f"Share of the trades closed in {days} that had a take profit.",
                "share",
                window=w,
                null_when=NO_TRADES,
                min_value=0,
                max_value=1,
            ),
            _f(
                f"buy_share_{w}d",
                b,
                f"Share of the trades closed in {days} that were buys.",
                "share",
                window=w,
                null_when=NO_TRADES,
                min_value=0,
                max_value=1,
            ),
            _f(
                f"trade_win_share_{w}d",
                b,
                f"Share of the trades closed in {days} with a positive net amount.",
                "share",
                window=w,
                null_when=NO_TRADES,
                min_value=0,
                max_value=1,
            ),
            _f(
                f"symbol_hhi_{w}d",
                b,
                f"Herfindahl index of the trades closed in {days} across symbols (by trade count): 1 = one symbol only, 1/n = spread evenly over n.",
                "index",
                window=w,
                null_when=NO_TRADES,
                min_value=0,
                max_value=1,
            ),
            _f(
                f"distinct_symbols_{w}d",
                b,
                f"Different symbols traded (closed) in {days}.",
                "count",
                window=w,
                dtype="int",
                min_value=0,
            ),
        ]
    for k in ("fx", "metals", "indices", "energy", "crypto", "other"):
        out.append(
            _f(
                f"asset_share_{k}_20d",
                b,
                f"Share of the trades closed in the last 20 days in {k} symbols.",
                "share",
                window=20,
                null_when=NO_TRADES,
                min_value=0,
                max_value=1,
            )
        )
    sessions = {
        "asia": "broker hours 22-06 (Asian session)",
        "london": "broker hours 07-12 (London session)",
        "new_york": "broker hours 13-21 (New York session)",
    }
    for k, hours in sessions.items():
        out.append(
            _f(
                f"session_share_{k}_20d",
                b,
                f"Share of the last 20 days' trades (hourly metrics) closed in {hours}.",
                "share",
                window=20,
                null_when="no trade in the hourly metrics of the window",
                min_value=0,
                max_value=1,
            )
        )
    out += [
        _f(
            "lots_per_trade_after_loss_20d",
            b,
            "Mean lots per trade on days that followed a losing day, over the last 20 days.",
            "lots",
            window=20,
            null_when="no trade on a day after a losing day in the window",
            min_value=0,
        ),
        _f(
            "lots_per_trade_after_win_20d",
            b,
            "Mean lots per trade on days that followed a winning day, over the last 20 days.",
            "lots",
            window=20,
            null_when="no trade on a day after a winning day in the window",
            min_value=0,
        ),
        _f(
            "size_escalation_after_loss_20d",
            b,
            "Lots per trade after losing days over lots per trade after winning days (last 20 days): above 1 means the trader sizes up after losses.",
            "ratio",
            window=20,
            null_when="no trade after a losing day, or none after a winning day, in the window",
            min_value=0,
        ),
        _f(
            "lots_per_trade_ratio_5d_20d",
            b,
            "Lots per trade over the last 5 days against the last 20: above 1 means recent trades are larger than usual.",
            "ratio",
            window=20,
            null_when="no closed trade in the last 5 days",
            min_value=0,
        ),
    ]
    return out


def _exposure() -> list[Feature]:
    e = "exposure"
    return [
        _f(
            "open_positions",
            e,
            "Positions open at the end of D.",
            "count",
            dtype="int",
            min_value=0,
        ),
        _f(
            "open_symbols",
            e,
            "Different symbols among the positions open at the end of D.",
            "count",
            dtype="int",
            min_value=0,
        ),
        _f("open_lots", e, "Lots open at the end of D.", "lots", min_value=0),
        _f("open_notional_usd", e, "USD notional open at the end of D.", "USD", min_value=0),
        _f(
            "open_notional_to_equity",
            e,
            "Open USD notional over end-of-day equity (effective leverage carried overnight).",
            "x",
            min_value=0,
        ),
        _f(
            "open_unrealised_usd",
            e,
            "Unrealised P&L of the open positions at the end of D (profit, swap, commission, fee).",
            "USD",
        ),
        _f(
            "open_unrealised_pct_of_equity",
            e,
            "Unrealised P&L of open positions in % of end-of-day equity.",
            "%",
        ),
        _f(
            "open_net_direction",
            e,
            "Buy minus sell notional over open notional: +1 all long, -1 all short.",
            "ratio",
            null_when=NO_BOOK,
            min_value=-1,
            max_value=1,
        ),
        _f(
            "open_largest_position_share",
            e,
            "Largest single open position's share of open notional.",
            "share",
            null_when=NO_BOOK,
            min_value=0,
            max_value=1,
        ),
    ]


def _market() -> list[Feature]:
    m = "market"
    out = [
        _f(
            f"regime_vol_{v}",
            m,
            f"1 when D's volatility regime is {v.upper()}.",
            "flag",
            dtype="flag",
            null_when=NO_REGIME,
            min_value=0,
            max_value=1,
        )
        for v in ("compressed", "balanced", "dispersed")
    ]
    out += [
        _f(
            "regime_sentiment_score",
            m,
            "News sentiment of D, -1 (stress) to 1 (calm).",
            "score",
            null_when=NO_REGIME,
            min_value=-1,
            max_value=1,
        ),
        _f(
            "regime_risk_on_prob",
            m,
            "Probability of a risk-on (calm) regime next, published on D.",
            "probability",
            null_when=NO_REGIME,
            min_value=0,
            max_value=1,
        ),
        _f(
            "regime_risk_off_prob",
            m,
            "Probability of a risk-off (dispersed) regime next, published on D.",
            "probability",
            null_when=NO_REGIME,
            min_value=0,
            max_value=1,
        ),
        _f(
            "regime_vol_spike_prob",
            m,
            "Probability that volatility rises next, published on D.",
            "probability",
            null_when=NO_REGIME,
            min_value=0,
            max_value=1,
        ),
        _f("regime_fed_funds_rate", m, "Fed funds rate on D.", "%", null_when=NO_REGIME),
        _f("regime_treasury_2y", m, "2-year treasury yield on D.", "%", null_when=NO_REGIME),
        _f("regime_treasury_10y", m, "10-year treasury yield on D.", "%", null_when=NO_REGIME),
        _f(
            "regime_curve_10y_2y",
            m,
            "10-year minus 2-year treasury yield on D.",
            "% points",
            null_when=NO_REGIME,
        ),
        _f(
            "top_symbol_share_20d",
            m,
            "Share of the last 20 days' priced trades in the account's most traded symbol.",
            "share",
            window=20,
            null_when=NO_PRICED_TRADES,
            min_value=0,
            max_value=1,
        ),
        _f(
            "top_symbol_return_1d",
            m,
            "Return on D of the account's most traded symbol (last 20 days).",
            "return",
            window=20,
            null_when=f"{NO_PRICED_TRADES}, or no price of it on D",
        ),
        _f(
            "top_symbol_return_5d",
            m,
            "Sum of daily returns over the last 5 days of the account's most traded symbol.",
            "return",
            window=20,
            null_when=f"{NO_PRICED_TRADES}, or no price of it on D",
        ),
        _f(
            "top_symbol_volatility_90d",
            m,
            "90-day volatility on D of the account's most traded symbol.",
            "volatility",
            window=20,
            null_when=f"{NO_PRICED_TRADES}, or no price of it on D",
            min_value=0,
        ),
        _f(
            "traded_symbols_return_1d",
            m,
            "Return on D of the symbols the account traded in the last 20 days, weighted by trade count.",
            "return",
            window=20,
            null_when=NO_PRICED_TRADES,
        ),
        _f(
            "traded_symbols_abs_return_1d",
            m,
            "Absolute return on D of the symbols traded in the last 20 days, weighted by trade count: how much the account's markets moved.",
            "return",
            window=20,
            null_when=NO_PRICED_TRADES,
            min_value=0,
        ),
        _f(
            "traded_symbols_volatility_90d",
            m,
            "90-day volatility on D of the symbols traded in the last 20 days, weighted by trade count.",
            "volatility",
            window=20,
            null_when=NO_PRICED_TRADES,
            min_value=0,
        ),
    ]
    return out


def _calendar() -> list[Feature]:
    c = "calendar"
    return [
        _f(
            "cal_weekday",
            c,
            "Day of the week of D, 0 = Monday to 6 = Sunday.",
            "day",
            dtype="int",
            min_value=0,
            max_value=6,
        ),
        _f(
            "cal_day_of_month",
            c,
            "Day of the month of D.",
            "day",
            dtype="int",
            min_value=1,
            max_value=31,
        ),
        _f("cal_month", c, "Month of D.", "month", dtype="int", min_value=1, max_value=12),
        _f(
            "cal_is_last_weekday_of_month",
            c,
            "1 when D is the month's last Monday-to-Friday day.",
            "flag",
            dtype="flag",
            min_value=0,
            max_value=1,
        ),
        _f(
            "cal_days_to_month_end",
            c,
            "Calendar days from D to the last day of its month.",
            "days",
            dtype="int",
            min_value=0,
            max_value=30,
        ),
        _f(
            "cal_days_to_weekend",
            c,
            "Calendar days from D to the next Saturday; 0 on a weekend day.",
            "days",
            dtype="int",
            min_value=0,
            max_value=5,
        ),
        _f(
            "cal_is_friday",
            c,
            "1 when D is a Friday (plans that liquidate on Friday close positions then).",
            "flag",
            dtype="flag",
            min_value=0,
            max_value=1,
        ),
    ]


@cache
def catalog() -> tuple[Feature, ...]:
    """Every feature of ``account_features_daily``, in output column order."""
    features = (
        *_account(),
        *_rules(),
        *_daily_pnl(),
        *_behaviour(),
        *_exposure(),
        *_market(),
        *_calendar(),
    )
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ValueError("duplicate feature names in the catalog")
    if unknown := {f.family for f in features} - FAMILIES.keys():
        raise ValueError(f"unknown families: {sorted(unknown)}")
    return features


def feature_names() -> list[str]:
    return [f.name for f in catalog()]


def output_columns() -> list[str]:
    """The feature table's columns: the keys, then every catalog feature."""
    return [*KEY_COLUMNS, *feature_names()]


def output_schema() -> pl.Schema:
    return pl.Schema(
        {
            "date": pl.Date(),
            "account_id": pl.String(),
            "feature_set_version": pl.String(),
            **{f.name: f.polars_dtype for f in catalog()},
        }
    )


def version_of(features: tuple[Feature, ...], code_version: str) -> str:
    """Short hash of feature definitions and a code version, e.g. ``fs-3b9c0e1a2d4f``."""
    payload = json.dumps(
        {"code": code_version, "features": [asdict(f) for f in features]}, sort_keys=True
    )
    return "fs-" + hashlib.sha256(payload.encode()).hexdigest()[:12]


@cache
def feature_set_version() -> str:
    """The version of this catalog and code: what every feature row carries."""
    return version_of(catalog(), FEATURE_CODE_VERSION)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _range(f: Feature) -> str:
    if f.min_value is None and f.max_value is None:
        return ""
    lo = "" if f.min_value is None else f"{f.min_value:g}"
    hi = "" if f.max_value is None else f"{f.max_value:g}"
    return f"[{lo}, {hi}]" if lo and hi else (f">= {lo}" if lo else f"<= {hi}")


def render_markdown() -> str:
    """The catalog as a Markdown page for the risk desk (``docs/feature_catalog.md``)."""
    features = catalog()
    lines = [
        "# Feature catalog: `account_features_daily`",
        "",
        "<!-- Generated by `uv run python -m daily_profit.features.catalog > docs/feature_catalog.md`;"
        " edit daily_profit/features/catalog.py, not this page. -->",
        "",
        f"Feature-set version **`{feature_set_version()}`** (code version `{FEATURE_CODE_VERSION}`), "
        f"{len(features)} features. Every row is one live funded account (phase 4, not breached) on "
        "one day D, keyed by `date`, `account_id` and `feature_set_version`.",
        "",
        "Point in time: a feature of D uses only data dated D or earlier. Windows are calendar "
        "days ending at D; an idle day counts as zero activity. Cumulative values (high-water "
        "mark, active days, payouts so far) cover the account's whole history. The account "
        "master gives static attributes only (platform, broker, country).",
        "",
        "Required features are never null for a live funded account-day whose plan is known: a "
        "null there is a data fault that the feature checks report. Nullable features say when "
        "they are null.",
        "",
    ]
    for family, summary in FAMILIES.items():
        members = [f for f in features if f.family == family]
        lines += [
            f"## {family} ({len(members)})",
            "",
            summary,
            "",
            "| feature | window | unit | type | range | description | null when |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in members:
            window = f"{f.window}d" if f.window else "D"
            null = _cell(f.null_when) if f.nullable else "never (required)"
            lines.append(
                f"| `{f.name}` | {window} | {_cell(f.unit)} | {f.dtype} | {_range(f)} "
                f"| {_cell(f.description)} | {null} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
