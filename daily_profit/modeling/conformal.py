"""Locally adaptive conformalised quantile regression (CQR), one offset per quantile.

The quantile model proposes p05, p50 and p95 of next-day net profit. On the calibration days
each proposal is shifted by a constant number of *predicted scale units* s(x), so that:

- the 5% and 95% bounds each miss on at most their own 5% of calibration rows, with the usual
  finite-sample correction ((n + 1) instead of n), so the 90% interval covers >= 90% on
  exchangeable rows. The two misses are disjoint events (below p05, above p95), so calibrating
  each tail on its own gives the interval's level *and* calibrated individual quantiles, which
  the symmetric CQR score would not;
- p50 is moved to the median of the scaled residuals, so half the outcomes lie below it.

Normalising residuals by s(x) (locally adaptive conformal) keeps intervals narrow for quiet
accounts and wide for wild ones, instead of one dollar offset for every account.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

LOWER_Q = 0.05
MEDIAN_Q = 0.5
UPPER_Q = 0.95
QUANTILES: tuple[float, float, float] = (LOWER_Q, MEDIAN_Q, UPPER_Q)


@dataclass(frozen=True)
class ConformalOffsets:
    """Offsets in scale units added to the raw p05, p50 and p95."""

    lower: float
    median: float
    upper: float
    n_calibration: int
    lower_level: float = LOWER_Q
    upper_level: float = UPPER_Q

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _order_stat(sorted_values: np.ndarray, k: int) -> float:
    """The k-th smallest value (1-based), clipped into range (infinite beyond it)."""
    n = sorted_values.size
    if k > n:
        return math.inf
    if k < 1:
        return -math.inf
    return float(sorted_values[k - 1])


def fit_offsets(
    raw_quantiles: np.ndarray,
    y: np.ndarray,
    scale: np.ndarray,
    lower_level: float = LOWER_Q,
    upper_level: float = UPPER_Q,
) -> ConformalOffsets:
    """Offsets from calibration rows: ``raw_quantiles`` is (n, 3) of p05, p50, p95 proposals."""
    n = y.size
    if n < 20:
        raise ValueError(f"conformal calibration needs at least 20 rows, got {n}")
    r = (y[:, None] - raw_quantiles) / scale[:, None]
    # Lower bound: shift so that at most floor(lower_level (n+1)) - 1 residuals fall strictly
    # below it; taking the floor((n+1) a)-th smallest residual does that (conservative side).
    k_lo = math.floor(lower_level * (n + 1))
    k_hi = math.ceil(upper_level * (n + 1))
    lower = _order_stat(np.sort(r[:, 0]), k_lo)
    upper = _order_stat(np.sort(r[:, 2]), k_hi)
    if not math.isfinite(lower) or not math.isfinite(upper):
        raise ValueError(f"{n} calibration rows are too few for levels {lower_level}/{upper_level}")
    median = float(np.median(r[:, 1]))
    return ConformalOffsets(
        lower=lower,
        median=median,
        upper=upper,
        n_calibration=n,
        lower_level=lower_level,
        upper_level=upper_level,
    )


def apply_offsets(
    raw_quantiles: np.ndarray, scale: np.ndarray, offsets: ConformalOffsets
) -> np.ndarray:
    """Calibrated (n, 3) quantiles, sorted per row so that p05 <= p50 <= p95 always holds."""
    shift = np.array([offsets.lower, offsets.median, offsets.upper])
    out = raw_quantiles + scale[:, None] * shift[None, :]
    # Sorting is the rearrangement of Chernozhukov et al.: it never worsens pinball loss.
    return np.sort(out, axis=1)


# -- conditional coverage ----------------------------------------------------------------------

# A coverage cell smaller than this is pooled with its neighbour: on fewer rows a 90% interval's
# coverage wanders more than the 85-95% band by chance alone.
MIN_CELL_ROWS = 300
WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# The feature catalog's volatility-regime flags, in calm-to-wild order.
REGIME_FLAGS: tuple[str, ...] = (
    "regime_vol_compressed",
    "regime_vol_balanced",
    "regime_vol_dispersed",
)
UNKNOWN = "unknown"


def weekday_of(frame: pl.DataFrame, date_column: str = "date") -> pl.Series:
    """The feature day's weekday as a short name (the session a prediction is made after)."""
    names = pl.Series(WEEKDAYS)
    return names.gather(frame[date_column].dt.weekday() - 1).alias("weekday")


