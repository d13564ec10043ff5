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

Day-level features (one value for every account of a day: the calendar, the market regime)
have no distribution within a day: one day's value against the training days' spread always
reads as a huge PSI. ``build_reference`` given the day column lists them apart
(``DriftReference.day_level``) and leaves them out of the daily comparison.

Even an account-level feature differs from day to day in training itself: a few hundred
accounts per day leave sampling noise in ten bins, the market of the day moves every account's
"return of the symbols traded", accounts age. Given the day column, the reference also keeps
each feature's typical single-day PSI among the training days (``day_psi``, the median), and
a day's drift is read as the excess over it (``FeatureDrift.excess``): a new day that differs
from training as much as training days differ from each other has not drifted.

No Dagster here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import ks_2samp

N_BINS = 10
EPSILON = 1e-4
SAMPLE_SIZE = 2_000
# Below this many distinct training values a feature is treated as discrete (PSI on its values).
MIN_CONTINUOUS_VALUES = 20
# Training days measured against the whole reference for the typical single-day PSI.
BASELINE_DAYS = 30
NULL_BIN = "<null>"
OTHER_CATEGORY = "<other>"
PSI_MODERATE = 0.1
PSI_LARGE = 0.25

# One row per day, champion version and feature: the warehouse's feature_drift_daily.
DRIFT_ROW_SCHEMA = pl.Schema(
    {
        "date": pl.Date(),
        "model_version": pl.String(),
        "feature": pl.String(),
        "psi": pl.Float64(),
        "training_day_psi": pl.Float64(),
        "excess_psi": pl.Float64(),
        "ks": pl.Float64(),
        "importance": pl.Float64(),
        "level": pl.String(),
        "rows": pl.Int64(),
    }
)


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
    day_psi: float = 0.0  # typical PSI of one training day against the whole training

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "edges": list(self.edges),
            "values": list(self.values),
            "shares": list(self.shares),
            "sample": list(self.sample),
            "importance": self.importance,
            "day_psi": self.day_psi,
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
            day_psi=float(data.get("day_psi", 0.0)),
        )


@dataclass(frozen=True)
class DriftReference:
    """Every feature's training distribution, as stored with a model version."""

    features: tuple[FeatureReference, ...]
    rows: int
    # Features with one value per day in training: not compared day by day (see above).
    day_level: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "features": [f.to_json() for f in self.features],
            "day_level": list(self.day_level),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftReference:
        return cls(
            features=tuple(FeatureReference.from_json(f) for f in data["features"]),
            rows=int(data["rows"]),
            day_level=tuple(data.get("day_level", ())),
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


def day_level_features(frame: pl.DataFrame, features: Sequence[str], day_column: str) -> list[str]:
    """The features with at most one distinct value (nulls aside) on every day of ``frame``
    but several across days, when it spans more than one day (on a single day every feature
    would qualify). A feature constant throughout stays compared: if it starts to vary, that
    is drift."""
    if frame.height == 0 or frame[day_column].n_unique() < 2:
        return []
    per_day = frame.group_by(day_column).agg(pl.col(f).drop_nulls().n_unique() for f in features)
    most = per_day.select(pl.col(f).max() for f in features).row(0, named=True)
    overall = frame.select(pl.col(f).drop_nulls().n_unique() for f in features).row(0, named=True)
    return [f for f in features if most[f] <= 1 and overall[f] > 1]


def build_reference(
    frame: pl.DataFrame,
    features: Sequence[str],
    importance: Mapping[str, float] | None = None,
    *,
    seed: int = 0,
    day_column: str | None = None,
) -> DriftReference:
    """The training reference of ``features`` in ``frame``; ``importance`` is normalised to
    shares over the compared features (features the model never split on get 0). With
    ``day_column``, day-level features are listed apart and not compared."""
    importance = importance or {}
    day_level = day_level_features(frame, features, day_column) if day_column else []
    compared = [f for f in features if f not in day_level]
    total = sum(max(importance.get(f, 0.0), 0.0) for f in compared)
    rng = np.random.default_rng(seed)
    refs = tuple(
        _feature_reference(
            frame[f], max(importance.get(f, 0.0), 0.0) / total if total else 1 / len(compared), rng
        )
        for f in compared
    )
    reference = DriftReference(features=refs, rows=frame.height, day_level=tuple(day_level))
    return with_day_baseline(reference, frame, day_column) if day_column else reference


def with_day_baseline(
    reference: DriftReference, frame: pl.DataFrame, day_column: str
) -> DriftReference:
    """The reference with each feature's median single-day PSI over (up to ``BASELINE_DAYS``
    evenly spread) days of ``frame``, the training rows it was built from."""
    days = frame[day_column].unique().sort().to_list()
    if len(days) < 2:
        return reference
    picked = [days[round(i)] for i in np.linspace(0, len(days) - 1, min(BASELINE_DAYS, len(days)))]
    per_day = [
        {
            f.name: f.psi
            for f in compare(
                reference, frame.filter(pl.col(day_column) == day), with_ks=False
            ).features
        }
        for day in dict.fromkeys(picked)
    ]
    return DriftReference(
        features=tuple(
            replace(f, day_psi=float(np.median([d[f.name] for d in per_day])))
            for f in reference.features
        ),
        rows=reference.rows,
        day_level=reference.day_level,
    )


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
    baseline: float = 0.0  # the reference's typical single-day PSI of this feature

    @property
    def excess(self) -> float:
        """PSI beyond what a training day itself shows: the drift to act on."""
        return max(self.psi - self.baseline, 0.0)

    @property
    def level(self) -> str:
        if self.excess >= PSI_LARGE:
            return "large"
        return "moderate" if self.excess >= PSI_MODERATE else "stable"


@dataclass(frozen=True)
class DriftReport:
    features: tuple[FeatureDrift, ...]
    rows: int

    @property
    def weighted_psi(self) -> float:
        """PSI weighted by importance share: the model's exposure to the day's drift."""
        return float(sum(f.psi * f.importance for f in self.features))

    @property
    def weighted_excess_psi(self) -> float:
        """Excess PSI (beyond a training day's own) weighted by importance share."""
        return float(sum(f.excess * f.importance for f in self.features))

    @property
    def max_psi(self) -> float:
        return max((f.psi for f in self.features), default=0.0)

    @property
    def max_excess_psi(self) -> float:
        return max((f.excess for f in self.features), default=0.0)

    def top(self, n: int = 10) -> list[FeatureDrift]:
        """The features drifting most beyond their day-to-day level in training."""
        return sorted(self.features, key=lambda f: (-f.excess, -f.psi, f.name))[:n]

    def count(self, level: str) -> int:
        return sum(1 for f in self.features if f.level == level)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "feature": [f.name for f in self.features],
                "psi": [f.psi for f in self.features],
                "excess_psi": [f.excess for f in self.features],
                "ks": [f.ks for f in self.features],
                "importance": [f.importance for f in self.features],
                "level": [f.level for f in self.features],
            },
            schema={
                "feature": pl.String,
                "psi": pl.Float64,
                "excess_psi": pl.Float64,
                "ks": pl.Float64,
                "importance": pl.Float64,
                "level": pl.String,
            },
        )


