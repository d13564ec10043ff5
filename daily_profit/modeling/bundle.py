"""The trained model bundle: everything needed to turn feature rows into predictions.

Four XGBoost boosters share one feature list:

- ``scale``: Tweedie regression of the squared next-day net profit (log link, so always
  positive); s(x) is its square root, the root-mean-square size of tomorrow's move. It is the
  unit everything else is measured in. Modelling y^2 rather than |y| tracked the sandbox's true
  next-day standard deviation better out of time (correlation ~0.9 against ~0.8) and with half
  the day-to-day drift, which is what keeps conformal coverage stable from calibration to test;
- ``mean``: squared-error regression of y / s(x), weighted by s(x)^w. For any w this targets the
  conditional mean (a weighted squared error is still minimised by E[y|x]); w only decides which
  rows the finite-sample fit listens to (w = 2 is exactly raw-dollar MSE). The expected profit is
  a stack (``MeanStack``): w_model * s(x) * f(x) + sum of w_b * baseline_b over the named
  baselines (yesterday, trailing 5 and 20 days, account mean; zero is what the weights leave
  out) and of the account mean shrunk toward zero by its number of sessions
  (``baselines.SHRUNK_ACCOUNT_MEANS``), with non-negative weights, or exactly the best baseline when the model did not beat it
  on held-out days (the fallback);
- ``quantile``: multi-quantile regression (p05, p50, p95) of y / s(x), rescaled by s(x), then
  shifted by Mondrian conformal offsets per (weekday, scale band) cell (``conformal.py``);
- the mean and quantile models see the features plus a few P&L levels in units of s(x)
  (``mean_matrix``): the account's mean daily P&L so far and its recent means, divided by its
  scale, which is the very quantity y / s they predict (trees cannot divide by themselves);
- ``breach``: logistic regression on the features plus the distance to each loss limit in units
  of s(x), mapped to calibrated probabilities by ``BreachCalibrator``.

The bundle saves to and loads from a folder (UBJSON boosters + one JSON file) bit for bit, so
the MLflow model reproduces these predictions exactly. The folder also holds the training
features' drift reference (``drift_reference.json``, see ``daily_profit.monitoring.drift``): every
registered version carries what its own training data looked like, so the day's features are
always compared with the champion's, not with whatever trained last.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import xgboost as xgb

from daily_profit.modeling.baselines import (
    CARRIED_UNREALISED,
    MEAN_BASELINES,
    SHRUNK_ACCOUNT_MEANS,
    baseline_predictions,
    min_headroom,
)
from daily_profit.modeling.breach import BreachCalibrator, rule_score
from daily_profit.modeling.conformal import (
    ConformalOffsets,
    MondrianOffsets,
    apply_mondrian,
    regime_columns,
    regime_of,
    weekday_of,
)
from daily_profit.monitoring.drift import DriftReference
from daily_profit.trading_calendar import TradingCalendar

BOOSTERS = ("scale", "mean", "quantile", "breach")
PREDICTION_COLUMNS = (
    "expected_net_profit",
    "p05",
    "p50",
    "p95",
    "breach_probability",
)
BUNDLE_FORMAT = 2
MODEL_TERM = "model"
# The baselines the mean may lean on; "zero" needs no weight (it is what the weights leave out).
STACK_BASELINES: tuple[str, ...] = (
    *(b for b in MEAN_BASELINES if b != "zero"),
    *SHRUNK_ACCOUNT_MEANS,
    CARRIED_UNREALISED,
)
BASELINE_PREFIX = "baseline_"
# What the breach calibrator stacks beside the classifier: the headroom rule's typical move
# (trailing mean absolute span P&L), attached with the stacked baselines.
RULE_INPUT = "typical_move"
DRIFT_REFERENCE_FILE = "drift_reference.json"

# A day's typical move is never taken as below one dollar: residuals are divided by it.
DEFAULT_SCALE_FLOOR = 1.0


def feature_matrix(
    frame: pl.DataFrame | pd.DataFrame,
    columns: Sequence[str],
    categories: dict[str, list[str]] | None = None,
) -> np.ndarray:
    """The (n, p) float32 matrix XGBoost sees; nulls become NaN (XGBoost's missing value).

    String features (``categories``) become the index of their value in the list learned at
    training; a value never seen in training becomes missing rather than a wrong code.
    """
    if isinstance(frame, pd.DataFrame):
        frame = pl.from_pandas(frame[list(columns)])
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"feature columns missing from the frame: {missing}")
    categories = categories or {}
    exprs = []
    for c in columns:
        if c in categories:
            codes = {v: float(i) for i, v in enumerate(categories[c])}
            exprs.append(
                pl.col(c)
                .cast(pl.String)
                .replace_strict(codes, default=None, return_dtype=pl.Float32)
                .alias(c)
            )
        else:
            exprs.append(pl.col(c).cast(pl.Float32))
    return frame.select(exprs).to_numpy(order="c").astype(np.float32, copy=False)


def learn_categories(frame: pl.DataFrame, columns: Sequence[str]) -> dict[str, list[str]]:
    """Sorted distinct values of each string feature (sorted, so codes do not depend on row order)."""
    return {
        c: sorted(v for v in frame[c].unique().to_list() if v is not None)
        for c in columns
        if frame.schema[c] in (pl.String, pl.Categorical, pl.Enum)
    }


def baseline_column(name: str) -> str:
    return f"{BASELINE_PREFIX}{name}"


def attach_baselines(
    rows: pl.DataFrame,
    history: pl.DataFrame,
    calendar: TradingCalendar | None = None,
    *,
    base: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``rows`` plus a ``baseline_<name>`` column per stacked baseline and the headroom rule's
    ``baseline_typical_move``, point in time from the daily P&L ``history`` on the span target
    of ``calendar`` (default the configured trading calendar;
    ``baselines.baseline_predictions``): what the stacked mean and the breach calibrator need.
    ``base``: those predictions of ``rows`` when the caller has them already."""
    if base is None:
        base = baseline_predictions(rows, history, calendar)
    return rows.with_columns(
        [base[name].alias(baseline_column(name)) for name in (*STACK_BASELINES, RULE_INPUT)]
    )


@dataclass(frozen=True)
class MeanStack:
    """How the expected profit combines the model and the baselines.

    ``weights``: non-negative weight of the model term (s(x) * f(x)) and of each stacked
    baseline, fitted on out-of-fold predictions of the train days. ``fallback``: the baseline
    the mean is exactly equal to when the stack did not beat the best baseline on the held-out
    calibration days (its weight 1, every other 0). ``evidence``: the held-out comparison.
    """

    weights: dict[str, float]
    fallback: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def model_weight(self) -> float:
        return float(self.weights.get(MODEL_TERM, 0.0))

    def baseline_weights(self) -> np.ndarray:
        return np.array([self.weights.get(b, 0.0) for b in STACK_BASELINES])

    def needed_baselines(self) -> list[str]:
        return [b for b in STACK_BASELINES if self.weights.get(b, 0.0) != 0.0]

    @classmethod
    def model_only(cls, weight: float = 1.0) -> MeanStack:
        return cls(weights={MODEL_TERM: weight})

    @classmethod
    def baseline(cls, name: str, evidence: dict[str, Any] | None = None) -> MeanStack:
        """The fallback: exactly the named baseline (``zero``: the constant 0)."""
        weights = {MODEL_TERM: 0.0} | {b: float(b == name) for b in STACK_BASELINES}
        return cls(weights=weights, fallback=name, evidence=dict(evidence or {}))

    def combine(self, model_term: np.ndarray, baselines: np.ndarray) -> np.ndarray:
        return self.model_weight * model_term + baselines @ self.baseline_weights()

    def as_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "fallback": self.fallback, "evidence": self.evidence}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> MeanStack:
        return cls(
            weights={k: float(v) for k, v in spec["weights"].items()},
            fallback=spec.get("fallback"),
            evidence=dict(spec.get("evidence", {})),
        )