def regime_of(frame: pl.DataFrame) -> pl.Series:
    """The volatility regime of D per row: the catalog's one-hot flags, or a ``regime_vol``
    level (the synthetic frame's), else ``unknown``."""
    flags = [c for c in REGIME_FLAGS if c in frame.columns]
    if flags:
        expr = pl.lit(UNKNOWN)
        for c in reversed(flags):
            expr = (
                pl.when(pl.col(c) == 1).then(pl.lit(c.removeprefix("regime_vol_"))).otherwise(expr)
            )
        return frame.select(expr.alias("regime")).to_series()
    if "regime_vol" in frame.columns:
        return (
            frame.select(
                pl.col("regime_vol").cast(pl.Float64).round(3).cast(pl.String).fill_null(UNKNOWN)
            )
            .to_series()
            .alias("regime")
        )
    return pl.Series("regime", [UNKNOWN] * frame.height)


def pool_small_cells(keys: np.ndarray, order: Sequence[Any], min_rows: int) -> np.ndarray:
    """Labels after merging cells of fewer than ``min_rows`` rows with their next neighbour in
    ``order`` (a short last group joins the one before): every pooled cell holds >= min_rows
    rows unless the whole set is smaller. Labels are the members joined with ``+``."""
    counts = {k: int(np.sum(keys == k)) for k in order}
    groups: list[list[Any]] = []
    current: list[Any] = []
    size = 0
    for k in order:
        if counts[k] == 0:
            continue
        current.append(k)
        size += counts[k]
        if size >= min_rows:
            groups.append(current)
            current, size = [], 0
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    label = {k: "+".join(str(m) for m in g) for g in groups for k in g}
    return np.array([label.get(k, str(k)) for k in keys.tolist()], dtype=object)


