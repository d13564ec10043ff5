"""Labels: the next day's outcome, and what a missing next-day row means."""

from __future__ import annotations

import datetime as dt

import polars as pl

from daily_profit.features.labels import LABEL_GRACE_DAYS, LABEL_SCHEMA, build_labels

D = dt.date(2025, 6, 10)


def _day(offset: int) -> dt.date:
    return D + dt.timedelta(days=offset)


def _staging(accounts: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [D] * len(accounts),
            "account_id": accounts,
            "eod_balance": [10_000.0] * len(accounts),
            "daily_loss_floor_next_usd": [9_600.0] * len(accounts),
            "drawdown_floor_usd": [9_000.0] * len(accounts),
        }
    )


def _metric(acc: str, offset: int, *, net: float = 0.0, status: int = 1, equity: float = 10_000.0,
            opening: float = 10_000.0) -> dict:  # fmt: skip
    return {
        "account_id": acc,
        "date": _day(offset),
        "status": status,
        "net_profit": net,
        "current_equity": equity,
        "current_balance": equity,
        "prior_days_balance": opening,
    }


def test_each_missing_row_case_gets_its_status() -> None:
    metrics = pl.DataFrame(
        [
            _metric("observed", 1, net=120.0, equity=10_120.0),
            _metric("breached", 1, net=-700.0, status=3, equity=9_300.0),
            # No row on D+1, back on D+3 with the balance D closed at: D+1 was idle.
            _metric("idle", 3, opening=10_000.0),
            # Back on D+2, but the balance moved in between: D+1's P&L is unknown.
            _metric("moved", 2, opening=10_250.0),
            # Back only after the grace days: gone as far as the label can tell.
            _metric("gone", 2 + LABEL_GRACE_DAYS, opening=10_000.0),
            # Another account keeps the data going through the grace days.
            *[_metric("observed", k) for k in range(2, 2 + LABEL_GRACE_DAYS)],
        ]
    )
    accounts = ["observed", "breached", "idle", "moved", "gone"]
    labels = build_labels(_staging(accounts), metrics, start=D, end=D)
    assert labels.schema == LABEL_SCHEMA
    got = {r["account_id"]: r for r in labels.iter_rows(named=True)}
    assert got["observed"]["label_status"] == "observed"
    assert got["observed"]["next_day_net_profit"] == 120.0
    assert got["observed"]["next_day_breached"] is False
    assert got["observed"]["breach_by_rules"] is False
    assert got["breached"]["next_day_breached"] is True
    assert got["breached"]["breach_by_rules"] is True  # 9,300 is below the 9,600 daily floor
    assert got["idle"]["label_status"] == "idle_no_row"
    assert (got["idle"]["next_day_net_profit"], got["idle"]["next_day_breached"]) == (0.0, False)
    assert got["idle"]["label_available"] is True
    for acc, status in (("moved", "missing_row"), ("gone", "account_gone")):
        assert got[acc]["label_status"] == status
        assert got[acc]["label_available"] is False
        assert got[acc]["next_day_net_profit"] is None
        assert got[acc]["next_day_breached"] is None


def test_without_the_grace_days_in_the_data_a_missing_row_is_pending() -> None:
    metrics = pl.DataFrame([_metric("observed", 1, net=5.0)])
    labels = build_labels(_staging(["observed", "late"]), metrics, start=D, end=D)
    got = dict(labels.select("account_id", "label_status").iter_rows())
    assert got == {"observed": "observed", "late": "pending"}
    # Once the data is known complete through the grace days, the same row is gone.
    labels = build_labels(
        _staging(["late"]),
        metrics,
        start=D,
        end=D,
        available_through=_day(1 + LABEL_GRACE_DAYS),
    )
    assert labels["label_status"].to_list() == ["account_gone"]


def test_labels_of_the_simulated_firm(built) -> None:
    labels, features = built.labels, built.features
    assert labels.select("date", "account_id").equals(features.select("date", "account_id"))
    last_day = labels.filter(pl.col("date") == built.firm.end)
    assert (last_day["label_status"] == "pending").all()
    assert labels.filter(pl.col("date") < built.firm.end)["label_available"].all()
