"""The modeling frame's contract and its strictly time-ordered split.

A modeling frame has one row per account and feature day D (a trading session): ``account_id``,
``date`` (D), the feature columns (numeric or string, nulls allowed), and the labels of D's
target span (the day after D up to and including the next session) as ``labels_next_session``
has them: ``net_profit_next_session``, ``breached_next_session``, and which labels may be used:
``label_available`` (bool) or else ``label_status`` (usable: observed, idle_no_row).
``target_end`` (the last day of the span: when the label is realised) is optional; without it
the label of D is taken to be realised on D+1. The join of ``account_features_daily`` and
``labels_next_session`` on (date, account_id) is such a frame.

The split is by date, never by row: train days, then calibration days, then test days, with
``gap_days`` feature days dropped between segments so that the last label of one segment is
realised before the first feature day of the next (the label of session D is realised on the
next session, so one dropped feature day is enough). Hyperparameter search folds inside the train segment follow the same rule.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

ID = "account_id"
DATE = "date"
TARGET = "net_profit_next_session"
BREACH = "breached_next_session"
LABEL_STATUS = "label_status"
LABEL_AVAILABLE = "label_available"
LABEL_DATE = "target_end"  # the day a label is realised: its span's last day
FEATURE_SET_VERSION = "feature_set_version"

# Statuses of a label that may be trained and scored on (labels_next_session's): anything else
# (pending, missing row, account gone) is left out rather than guessed.
DEFAULT_USABLE_STATUSES: tuple[str, ...] = ("observed", "idle_no_row")

# Never features, whatever their dtype: identities, keys, labels and bookkeeping.
NON_FEATURE_COLUMNS = frozenset(
    {
        ID,
        DATE,
        TARGET,
        BREACH,
        LABEL_STATUS,
        LABEL_AVAILABLE,
        LABEL_DATE,
        "breach_by_rules",
        "eod_equity_next_session",
        "target_start",
        FEATURE_SET_VERSION,
        "login",
        "trader",
        "run_id",
        "written_at",
        "materialized_at",
        "dagster_run_id",
    }
)


@dataclass(frozen=True)
class SplitConfig:
    """Shares of the distinct feature days per segment; gaps are in feature days."""

    calibration_share: float = 0.2
    test_share: float = 0.2
    gap_days: int = 1
    min_days_per_segment: int = 3

    def __post_init__(self) -> None:
        if self.gap_days < 1:
            raise ValueError("gap_days must be >= 1: the label of D is realised on D+1")
        if not 0 < self.calibration_share < 1 or not 0 < self.test_share < 1:
            raise ValueError("segment shares must lie in (0, 1)")
        if self.calibration_share + self.test_share >= 0.9:
            raise ValueError("leave at least 10% of the days for training")


@dataclass(frozen=True)
class DateRange:
    start: dt.date
    end: dt.date
    n_days: int

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "days": self.n_days}


@dataclass(frozen=True)
class DatasetSplit:
    """Row frames of each segment and the feature days that were dropped as gaps."""

    train: pl.DataFrame
    calibration: pl.DataFrame
    test: pl.DataFrame
    gap_dates: tuple[dt.date, ...] = field(default_factory=tuple)

    def ranges(self) -> dict[str, DateRange]:
        return {
            name: _date_range(part)
            for name, part in (
                ("train", self.train),
                ("calibration", self.calibration),
                ("test", self.test),
            )
        }


def _date_range(frame: pl.DataFrame) -> DateRange:
    days = frame[DATE]
    return DateRange(start=days.min(), end=days.max(), n_days=days.n_unique())  # type: ignore[arg-type]


def infer_feature_columns(frame: pl.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Numeric, boolean and string columns that are not keys, labels or bookkeeping.

    Prefer passing the feature catalog's names; this is for frames without a catalog.
    """
    skip = NON_FEATURE_COLUMNS | set(exclude)
    return [
        name
        for name, dtype in frame.schema.items()
        if name not in skip and (dtype.is_numeric() or dtype in (pl.Boolean, pl.String))
    ]


def check_feature_columns(feature_columns: Sequence[str]) -> None:
    """Refuse a feature list that contains a label or a key: that would be leakage by name."""
    bad = sorted(set(feature_columns) & NON_FEATURE_COLUMNS)
    if bad:
        raise ValueError(f"not features (keys, labels or bookkeeping): {bad}")
    if len(set(feature_columns)) != len(feature_columns):
        raise ValueError("duplicate feature columns")


def usable_rows(
    frame: pl.DataFrame, usable_statuses: Sequence[str] = DEFAULT_USABLE_STATUSES
) -> pl.DataFrame:
    """Rows whose label may be learned from: available (or a usable status), finite profit."""
    cond = pl.col(TARGET).is_not_null() & pl.col(TARGET).is_finite()
    if LABEL_AVAILABLE in frame.columns:
        cond = cond & pl.col(LABEL_AVAILABLE).fill_null(False)
    elif LABEL_STATUS in frame.columns:
        cond = cond & pl.col(LABEL_STATUS).cast(pl.String).is_in(list(usable_statuses))
    if BREACH in frame.columns:
        cond = cond & pl.col(BREACH).is_not_null()
    return frame.filter(cond)


