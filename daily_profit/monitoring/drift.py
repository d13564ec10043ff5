"""Feature drift: how far a day's features have moved from what the champion was trained on.

At training time the model bundle stores a reference per feature (``build_reference``): the
training distribution cut into quantile bins (plus a bin for nulls), a category share table for
string features, a small sample of the values for the Kolmogorov-Smirnov statistic, and the
feature's share of the model's importance. Each day, ``compare`` measures every feature of the
day against it:

- the population stability index, PSI = sum over bins of (p_day - p_ref) * ln(p_day / p_ref),
  with empty bins floored at ``EPSILON``; by the usual reading < 0.1 is stable, 0.1-0.25 a
  moderate shift, > 0.25 a large one;
- the two-sample KS statistic against the reference sample, for continuous features (it is
  meaningless on a handful of distinct values, so flags and small counts get PSI only);
- one number for the model: PSI weighted by the feature's importance share, so a drifting
  feature the model ignores does not trigger a retrain and one it leans on does.

No Dagster here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import ks_2samp

N_BINS = 10
EPSILON = 1e-4
SAMPLE_SIZE = 2_000
# Below this many distinct training values a feature is treated as discrete (PSI on its values).
MIN_CONTINUOUS_VALUES = 20
NULL_BIN = "<null>"
OTHER_CATEGORY = "<other>"
PSI_MODERATE = 0.1
PSI_LARGE = 0.25


@dataclass(frozen=True)
class FeatureReference:
    """The training distribution of one feature."""

    name: str
    kind: str  # "continuous" | "discrete" | "categorical"
    # continuous: interior bin edges; discrete/categorical: the values, as strings
    edges: tuple[float, ...] = ()
    values: tuple[str, ...] = ()
    shares: tuple[float, ...] = ()  # one per bin / value, then the null bin
    sample: tuple[float, ...] = field(default=(), repr=False)
    importance: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "edges": list(self.edges),
            "values": list(self.values),
            "shares": list(self.shares),
            "sample": list(self.sample),
            "importance": self.importance,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureReference:
        return cls(
            name=data["name"],
            kind=data["kind"],
            edges=tuple(float(x) for x in data.get("edges", ())),
            values=tuple(str(x) for x in data.get("values", ())),
            shares=tuple(float(x) for x in data["shares"]),
            sample=tuple(float(x) for x in data.get("sample", ())),
            importance=float(data.get("importance", 0.0)),
        )


@dataclass(frozen=True)
class DriftReference:
    """Every feature's training distribution, as stored with a model version."""

    features: tuple[FeatureReference, ...]
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "features": [f.to_json() for f in self.features]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftReference:
        return cls(
            features=tuple(FeatureReference.from_json(f) for f in data["features"]),
            rows=int(data["rows"]),
        )


def _shares(counts: np.ndarray) -> tuple[float, ...]:
    total = counts.sum()
    return tuple((counts / total).tolist()) if total else tuple([0.0] * len(counts))