@dataclass
class Predictions:
    """Model outputs for n rows, aligned with the input rows."""

    scale: np.ndarray
    expected: np.ndarray
    quantiles: np.ndarray  # (n, 3): p05, p50, p95, calibrated and sorted
    breach_probability: np.ndarray

    def as_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "expected_net_profit": self.expected,
                "p05": self.quantiles[:, 0],
                "p50": self.quantiles[:, 1],
                "p95": self.quantiles[:, 2],
                "breach_probability": self.breach_probability,
            }
        )


def regimes(frame: pl.DataFrame | pd.DataFrame) -> np.ndarray | None:
    """Volatility regime of each row's feature day, None when the frame has no regime column."""
    columns = regime_columns(list(frame.columns))
    if not columns:
        return None
    rows = (
        frame.select(columns) if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame[columns])
    )
    return regime_of(rows).to_numpy()


def weekdays(frame: pl.DataFrame | pd.DataFrame) -> np.ndarray | None:
    """Weekday of each row's feature day, None when the frame has no ``date`` column."""
    if "date" not in frame.columns:
        return None
    dates = frame["date"] if isinstance(frame, pl.DataFrame) else pl.Series(frame["date"])
    return weekday_of(pl.DataFrame({"date": dates.cast(pl.Date)})).to_numpy()


