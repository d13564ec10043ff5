"""Trading behaviour family: how the account traded over the last 5 and 20 days.

Built from the trades closed on each day (``raw_trades_closed``) and the hourly metrics
(``raw_metrics_hourly``), on the dense grid so an idle day adds no trade. Ratios with no trade
in their window are null (there is no behaviour to describe), counts are 0.

Change of behaviour is measured against the account's own history: lots per trade on days after
a losing day against days after a winning day (size escalation after losses, the classic
"revenge trading" pattern), and recent (5-day) against longer (20-day) lots per trade.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from daily_profit.features.grid import Grid, enum_codes

BEHAVIOUR_WINDOWS: Final = (5, 20)
LONG_WINDOW: Final = 20

ASSET_CLASSES: Final = ("fx", "metals", "indices", "energy", "crypto", "other")

# Sessions by the broker's hour of the day (the hour of the API's hourly rows): the Asian
# session runs through the broker's night, London its morning, New York its afternoon.
SESSIONS: Final = {
    "asia": (*range(22, 24), *range(0, 7)),
    "london": tuple(range(7, 13)),
    "new_york": tuple(range(13, 22)),
}

# fmt: off
_CURRENCIES: Final = (
    "USD", "EUR", "GBP", "JPY", "CHF", "AUD", "NZD", "CAD", "SEK", "NOK", "DKK", "PLN", "HUF",
    "CZK", "TRY", "ZAR", "MXN", "SGD", "HKD", "CNH", "CNY", "ILS", "RUB", "THB", "INR", "KRW",
    "BRL",
)
# fmt: on
_METALS: Final = ("XAU", "XAG", "XPT", "XPD")
_CRYPTO: Final = ("BTC", "ETH", "LTC", "XRP", "SOL", "ADA", "DOG", "BNB", "DOT", "BCH", "AVX")
_ENERGY: Final = ("USOIL", "UKOIL", "WTI", "BRENT", "XTI", "XBR", "XNG", "NGAS", "NATGAS")


def asset_class(symbol: pl.Expr) -> pl.Expr:
    """Asset class of a normalised symbol (``stdSymbol``): fx, metals, indices, energy, crypto, other.

    Rules on the symbol text, so a new symbol of a known kind classifies without a lookup
    table: metals and crypto by their code prefix, energy by name, FX as two currency codes,
    indices as a name carrying a number (NDX100, US30, GER40) or a known index name.
    """
    s = symbol.str.to_uppercase()
    is_fx = (
        s.str.len_chars().eq(6)
        & s.str.slice(0, 3).is_in(_CURRENCIES)
        & s.str.slice(3, 3).is_in(_CURRENCIES)
    )
    return (
        pl.when(s.str.slice(0, 3).is_in(_METALS))
        .then(pl.lit("metals"))
        .when(s.str.slice(0, 3).is_in(_CRYPTO))
        .then(pl.lit("crypto"))
        .when(pl.any_horizontal([s.str.starts_with(e) for e in _ENERGY]))
        .then(pl.lit("energy"))
        .when(is_fx)
        .then(pl.lit("fx"))
        .when(s.str.contains(r"\d") | s.str.contains(r"^(SPX|NDX|NAS|DJI|DAX|FTSE|NIKKEI|VIX)"))
        .then(pl.lit("indices"))
        .otherwise(pl.lit("other"))
    )


def symbol_codes(symbols: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Each symbol as an integer code, and the sorted symbol list the codes index."""
    names = symbols.drop_nulls().unique().sort()
    return enum_codes(symbols, names), names.to_list()


def _segment_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Running total restarting at every index where ``starts`` is true (integers: exact)."""
    totals = np.cumsum(values)
    first = np.maximum.accumulate(np.where(starts, np.arange(values.size), 0))
    return totals - (totals[first] - values[first])


# Up to this many distinct symbols, per-symbol window counts are kept as a dense matrix (one
# column per symbol); beyond it the sparse event path keeps memory linear in the trades.
DENSE_SYMBOLS_MAX: Final = 64


def symbol_window_counts(
    grid: Grid, rows: np.ndarray, symbols: np.ndarray, n_symbols: int, windows: tuple[int, ...]
) -> dict[int, np.ndarray]:
    """Trades per grid row and symbol over the ``w`` days ending at the row: (n, k) per window."""
    keep = (rows >= 0) & (symbols >= 0)
    # Symbol-major flat index: the reshaped counts are column-major (n, k) without a copy.
    flat = np.bincount(
        symbols[keep] * grid.height + rows[keep], minlength=grid.height * n_symbols
    ).astype(np.float64)
    return grid.window_sums(flat.reshape(n_symbols, grid.height).T, windows)


def symbol_concentration(
    grid: Grid, rows: np.ndarray, symbols: np.ndarray, windows: tuple[int, ...]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per window and grid row: sum over symbols of (trades in the window)^2, symbols traded.

    With few symbols, from the dense per-symbol window counts; otherwise by events (see
    ``sparse_symbol_concentration``). Counts are integers: both paths are exact.
    """
    keep = (rows >= 0) & (symbols >= 0)
    n_sym = int(symbols[keep].max()) + 1 if keep.any() else 1
    if n_sym <= DENSE_SYMBOLS_MAX:
        return {
            window: (
                np.rint((counts**2).sum(axis=1)).astype(np.int64),
                (counts > 0).sum(axis=1).astype(np.int64),
            )
            for window, counts in symbol_window_counts(grid, rows, symbols, n_sym, windows).items()
        }
    return sparse_symbol_concentration(grid, rows[keep], symbols[keep], n_sym, windows)


