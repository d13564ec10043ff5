"""``labels_next_session``: what happened to each live funded account until the next session.

Labels follow the trading calendar (``daily_profit.trading_calendar``): one label row per
staging row (account, D) whose D is a session, none for the other days (no prediction is made
for them). The target span of D runs from the day after D up to and including the next session
(``target_start``, ``target_end``): Friday's span is Saturday + Sunday + Monday, so weekend
trading is neither lost nor a target of its own. The label is

- ``net_profit_next_session``: the sum of the account's daily net profit over the span;
- ``breached_next_session``: the API marks the account breached (status 3) on a day of the
  span. A breach ends the account: the days of the span after it have no rows and count as
  nothing, the label is the P&L up to the breach;
- ``breach_by_rules``: whether the plan rules say a day t of the span breached on the close:
  its end-of-day equity under the floors the staging row of t - 1 sets for the next day (the
  daily loss floor and the drawdown floor), so a check can report where API and rules
  disagree. Without a staging row on t - 1 (the staging rows passed end before, or the account
  had no row), the latest earlier row's drawdown floor is used alone (it only rises, so an
  earlier one is a floor of the later) and the daily floor is not judged. The API sees intraday
  equity, the rules only the close, so an API-only breach is expected now and then; a
  rules-only breach is a data fault.

Each day of the span is either recorded (the API has a row) or explained; the span's
``label_status`` says what the worst day was:

- ``observed``: every day of the span (up to a breach) has a row.
- ``idle_no_row``: the days without a row were idle, proven by the balance: the account's next
  row within ``LABEL_GRACE_DAYS`` opens (``prior_days_balance``) with the balance the last
  recorded day before the gap closed at (D's for a gap at the start), to the cent. Such a day
  counts as net profit 0, not breached.
- ``missing_row``: a day without a row after which the balance moved: its P&L is unknown, so
  the span's is. Label null, excluded from training. Nothing is invented.
- ``account_gone``: no row for the account in the ``LABEL_GRACE_DAYS`` + 1 days from a day of
  the span, although the data covers them (closed or moved off the feed without a breach row).
  Label null, excluded.
- ``pending``: a day of the span (or the grace days needed to tell idle from gone) is not in the
  data yet: the span is pending until its last day is. Label null; a later run fills it in.

A span with a missing day is missing even when another day is still pending (a later run cannot
make the unknown day known); gone outranks pending for the same reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl

from daily_profit.features.grid import ACCOUNT, DATE
from daily_profit.features.staging import BREACHED_STATUS
from daily_profit.trading_calendar import TradingCalendar, trading_calendar

# Days after a day without a row in which a returning account proves it was only missing.
LABEL_GRACE_DAYS: Final = 3

LABEL_STATUSES: Final = ("observed", "idle_no_row", "missing_row", "account_gone", "pending")
# The span's status is its worst day's, in this order (``observed`` is the best).
_STATUS_RANK: Final = {"observed": 0, "idle_no_row": 1, "pending": 2, "account_gone": 3}
_MISSING_RANK: Final = 4

TARGET_START: Final = "target_start"
TARGET_END: Final = "target_end"
NET_PROFIT_NEXT_SESSION: Final = "net_profit_next_session"
BREACHED_NEXT_SESSION: Final = "breached_next_session"

LABEL_SCHEMA: Final = pl.Schema(
    {
        DATE: pl.Date(),
        ACCOUNT: pl.String(),
        TARGET_START: pl.Date(),
        TARGET_END: pl.Date(),
        "label_status": pl.Enum(LABEL_STATUSES),
        "label_available": pl.Boolean(),
        NET_PROFIT_NEXT_SESSION: pl.Float64(),
        BREACHED_NEXT_SESSION: pl.Boolean(),
        "breach_by_rules": pl.Boolean(),
        "eod_equity_next_session": pl.Float64(),
    }
)


def label_horizon_end(end: dt.date, calendar: TradingCalendar | None = None) -> dt.date:
    """Last date of daily metrics ``build_labels`` reads for feature days up to ``end``: the
    last span's end and the grace days after it."""
    calendar = calendar or trading_calendar()
    return calendar.target_span(end)[1] + dt.timedelta(days=LABEL_GRACE_DAYS)


def _cents(expr: pl.Expr) -> pl.Expr:
    return (expr * 100.0).round(0).cast(pl.Int64)


def _span_days(
    staging_rows: pl.DataFrame, calendar: TradingCalendar, start: dt.date, end: dt.date
) -> pl.DataFrame:
    """One row per session row (account, D) of [start, end] and day of its target span."""
    stg = staging_rows.filter(pl.col(DATE).is_between(start, end)).select(
        DATE, ACCOUNT, "eod_balance"
    )
    spans = (
        calendar.span_table(stg[DATE].unique().to_list()).filter("is_session").drop("is_session")
    )
    return (
        stg.join(spans, on=DATE, how="inner")
        .with_columns(pl.date_ranges(TARGET_START, TARGET_END).alias("_day"))
        .explode("_day")
    )