@dataclass
class ModelBundle:
    """Boosters, conformal offsets, breach calibrator and the feature list they expect."""

    feature_columns: list[str]
    boosters: dict[str, xgb.Booster]
    conformal: MondrianOffsets
    calibrator: BreachCalibrator
    mean_weight_power: float
    stack: MeanStack = field(default_factory=MeanStack.model_only)
    headroom_columns: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)
    scale_floor: float = DEFAULT_SCALE_FLOOR
    metadata: dict[str, Any] = field(default_factory=dict)
    # The training features' distributions; None only for a bundle saved before it existed.
    drift_reference: DriftReference | None = None

    # -- prediction -------------------------------------------------------------------------

    def set_threads(self, n_threads: int) -> None:
        for booster in self.boosters.values():
            booster.set_param({"nthread": n_threads})

    def predict_scale(self, x: np.ndarray) -> np.ndarray:
        raw = self.boosters["scale"].inplace_predict(x).astype(np.float64)
        return np.maximum(np.sqrt(raw), self.scale_floor)

    @property
    def offsets(self) -> ConformalOffsets:
        """The offsets fitted on every calibration row (cells fall back to them)."""
        return self.conformal.overall

    def mean_unit(self, scale: np.ndarray) -> np.ndarray:
        """What one unit of the mean booster's output is worth in USD for each row."""
        return self.stack.model_weight * scale

    def baseline_matrix(self, frame: pl.DataFrame | pd.DataFrame) -> np.ndarray:
        """(n, len(STACK_BASELINES)) baseline values the stack needs (0 where unweighted)."""
        needed = self.stack.needed_baselines()
        missing = [baseline_column(b) for b in needed if baseline_column(b) not in frame.columns]
        if missing:
            raise KeyError(
                f"the mean stacks the baselines {needed} but the rows lack {missing}: attach "
                "them with bundle.attach_baselines(rows, daily_history)"
            )
        n = len(frame)
        out = np.zeros((n, len(STACK_BASELINES)))
        for j, b in enumerate(STACK_BASELINES):
            if b in needed:
                out[:, j] = np.asarray(frame[baseline_column(b)], dtype=np.float64)
        return out

    @property
    def mean_inputs(self) -> MeanInputs:
        return MeanInputs.for_features(self.feature_columns)

    def mean_input_names(self) -> list[str]:
        """Column names of the mean model's matrix (drivers are named from these)."""
        return self.feature_columns + self.mean_inputs.names(self.feature_columns)

    def mean_model_matrix(self, x: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return mean_matrix(x, scale, self.mean_inputs)

    def breach_inputs(self, x: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """The breach model's matrix: the features, log scale, and headroom / scale ratios."""
        return breach_matrix(x, scale, self._headroom_idx())

    def rule_scores(self, frame: pl.DataFrame | pd.DataFrame) -> np.ndarray | None:
        """The headroom rule's score of each row when the breach calibrator stacks it."""
        if not self.calibrator.uses_rule:
            return None
        column = baseline_column(RULE_INPUT)
        if column not in frame.columns:
            raise KeyError(
                f"the breach probability stacks the headroom rule but the rows lack {column}: "
                "attach it with bundle.attach_baselines(rows, daily_history)"
            )
        needed = [*self.headroom_columns, column]
        rows = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame[needed])
        typical = rows[column].cast(pl.Float64).to_numpy()
        return rule_score(min_headroom(rows, self.headroom_columns), typical)

    def _headroom_idx(self) -> list[int]:
        return [self.feature_columns.index(c) for c in self.headroom_columns]

    def predict_matrix(
        self,
        x: np.ndarray,
        baselines: np.ndarray,
        weekday: np.ndarray | None,
        regime: np.ndarray | None = None,
        rule: np.ndarray | None = None,
    ) -> Predictions:
        """``baselines``: ``baseline_matrix`` of the rows; ``weekday`` and ``regime``: of each
        row's feature day, which pick the conformal groups (None: those groups are skipped);
        ``rule``: ``rule_scores`` of the rows."""
        scale = self.predict_scale(x)
        mx = self.mean_model_matrix(x, scale)
        model_term = scale * self.boosters["mean"].inplace_predict(mx).astype(np.float64)
        expected = self.stack.combine(model_term, baselines)
        q_raw = self.boosters["quantile"].inplace_predict(mx).astype(np.float64) * scale[:, None]
        quantiles = apply_mondrian(q_raw, scale, self.conformal, weekday, regime)
        raw_p = self.boosters["breach"].inplace_predict(self.breach_inputs(x, scale))
        return Predictions(
            scale=scale,
            expected=expected,
            quantiles=quantiles,
            breach_probability=self.calibrator(np.asarray(raw_p, dtype=np.float64), rule),
        )

    def predict(self, frame: pl.DataFrame | pd.DataFrame) -> Predictions:
        """Predictions for rows of features (plus ``date`` and the stack's baseline columns)."""
        return self.predict_matrix(
            self.matrix(frame),
            self.baseline_matrix(frame),
            weekdays(frame),
            regimes(frame),
            self.rule_scores(frame),
        )

    def matrix(self, frame: pl.DataFrame | pd.DataFrame) -> np.ndarray:
        return feature_matrix(frame, self.feature_columns, self.categories)

    # -- persistence ------------------------------------------------------------------------

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, booster in self.boosters.items():
            booster.save_model(folder / f"{name}.ubj")
        spec = {
            "format": BUNDLE_FORMAT,
            "feature_columns": self.feature_columns,
            "headroom_columns": self.headroom_columns,
            "categories": self.categories,
            "conformal": self.conformal.as_dict(),
            "calibrator": self.calibrator.as_dict(),
            "mean_weight_power": self.mean_weight_power,
            "stack": self.stack.as_dict(),
            "scale_floor": self.scale_floor,
            "metadata": self.metadata,
        }
        # json writes floats with repr(), which round-trips every float64 exactly.
        (folder / "bundle.json").write_text(json.dumps(spec, indent=2, default=str))
        if self.drift_reference is not None:
            # Compact: a few thousand sample values per continuous feature.
            (folder / DRIFT_REFERENCE_FILE).write_text(
                json.dumps(self.drift_reference.to_json(), separators=(",", ":"))
            )
        return folder

    @classmethod
    def load(cls, folder: Path) -> ModelBundle:
        spec = json.loads((folder / "bundle.json").read_text())
        if spec.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"unknown bundle format {spec.get('format')!r} in {folder}")
        boosters = {}
        for name in BOOSTERS:
            booster = xgb.Booster()
            booster.load_model(folder / f"{name}.ubj")
            boosters[name] = booster
        reference_path = folder / DRIFT_REFERENCE_FILE
        reference = (
            DriftReference.from_json(json.loads(reference_path.read_text()))
            if reference_path.exists()
            else None
        )
        return cls(
            feature_columns=list(spec["feature_columns"]),
            boosters=boosters,
            conformal=MondrianOffsets.from_dict(spec["conformal"]),
            calibrator=BreachCalibrator.from_dict(spec["calibrator"]),
            mean_weight_power=float(spec["mean_weight_power"]),
            stack=MeanStack.from_dict(spec["stack"]),
            headroom_columns=list(spec["headroom_columns"]),
            categories={k: list(v) for k, v in spec["categories"].items()},
            scale_floor=float(spec["scale_floor"]),
            metadata=dict(spec["metadata"]),
            drift_reference=reference,
        )

    def feature_importance(self) -> dict[str, float]:
        """Each feature's share of the model's importance: the total gain it brings to each of
        the four boosters, as a share of that booster's total over the features, averaged.

        Averaged over boosters so that a feature the breach or interval models lean on counts
        even when the mean model ignores it; columns derived for a booster (ratios to the
        scale, headroom in units of it) are credited to the features they are built from.
        """
        p = len(self.feature_columns)
        derived = {
            "mean": self._mean_derived_sources(),
            "quantile": self._mean_derived_sources(),
            "breach": [[]] + [[i] for i in self._headroom_idx()],
        }
        shares = np.zeros(p)
        for name, booster in self.boosters.items():
            gain = np.zeros(p)
            for key, value in booster.get_score(importance_type="total_gain").items():
                # Boosters built from numpy name their columns f0, f1, ...
                index = int(key[1:]) if key.startswith("f") and key[1:].isdigit() else None
                if index is None:
                    continue
                if index < p:
                    gain[index] += value
                else:
                    sources = derived.get(name, [])
                    extra = sources[index - p] if index - p < len(sources) else []
                    for source in extra:
                        gain[source] += value / len(extra)
            if gain.sum() > 0:
                shares += gain / gain.sum()
        total = shares.sum()
        return {
            c: float(s / total) if total > 0 else 1.0 / p
            for c, s in zip(self.feature_columns, shares, strict=True)
        }

    def _mean_derived_sources(self) -> list[list[int]]:
        """For each extra column of the mean model's matrix, the features it is built from."""
        spec = self.mean_inputs
        sources = [[i] for i in spec.ratio_idx]
        if spec.to_date_idx:
            sources.append(list(spec.to_date_idx))
        return sources