def sparse_symbol_concentration(
    grid: Grid, rows: np.ndarray, symbols: np.ndarray, n_sym: int, windows: tuple[int, ...]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``symbol_concentration`` by events, for any number of symbols (rows all on the grid).

    A symbol's trade count in the window ending at D changes only on the days it trades
    (+count) and ``window`` days later (-count), so the sum of squares changes by
    after^2 - before^2 on those days and a running total over the grid gives every day's
    value. Memory stays linear in the trades however many symbols there are.
    """
    keep = np.ones(rows.size, dtype=bool)
    pair, count = np.unique(rows[keep] * n_sym + symbols[keep], return_counts=True)
    row, sym = pair // n_sym, pair % n_sym
    end_row = grid.start_row[row] + grid.n_days[grid.account[row]]
    account_start = grid.pos == 0
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for window in windows:
        # Removal events land `window` rows later, if that day is inside the account's span.
        leaves = row + window < end_row
        ev_row = np.concatenate([row, row[leaves] + window])
        ev_sym = np.concatenate([sym, sym[leaves]])
        ev_delta = np.concatenate([count, -count[leaves]])
        ev_account = grid.account[ev_row]
        order = np.lexsort((ev_row, ev_sym, ev_account))
        ev_row, ev_sym, ev_delta, ev_account = (
            ev_row[order],
            ev_sym[order],
            ev_delta[order],
            ev_account[order],
        )
        group_start = np.ones(ev_row.size, dtype=bool)
        group_start[1:] = (ev_sym[1:] != ev_sym[:-1]) | (ev_account[1:] != ev_account[:-1])
        after = _segment_cumsum(ev_delta, group_start)
        before = after - ev_delta
        dq = np.bincount(ev_row, weights=after**2 - before**2, minlength=grid.height)
        dn = np.bincount(
            ev_row, weights=(after > 0).astype(np.int64) - (before > 0), minlength=grid.height
        )
        squares = _segment_cumsum(np.rint(dq).astype(np.int64), account_start)
        distinct = _segment_cumsum(np.rint(dn).astype(np.int64), account_start)
        out[window] = (squares, distinct)
    return out


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(whole > 0, part / whole, np.nan)


def behaviour_features(
    grid: Grid,
    trades_closed: pl.DataFrame,
    trade_rows: np.ndarray,
    hourly: pl.DataFrame,
    hourly_rows: np.ndarray,
    target_rows: np.ndarray,
) -> pl.DataFrame:
    """The behaviour family for each grid row of ``target_rows``, in that order.

    ``trade_rows`` / ``hourly_rows``: the grid row of each closed trade / hourly metrics row
    (-1 for rows off the grid), from ``Grid.rows``.
    """
    # Trades off the grid (other accounts, other days) are dropped once, up front.
    on_grid = trade_rows >= 0
    t = trades_closed.filter(pl.Series(on_grid))
    rows = trade_rows[on_grid]
    net = (t["profit"] + t["commission"] + t["fee"] + t["swap"]).to_numpy()
    # A stop-loss or take-profit level of 0 means none (contract).
    has_sl = (t["stop_loss"].fill_null(0.0) != 0.0).to_numpy()
    has_tp = (t["take_profit"].fill_null(0.0) != 0.0).to_numpy()
    is_buy = (t["side"] == "Buy").to_numpy()
    sym, names = symbol_codes(t["std_symbol"])
    classes = pl.select(asset_class(pl.lit(pl.Series(names, dtype=pl.String)))).to_series()
    class_of_trade = np.asarray(
        [ASSET_CLASSES.index(c) for c in classes.to_list()] or [0], dtype=np.int64
    )[np.maximum(sym, 0)]

    def day(weights: np.ndarray | None = None) -> np.ndarray:
        """Per grid row, the trades' sum of ``weights`` (a mask counts), or their number."""
        return np.bincount(rows, weights=weights, minlength=grid.height).astype(np.float64)

    prev = grid.lagged(grid.net_profit, 1, np.nan)
    n = day()
    lots = day(t["lots"].to_numpy())
    daily: dict[str, np.ndarray] = {
        "n": n,
        "active": (n > 0).astype(np.float64),
        "lots": lots,
        "volume": day(t["volume_usd"].to_numpy()),
        "duration": day(t["duration"].to_numpy()),
        "sl": day(has_sl),
        "tp": day(has_tp),
        "buy": day(is_buy),
        "wins": day(net > 0),
        # Columns from here on are summed over the long window only.
        # Size on the day after a losing (winning) day: the escalation pattern.
        "lots_after_loss": np.where(prev < 0, lots, 0.0),
        "n_after_loss": np.where(prev < 0, n, 0.0),
        "lots_after_win": np.where(prev > 0, lots, 0.0),
        "n_after_win": np.where(prev > 0, n, 0.0),
    }
    for k, name in enumerate(ASSET_CLASSES):
        daily[f"class_{name}"] = day((class_of_trade == k) & (sym >= 0))
    hour = hourly["hour"].to_numpy()
    hourly_trades = hourly["num_trades"].to_numpy()
    for name, hours in SESSIONS.items():
        in_session = np.isin(hour, hours)
        daily[f"session_{name}"] = grid.scatter_sum(
            np.where(in_session, hourly_rows, -1), hourly_trades
        )

    names_in_order = list(daily)
    # Column-major: the running totals run down each column. The 5-day window needs only the
    # first columns (counts and sizes); the 20-day window needs them all.
    matrix = np.empty((grid.height, len(names_in_order)), order="F")
    for j, name in enumerate(names_in_order):
        matrix[:, j] = daily[name]
    short = names_in_order.index("lots_after_loss")
    sums = {
        BEHAVIOUR_WINDOWS[0]: grid.window_sums(matrix[:, :short], BEHAVIOUR_WINDOWS[:1]),
        LONG_WINDOW: grid.window_sums(matrix, (LONG_WINDOW,)),
    }
    concentration = symbol_concentration(grid, rows, sym, BEHAVIOUR_WINDOWS)
    gathered: dict[tuple[str, int], np.ndarray] = {}

    def col(name: str, w: int) -> np.ndarray:
        # Window sums need every grid row; the ratios only the target rows (gathered one
        # contiguous column at a time).
        key = (name, w)
        if key not in gathered:
            gathered[key] = sums[w][w][:, names_in_order.index(name)][target_rows]
        return gathered[key]

    out: dict[str, np.ndarray] = {}
    for w in BEHAVIOUR_WINDOWS:
        nw = col("n", w)
        squares, distinct = (a[target_rows] for a in concentration[w])
        out |= {
            f"trade_count_{w}d": np.rint(nw).astype(np.int64),
            f"active_days_{w}d": np.rint(col("active", w)).astype(np.int64),
            f"trades_per_active_day_{w}d": _share(nw, col("active", w)),
            f"lots_per_trade_{w}d": _share(col("lots", w), nw),
            f"volume_usd_per_trade_{w}d": _share(col("volume", w), nw),
            f"duration_hours_mean_{w}d": _share(col("duration", w), nw),
            f"stop_loss_share_{w}d": _share(col("sl", w), nw),
            f"take_profit_share_{w}d": _share(col("tp", w), nw),
            f"buy_share_{w}d": _share(col("buy", w), nw),
            f"trade_win_share_{w}d": _share(col("wins", w), nw),
            f"symbol_hhi_{w}d": _share(squares.astype(np.float64), nw**2),
            f"distinct_symbols_{w}d": distinct,
        }
    w = LONG_WINDOW
    n20 = col("n", w)
    for name in ASSET_CLASSES:
        out[f"asset_share_{name}_20d"] = _share(col(f"class_{name}", w), n20)
    session_total = sum(col(f"session_{name}", w) for name in SESSIONS)
    for name in SESSIONS:
        out[f"session_share_{name}_20d"] = _share(col(f"session_{name}", w), session_total)
    after_loss = _share(col("lots_after_loss", w), col("n_after_loss", w))
    after_win = _share(col("lots_after_win", w), col("n_after_win", w))
    out["lots_per_trade_after_loss_20d"] = after_loss
    out["lots_per_trade_after_win_20d"] = after_win
    out["size_escalation_after_loss_20d"] = _share(after_loss, after_win)
    out["lots_per_trade_ratio_5d_20d"] = _share(
        _share(col("lots", 5), col("n", 5)), _share(col("lots", w), n20)
    )
    return pl.DataFrame(out).fill_nan(None)
