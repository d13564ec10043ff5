"""Market and calendar family: the market the account traded into on D, and where D falls.

- Regime of D (``raw_regimes_daily``): volatility regime one-hot, news sentiment, risk-on,
  risk-off and volatility-spike probabilities, rates and the 10y-2y curve. Null when the regime
  feed has no row for D (or the optional field is missing).
- The account's own markets: its most traded instrument over the last 20 days (by closed
  trades) and that instrument's return on D, over the last 5 days and its 90-day volatility;
  and the same measures averaged over every instrument it traded in the 20 days, weighted by
  its trade count. Only symbols the regime feed prices count (others have no market data).
- Calendar of D: weekday, month end, days to the weekend.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import numpy as np
import orjson
import polars as pl

from daily_profit.features.behaviour import symbol_window_counts
from daily_profit.features.grid import DATE, Grid, enum_codes

VOLATILITY_REGIMES: Final = ("COMPRESSED", "BALANCED", "DISPERSED")
SYMBOL_WINDOW: Final = 20
RETURN_WINDOW: Final = 5


def instrument_frame(regimes: pl.DataFrame) -> pl.DataFrame:
    """The regimes' per-symbol ``instruments_json`` as rows: date, symbol, return, volatility.

    One regime row per calendar day, so parsing the JSON in Python costs a few hundred rows a
    year; ``return_5d`` is the sum of the symbol's daily returns over the 5 calendar days
    ending at the date.
    """
    dates: list[dt.date] = []
    symbols: list[str] = []
    returns: list[float] = []
    vols: list[float] = []
    for day, text in regimes.select(DATE, "instruments_json").iter_rows():
        if text is None:
            continue
        for symbol, item in orjson.loads(text).items():
            dates.append(day)
            symbols.append(symbol)
            returns.append(float(item["dailyReturn"]))
            vols.append(float(item["volatility90d"]))
    frame = pl.DataFrame(
        {"date": dates, "symbol": symbols, "daily_return": returns, "volatility_90d": vols},
        schema={
            "date": pl.Date(),
            "symbol": pl.String(),
            "daily_return": pl.Float64(),
            "volatility_90d": pl.Float64(),
        },
    ).sort("symbol", "date")
    return frame.with_columns(
        pl.col("daily_return")
        .rolling_sum_by("date", window_size=f"{RETURN_WINDOW}d")
        .over("symbol")
        .alias("return_5d")
    )


def regime_features(regimes: pl.DataFrame, days: pl.DataFrame) -> pl.DataFrame:
    """Regime of each date in ``days`` (a frame with a ``date`` column)."""
    regime = pl.col("volatility_regime")
    own = regimes.select(
        DATE,
        *[(regime == v).cast(pl.Int8).alias(f"regime_vol_{v.lower()}") for v in VOLATILITY_REGIMES],
        pl.col("sentiment_score").alias("regime_sentiment_score"),
        pl.col("risk_on_prob").alias("regime_risk_on_prob"),
        pl.col("risk_off_prob").alias("regime_risk_off_prob"),
        pl.col("vol_spike_prob").alias("regime_vol_spike_prob"),
        pl.col("fed_funds_rate").alias("regime_fed_funds_rate"),
        pl.col("treasury2y").alias("regime_treasury_2y"),
        pl.col("treasury10y").alias("regime_treasury_10y"),
        (pl.col("treasury10y") - pl.col("treasury2y")).alias("regime_curve_10y_2y"),
    ).unique(subset=DATE, keep="last")
    return days.select(DATE).unique().join(own, on=DATE, how="left")


def calendar_features(days: pl.DataFrame) -> pl.DataFrame:
    """Calendar position of each date in ``days``."""
    d = pl.col(DATE)
    weekday = d.dt.weekday() - 1  # 0 = Monday
    month_end = d.dt.month_end()
    # The last weekday of the month: month-end flows (rebalancing, payouts) land there.
    last_weekday = month_end - pl.duration(
        days=pl.when(month_end.dt.weekday() == 7)
        .then(2)
        .when(month_end.dt.weekday() == 6)
        .then(1)
        .otherwise(0)
    )
    return (
        days.select(DATE)
        .unique()
        .select(
            DATE,
            weekday.cast(pl.Int64).alias("cal_weekday"),
            d.dt.day().cast(pl.Int64).alias("cal_day_of_month"),
            d.dt.month().cast(pl.Int64).alias("cal_month"),
            (d == last_weekday).cast(pl.Int8).alias("cal_is_last_weekday_of_month"),
            (month_end - d).dt.total_days().cast(pl.Int64).alias("cal_days_to_month_end"),
            pl.when(weekday >= 5)
            .then(0)
            .otherwise(5 - weekday)
            .cast(pl.Int64)
            .alias("cal_days_to_weekend"),
            (weekday == 4).cast(pl.Int8).alias("cal_is_friday"),
        )
    )


def symbol_market_features(
    grid: Grid,
    trade_rows: np.ndarray,
    trade_symbols: pl.Series,
    instruments: pl.DataFrame,
    target_rows: np.ndarray,
) -> pl.DataFrame:
    """The account's own markets on D, for each grid row in ``target_rows`` (in that order).

    ``trade_rows``: the grid row of each closed trade; ``trade_symbols``: its ``std_symbol``;
    ``instruments``: ``instrument_frame`` output.
    """
    # One matrix column per symbol the feed prices in the range (no top-N cut: a cut chosen
    # over the whole range would let data after D decide which symbols D sees).
    universe = instruments["symbol"].unique().sort().to_list()
    n_out = target_rows.size
    if not universe:
        return pl.DataFrame({name: np.full(n_out, np.nan) for name in _SYMBOL_FEATURES}).fill_nan(
            None
        )
    names = pl.Series(universe, dtype=pl.String)
    sym = enum_codes(trade_symbols, names)
    k = len(universe)
    counts = symbol_window_counts(grid, trade_rows, sym, k, (SYMBOL_WINDOW,))[SYMBOL_WINDOW]
    # Gathered one contiguous column at a time (the counts are column-major).
    window = np.column_stack([counts[:, j][target_rows] for j in range(k)])

    # Market values by (date, symbol) for the target rows' dates; NaN where not priced.
    days = grid.day[target_rows]
    first_day = int(days.min()) if n_out else 0
    n_dates = int(days.max()) - first_day + 1 if n_out else 1
    inst_day = instruments["date"].cast(pl.Int32).to_numpy().astype(np.int64) - first_day
    inst_sym = enum_codes(instruments["symbol"], names)
    inside = (inst_day >= 0) & (inst_day < n_dates)

    def by_date(column: str) -> np.ndarray:
        table = np.full((n_dates, k), np.nan)
        table[inst_day[inside], inst_sym[inside]] = instruments[column].to_numpy()[inside]
        return table[days - first_day]

    ret, ret5, vol = by_date("daily_return"), by_date("return_5d"), by_date("volatility_90d")
    # Only symbols priced on D itself count for D: which symbols the feed prices on other days
    # (later ones included) must not change D's weights.
    window = np.where(np.isnan(ret), 0.0, window)
    total = window.sum(axis=1)
    traded = total > 0
    top = np.argmax(window, axis=1)
    pick = np.arange(n_out)

    def weighted(values: np.ndarray) -> np.ndarray:
        # Over the symbols with a value on D: a symbol without a price drops out of both the
        # sum and the weights, rather than counting as a zero return.
        priced = ~np.isnan(values)
        weights = np.where(priced, window, 0.0)
        den = weights.sum(axis=1)
        num = (weights * np.where(priced, values, 0.0)).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / den, np.nan)

    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "top_symbol_share_20d": np.where(traded, window.max(axis=1) / total, np.nan),
            "top_symbol_return_1d": np.where(traded, ret[pick, top], np.nan),
            "top_symbol_return_5d": np.where(traded, ret5[pick, top], np.nan),
            "top_symbol_volatility_90d": np.where(traded, vol[pick, top], np.nan),
            "traded_symbols_return_1d": weighted(ret),
            "traded_symbols_abs_return_1d": weighted(np.abs(ret)),
            "traded_symbols_volatility_90d": weighted(vol),
        }
    return pl.DataFrame(out).fill_nan(None)


_SYMBOL_FEATURES: Final = (
    "top_symbol_share_20d",
    "top_symbol_return_1d",
    "top_symbol_return_5d",
    "top_symbol_volatility_90d",
    "traded_symbols_return_1d",
    "traded_symbols_abs_return_1d",
    "traded_symbols_volatility_90d",
)