def decile_of(values: np.ndarray) -> np.ndarray:
    """0-9 decile of each value within the given rows (ties broken by position)."""
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    return (ranks * 10 // max(values.size, 1)).astype(np.int64)


def coverage_cells(frame: pl.DataFrame, scale: np.ndarray) -> dict[str, np.ndarray]:
    """The three ways the desk slices coverage: weekday, regime and predicted-scale decile."""
    weekday = weekday_of(frame).to_numpy()
    regime = regime_of(frame).to_numpy()
    return {"weekday": weekday, "regime": regime, "scale_decile": decile_of(scale)}


def _order(dimension: str, keys: np.ndarray) -> list[Any]:
    present = set(keys.tolist())
    if dimension == "weekday":
        return [d for d in WEEKDAYS if d in present]
    if dimension == "regime":
        known = [r.removeprefix("regime_vol_") for r in REGIME_FLAGS]
        rest = sorted(present - set(known))
        return [r for r in known if r in present] + rest
    return sorted(present)


def conditional_coverage(
    frame: pl.DataFrame,
    scale: np.ndarray,
    *,
    target: str = "next_day_net_profit",
    min_rows: int = MIN_CELL_ROWS,
) -> pl.DataFrame:
    """Coverage of the p05-p95 interval overall, on rows with a non-zero outcome, and on those
    rows by weekday, regime and predicted-scale decile (cells pooled to >= ``min_rows`` rows).

    Columns: dimension, cell, rows, coverage. The non-zero rows are where the interval matters:
    a day without trading is inside almost any interval and flatters coverage.
    """
    y = frame[target].cast(pl.Float64).to_numpy()
    inside = (y >= frame["p05"].to_numpy()) & (y <= frame["p95"].to_numpy())
    moved = y != 0
    out: list[dict[str, Any]] = [
        {"dimension": "all", "cell": "all", "rows": int(y.size), "coverage": float(inside.mean())},
        {
            "dimension": "non_zero",
            "cell": "all",
            "rows": int(moved.sum()),
            "coverage": float(inside[moved].mean()) if moved.any() else math.nan,
        },
    ]
    if moved.any():
        cells = coverage_cells(frame.filter(pl.Series(moved)), scale[moved])
        hit = inside[moved]
        for dimension, keys in cells.items():
            order = _order(dimension, keys)
            pooled = pool_small_cells(keys, order, min_rows)
            # Cells in the dimension's own order (Mon..Sun, calm..wild, decile 0..9).
            first = {cell: order.index(k) for k, cell in zip(keys.tolist(), pooled, strict=True)}
            for cell in sorted(first, key=lambda c: first[c]):
                mask = pooled == cell
                out.append(
                    {
                        "dimension": dimension,
                        "cell": str(cell),
                        "rows": int(mask.sum()),
                        "coverage": float(hit[mask].mean()),
                    }
                )
    return pl.DataFrame(out)


# -- Mondrian conformal ------------------------------------------------------------------------

# Fewer calibration rows than this in a group: the group gets no offsets of its own (its rows
# use their other groups'). At 100 rows the 5% tail is about the 5th smallest residual.
MIN_CALIBRATION_CELL_ROWS = 100
SCALE_BANDS = 5
# The coverage aimed at on rows with a non-zero outcome is what leaves the whole 90% when days
# without trading (always inside) are counted, kept within these bounds (see ``active_level``).
ACTIVE_LEVEL_BOUNDS = (0.87, 0.90)
OVERALL = "overall"


def active_level(
    zero_share: float,
    level: float = 1 - 2 * LOWER_Q,
    bounds: tuple[float, float] = ACTIVE_LEVEL_BOUNDS,
) -> float:
    """Coverage to calibrate for on rows with a non-zero outcome (the hurdle).

    An account-day without trading ends at exactly 0, inside almost any interval: calibrated on
    every row, the interval covers 90% overall but only (0.9 - z) / (1 - z) of the rows that
    moved (z the share of zero outcomes; 84% at z = 1/3), the rows the desk hedges. Calibrated
    on the moving rows at this level instead, overall coverage is z + (1 - z) * level: 90% when
    possible, and never at the cost of less than ``bounds[0]`` where it matters.
    """
    target = (level - zero_share) / (1.0 - zero_share) if zero_share < 1 else bounds[1]
    return float(np.clip(target, *bounds))


@dataclass(frozen=True)
class MondrianOffsets:
    """Conformal offsets per group of rows: scale band, weekday of D, volatility regime of D.

    One offset for every row covers 90% on average but not where it matters: a Friday's outcome
    spans a weekend, a wild regime is not a calm one, a quiet account's move is not a wild
    one's. Each group is calibrated on its own rows with a non-zero outcome (Mondrian
    conformal, at ``level`` for those rows, see ``active_level``); a row belongs to one group of
    each kind and takes the widest of its groups' intervals (lowest lower offset, highest upper
    offset), so it is covered at least at the level of each of its groups. A group with too
    few calibration rows has no offsets; a row with none of its groups fitted uses the overall
    ones. A frame without ``date`` (weekday unknown) uses its other groups.
    """

    overall: ConformalOffsets
    scale_edges: tuple[float, ...]  # inner edges of the scale bands, from calibration rows
    groups: dict[str, ConformalOffsets]
    level: float = 1 - 2 * LOWER_Q  # coverage calibrated for on rows with a non-zero outcome
    zero_share: float = 0.0  # of the calibration rows

    def bands(self, scale: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.scale_edges), scale, side="right")

    def row_groups(
        self, scale: np.ndarray, weekday: np.ndarray | None, regime: np.ndarray | None
    ) -> list[np.ndarray]:
        """Each row's group key of every kind known for these rows."""
        keys = [np.array([f"scale_band={b}" for b in self.bands(scale)], dtype=object)]
        if weekday is not None:
            keys.append(np.array([f"weekday={w}" for w in weekday], dtype=object))
        if regime is not None:
            keys.append(np.array([f"regime={r}" for r in regime], dtype=object))
        return keys

    def shifts(
        self, scale: np.ndarray, weekday: np.ndarray | None, regime: np.ndarray | None = None
    ) -> np.ndarray:
        """(n, 3) offsets in scale units: the widest of each row's fitted groups."""
        n = scale.size
        lower = np.full(n, np.inf)
        upper = np.full(n, -np.inf)
        median = np.full(n, self.overall.median)
        for kind, keys in enumerate(self.row_groups(scale, weekday, regime)):
            for key in np.unique(keys):
                found = self.groups.get(str(key))
                if found is None:
                    continue
                rows = keys == key
                lower[rows] = np.minimum(lower[rows], found.lower)
                upper[rows] = np.maximum(upper[rows], found.upper)
                if kind == 0:  # the scale band's median: the finest centre
                    median[rows] = found.median
        lower = np.where(np.isfinite(lower), lower, self.overall.lower)
        upper = np.where(np.isfinite(upper), upper, self.overall.upper)
        return np.column_stack([lower, median, upper])

    def as_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.as_dict(),
            "scale_edges": list(self.scale_edges),
            "groups": {k: v.as_dict() for k, v in self.groups.items()},
            "level": self.level,
            "zero_share": self.zero_share,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> MondrianOffsets:
        return cls(
            overall=ConformalOffsets(**spec["overall"]),
            scale_edges=tuple(float(e) for e in spec["scale_edges"]),
            groups={k: ConformalOffsets(**v) for k, v in spec["groups"].items()},
            level=float(spec["level"]),
            zero_share=float(spec["zero_share"]),
        )