# P&L levels (USD) the mean and quantile models also see divided by s(x), when the frame has them.
RATIO_SOURCES: tuple[str, ...] = ("pnl_1d", "pnl_sum_1d", "pnl_mean_5d", "pnl_mean_20d")
# The account's mean daily net P&L over its whole life, rebuilt from the account-state family:
# starting balance x (return since start + payouts so far) / (age in days + 1).
TO_DATE_SOURCES: tuple[str, ...] = (
    "acct_starting_balance",
    "acct_return_since_start_pct",
    "acct_payouts_to_date_pct",
    "acct_age_days",
)
TO_DATE_NAME = "pnl_per_day_to_date"


@dataclass(frozen=True)
class MeanInputs:
    """Which feature columns become extra ratio inputs of the mean and quantile models."""

    ratio_idx: tuple[int, ...] = ()
    to_date_idx: tuple[int, ...] = ()  # the four TO_DATE_SOURCES, or empty

    @classmethod
    def for_features(cls, features: Sequence[str]) -> MeanInputs:
        ratio = tuple(features.index(c) for c in RATIO_SOURCES if c in features)
        to_date = (
            tuple(features.index(c) for c in TO_DATE_SOURCES)
            if all(c in features for c in TO_DATE_SOURCES)
            else ()
        )
        return cls(ratio_idx=ratio, to_date_idx=to_date)

    def names(self, features: Sequence[str]) -> list[str]:
        out = [f"{features[i]}_per_scale" for i in self.ratio_idx]
        if self.to_date_idx:
            out.append(f"{TO_DATE_NAME}_per_scale")
        return out


def mean_matrix(x: np.ndarray, scale: np.ndarray, spec: MeanInputs) -> np.ndarray:
    """The mean and quantile models' matrix: the features + P&L levels in units of s(x)."""
    extra = [x[:, i].astype(np.float64) / scale for i in spec.ratio_idx]
    if spec.to_date_idx:
        sb, ret, paid, age = (x[:, i].astype(np.float64) for i in spec.to_date_idx)
        extra.append(sb * (ret + paid) / 100.0 / (age + 1.0) / scale)
    if not extra:
        return x
    return np.hstack([x, np.column_stack(extra).astype(np.float32)])


def breach_matrix(x: np.ndarray, scale: np.ndarray, headroom_idx: Sequence[int]) -> np.ndarray:
    """Features + log s(x) + each loss-limit headroom in units of s(x).

    A breach tomorrow means a loss larger than the headroom; whether that is likely depends on
    headroom relative to the account's typical move, a ratio trees cannot form by themselves.
    """
    extra = [np.log(scale)[:, None]]
    for i in headroom_idx:
        extra.append((x[:, i].astype(np.float64) / scale)[:, None])
    return np.hstack([x, np.hstack(extra).astype(np.float32)])