def _discrete_text(series: pl.Series) -> pl.Series:
    """A discrete numeric feature's values as the reference keys them (``repr(float)``)."""
    return pl.Series(
        [None if v is None or math.isnan(v) else repr(float(v)) for v in _as_float(series)],
        dtype=pl.String,
    )


def _day_shares(ref: FeatureReference, series: pl.Series) -> np.ndarray:
    if ref.kind == "continuous":
        return np.asarray(_shares(_continuous_counts(_as_float(series), ref.edges)))
    text = series.cast(pl.String) if ref.kind == "categorical" else _discrete_text(series)
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


def compare(reference: DriftReference, frame: pl.DataFrame, *, with_ks: bool = True) -> DriftReport:
    """Every reference feature of ``frame`` (one day's rows) against its training reference
    (``with_ks=False`` skips the KS statistics). A feature missing from the frame is a schema
    change, not drift: it raises."""
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
        if with_ks and ref.kind == "continuous" and ref.sample:
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
                baseline=ref.day_psi,
            )
        )
    return DriftReport(features=tuple(out), rows=frame.height)


def _typical(ref: FeatureReference | None, series: pl.Series) -> str:
    """A feature's typical value, as a person reads it: the median of a continuous feature, the
    most common value (and its share) of any other; nulls said as such."""
    if series.len() == 0:
        return ""
    if ref is not None and ref.kind == "continuous":
        values = _as_float(series)
        finite = values[np.isfinite(values)]
        return f"median {np.median(finite):.4g}" if finite.size else "all null"
    text = _discrete_text(series) if ref is not None and ref.kind == "discrete" else series
    counts = text.cast(pl.String).value_counts(sort=True)
    value, n = counts.row(0)
    return f"{NULL_BIN if value is None else value} ({n / series.len():.0%})"


def _reference_typical(ref: FeatureReference) -> str:
    if ref.kind == "continuous":
        return f"median {np.median(ref.sample):.4g}" if ref.sample else "all null"
    labels = [*ref.values, NULL_BIN]
    best = int(np.argmax(ref.shares))
    return f"{labels[best]} ({ref.shares[best]:.0%})"


def typical_values(
    reference: DriftReference, frame: pl.DataFrame, names: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """For each of ``names``: (typical value in training, typical value in ``frame``)."""
    refs = {f.name: f for f in reference.features}
    return {
        name: (_reference_typical(refs[name]), _typical(refs.get(name), frame[name]))
        for name in names
        if name in refs and name in frame.columns
    }


def drift_rows(report: DriftReport, day: dt.date, model_version: str) -> pl.DataFrame:
    """The report as rows of ``DRIFT_ROW_SCHEMA``: the day's drift per feature, kept over time."""
    return pl.DataFrame(
        {
            "date": [day] * len(report.features),
            "model_version": [model_version] * len(report.features),
            "feature": [f.name for f in report.features],
            "psi": [f.psi for f in report.features],
            "training_day_psi": [f.baseline for f in report.features],
            "excess_psi": [f.excess for f in report.features],
            "ks": [f.ks for f in report.features],
            "importance": [f.importance for f in report.features],
            "level": [f.level for f in report.features],
            "rows": [f.rows for f in report.features],
        },
        schema=DRIFT_ROW_SCHEMA,
    )