def _continuous_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts per bin (len(edges) + 1 bins) and, last, the nulls (NaN)."""
    nulls = np.isnan(values)
    bins = np.searchsorted(np.asarray(edges), values[~nulls], side="right")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(np.float64)
    return np.append(counts, float(nulls.sum()))


def _as_float(series: pl.Series) -> np.ndarray:
    return series.cast(pl.Float64).fill_nan(None).to_numpy().astype(np.float64)


def _feature_reference(
    series: pl.Series, importance: float, rng: np.random.Generator
) -> FeatureReference:
    name = series.name
    if series.dtype == pl.String or series.dtype == pl.Categorical:
        text = series.cast(pl.String)
        counts = text.drop_nulls().value_counts(sort=True)
        values = tuple(counts[name].to_list())
        shares = (*counts["count"].to_list(), text.null_count())
        return FeatureReference(
            name=name,
            kind="categorical",
            values=values,
            shares=_shares(np.asarray(shares, dtype=np.float64)),
            importance=importance,
        )
    values = _as_float(series)
    finite = values[np.isfinite(values)]
    distinct = np.unique(finite)
    if len(distinct) < MIN_CONTINUOUS_VALUES:
        keys = tuple(repr(float(v)) for v in distinct)
        counts = [float((finite == v).sum()) for v in distinct] + [float(np.isnan(values).sum())]
        return FeatureReference(
            name=name,
            kind="discrete",
            values=keys,
            shares=_shares(np.asarray(counts)),
            importance=importance,
        )
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, N_BINS + 1)[1:-1]))
    sample = rng.choice(finite, size=min(SAMPLE_SIZE, len(finite)), replace=False)
    return FeatureReference(
        name=name,
        kind="continuous",
        edges=tuple(edges.tolist()),
        shares=_shares(_continuous_counts(values, edges)),
        sample=tuple(np.sort(sample).tolist()),
        importance=importance,
    )


def build_reference(
    frame: pl.DataFrame,
    features: Sequence[str],
    importance: Mapping[str, float] | None = None,
    *,
    seed: int = 0,
) -> DriftReference:
    """The training reference of ``features`` in ``frame``; ``importance`` is normalised to
    shares (features the model never split on get 0)."""
    importance = importance or {}
    total = sum(max(importance.get(f, 0.0), 0.0) for f in features)
    rng = np.random.default_rng(seed)
    refs = tuple(
        _feature_reference(
            frame[f], max(importance.get(f, 0.0), 0.0) / total if total else 1 / len(features), rng
        )
        for f in features
    )
    return DriftReference(features=refs, rows=frame.height)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float
    ks: float | None
    importance: float
    rows: int

    @property
    def level(self) -> str:
        if self.psi >= PSI_LARGE:
            return "large"
        return "moderate" if self.psi >= PSI_MODERATE else "stable"


@dataclass(frozen=True)
class DriftReport:
    features: tuple[FeatureDrift, ...]
    rows: int

    @property
    def weighted_psi(self) -> float:
        """PSI weighted by importance share: the model's exposure to the day's drift."""
        return float(sum(f.psi * f.importance for f in self.features))

    @property
    def max_psi(self) -> float:
        return max((f.psi for f in self.features), default=0.0)

    def top(self, n: int = 10) -> list[FeatureDrift]:
        return sorted(self.features, key=lambda f: (-f.psi, f.name))[:n]

    def count(self, level: str) -> int:
        return sum(1 for f in self.features if f.level == level)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "feature": [f.name for f in self.features],
                "psi": [f.psi for f in self.features],
                "ks": [f.ks for f in self.features],
                "importance": [f.importance for f in self.features],
                "level": [f.level for f in self.features],
            },
            schema={
                "feature": pl.String,
                "psi": pl.Float64,
                "ks": pl.Float64,
                "importance": pl.Float64,
                "level": pl.String,
            },
        )


def _day_shares(ref: FeatureReference, series: pl.Series) -> np.ndarray:
    if ref.kind == "continuous":
        return np.asarray(_shares(_continuous_counts(_as_float(series), ref.edges)))
    if ref.kind == "categorical":
        text = series.cast(pl.String)
    else:
        text = pl.Series(
            [None if v is None or math.isnan(v) else repr(float(v)) for v in _as_float(series)],
            dtype=pl.String,
        )
    known = {v: i for i, v in enumerate(ref.values)}
    # An unseen value gets its own bin with a reference share of zero (floored at EPSILON),
    # so a brand-new category shows as drift instead of vanishing.
    counts = np.zeros(len(ref.values) + 2)
    for value, n in text.value_counts().iter_rows():
        if value is None:
            counts[len(ref.values)] += n
        else:
            counts[known.get(value, len(ref.values) + 1)] += n
    return np.asarray(_shares(counts))


def compare(reference: DriftReference, frame: pl.DataFrame) -> DriftReport:
    """Every reference feature of ``frame`` (one day's rows) against its training reference.
    A feature missing from the frame is a schema change, not drift: it raises."""
    missing = [f.name for f in reference.features if f.name not in frame.columns]
    if missing:
        raise ValueError(f"features missing from the day's rows: {missing[:10]}")
    out = []
    for ref in reference.features:
        series = frame[ref.name]
        day = _day_shares(ref, series)
        expected = np.asarray(ref.shares, dtype=np.float64)
        if ref.kind != "continuous":
            expected = np.append(expected, 0.0)  # the unseen-values bin
        ks = None
        if ref.kind == "continuous" and ref.sample:
            values = _as_float(series)
            values = values[np.isfinite(values)]
            if len(values):
                ks = float(ks_2samp(np.asarray(ref.sample), values).statistic)
        out.append(
            FeatureDrift(
                name=ref.name,
                psi=psi(expected, day) if frame.height else 0.0,
                ks=ks,
                importance=ref.importance,
                rows=frame.height,
            )
        )
    return DriftReport(features=tuple(out), rows=frame.height)
