"""Labels: the outcome of the target span (the day after D up to the next session), and what a
day without a row means."""

from __future__ import annotations

import datetime as dt

import polars as pl

from daily_profit.features.labels import LABEL_GRACE_DAYS, LABEL_SCHEMA, build_labels
from daily_profit.trading_calendar import TradingCalendar

D = dt.date(2025, 6, 10)  # a Tuesday: its span is Wednesday alone
FRIDAY = dt.date(2025, 6, 13)
WEEKDAYS = TradingCalendar()


def _day(offset: int) -> dt.date:
    return D + dt.timedelta(days=offset)


def _staging(accounts: list[str], day: dt.date = D) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [day] * len(accounts),
            "account_id": accounts,
            "eod_balance": [10_000.0] * len(accounts),
            "daily_loss_floor_next_usd": [9_600.0] * len(accounts),
            "drawdown_floor_usd": [9_000.0] * len(accounts),
        }
    )


def _metric(acc: str, offset: int, *, net: float = 0.0, status: int = 1, equity: float = 10_000.0,
            opening: float = 10_000.0, base: dt.date = D) -> dict:  # fmt: skip
    return {
        "account_id": acc,
        "date": base + dt.timedelta(days=offset),
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
    labels = build_labels(_staging(accounts), metrics, start=D, end=D, calendar=WEEKDAYS)
    assert labels.schema == LABEL_SCHEMA
    got = {r["account_id"]: r for r in labels.iter_rows(named=True)}
    assert got["observed"]["label_status"] == "observed"
    assert got["observed"]["net_profit_next_session"] == 120.0
    assert got["observed"]["breached_next_session"] is False
    assert got["observed"]["breach_by_rules"] is False
    assert got["breached"]["breached_next_session"] is True
    assert got["breached"]["breach_by_rules"] is True  # 9,300 is below the 9,600 daily floor
    assert got["idle"]["label_status"] == "idle_no_row"
    assert (got["idle"]["net_profit_next_session"], got["idle"]["breached_next_session"]) == (
        0.0,
        False,
    )
    assert got["idle"]["label_available"] is True
    for acc, status in (("moved", "missing_row"), ("gone", "account_gone")):
        assert got[acc]["label_status"] == status
        assert got[acc]["label_available"] is False
        assert got[acc]["net_profit_next_session"] is None
        assert got[acc]["breached_next_session"] is None


def test_without_the_grace_days_in_the_data_a_missing_row_is_pending() -> None:
    metrics = pl.DataFrame([_metric("observed", 1, net=5.0)])
    labels = build_labels(
        _staging(["observed", "late"]), metrics, start=D, end=D, calendar=WEEKDAYS
    )
    got = dict(labels.select("account_id", "label_status").iter_rows())
    assert got == {"observed": "observed", "late": "pending"}
    # Once the data is known complete through the grace days, the same row is gone.
    labels = build_labels(
        _staging(["late"]),
        metrics,
        start=D,
        end=D,
        available_through=_day(1 + LABEL_GRACE_DAYS),
        calendar=WEEKDAYS,
    )
    assert labels["label_status"].to_list() == ["account_gone"]


def _fri(acc: str, offset: int, **kwargs: object) -> dict:
    return _metric(acc, offset, base=FRIDAY, **kwargs)  # type: ignore[arg-type]


def _by_account(labels: pl.DataFrame) -> dict[str, dict]:
    return {r["account_id"]: r for r in labels.iter_rows(named=True)}


def test_friday_predicts_saturday_to_monday_with_weekend_trading_summed() -> None:
    metrics = pl.DataFrame(
        [
            # Every day of the span has a row: crypto traded on Saturday and Sunday.
            _fri("all_rows", 1, net=50.0, equity=10_050.0),
            _fri("all_rows", 2, net=-20.0, equity=10_030.0, opening=10_050.0),
            _fri("all_rows", 3, net=100.0, equity=10_130.0, opening=10_030.0),
            # Saturday traded, no row on Sunday, Monday opens with Saturday's close: idle Sunday.
            _fri("idle_sunday", 1, net=40.0, equity=10_040.0),
            _fri("idle_sunday", 3, net=-15.0, equity=10_025.0, opening=10_040.0),
            # No weekend rows at all, Monday opens with Friday's close.
            _fri("weekday_only", 3, net=70.0, equity=10_070.0),
        ]
    )
    staging = _staging(["all_rows", "idle_sunday", "weekday_only"], FRIDAY)
    labels = build_labels(staging, metrics, start=FRIDAY, end=FRIDAY, calendar=WEEKDAYS)
    got = _by_account(labels)
    for row in got.values():
        assert (row["target_start"], row["target_end"]) == (
            dt.date(2025, 6, 14),
            dt.date(2025, 6, 16),
        )
        assert row["label_available"] is True
        assert row["breached_next_session"] is False
    assert got["all_rows"]["net_profit_next_session"] == 130.0
    assert got["all_rows"]["label_status"] == "observed"
    assert got["all_rows"]["eod_equity_next_session"] == 10_130.0
    assert got["idle_sunday"]["net_profit_next_session"] == 25.0
    assert got["idle_sunday"]["label_status"] == "idle_no_row"
    assert got["weekday_only"]["net_profit_next_session"] == 70.0
    assert got["weekday_only"]["label_status"] == "idle_no_row"


def test_only_sessions_get_labels() -> None:
    weekend = pl.concat([_staging(["a"], FRIDAY + dt.timedelta(days=k)) for k in range(4)])
    metrics = pl.DataFrame([_fri("a", k, net=1.0) for k in range(1, 8)])
    labels = build_labels(
        weekend,
        metrics,
        start=FRIDAY,
        end=FRIDAY + dt.timedelta(days=3),
        calendar=WEEKDAYS,
    )
    assert labels["date"].to_list() == [FRIDAY, FRIDAY + dt.timedelta(days=3)]  # Fri, Mon
    assert labels["net_profit_next_session"].to_list() == [3.0, 1.0]


def test_a_holiday_lengthens_the_span_to_the_next_session() -> None:
    monday = dt.date(2025, 6, 16)
    calendar = TradingCalendar(holidays=frozenset({monday}))
    metrics = pl.DataFrame([_fri("a", k, net=10.0 * k) for k in range(1, 5 + LABEL_GRACE_DAYS)])
    labels = build_labels(_staging(["a"], FRIDAY), metrics, start=FRIDAY, end=FRIDAY,
                          calendar=calendar)  # fmt: skip
    row = labels.row(0, named=True)
    assert (row["target_start"], row["target_end"]) == (dt.date(2025, 6, 14), dt.date(2025, 6, 17))
    assert row["net_profit_next_session"] == 10.0 + 20.0 + 30.0 + 40.0


def test_a_breach_on_saturday_is_the_label_and_ends_the_span() -> None:
    metrics = pl.DataFrame(
        [
            _fri("breached", 1, net=-900.0, status=3, equity=8_900.0),
            # Another account keeps the data going past the span and its grace days.
            *[_fri("other", k) for k in range(1, 4 + LABEL_GRACE_DAYS)],
        ]
    )
    labels = build_labels(_staging(["breached"], FRIDAY), metrics, start=FRIDAY, end=FRIDAY,
                          calendar=WEEKDAYS)  # fmt: skip
    row = labels.row(0, named=True)
    # Sunday and Monday have no row: the account ended on Saturday, it is not gone or missing.
    assert row["label_status"] == "observed"
    assert row["breached_next_session"] is True
    assert row["net_profit_next_session"] == -900.0
    assert row["breach_by_rules"] is True  # 8,900 is below the first day's 9,600 floor


def test_a_span_is_pending_until_its_last_day_is_in_the_data() -> None:
    saturday = _fri("a", 1, net=5.0, equity=10_005.0)
    sunday = _fri("a", 2, net=5.0, equity=10_010.0, opening=10_005.0)
    monday = _fri("a", 3, net=5.0, equity=10_015.0, opening=10_010.0)
    staging = _staging(["a"], FRIDAY)
    through_sunday = build_labels(staging, pl.DataFrame([saturday, sunday]), start=FRIDAY,
                                  end=FRIDAY, calendar=WEEKDAYS)  # fmt: skip
    assert through_sunday.row(0, named=True)["label_status"] == "pending"
    assert through_sunday.row(0, named=True)["net_profit_next_session"] is None
    complete = build_labels(staging, pl.DataFrame([saturday, sunday, monday]), start=FRIDAY,
                            end=FRIDAY, calendar=WEEKDAYS)  # fmt: skip
    assert complete.row(0, named=True)["label_status"] == "observed"
    assert complete.row(0, named=True)["net_profit_next_session"] == 15.0


def test_a_span_with_an_unknown_day_is_missing_and_excluded() -> None:
    metrics = pl.DataFrame(
        [
            _fri("moved", 1, net=5.0, equity=10_005.0),
            # No row on Sunday and Monday opens with another balance: Sunday's P&L is unknown.
            _fri("moved", 3, net=5.0, equity=10_300.0, opening=10_295.0),
            # Gone from Sunday on, with the data going on through the grace days.
            _fri("gone", 1, net=5.0, equity=10_005.0),
            *[_fri("other", k) for k in range(1, 4 + LABEL_GRACE_DAYS)],
        ]
    )
    labels = build_labels(_staging(["moved", "gone"], FRIDAY), metrics, start=FRIDAY,
                          end=FRIDAY, calendar=WEEKDAYS)  # fmt: skip
    got = _by_account(labels)
    assert got["moved"]["label_status"] == "missing_row"
    assert got["gone"]["label_status"] == "account_gone"
    for row in got.values():
        assert row["label_available"] is False
        assert row["net_profit_next_session"] is None
        assert row["breached_next_session"] is None


def test_labels_of_the_simulated_firm(built) -> None:
    labels, features = built.labels, built.features
    calendar = TradingCalendar.from_settings()
    sessions = features.filter(pl.col("date").map_elements(calendar.is_session, pl.Boolean))
    assert labels.select("date", "account_id").equals(sessions.select("date", "account_id"))
    spans = calendar.span_table(labels["date"].unique().to_list())
    assert (
        labels.join(spans, on="date")
        .filter(
            (pl.col("target_start") != pl.col("target_start_right"))
            | (pl.col("target_end") != pl.col("target_end_right"))
        )
        .is_empty()
    )
    last_session = calendar.sessions_back(built.firm.end, 1)[0]
    last_day = labels.filter(pl.col("date") == last_session)
    assert (last_day["label_status"] == "pending").all()
    assert labels.filter(pl.col("date") < last_session)["label_available"].all()
