"""Predictions are records: a rerun adds nothing, a restated day adds its next restatement, and
what the models say of a day now is each version's latest restatement."""

import datetime as dt

import polars as pl

from daily_profit.defs.model.assets import restatements
from daily_profit.warehouse.derived import PREDICTION_SCHEMA, latest_predictions

DAY = dt.date(2025, 3, 4)


def _scored(values: list[float], *, version: str = "3", day: dt.date = DAY) -> pl.DataFrame:
    n = len(values)
    columns = {name: [None] * n for name in PREDICTION_SCHEMA.names()}
    columns.update(
        date=[day] * n,
        account_id=[f"a{i}" for i in range(n)],
        model_version=[version] * n,
        restatement=[0] * n,
        expected_net_profit=values,
        p05=[v - 100 for v in values],
        p50=values,
        p95=[v + 100 for v in values],
        breach_probability=[0.1] * n,
        risk_score=[50.0] * n,
    )
    return pl.DataFrame(columns, schema=PREDICTION_SCHEMA)


def test_a_first_scoring_is_restatement_zero_and_a_rerun_adds_nothing():
    first, restated = restatements(_scored([]).clear(), _scored([10.0, -5.0]))
    assert first["restatement"].to_list() == [0, 0] and restated == []
    again, restated = restatements(first, _scored([10.0, -5.0]))
    assert again.height == 0 and restated == []


def test_a_restated_day_adds_new_rows_beside_the_recorded_ones():
    recorded = _scored([10.0, -5.0])
    added, restated = restatements(recorded, _scored([12.0, -5.0]))
    assert added["restatement"].to_list() == [1, 1]
    assert restated == [DAY]
    table = pl.concat([recorded, added])
    assert table.height == 4  # nothing rewritten
    now = latest_predictions(table)
    assert now["expected_net_profit"].to_list() == [12.0, -5.0]
    # Another version's rows and another day's are their own records.
    other, restated = restatements(table, _scored([1.0], version="4"))
    assert other["restatement"].to_list() == [0] and restated == []
