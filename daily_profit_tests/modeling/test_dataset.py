"""The split is by date, with gaps, and no label of an earlier segment reaches a later one."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daily_profit.modeling.dataset import (
    DATE,
    SplitConfig,
    check_feature_columns,
    label_dates,
    split_by_date,
    time_series_folds,
    usable_rows,
)


def _frame(n_days: int, n_accounts: int = 3, skip_weekends: bool = False) -> pl.DataFrame:
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(n_days * 2)]
    if skip_weekends:
        days = [d for d in days if d.weekday() < 5]
    days = days[:n_days]
    rows = [
        {"account_id": f"A{a}", "date": d, "x": float(i), "net_profit_next_session": 1.0}
        for i, d in enumerate(days)
        for a in range(n_accounts)
    ]
    frame = pl.DataFrame(rows)
    # The label of D is realised on the next feature day (Friday -> Monday on trading days).
    nxt = {
        d: days[i + 1] if i + 1 < len(days) else d + dt.timedelta(days=1)
        for i, d in enumerate(days)
    }
    return frame.with_columns(
        pl.col(DATE).replace_strict(nxt, return_dtype=pl.Date).alias("target_end"),
        pl.lit(False).alias("breached_next_session"),
    )


@settings(max_examples=40, deadline=None)
@given(
    n_days=st.integers(min_value=20, max_value=200),
    gap=st.integers(min_value=1, max_value=3),
    weekends=st.booleans(),
)
def test_segments_are_ordered_gapped_and_leak_free(n_days: int, gap: int, weekends: bool) -> None:
    frame = _frame(n_days, skip_weekends=weekends)
    split = split_by_date(frame, SplitConfig(gap_days=gap))
    parts = [split.train, split.calibration, split.test]
    for earlier, later in itertools.pairwise(parts):
        assert label_dates(earlier).max() < later[DATE].min()
        assert earlier[DATE].max() < later[DATE].min()
        between = frame.filter(
            (pl.col(DATE) > earlier[DATE].max()) & (pl.col(DATE) < later[DATE].min())
        )[DATE].n_unique()
        assert between == gap
    assert sum(p.height for p in parts) + len(split.gap_dates) * 3 == frame.height


def test_split_refuses_a_window_too_short() -> None:
    with pytest.raises(ValueError, match="too few"):
        split_by_date(_frame(8))


def test_split_refuses_labels_realised_too_late() -> None:
    # A label realised three days later overlaps the next segment despite a one-day gap.
    frame = _frame(40).with_columns((pl.col(DATE) + pl.duration(days=3)).alias("target_end"))
    with pytest.raises(ValueError, match="leakage"):
        split_by_date(frame, SplitConfig(gap_days=1))


def test_folds_expand_and_never_see_validation_labels() -> None:
    frame = _frame(60)
    folds = time_series_folds(frame, n_folds=3, gap_days=1)
    assert len(folds) == 3
    sizes = [f.fit[DATE].n_unique() for f in folds]
    assert sizes == sorted(sizes)
    for fold in folds:
        assert label_dates(fold.fit).max() < fold.valid[DATE].min()


def test_usable_rows_follow_label_availability() -> None:
    frame = pl.DataFrame(
        {
            "account_id": ["a", "b", "c", "d"],
            "date": [dt.date(2025, 1, 1)] * 4,
            "net_profit_next_session": [1.0, None, 0.0, np.nan],
            "breached_next_session": [False, None, False, False],
            "label_status": ["observed", "pending", "idle_no_row", "observed"],
        }
    )
    assert usable_rows(frame)["account_id"].to_list() == ["a", "c"]
    flagged = frame.with_columns(pl.Series("label_available", [True, False, False, True]))
    assert usable_rows(flagged)["account_id"].to_list() == ["a"]


def test_labels_are_never_features() -> None:
    with pytest.raises(ValueError, match="not features"):
        check_feature_columns(["x", "net_profit_next_session"])
