"""The ranking by risk and what changed since yesterday, with reasons from the drivers."""

import datetime as dt

import polars as pl

from daily_profit.desk.ranking import changes, ranked

DAY = dt.date(2025, 3, 3)


def _day(rows: list[tuple[str, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [DAY] * len(rows),
            "account_id": [r[0] for r in rows],
            "trader": ["T" + r[0] for r in rows],
            "breach_probability": [r[1] for r in rows],
            "p05": [r[2] for r in rows],
            "expected_net_profit": [0.0] * len(rows),
            "p95": [100.0] * len(rows),
            "risk_score": [50.0] * len(rows),
            "driver_1_feature": ["dist_daily_loss_pct"] * len(rows),
            "driver_1_contribution": [-420.4] * len(rows),
            "driver_2_feature": ["pnl_std_20d"] * len(rows),
            "driver_2_contribution": [35.0] * len(rows),
            "driver_3_feature": [None] * len(rows),
            "driver_3_contribution": [None] * len(rows),
        },
        schema_overrides={"driver_3_feature": pl.String, "driver_3_contribution": pl.Float64},
    )


def test_rank_by_breach_probability_then_the_lower_bound():
    out = ranked(_day([("a", 0.1, -50.0), ("b", 0.3, -10.0), ("c", 0.1, -900.0)]))
    assert out["account_id"].to_list() == ["b", "c", "a"]
    assert out["rank"].to_list() == [1, 2, 3]
    assert out["drivers"][0] == "dist_daily_loss_pct (-420 USD); pnl_std_20d (+35 USD)"


def test_new_moved_and_left_with_their_reasons():
    yesterday = ranked(
        _day([("a", 0.40, -500.0), ("b", 0.30, -400.0), ("c", 0.20, -300.0), ("d", 0.1, 0.0),
              ("gone", 0.35, -800.0)])
    )  # fmt: skip
    today = ranked(
        _day([("c", 0.50, -900.0), ("a", 0.45, -500.0), ("b", 0.05, -10.0), ("d", 0.2, -5.0),
              ("fresh", 0.48, -700.0)])
    )  # fmt: skip
    out = changes(today, yesterday, top_n=3)
    by = {r["account_id"]: r for r in out.iter_rows(named=True)}
    assert by["c"]["change"] == "new" and by["c"]["previous_rank"] == 4
    assert by["fresh"]["change"] == "new" and by["fresh"]["previous_rank"] is None
    assert by["fresh"]["reason"].startswith("first scored today: breach 48.0%")
    assert by["a"]["change"] == "down" and (by["a"]["previous_rank"], by["a"]["rank"]) == (1, 3)
    assert by["b"]["change"] == "left" and by["b"]["rank"] == 5
    assert "breach 30.0% -> 5.0%" in by["b"]["reason"]
    assert "dist_daily_loss_pct (-420 USD)" in by["b"]["reason"]
    assert by["gone"]["change"] == "left" and by["gone"]["rank"] is None
    assert by["gone"]["reason"].startswith("not scored today")
    assert by["gone"]["trader"] == "Tgone"  # from yesterday, when it is not scored today
    assert "d" not in by  # outside the top both days
    assert out["change"].to_list() == ["new", "new", "down", "left", "left"]
    assert by["c"]["trader"] == "Tc"


def test_no_yesterday_makes_the_whole_top_new():
    today = ranked(_day([("a", 0.4, -1.0), ("b", 0.3, -1.0)]))
    out = changes(today, ranked(today.clear()), top_n=5)
    assert out["change"].to_list() == ["new", "new"]
