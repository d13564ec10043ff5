"""``labels_next_day``: what happened to each live funded account on the day after D.

For every staging row (account, D): the net profit the API reports for D+1, whether the API
marks the account breached on D+1 (status 3), and, separately, whether D+1's end-of-day equity
breaks the plan rules measured from D's staging row (``breach_by_rules``), so a check can report
where the two disagree. The API sees intraday equity, the rules check only the close, so a
breach the API reports and the close does not show is expected now and then; the other way
round is a data fault.

What a missing D+1 row means (``label_status``):

- ``observed``: the API has a row for D+1. Its net profit and status are the label.
- ``idle_no_row``: no row for D+1, but the account has a later row within
  ``LABEL_GRACE_DAYS`` whose opening balance (``prior_days_balance``) equals D's closing
  balance to the cent: nothing was booked in between, so D+1 was an idle day. Label: net profit
  0, not breached (a breach ends the account; it came back).
- ``missing_row``: no row for D+1, a later row exists, but the balance moved in between: D+1's
  P&L is unknown. Label null, excluded from training. Nothing is invented.
- ``account_gone``: no row for the account in the ``LABEL_GRACE_DAYS`` + 1 days after D,
  although the data covers them (the account was closed or moved off the feed without a
  breach row). Label null, excluded.
- ``pending``: D+1 (or the grace days needed to tell idle from gone) is not in the data yet.
  Label null; a later run fills it in.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl

from daily_profit.features.grid import ACCOUNT, DATE
from daily_profit.features.staging import BREACHED_STATUS

# Days after D+1 in which a returning account proves D+1 was only missing, not the end.
LABEL_GRACE_DAYS: Final = 3

LABEL_STATUSES: Final = ("observed", "idle_no_row", "missing_row", "account_gone", "pending")

LABEL_SCHEMA: Final = pl.Schema(
    {
        DATE: pl.Date(),
        ACCOUNT: pl.String(),
        "label_date": pl.Date(),
        "label_status": pl.Enum(LABEL_STATUSES),
        "label_available": pl.Boolean(),
        "next_day_net_profit": pl.Float64(),
        "next_day_breached": pl.Boolean(),
        "breach_by_rules": pl.Boolean(),
        "next_day_eod_equity": pl.Float64(),
    }
)


def label_horizon_end(end: dt.date) -> dt.date:
    """Last date of daily metrics ``build_labels`` reads for feature days up to ``end``."""
    return end + dt.timedelta(days=1 + LABEL_GRACE_DAYS)


def _cents(expr: pl.Expr) -> pl.Expr:
    return (expr * 100.0).round(0).cast(pl.Int64)


def build_labels(
    staging_rows: pl.DataFrame,
    metrics_daily: pl.DataFrame,
    *,
    start: dt.date,
    end: dt.date,
    available_through: dt.date | None = None,
) -> pl.DataFrame:
    """One label row per staging row in [start, end] (``LABEL_SCHEMA``).

    ``metrics_daily``: raw_metrics_daily for [start + 1, ``label_horizon_end(end)``].
    ``available_through``: the last date the daily metrics are complete for; default the
    latest date in ``metrics_daily`` (a day with no row at all is a day not loaded yet).
    """
    horizon = label_horizon_end(end)
    later = metrics_daily.filter(pl.col(DATE).is_between(start + dt.timedelta(days=1), horizon))
    if available_through is None:
        latest = later[DATE].max()
        available_through = latest if isinstance(latest, dt.date) else start
    stg = staging_rows.filter(pl.col(DATE).is_between(start, end)).select(
        DATE,
        ACCOUNT,
        "eod_balance",
        "daily_loss_floor_next_usd",
        "drawdown_floor_usd",
        (pl.col(DATE) + dt.timedelta(days=1)).alias("label_date"),
    )
    rows = later.select(
        ACCOUNT,
        pl.col(DATE).alias("label_date"),
        pl.col("net_profit").alias("next_day_net_profit"),
        (pl.col("status") == BREACHED_STATUS).alias("next_day_breached"),
        pl.col("current_equity").alias("next_day_eod_equity"),
    )
    joined = stg.join(rows, on=[ACCOUNT, "label_date"], how="left")
    # For rows without a D+1 row only: the account's next row after D+1 and the balance it
    # opened with (an as-of join, so a year of history costs one row per missing label).
    missing = joined.filter(pl.col("next_day_net_profit").is_null()).select(
        ACCOUNT, DATE, "label_date"
    )
    following = (
        missing.sort("label_date")
        .join_asof(
            later.select(ACCOUNT, pl.col(DATE).alias("_next_date"), "prior_days_balance").sort(
                "_next_date"
            ),
            left_on="label_date",
            right_on="_next_date",
            by=ACCOUNT,
            strategy="forward",
            check_sortedness=False,
        )
        .filter(pl.col("_next_date") <= pl.col("label_date") + dt.timedelta(days=LABEL_GRACE_DAYS))
        .select(ACCOUNT, DATE, pl.col("prior_days_balance").alias("_reopen_balance"))
    )
    joined = joined.join(following, on=[ACCOUNT, DATE], how="left")
    has_row = pl.col("next_day_net_profit").is_not_null()
    returns = pl.col("_reopen_balance").is_not_null()
    unchanged = _cents(pl.col("_reopen_balance")) == _cents(pl.col("eod_balance"))
    decided = pl.col("label_date") + dt.timedelta(days=LABEL_GRACE_DAYS) <= available_through
    status = (
        pl.when(has_row)
        .then(pl.lit("observed"))
        .when(returns & unchanged)
        .then(pl.lit("idle_no_row"))
        .when(returns)
        .then(pl.lit("missing_row"))
        .when(decided)
        .then(pl.lit("account_gone"))
        .otherwise(pl.lit("pending"))
        .cast(pl.Enum(LABEL_STATUSES))
    )
    equity = pl.col("next_day_eod_equity")
    # The plan rules on the close, in cents like the firm's ledger: below either floor breaches.
    by_rules = (_cents(pl.col("daily_loss_floor_next_usd")) > _cents(equity)) | (
        _cents(pl.col("drawdown_floor_usd")) > _cents(equity)
    )
    idle = pl.col("label_status") == "idle_no_row"
    out = joined.with_columns(status.alias("label_status")).select(
        DATE,
        ACCOUNT,
        "label_date",
        "label_status",
        pl.col("label_status").is_in(["observed", "idle_no_row"]).alias("label_available"),
        pl.when(idle)
        .then(0.0)
        .otherwise(pl.col("next_day_net_profit"))
        .alias("next_day_net_profit"),
        pl.when(idle).then(False).otherwise(pl.col("next_day_breached")).alias("next_day_breached"),
        pl.when(has_row).then(by_rules).otherwise(None).alias("breach_by_rules"),
        equity,
    )
    return out.cast(dict(LABEL_SCHEMA)).sort(DATE, ACCOUNT)
