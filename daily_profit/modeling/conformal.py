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
# The synthetic frame's regime: its volatility multiplier, where the catalog has flags.
REGIME_LEVEL = "regime_vol"
UNKNOWN = "unknown"


def weekday_of(frame: pl.DataFrame, date_column: str = "date") -> pl.Series:
    """The feature day's weekday as a short name (the session a prediction is made after)."""
    names = pl.Series(WEEKDAYS)
    return names.gather(frame[date_column].dt.weekday() - 1).alias("weekday")


def regime_columns(columns: Sequence[str]) -> list[str]:
    """Which of a frame's ``columns`` ``regime_of`` reads."""
    return [c for c in (*REGIME_FLAGS, REGIME_LEVEL) if c in columns]


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
    if REGIME_LEVEL in frame.columns:
        return (
            frame.select(
                pl.col(REGIME_LEVEL).cast(pl.Float64).round(3).cast(pl.String).fill_null(UNKNOWN)
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
    target: str = "net_profit_next_session",
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
# A band's own tail may widen its intervals by half or narrow them by a third, not more.
BAND_STRETCH_BOUNDS = (0.67, 1.5)
# The coverage aimed at on rows with a non-zero outcome is what leaves the whole at
# ``OVERALL_AIM`` when spans without trading (always inside) are counted, kept within these
# bounds (see ``active_level``). With a floor of 88.5% the whole sat at 91-93% on the sandbox
# (a quarter of its session spans untraded), at the edge of the 88-92% band; at 86.5% both
# bands have room: about 91% overall and 88% on the rows that moved.
ACTIVE_LEVEL_BOUNDS = (0.865, 0.90)
# A point above 90%: the rows that move are where the interval matters and the narrower band
# (85-95% per weekday, regime and scale cell) is on their low side. On the seed sweep they
# covered 0.6 points below their aim out of sample; with 90.5% the cells sat around 86.5%, and
# a cell of a few hundred rows from eight or nine sessions wanders by 3 points. Overall coverage
# stayed within 88-92% on every firm (at most 91.3%).
OVERALL_AIM = 0.91
OVERALL = "overall"


def active_level(
    zero_share: float,
    level: float = OVERALL_AIM,
    bounds: tuple[float, float] = ACTIVE_LEVEL_BOUNDS,
) -> float:
    """Coverage to calibrate for on rows with a non-zero outcome (the hurdle).

    An account-day without trading ends at exactly 0, inside almost any interval: calibrated on
    every row, the interval covers 90% overall but only (0.9 - z) / (1 - z) of the rows that
    moved (z the share of zero outcomes; 84% at z = 1/3), the rows the desk hedges. Calibrated
    on the moving rows at this level instead, overall coverage is z + (1 - z) * level: ``level``
    (``OVERALL_AIM``) when possible, and never at the cost of less than ``bounds[0]`` where it
    matters.
    """
    target = (level - zero_share) / (1.0 - zero_share) if zero_share < 1 else bounds[1]
    return float(np.clip(target, *bounds))


@dataclass(frozen=True)
class MondrianOffsets:
    """Conformal offsets for groups of rows: scale band, weekday of D, volatility regime of D.

    One offset for every row covers 90% on average but not where it matters: a Friday's outcome
    spans a weekend, a wild regime is not a calm one, a quiet account's move is not a wild
    one's. Each group gets a factor on the row's scale (``factors``: log factors per group key,
    fitted by backfitting the median absolute residual in scale units of the calibration rows
    that moved, one kind of group at a time), so that residuals divided by s(x) x the row's
    factors look alike in every group; the conformal offsets are then fitted on those residuals
    at ``level`` (see ``active_level``) and each row's interval is its raw proposal stretched
    about its median by the factors, plus s(x) x factors x offsets. Groups combine (a dispersed Friday gets both factors) where
    separate Mondrian cells of every combination would hold too few rows. A group with too few
    calibration rows has factor 1; a frame without ``date`` (weekday unknown) or regime skips
    those factors.
    """

    overall: ConformalOffsets  # fitted on residuals in units of s(x) x factors
    scale_edges: tuple[float, ...]  # inner edges of the scale bands, from calibration rows
    factors: dict[str, float]  # log factor per group key ("weekday=Fri", ...)
    level: float = 1 - 2 * LOWER_Q  # coverage calibrated for on rows with a non-zero outcome
    zero_share: float = 0.0  # of the calibration rows
    # Per scale band, the stretch about p50 that makes the band's own calibration rows cover
    # at ``level`` (empty: none, a bundle fitted before them).
    band_stretch: tuple[float, ...] = ()

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

    def row_factors(
        self, scale: np.ndarray, weekday: np.ndarray | None, regime: np.ndarray | None = None
    ) -> np.ndarray:
        """Each row's multiplier of s(x): the product of its groups' factors."""
        log = np.zeros(scale.size)
        for keys in self.row_groups(scale, weekday, regime):
            log += np.array([self.factors.get(str(k), 0.0) for k in keys])
        return np.exp(log)

    def as_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.as_dict(),
            "scale_edges": list(self.scale_edges),
            "factors": self.factors,
            "level": self.level,
            "zero_share": self.zero_share,
            "band_stretch": list(self.band_stretch),
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> MondrianOffsets:
        return cls(
            overall=ConformalOffsets(**spec["overall"]),
            scale_edges=tuple(float(e) for e in spec["scale_edges"]),
            factors={k: float(v) for k, v in spec["factors"].items()},
            level=float(spec["level"]),
            zero_share=float(spec["zero_share"]),
            band_stretch=tuple(float(b) for b in spec.get("band_stretch", ())),
        )

    def row_band_stretch(self, scale: np.ndarray) -> np.ndarray:
        """Each row's band stretch (1 without them)."""
        if not self.band_stretch:
            return np.ones(scale.size)
        return np.asarray(self.band_stretch)[self.bands(scale)]


def needed_stretch(y: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Per row, the smallest factor by which the interval's halves, stretched about p50,
    contain the outcome: (y - p50) / (p95 - p50) above the median, (p50 - y) / (p50 - p05)
    below it (0 at the median; at most 1 when the interval covered it)."""
    p05, p50, p95 = quantiles[:, 0], quantiles[:, 1], quantiles[:, 2]
    up = np.maximum(p95 - p50, 1e-9)
    down = np.maximum(p50 - p05, 1e-9)
    return np.where(y >= p50, (y - p50) / up, (p50 - y) / down)


def conformal_stretch(y: np.ndarray, quantiles: np.ndarray, level: float) -> float:
    """The stretch about p50 after which ``level`` of the rows are covered: the conformal
    (n + 1) quantile of ``needed_stretch``."""
    needed = np.sort(needed_stretch(y, quantiles))
    k = min(y.size, math.ceil(level * (y.size + 1)))
    return float(needed[k - 1])


def _group_factors(
    size: np.ndarray, kinds: list[np.ndarray], min_rows: int, sweeps: int = 8
) -> dict[str, float]:
    """Log factors per group so that median(size / product of factors) is alike in every group
    (backfitting, one kind at a time). ``size``: |residual| / s(x), positive."""
    log_size = np.log(np.maximum(size, 1e-12))
    factors: dict[str, float] = {}
    fitted = np.zeros(size.size)
    for _ in range(sweeps):
        for keys in kinds:
            own = np.array([factors.get(str(k), 0.0) for k in keys])
            rest = fitted - own
            target = float(np.median(log_size - rest))
            new_own = np.zeros(size.size)
            for key in np.unique(keys):
                rows = keys == key
                if rows.sum() >= min_rows:
                    factors[str(key)] = float(np.median(log_size[rows] - rest[rows])) - target
                    new_own[rows] = factors[str(key)]
            fitted = rest + new_own
    return factors


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
    """Group factors and offsets from calibration rows (see ``MondrianOffsets``)."""
    moved = y != 0
    zero_share = float(1.0 - moved.mean())
    level = active_level(zero_share, bounds=bounds)
    tail = (1.0 - level) / 2.0
    if moved.sum() < 20:
        moved = np.ones_like(moved)  # next to no trading: calibrate on every row
    edges = tuple(float(e) for e in np.quantile(scale[moved], np.linspace(0, 1, n_bands + 1)[1:-1]))
    shell = MondrianOffsets(
        overall=ConformalOffsets(0.0, 0.0, 0.0, 0), scale_edges=edges, factors={}
    )
    kinds = [k[moved] for k in shell.row_groups(scale, weekday, regime)]
    size = np.abs(y[moved] - raw_quantiles[moved, 1]) / scale[moved]
    factors = _group_factors(size, kinds, min_rows)
    spec = MondrianOffsets(overall=shell.overall, scale_edges=edges, factors=factors)
    factor = spec.row_factors(scale, weekday, regime)
    stretched = _stretch(raw_quantiles, factor)
    overall = fit_offsets(
        stretched[moved],
        y[moved],
        (scale * factor)[moved],
        lower_level=tail,
        upper_level=1 - tail,
    )
    # The factors level the bands' median moves, not their tails: on the seed sweep a band
    # of a firm could cover 75-80% origin after origin while another covered 95%. Each band
    # gets the stretch that makes its own calibration rows cover at ``level`` (Mondrian
    # conformal on the stretch each row needed); a band with too few rows keeps 1.
    calibrated = apply_offsets(stretched, scale * factor, overall)
    band = spec.bands(scale)[moved]
    band_stretch = tuple(
        float(
            np.clip(
                conformal_stretch(y[moved][rows], calibrated[moved][rows], level),
                *BAND_STRETCH_BOUNDS,
            )
        )
        if (rows := band == b).sum() >= min_rows
        else 1.0
        for b in range(len(edges) + 1)
    )
    return MondrianOffsets(
        overall=overall,
        scale_edges=edges,
        factors=factors,
        level=level,
        zero_share=zero_share,
        band_stretch=band_stretch,
    )


def apply_mondrian(
    raw_quantiles: np.ndarray,
    scale: np.ndarray,
    offsets: MondrianOffsets,
    weekday: np.ndarray | None,
    regime: np.ndarray | None = None,
) -> np.ndarray:
    """Calibrated (n, 3) quantiles: the raw proposal stretched about its median by the row's
    group factors, plus s(x) x factors x offsets; sorted per row."""
    factor = offsets.row_factors(scale, weekday, regime)
    calibrated = apply_offsets(_stretch(raw_quantiles, factor), scale * factor, offsets.overall)
    return _stretch(calibrated, offsets.row_band_stretch(scale))


def _stretch(raw_quantiles: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """The proposal's spread about its median times each row's factor: a group whose moves
    are twice as wide gets a proposal twice as wide, not just wider offsets."""
    median = raw_quantiles[:, 1:2]
    return median + factor[:, None] * (raw_quantiles - median)
