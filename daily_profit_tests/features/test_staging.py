"""Staging: the point-in-time state of live funded accounts, and the plan rules behind it."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from daily_profit.features.staging import STAGING_SCHEMA, build_staging, cumulative_state

D0 = dt.date(2025, 5, 1)

PLANS = pl.DataFrame(
    {
        "plan_id": [1, 2, 1],
        "starting_balance": [10_000.0, 50_000.0, 10_000.0],
        "profit_target_pct": [8.0, 0.0, 8.0],
        # The export repeats plan 1: its last row (4% daily loss) wins.
        "daily_loss_limit_pct": [9.0, 4.0, 4.0],
        "max_trailing_drawdown_pct": [10.0, 8.0, 10.0],
        "make_drawdown_static": [False, True, False],
        "daily_drawdown_by_balance_equity": [False, True, False],
        "profit_share_pct": [80.0, 75.0, 80.0],
        "leverage": [100, 30, 100],
        "liquidate_friday": [False, False, False],
        "enable_consistency": [False, False, False],
        "inactivity_period": [30, 30, 30],
        "minimum_required_active_trading_days": [4, None, 4],
        "maximum_time": [None, None, None],
    },
    schema_overrides={"minimum_required_active_trading_days": pl.Int64, "maximum_time": pl.Int64},
)


def _row(acc: str, day: int, **values) -> dict:
    base = {
        "date": D0 + dt.timedelta(days=day),
        "account_id": acc,
        "login": f"L{acc}",
        "plan_id": 1,
        "trader": "t1",
        "status": 1,
        "type": 1,
        "phase": 4,
        "broker": 1,
        "platform": 5,
        "country": "DE",
        "starting_balance": 10_000.0,
        "prior_days_balance": 10_000.0,
        "prior_days_equity": 10_000.0,
        "current_balance": 10_000.0,
        "current_equity": 10_000.0,
        "approved_payouts": 0.0,
        "pending_payouts": 0.0,
        "todays_payouts": 0.0,
        "days_to_next_payout": 5,
        "first_trade_date": D0,
        "days_since_first_trade": day,
        "num_trades": 1,
        "net_profit": 0.0,
    }
    return base | values


def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema_overrides={"days_to_next_payout": pl.Int64})


MASTER = pl.DataFrame(
    {
        "account_id": ["a", "b"],
        "trader": ["master-t", "master-t"],
        "platform": [4, 4],
        "broker": [2, 2],
        "country": ["GB", None],
        # Time-varying master fields: staging never reads them.
        "current_equity": [1e9, 1e9],
    }
)


@pytest.fixture(scope="module")
def staged() -> pl.DataFrame:
    rows = [
        # Account a: an evaluation phase with a high close, then funded.
        _row("a", 0, phase=1, current_balance=11_000.0, current_equity=11_200.0),
        _row("a", 1, prior_days_balance=11_000.0, prior_days_equity=11_200.0,
             current_balance=10_800.0, current_equity=10_700.0, num_trades=0),
        _row("a", 2, prior_days_balance=10_800.0, prior_days_equity=10_700.0,
             current_balance=10_900.0, current_equity=10_900.0, todays_payouts=50.0,
             approved_payouts=50.0),
        _row("a", 3, status=3),  # breached: not live
        # Account b: plan 2 (static drawdown, daily loss by equity, no profit target).
        _row("b", 1, plan_id=2, starting_balance=50_000.0, prior_days_balance=50_000.0,
             prior_days_equity=50_000.0, current_balance=49_000.0, current_equity=48_500.0,
             country=None),
    ]  # fmt: skip
    return build_staging(_frame(rows), PLANS, MASTER, start=D0, end=D0 + dt.timedelta(days=3))


def test_only_live_funded_days_are_staged(staged) -> None:
    assert staged.select("account_id", "date").rows() == [
        ("a", D0 + dt.timedelta(days=1)),
        ("b", D0 + dt.timedelta(days=1)),
        ("a", D0 + dt.timedelta(days=2)),
    ]
    assert staged.schema == STAGING_SCHEMA


def test_cumulative_state_spans_the_whole_history(staged) -> None:
    a1, a2 = staged.filter(pl.col("account_id") == "a").iter_rows(named=True)
    # The evaluation-phase close of 11,200 is the high-water mark of the funded days too.
    assert a1["hwm_equity"] == a2["hwm_equity"] == 11_200.0
    assert (a1["active_trading_days_to_date"], a2["active_trading_days_to_date"]) == (1, 2)
    assert (a1["payout_days_to_date"], a2["payout_days_to_date"]) == (0, 1)
    assert a2["account_age_days"] == 2 and a2["first_seen_date"] == D0


def test_distances_follow_the_plan_rules(staged) -> None:
    a2 = staged.filter(pl.col("account_id") == "a").row(1, named=True)
    # The last plan-1 row wins: 4% of 10,000.
    assert a2["daily_loss_limit_usd"] == 400.0
    assert a2["daily_loss_floor_next_usd"] == 10_900.0 - 400.0  # today's close, by balance
    assert a2["daily_loss_floor_today_usd"] == 10_800.0 - 400.0
    assert a2["dist_daily_loss_usd"] == 400.0
    assert a2["drawdown_floor_usd"] == 11_200.0 - 1_000.0  # trailing from the HWM
    assert a2["dist_drawdown_usd"] == pytest.approx(10_900.0 - 10_200.0)
    assert a2["dist_drawdown_pct"] == pytest.approx(7.0)
    assert a2["profit_target_usd"] == 10_800.0
    assert a2["dist_profit_target_usd"] == pytest.approx(-100.0)

    b = staged.filter(pl.col("account_id") == "b").row(0, named=True)
    assert b["daily_loss_floor_next_usd"] == 48_500.0 - 2_000.0  # by equity
    assert b["drawdown_floor_usd"] == 50_000.0 * 0.92  # static
    assert b["profit_target_usd"] is None and b["dist_profit_target_pct"] is None


def test_static_attributes_come_from_the_master_only(staged) -> None:
    a = staged.filter(pl.col("account_id") == "a")
    assert a["trader"].unique().to_list() == ["master-t"]
    assert a["platform"].unique().to_list() == [4] and a["country"].unique().to_list() == ["GB"]
    # The master has no country for b: the day's own row has none either.
    assert staged.filter(pl.col("account_id") == "b")["country"].to_list() == [None]


def test_prior_state_gives_the_same_rows_as_the_whole_history(firm) -> None:
    daily, plans, master = (firm.raw[k] for k in ("metrics_daily", "plans", "metrics_alltime"))
    start = firm.start + dt.timedelta(days=40)
    full = build_staging(daily, plans, master, start=start, end=firm.end)
    state_day = start - dt.timedelta(days=10)
    # The state at S carried in two steps, then only the rows after S.
    early = cumulative_state(daily, through=state_day - dt.timedelta(days=15))
    state = cumulative_state(
        daily.filter(pl.col("date") > state_day - dt.timedelta(days=15)),
        through=state_day,
        prior_state=early,
    )
    assert_frame_equal(state, cumulative_state(daily, through=state_day))
    carried = build_staging(
        daily.filter(pl.col("date") > state_day),
        plans,
        master,
        start=start,
        end=firm.end,
        prior_state=state,
    )
    assert full.height > 0
    assert_frame_equal(carried, full)


def test_plan_rules_match_the_api_breaches(built) -> None:
    """The sandbox breaches by the contract's rules on the close: rules and API agree exactly."""
    observed = built.labels.filter(pl.col("label_status") == "observed")
    assert observed["breached_next_session"].sum() > 0
    assert (observed["breach_by_rules"] == observed["breached_next_session"]).all()
