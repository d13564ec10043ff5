"""Realised against predicted: the numbers the desk watches over time."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from daily_profit.modeling.outcomes import performance, performance_by_role, prediction_outcomes

D = dt.date(2025, 3, 3)  # a Monday: its span is Tuesday
SPAN = {"target_start": dt.date(2025, 3, 4), "target_end": dt.date(2025, 3, 4)}


def _predictions() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [D, D, D, D],
            "account_id": ["a", "b", "c", "a"],
            "model_version": ["1", "1", "1", "2"],
            "model_role": ["champion", "champion", "champion", "challenger"],
            "target_start": [SPAN["target_start"]] * 4,
            "target_end": [SPAN["target_end"]] * 4,
            "expected_net_profit": [10.0, -5.0, 0.0, 20.0],
            "p05": [-100.0, -50.0, -10.0, 0.0],
            "p95": [100.0, 50.0, 10.0, 30.0],
            "breach_probability": [0.1, 0.9, 0.0, 0.2],
            "history_days": [30, 30, 2, 30],
        }
    )


def _labels() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [D, D, D],
            "account_id": ["a", "b", "c"],
            "target_start": [SPAN["target_start"]] * 3,
            "target_end": [SPAN["target_end"]] * 3,
            "net_profit_next_session": [50.0, -80.0, None],
            "breached_next_session": [False, True, None],
            "label_available": [True, True, False],
        }
    )


def test_outcomes_join_each_prediction_with_what_happened():
    out = prediction_outcomes(_predictions(), _labels())
    # "c" has no realised label yet: left out, never counted as a zero.
    assert sorted(zip(out["account_id"], out["model_version"], strict=True)) == [
        ("a", "1"),
        ("a", "2"),
        ("b", "1"),
    ]
    row = out.filter(pl.col("account_id") == "b").row(0, named=True)
    assert row["error"] == pytest.approx(-75.0)
    assert row["covered"] is False  # -80 is below p05 = -50
    assert row["realised_breach"] is True


def test_performance_metrics_per_role():
    out = prediction_outcomes(_predictions(), _labels())
    champion = performance(out.filter(pl.col("model_role") == "champion"))
    assert champion["rows"] == 2
    assert champion["rmse"] == pytest.approx(math.sqrt((40.0**2 + 75.0**2) / 2))
    assert champion["coverage"] == pytest.approx(0.5)
    assert champion["breach_brier"] == pytest.approx((0.1**2 + 0.1**2) / 2)
    assert champion["breach_recall_at_0_5"] == pytest.approx(1.0)
    flat = performance_by_role(out)
    assert flat["champion_rmse"] == pytest.approx(champion["rmse"])
    assert flat["challenger_coverage"] == pytest.approx(0.0)  # 50 above p95 = 30
    assert flat["champion_new_accounts_rows"] == 0.0
    assert flat["champion_nonzero_rows"] == 2.0


def test_a_prediction_is_scored_only_against_the_span_it_was_made_for():
    # A prediction recorded for another span (one calendar day, before labels followed the
    # trading calendar) is not scored against the label of the session's span.
    other_span = _predictions().with_columns(pl.lit(dt.date(2025, 3, 5)).alias("target_end"))
    assert prediction_outcomes(other_span, _labels()).is_empty()


def test_metrics_on_rows_with_a_non_zero_outcome():
    out = prediction_outcomes(_predictions(), _labels()).with_columns(
        pl.when(pl.col("account_id") == "a")
        .then(0.0)
        .otherwise(pl.col("realised_net_profit"))
        .alias("realised_net_profit")
    )
    champion = performance(out.filter(pl.col("model_role") == "champion"))
    assert champion["nonzero_rows"] == 1.0
    assert champion["nonzero_rmse"] == pytest.approx(75.0)  # b alone: -80 against -5
    assert champion["nonzero_coverage"] == pytest.approx(0.0)
    assert champion["coverage"] == pytest.approx(0.5)  # a's zero is inside its interval
