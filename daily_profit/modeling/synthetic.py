"""A synthetic modeling frame shaped like the real features + labels, for tests and benchmarks.

The real frame comes from the sandbox through the feature pipeline; this one is generated in a
second with numpy so that modeling tests do not need the whole stack. It keeps what makes the
problem hard: daily P&L that is mostly noise, zero on days without trading, heavy-tailed
(Student-t, 3 degrees of freedom), with a scale that varies by account (balance x risk habit)
and over time (volatility clustering and a three-state market regime), rare loss-limit breaches, and a small
learnable mean (persistent skill, tilt after losses). It records its own ground truth (expected
next-day net profit and its standard deviation) like the sandbox does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from daily_profit.trading_calendar import TradingCalendar

# The synthetic firm trades and is labelled every calendar day.
SYNTHETIC_CALENDAR = TradingCalendar(weekdays=frozenset(range(7)))

# Student-t with 3 degrees of freedom has variance 3; dividing by sqrt(3) gives unit variance.
_T_DF = 3.0
_T_UNIT = float(np.sqrt(_T_DF / (_T_DF - 2.0)))

SYNTHETIC_FEATURES: tuple[str, ...] = (
    "pnl_sum_1d",
    "pnl_mean_5d",
    "pnl_mean_20d",
    "pnl_std_20d",
    "pnl_abs_mean_20d",
    "active_days_20d",
    "num_trades_1d",
    "current_equity",
    "starting_balance",
    "return_1d",
    "drawdown_from_hwm_pct",
    "dist_daily_loss_limit",
    "dist_daily_loss_limit_pct",
    "dist_drawdown_floor",
    "regime_vol",
)


@dataclass(frozen=True)
class SyntheticData:
    """Feature rows with labels, the daily P&L history behind them, and the ground truth."""

    frame: pl.DataFrame
    history: pl.DataFrame
    truth: pl.DataFrame
    feature_columns: tuple[str, ...]


def make_synthetic(
    n_accounts: int = 300,
    n_days: int = 120,
    *,
    seed: int = 0,
    start: dt.date = dt.date(2025, 1, 1),
    warmup_days: int = 20,
    regimes: bool = True,
) -> SyntheticData:
    """A frame of ``n_accounts`` x ``n_days`` feature days (plus a warm-up for trailing windows).

    Columns of ``frame``: account_id, date, the features in ``SYNTHETIC_FEATURES``,
    net_profit_next_session, breached_next_session, label_status ("observed", or "pending" on
    the last day), target_end, feature_set_version. ``history``: account_id, date, net_profit
    (every simulated day). ``truth``: account_id, date, expected_next_day_net_profit,
    next_day_std. The synthetic firm trades every calendar day: every day is a session
    (``SYNTHETIC_CALENDAR``), so each label's span is the next day alone.
    """
    rng = np.random.default_rng(seed)
    total = n_days + warmup_days + 1
    a = n_accounts
    balances = rng.choice([10_000.0, 25_000.0, 50_000.0, 100_000.0, 200_000.0], size=a)
    risk = np.exp(rng.normal(np.log(0.008), 0.6, size=a))  # daily vol as a share of balance
    skill = rng.normal(0.0, 0.08, size=a)  # mean P&L in units of the account's vol
    p_active = rng.beta(4.0, 2.0, size=a)
    tilt = rng.uniform(0.0, 0.6, size=a)  # how much a trader presses after a loss
    daily_limit = 0.05 * balances
    trailing_pct = 0.10

    # Market regimes like the sandbox's: a persistent three-state chain scaling every account.
    levels = np.array([0.6, 1.0, 1.7])
    state = 1
    regime = np.empty(total)
    for t in range(total):
        if regimes and rng.random() > 0.9:
            state = int(rng.integers(0, 3))
        regime[t] = levels[state]

    equity = balances.copy()
    hwm = balances.copy()
    vol_state = np.ones(a)
    pnl = np.zeros((total, a))
    mean = np.zeros((total, a))
    std = np.zeros((total, a))
    trades = np.zeros((total, a))
    equity_end = np.zeros((total, a))
    hwm_end = np.zeros((total, a))
    breach = np.zeros((total, a), dtype=bool)
    last_ret = np.zeros(a)
    for t in range(total):
        # Volatility clustering: a big move yesterday raises today's scale (GARCH-like).
        vol_state = np.sqrt(0.05 + 0.80 * vol_state**2 + 0.15 * np.minimum(last_ret**2, 25.0))
        scale = balances * risk * vol_state * regime[t] * (1.0 + tilt * (last_ret < -1.0))
        active = rng.random(a) < p_active
        mu_active = scale * (skill - 0.15 * tilt * (last_ret < -1.0))
        shock = rng.standard_t(_T_DF, size=a) / _T_UNIT
        day_pnl = np.where(active, mu_active + scale * shock, 0.0)
        day_pnl = np.maximum(day_pnl, -equity * 0.9)  # a day cannot lose more than the account
        mean[t] = p_active * mu_active
        var = p_active * scale**2 + p_active * (1 - p_active) * mu_active**2
        std[t] = np.sqrt(var)
        pnl[t] = np.round(day_pnl, 2)
        trades[t] = np.where(active, rng.poisson(1.0 + 6.0 * risk / 0.008), 0)
        equity = equity + pnl[t]
        hwm = np.maximum(hwm, equity)
        breach[t] = (pnl[t] < -daily_limit) | (equity < hwm * (1 - trailing_pct))
        # A breached account is replaced by a fresh one of the same trader.
        equity = np.where(breach[t], balances, equity)
        hwm = np.where(breach[t], balances, hwm)
        equity_end[t] = equity
        hwm_end[t] = hwm
        last_ret = np.where(active, (pnl[t] - mu_active) / np.maximum(scale, 1e-9), 0.0)

    days = [start + dt.timedelta(days=i) for i in range(total)]
    ids = np.array([f"ACC{i:06d}" for i in range(a)])
    history = pl.DataFrame(
        {
            "account_id": np.tile(ids, total),
            "date": np.repeat(np.array(days, dtype="datetime64[D]"), a),
            "net_profit": pnl.ravel(),
        }
    ).with_columns(pl.col("date").cast(pl.Date))

    def trailing(values: np.ndarray, window: int, fn: str) -> np.ndarray:
        out = np.full_like(values, np.nan)
        for t in range(total):
            lo = max(0, t - window + 1)
            block = values[lo : t + 1]
            out[t] = getattr(np, fn)(block, axis=0)
        return out

    mean5 = trailing(pnl, 5, "mean")
    mean20 = trailing(pnl, 20, "mean")
    std20 = trailing(pnl, 20, "std")
    absmean20 = trailing(np.abs(pnl), 20, "mean")
    active20 = trailing((trades > 0).astype(float), 20, "sum")

    rows = slice(warmup_days, warmup_days + n_days)
    feat_days = np.array(days[rows], dtype="datetime64[D]")
    n = n_days * a
    eq = equity_end[rows]
    dist_daily = daily_limit[None, :] + np.zeros_like(eq)  # the day starts with full headroom
    floor = hwm_end[rows] * (1 - trailing_pct)
    frame = pl.DataFrame(
        {
            "account_id": np.tile(ids, n_days),
            "date": np.repeat(feat_days, a),
            "pnl_sum_1d": pnl[rows].ravel(),
            "pnl_mean_5d": mean5[rows].ravel(),
            "pnl_mean_20d": mean20[rows].ravel(),
            "pnl_std_20d": std20[rows].ravel(),
            "pnl_abs_mean_20d": absmean20[rows].ravel(),
            "active_days_20d": active20[rows].ravel(),
            "num_trades_1d": trades[rows].ravel(),
            "current_equity": eq.ravel(),
            "starting_balance": np.tile(balances, n_days),
            "return_1d": (pnl[rows] / balances[None, :]).ravel(),
            "drawdown_from_hwm_pct": (1 - eq / hwm_end[rows]).ravel() * 100,
            "dist_daily_loss_limit": dist_daily.ravel(),
            "dist_daily_loss_limit_pct": (dist_daily / eq).ravel() * 100,
            "dist_drawdown_floor": (eq - floor).ravel(),
            "regime_vol": np.repeat(regime[rows], a),
            "net_profit_next_session": pnl[warmup_days + 1 : warmup_days + n_days + 1].ravel(),
            "breached_next_session": breach[warmup_days + 1 : warmup_days + n_days + 1].ravel(),
        }
    ).with_columns(
        pl.col("date").cast(pl.Date),
        (pl.col("date").cast(pl.Date) + pl.duration(days=1)).alias("target_end"),
        pl.lit("synthetic-v1").alias("feature_set_version"),
    )
    last_day = frame["date"].max()
    frame = frame.with_columns(
        pl.when(pl.col("date") == last_day)
        .then(pl.lit("pending"))
        .otherwise(pl.lit("observed"))
        .alias("label_status")
    )
    truth = pl.DataFrame(
        {
            "account_id": np.tile(ids, n_days),
            "date": np.repeat(feat_days, a),
            "expected_next_day_net_profit": mean[
                warmup_days + 1 : warmup_days + n_days + 1
            ].ravel(),
            "next_day_std": std[warmup_days + 1 : warmup_days + n_days + 1].ravel(),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    assert frame.height == n
    return SyntheticData(
        frame=frame, history=history, truth=truth, feature_columns=SYNTHETIC_FEATURES
    )