def label_dates(frame: pl.DataFrame) -> pl.Series:
    """When each row's label was realised: ``target_end`` if given, else D + 1 day."""
    if LABEL_DATE in frame.columns:
        return frame[LABEL_DATE]
    return frame.select((pl.col(DATE) + pl.duration(days=1)).alias(LABEL_DATE))[LABEL_DATE]


def _segment_bounds(n_days: int, config: SplitConfig) -> tuple[int, int]:
    """Number of train days and calibration days; the rest (after gaps) is test."""
    usable = n_days - 2 * config.gap_days
    n_test = max(config.min_days_per_segment, round(usable * config.test_share))
    n_cal = max(config.min_days_per_segment, round(usable * config.calibration_share))
    n_train = usable - n_test - n_cal
    if n_train < config.min_days_per_segment:
        raise ValueError(
            f"{n_days} feature days are too few for a train/calibration/test split with "
            f"{config.gap_days}-day gaps and at least {config.min_days_per_segment} days each"
        )
    return n_train, n_cal


def split_by_date(frame: pl.DataFrame, config: SplitConfig | None = None) -> DatasetSplit:
    """Train, calibration and test segments of consecutive feature days, separated by gaps.

    Raises when a segment would be too short, or (defensively) when any label of an earlier
    segment is realised on or after the first feature day of a later one.
    """
    config = config or SplitConfig()
    days = frame[DATE].unique().sort().to_list()
    n_train, n_cal = _segment_bounds(len(days), config)
    g = config.gap_days
    train_days = days[:n_train]
    cal_days = days[n_train + g : n_train + g + n_cal]
    test_days = days[n_train + g + n_cal + g :]
    gaps = tuple(days[n_train : n_train + g] + days[n_train + g + n_cal : n_train + g + n_cal + g])
    split = DatasetSplit(
        train=frame.filter(pl.col(DATE).is_in(train_days)),
        calibration=frame.filter(pl.col(DATE).is_in(cal_days)),
        test=frame.filter(pl.col(DATE).is_in(test_days)),
        gap_dates=gaps,
    )
    assert_no_overlap([split.train, split.calibration, split.test])
    return split


def assert_no_overlap(segments: Sequence[pl.DataFrame]) -> None:
    """Every label of a segment is realised before the first feature day of each later one."""
    for earlier, later in itertools.pairwise(segments):
        if earlier.is_empty() or later.is_empty():
            raise ValueError("an empty segment: not enough days in the window")
        last_label = label_dates(earlier).max()
        first_feature = later[DATE].min()
        if last_label >= first_feature:  # type: ignore[operator]
            raise ValueError(
                f"label leakage: a label realised on {last_label} is not before the next "
                f"segment's first feature day {first_feature}"
            )


@dataclass(frozen=True)
class Fold:
    """One expanding-window fold: fit on ``fit``, score on ``valid``."""

    fit: pl.DataFrame
    valid: pl.DataFrame


def time_series_folds(
    frame: pl.DataFrame, n_folds: int = 3, gap_days: int = 1, min_fit_share: float = 0.4
) -> list[Fold]:
    """Expanding-window folds by date: each validates on the next block of days after a gap.

    The first ``min_fit_share`` of the days only ever fits; the rest is cut into ``n_folds``
    consecutive validation blocks.
    """
    days = frame[DATE].unique().sort().to_list()
    first_valid = max(1, int(len(days) * min_fit_share))
    edges = np.linspace(first_valid, len(days), n_folds + 1).round().astype(int)
    folds: list[Fold] = []
    for lo, hi in itertools.pairwise(edges):
        fit_days = days[: max(0, lo - gap_days)]
        valid_days = days[lo:hi]
        if not fit_days or not valid_days:
            continue
        fold = Fold(
            fit=frame.filter(pl.col(DATE).is_in(fit_days)),
            valid=frame.filter(pl.col(DATE).is_in(valid_days)),
        )
        assert_no_overlap([fold.fit, fold.valid])
        folds.append(fold)
    if not folds:
        raise ValueError("not enough days for a single time-series fold")
    return folds


def describe_split(split: DatasetSplit) -> dict[str, Any]:
    """Rows, accounts, date range and label statistics of each segment (for MLflow)."""
    out: dict[str, Any] = {"gap_dates": [d.isoformat() for d in split.gap_dates]}
    for name, part in (
        ("train", split.train),
        ("calibration", split.calibration),
        ("test", split.test),
    ):
        y = part[TARGET].to_numpy().astype(float)
        entry: dict[str, Any] = {
            "rows": part.height,
            "accounts": part[ID].n_unique(),
            **_date_range(part).as_dict(),
            "label_mean": float(np.mean(y)),
            "label_std": float(np.std(y)),
            "label_zero_share": float(np.mean(y == 0.0)),
            "label_p05": float(np.quantile(y, 0.05)),
            "label_p50": float(np.quantile(y, 0.5)),
            "label_p95": float(np.quantile(y, 0.95)),
            "max_label_date": str(label_dates(part).max()),
        }
        if BREACH in part.columns:
            entry["breach_rate"] = float(part[BREACH].cast(pl.Float64).mean() or 0.0)
        out[name] = entry
    return out
