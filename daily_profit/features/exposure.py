"""Open exposure family: what the account carries into tomorrow, from the end-of-D snapshot.

Built from ``raw_trades_open`` of day D only (the snapshot of open positions at the end of the
trade date) and the account's end-of-day equity from staging. An account with no open-trade row
on D holds no position: its counts and notionals are 0, and the ratios that describe a book
(direction, concentration) are null.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from daily_profit.features.behaviour import symbol_codes


def exposure_features(
    eod_equity: np.ndarray,
    trades_open: pl.DataFrame,
    open_rows: np.ndarray,
    target_rows: np.ndarray,
    height: int,
) -> pl.DataFrame:
    """The exposure family for each target row (a staging row's grid row), in that order.

    ``open_rows``: the grid row of each open-trade snapshot row (-1 off the grid);
    ``eod_equity``: end-of-day equity of each target row; ``height``: grid rows.
    """
    keep = open_rows >= 0
    rows = open_rows[keep]
    t = trades_open.filter(pl.Series(keep))
    unrealised = (t["profit"] + t["swap"] + t["commission"] + t["fee"]).to_numpy()
    volume = t["volume_usd"].to_numpy()
    signed = np.where((t["side"] == "Buy").to_numpy(), volume, -volume)

    def per_row(values: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(rows, weights=values, minlength=height).astype(np.float64)[target_rows]

    largest = np.zeros(height)
    np.maximum.at(largest, rows, volume)
    sym, _ = symbol_codes(t["std_symbol"])
    n_sym = int(sym.max()) + 1 if sym.size else 1
    # Distinct (row, symbol) pairs, counted per row.
    pair_rows = np.unique(rows * n_sym + sym) // n_sym
    notional = per_row(volume)
    unreal = per_row(unrealised)
    has_book = notional > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "open_positions": np.rint(per_row()).astype(np.int64),
            "open_symbols": np.bincount(pair_rows, minlength=height)[target_rows].astype(np.int64),
            "open_lots": per_row(t["lots"].to_numpy()),
            "open_notional_usd": notional,
            "open_notional_to_equity": notional / eod_equity,
            "open_unrealised_usd": unreal,
            "open_unrealised_pct_of_equity": unreal / eod_equity * 100.0,
            "open_net_direction": np.where(has_book, per_row(signed) / notional, np.nan),
            "open_largest_position_share": np.where(
                has_book, largest[target_rows] / notional, np.nan
            ),
        }
    return pl.DataFrame(out).fill_nan(None)