def build_labels(
    staging_rows: pl.DataFrame,
    metrics_daily: pl.DataFrame,
    *,
    start: dt.date,
    end: dt.date,
    available_through: dt.date | None = None,
    calendar: TradingCalendar | None = None,
) -> pl.DataFrame:
    """One label row per staging row in [start, end] whose date is a session (``LABEL_SCHEMA``).

    ``staging_rows``: stg_accounts_daily for [start, end] (labels are made for these rows);
    rows up to the last span's end - 1 as well let the rules judge every day of a span.
    ``metrics_daily``: raw_metrics_daily for [start + 1, ``label_horizon_end(end)``].
    ``available_through``: the last date the daily metrics are complete for; default the
    latest date in ``metrics_daily`` (a day with no row at all is a day not loaded yet).
    ``calendar``: default the configured trading calendar.
    """
    calendar = calendar or trading_calendar()
    horizon = label_horizon_end(end, calendar)
    later = metrics_daily.filter(pl.col(DATE).is_between(start + dt.timedelta(days=1), horizon))
    if available_through is None:
        latest = later[DATE].max()
        available_through = latest if isinstance(latest, dt.date) else start
    span = DATE, ACCOUNT
    days = _span_days(staging_rows, calendar, start, end).join(
        later.select(
            ACCOUNT,
            pl.col(DATE).alias("_day"),
            "net_profit",
            (pl.col("status") == BREACHED_STATUS).alias("_breached"),
            "current_equity",
            "current_balance",
        ),
        on=[ACCOUNT, "_day"],
        how="left",
    )
    has_row = pl.col("_breached").is_not_null()
    # A breach ends the account: the days of the span after it are not missing, they are over.
    breach_day = pl.when(pl.col("_breached")).then(pl.col("_day")).min().over(span)
    days = days.with_columns(breach_day.alias("_breach_day")).filter(
        pl.col("_breach_day").is_null() | (pl.col("_day") <= pl.col("_breach_day"))
    )
    # The balance a day without a row must be followed by: the close of the last recorded day of
    # the span before it, else D's close.
    days = days.sort(ACCOUNT, DATE, "_day").with_columns(
        pl.coalesce(
            pl.col("current_balance").shift(1).forward_fill().over(span),
            pl.col("eod_balance"),
        ).alias("_balance_before")
    )
    # For days without a row only: the account's next row and the balance it opened with (an
    # as-of join, so a year of history costs one row per day without a row).
    gaps = days.filter(~has_row).select(ACCOUNT, DATE, "_day")
    following = (
        gaps.sort("_day")
        .join_asof(
            later.select(ACCOUNT, pl.col(DATE).alias("_next_date"), "prior_days_balance").sort(
                "_next_date"
            ),
            left_on="_day",
            right_on="_next_date",
            by=ACCOUNT,
            strategy="forward",
            check_sortedness=False,
        )
        .filter(pl.col("_next_date") <= pl.col("_day") + dt.timedelta(days=LABEL_GRACE_DAYS))
        .select(ACCOUNT, DATE, "_day", pl.col("prior_days_balance").alias("_reopen_balance"))
    )
    days = days.join(following, on=[ACCOUNT, DATE, "_day"], how="left")
    returns = pl.col("_reopen_balance").is_not_null()
    unchanged = _cents(pl.col("_reopen_balance")) == _cents(pl.col("_balance_before"))
    decided = pl.col("_day") + dt.timedelta(days=LABEL_GRACE_DAYS) <= available_through
    rank = (
        pl.when(has_row)
        .then(_STATUS_RANK["observed"])
        .when(returns & unchanged)
        .then(_STATUS_RANK["idle_no_row"])
        .when(returns)
        .then(_MISSING_RANK)
        .when(decided)
        .then(_STATUS_RANK["account_gone"])
        .otherwise(_STATUS_RANK["pending"])
    )
    equity = pl.col("current_equity")
    # The floors each day is held to: set by the close of the day before (module docstring).
    floors = (
        staging_rows.select(
            ACCOUNT,
            (pl.col(DATE) + dt.timedelta(days=1)).alias("_floors_for"),
            "daily_loss_floor_next_usd",
            "drawdown_floor_usd",
        )
        .filter(pl.col("_floors_for") <= horizon)
        .sort("_floors_for")
    )
    days = days.sort("_day").join_asof(
        floors,
        left_on="_day",
        right_on="_floors_for",
        by=ACCOUNT,
        strategy="backward",
        check_sortedness=False,
    )
    daily_floor = pl.when(pl.col("_floors_for") == pl.col("_day")).then(
        pl.col("daily_loss_floor_next_usd")
    )
    # The plan rules on the close, in cents like the firm's ledger.
    below_rules = (_cents(daily_floor) > _cents(equity)).fill_null(False) | (
        _cents(pl.col("drawdown_floor_usd")) > _cents(equity)
    ).fill_null(False)
    per_span = (
        days.sort(ACCOUNT, DATE, "_day")
        .with_columns(rank.alias("_rank"))
        .group_by(span, maintain_order=True)
        .agg(
            pl.col(TARGET_START).first(),
            pl.col(TARGET_END).first(),
            pl.col("_rank").max(),
            pl.col("net_profit").sum().alias("_net"),
            pl.col("_breached").any().alias("_breached"),
            has_row.any().alias("_recorded"),
            below_rules.any().alias("_by_rules"),
            equity.drop_nulls().last().alias("eod_equity_next_session"),
        )
    )
    names = {v: k for k, v in _STATUS_RANK.items()} | {_MISSING_RANK: "missing_row"}
    available = pl.col("_rank") <= _STATUS_RANK["idle_no_row"]
    out = per_span.select(
        DATE,
        ACCOUNT,
        TARGET_START,
        TARGET_END,
        pl.col("_rank").replace_strict(names, return_dtype=pl.String).alias("label_status"),
        available.alias("label_available"),
        pl.when(available).then(pl.col("_net")).alias(NET_PROFIT_NEXT_SESSION),
        pl.when(available).then(pl.col("_breached")).alias(BREACHED_NEXT_SESSION),
        pl.when(pl.col("_recorded")).then(pl.col("_by_rules")).alias("breach_by_rules"),
        "eod_equity_next_session",
    )
    return out.cast(dict(LABEL_SCHEMA)).sort(DATE, ACCOUNT)
