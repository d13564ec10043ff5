"""Entry points of the feature layer: staging, features and labels for a range of days.

Every function takes warehouse-shaped polars frames (the raw tables' snake_case columns) and a
date range [start, end], and computes every day of the range in one vectorised pass: a backfill
of a year is one call, not 365. No Dagster here; the assets read the inputs, call these and
write the result.

What each needs (dates are the raw tables' own ``date`` / ``trade_date``; the columns are in
``STAGING_INPUTS``, ``FEATURE_INPUTS`` and ``LABEL_INPUTS``, so a caller reads only those):

``build_staging(metrics_daily, plans, accounts, start=, end=, prior_state=None)``
    - ``raw_metrics_daily``, every day up to ``end`` (the whole history: the high-water mark
      and the counts so far are cumulative; one row per account-day, cheap). To avoid
      re-reading it, pass ``prior_state=staging.cumulative_state(..., through=S)`` and only
      the days after S.
    - ``raw_plans``: all rows. ``raw_metrics_alltime``: the account id and the static
      attributes only (nothing else of the master is read).

``build_features(staging, metrics_daily, metrics_hourly, trades_closed, trades_open, regimes,
start=, end=)``
    - ``stg_accounts_daily`` for [start, end];
    - ``raw_metrics_daily``, ``raw_metrics_hourly``, ``raw_trades_closed`` and
      ``raw_regimes_daily`` for [``required_history_start(start)``, end];
    - ``raw_trades_open`` for [start, end] (only D's own snapshot is used).

``build_labels(staging, metrics_daily, start=, end=, available_through=None, calendar=None)``
    - ``stg_accounts_daily`` for [start, end];
    - ``raw_metrics_daily`` for [start + 1, ``label_horizon_end(end)``].

Rows dated outside those ranges may be passed and are ignored: nothing dated after D reaches a
feature of D (``daily_profit_tests/features/test_point_in_time.py`` proves it).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import numpy as np
import polars as pl

from daily_profit.features import behaviour, daily_pnl, exposure, market, rules, staging
from daily_profit.features.catalog import feature_set_version, output_columns, output_schema
from daily_profit.features.grid import (
    ACCOUNT,
    DATE,
    MAX_WINDOW_DAYS,
    AccountHistory,
    build_grid,
)
from daily_profit.features.labels import LABEL_GRACE_DAYS, build_labels, label_horizon_end

__all__ = [
    "FEATURE_HISTORY_DAYS",
    "FEATURE_INPUTS",
    "LABEL_GRACE_DAYS",
    "LABEL_INPUTS",
    "STAGING_INPUTS",
    "build_features",
    "build_labels",
    "build_staging",
    "label_horizon_end",
    "required_history_start",
]

# The longest window covers D and the MAX_WINDOW_DAYS - 1 days before it; its drawdown also
# starts from the close of the day before the window: MAX_WINDOW_DAYS days of history in all.
FEATURE_HISTORY_DAYS: Final = MAX_WINDOW_DAYS

build_staging = staging.build_staging

_TRADE_KEY = ("trade_date", "login", "platform", "broker")

# Raw table -> the columns each entry point reads.
STAGING_INPUTS: Final = {
    "metrics_daily": staging.METRICS_DAILY_COLUMNS,
    "plans": ("plan_id", *staging.PLAN_RULE_COLUMNS),
    "metrics_alltime": ("account_id", *staging.MASTER_STATIC_COLUMNS),
}
FEATURE_INPUTS: Final = {
    "metrics_daily": (
        "date", "account_id", "login", "platform", "broker", "net_profit", "num_trades",
        "starting_balance",
    ),
    "metrics_hourly": ("date", "account_id", "hour", "num_trades"),
    "trades_closed": (
        *_TRADE_KEY, "std_symbol", "side", "lots", "volume_usd", "duration", "stop_loss",
        "take_profit", "profit", "commission", "fee", "swap",
    ),
    "trades_open": (
        *_TRADE_KEY, "std_symbol", "side", "lots", "volume_usd", "profit", "commission", "fee",
        "swap",
    ),
    "regimes_daily": (
        "date", "volatility_regime", "sentiment_score", "risk_on_prob", "risk_off_prob",
        "vol_spike_prob", "fed_funds_rate", "treasury2y", "treasury10y", "instruments_json",
    ),
}  # fmt: skip
LABEL_INPUTS: Final = {
    "metrics_daily": (
        "date", "account_id", "status", "net_profit", "current_equity", "current_balance",
        "prior_days_balance",
    ),
}  # fmt: skip


def required_history_start(start: dt.date) -> dt.date:
    """First date of raw history ``build_features`` needs to compute ``start`` exactly."""
    return start - dt.timedelta(days=FEATURE_HISTORY_DAYS)


def _in_range(frame: pl.DataFrame, column: str, first: dt.date, last: dt.date) -> pl.DataFrame:
    return frame.filter(pl.col(column).is_between(first, last))


def _sorted_by_keys(frame: pl.DataFrame) -> bool:
    """Whether rows run by date, then account (staging comes that way: no need to re-sort)."""
    if frame.height < 2:
        return True
    d, a = pl.col(DATE), pl.col(ACCOUNT)
    ordered = (d > d.shift()) | ((d == d.shift()) & (a > a.shift()))
    return bool(frame.select(ordered.slice(1).all()).item())


def build_features(
    staging_rows: pl.DataFrame,
    metrics_daily: pl.DataFrame,
    metrics_hourly: pl.DataFrame,
    trades_closed: pl.DataFrame,
    trades_open: pl.DataFrame,
    regimes: pl.DataFrame,
    *,
    start: dt.date,
    end: dt.date,
) -> pl.DataFrame:
    """``account_features_daily`` for every staging row in [start, end].

    Exactly the catalog's columns (``catalog.output_columns()``), one row per live funded
    account-day (the staging rows, sorted by date and account), each carrying
    ``feature_set_version``.
    """
    history_start = required_history_start(start)
    stg = _in_range(staging_rows, DATE, start, end)
    if not _sorted_by_keys(stg):
        stg = stg.sort(DATE, ACCOUNT)
    if stg.height == 0:
        return pl.DataFrame(schema=output_schema())
    daily = _in_range(metrics_daily, DATE, history_start, end)
    grid = build_grid(daily, stg[ACCOUNT], history_start=history_start, end=end)
    target = grid.rows(grid.codes(stg[ACCOUNT]), stg[DATE])
    if (target < 0).any():
        # A staging row is a metrics row, and the grid spans every metrics row of its account.
        raise ValueError("staging rows without their daily metrics row in metrics_daily")

    logins = AccountHistory.from_metrics(daily)

    def on_grid(frame: pl.DataFrame, column: str) -> np.ndarray:
        codes = logins.resolve_codes(frame, date_column=column, accounts=grid.accounts)
        return grid.rows(codes, frame[column])

    closed = _in_range(trades_closed, "trade_date", history_start, end)
    opened = _in_range(trades_open, "trade_date", start, end)
    hourly = _in_range(metrics_hourly, DATE, history_start, end)
    regimes_in = _in_range(regimes, DATE, history_start, end)
    keys = stg.select(DATE, ACCOUNT)

    # The families are independent once the grid stands. numpy and polars release the GIL in
    # their kernels, so two threads keep both cores of a small machine busy.
    with ThreadPoolExecutor(max_workers=2) as pool:
        pnl_job = pool.submit(daily_pnl.daily_pnl_features, grid, target)
        closed_rows = on_grid(closed, "trade_date")
        hourly_rows = grid.rows(grid.codes(hourly[ACCOUNT]), hourly[DATE])
        mkt_job = pool.submit(
            market.symbol_market_features,
            grid,
            closed_rows,
            closed["std_symbol"],
            market.instrument_frame(regimes_in),
            target,
        )
        beh = behaviour.behaviour_features(grid, closed, closed_rows, hourly, hourly_rows, target)
        open_rows = on_grid(opened, "trade_date")
        expo = exposure.exposure_features(
            stg["eod_equity"].to_numpy(), opened, open_rows, target, grid.height
        )
        regime = keys.join(
            market.regime_features(regimes_in, keys), on=DATE, how="left", maintain_order="left"
        ).drop(DATE, ACCOUNT)
        cal = keys.join(
            market.calendar_features(keys), on=DATE, how="left", maintain_order="left"
        ).drop(DATE, ACCOUNT)
        acct = rules.account_state_features(stg).drop(DATE, ACCOUNT)
        pnl = pnl_job.result()
        mkt = mkt_job.result()
    rule = rules.rule_proximity_features(stg, pnl["pnl_std_20d"]).drop(DATE, ACCOUNT)

    out = pl.concat(
        [keys, acct, rule, pnl, beh, expo, regime, mkt, cal], how="horizontal"
    ).with_columns(pl.lit(feature_set_version()).alias("feature_set_version"))
    return out.select(output_columns()).cast(dict(output_schema()))