def fit_mondrian(
    raw_quantiles: np.ndarray,
    y: np.ndarray,
    scale: np.ndarray,
    weekday: np.ndarray | None,
    regime: np.ndarray | None = None,
    *,
    n_bands: int = SCALE_BANDS,
    min_rows: int = MIN_CALIBRATION_CELL_ROWS,
    bounds: tuple[float, float] = ACTIVE_LEVEL_BOUNDS,
) -> MondrianOffsets:
    """Offsets overall and per group from calibration rows (see ``MondrianOffsets``)."""
    moved = y != 0
    zero_share = float(1.0 - moved.mean())
    level = active_level(zero_share, bounds=bounds)
    tail = (1.0 - level) / 2.0
    if moved.sum() < 20:
        moved = np.ones_like(moved)  # next to no trading: calibrate on every row
    overall = fit_offsets(
        raw_quantiles[moved], y[moved], scale[moved], lower_level=tail, upper_level=1 - tail
    )
    edges = tuple(float(e) for e in np.quantile(scale[moved], np.linspace(0, 1, n_bands + 1)[1:-1]))
    spec = MondrianOffsets(
        overall=overall, scale_edges=edges, groups={}, level=level, zero_share=zero_share
    )
    kinds = spec.row_groups(scale, weekday, regime)

    def groups_at(tail: float) -> dict[str, ConformalOffsets]:
        groups: dict[str, ConformalOffsets] = {}
        for keys in kinds:
            for key in np.unique(keys[moved]):
                rows = moved & (keys == key)
                if rows.sum() >= min_rows:
                    groups[str(key)] = fit_offsets(
                        raw_quantiles[rows],
                        y[rows],
                        scale[rows],
                        lower_level=tail,
                        upper_level=1 - tail,
                    )
        return groups

    def covered(groups: dict[str, ConformalOffsets]) -> float:
        fitted = MondrianOffsets(overall, edges, groups, level, zero_share)
        q = apply_mondrian(raw_quantiles[moved], scale[moved], fitted, *_rows(moved))
        return float(np.mean((y[moved] >= q[:, 0]) & (y[moved] <= q[:, 2])))

    def _rows(mask: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        return (
            weekday[mask] if weekday is not None else None,
            regime[mask] if regime is not None else None,
        )

    # The widest of several groups covers more than each group's own level; the groups' tails
    # are widened together (bisection) until the calibration rows that moved are covered at
    # ``level`` again, so the union is no wider than it needs to be.
    low, high = tail, min(2.0 * tail, 0.25)
    groups = groups_at(low)
    if covered(groups_at(high)) >= level:
        low = high
    else:
        for _ in range(12):
            mid = 0.5 * (low + high)
            if covered(groups_at(mid)) >= level:
                low = mid
            else:
                high = mid
    groups = groups_at(low)
    return MondrianOffsets(
        overall=overall, scale_edges=edges, groups=groups, level=level, zero_share=zero_share
    )


def apply_mondrian(
    raw_quantiles: np.ndarray,
    scale: np.ndarray,
    offsets: MondrianOffsets,
    weekday: np.ndarray | None,
    regime: np.ndarray | None = None,
) -> np.ndarray:
    """Calibrated (n, 3) quantiles with each row's group offsets, sorted per row."""
    out = raw_quantiles + scale[:, None] * offsets.shifts(scale, weekday, regime)
    return np.sort(out, axis=1)
