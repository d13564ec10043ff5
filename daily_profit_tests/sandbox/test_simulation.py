"""Invariants of the simulated firm: the contract's arithmetic, plan rules and realism of shape."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from daily_profit.sandbox.simulation import (
    ALLTIME_COLUMNS,
    CLOSED_TRADE_COLUMNS,
    DAILY_COLUMNS,
    GROUND_TRUTH_COLUMNS,
    HOURLY_COLUMNS,
    OPEN_TRADE_COLUMNS,
    PLAN_COLUMNS,
    REGIME_COLUMNS,
    SYMBOLS,
    SandboxData,
    SimulationConfig,
    simulate,
)

ACCOUNT_KEY = ["login", "mt_version", "broker"]


@pytest.fixture(scope="module")
def data() -> SandboxData:
    return simulate(SimulationConfig())


def _cents(column: str) -> pl.Expr:
    return (pl.col(column) * 100).round(0).cast(pl.Int64)


def _daily_sorted(data: SandboxData) -> pl.DataFrame:
    return data.metrics_daily.sort([*ACCOUNT_KEY, "date"])


def test_same_seed_same_frames_and_different_seed_different() -> None:
    config = SimulationConfig(seed=3, n_accounts=60, n_days=40)
    first, second = simulate(config), simulate(config)
    for name, frame in first.frames().items():
        assert frame.equals(second.frames()[name]), name
    other = simulate(SimulationConfig(seed=4, n_accounts=60, n_days=40))
    for name in ("metrics_daily", "trades_closed", "regimes", "ground_truth"):
        assert not first.frames()[name].equals(other.frames()[name]), name


def test_frames_carry_the_contract_field_names(data: SandboxData) -> None:
    assert tuple(data.plans.columns) == PLAN_COLUMNS
    assert tuple(data.accounts_alltime.columns) == ALLTIME_COLUMNS
    assert tuple(data.metrics_daily.columns) == DAILY_COLUMNS
    assert tuple(data.metrics_hourly.columns) == HOURLY_COLUMNS
    assert tuple(data.trades_closed.columns) == CLOSED_TRADE_COLUMNS
    assert tuple(data.trades_open.columns) == OPEN_TRADE_COLUMNS
    assert tuple(data.regimes.columns) == REGIME_COLUMNS
    assert tuple(data.ground_truth.columns) == GROUND_TRUTH_COLUMNS
    daily = data.metrics_daily
    assert daily.schema["login"] == pl.String
    assert daily.schema["date"] == pl.Date
    assert daily.schema["numTrades"] == pl.Int64
    assert data.trades_closed.schema["closeTime"] == pl.Datetime("ms", "UTC")
    for frame in data.frames().values():
        floats = [c for c, t in frame.schema.items() if t == pl.Float64]
        assert not frame.select(pl.any_horizontal(pl.col(floats).is_nan())).to_series().any()


def test_closed_trades_sum_to_daily_metrics_to_the_cent(data: SandboxData) -> None:
    per_day = data.trades_closed.group_by(
        "login", pl.col("platform").alias("mt_version"), "broker", pl.col("tradeDate").alias("date")
    ).agg(
        pl.len().alias("n"),
        (_cents("profit") + _cents("commission") + _cents("fee") + _cents("swap"))
        .sum()
        .alias("net_c"),
    )
    joined = data.metrics_daily.join(per_day, on=[*ACCOUNT_KEY, "date"], how="left").with_columns(
        pl.col("n").fill_null(0), pl.col("net_c").fill_null(0)
    )
    assert joined.height == data.metrics_daily.height
    assert (joined["numTrades"] == joined["n"]).all()
    assert (joined.select(_cents("netProfit"))["netProfit"] == joined["net_c"]).all()
    # Every closed trade belongs to a daily row of its account.
    orphans = per_day.join(data.metrics_daily, on=[*ACCOUNT_KEY, "date"], how="anti")
    assert orphans.height == 0


def test_daily_trade_statistics_follow_from_the_trades(data: SandboxData) -> None:
    trades = data.trades_closed.with_columns(
        net=(pl.col("profit") + pl.col("commission") + pl.col("fee") + pl.col("swap")).round(2)
    )
    stats = trades.group_by(
        "login", pl.col("platform").alias("mt_version"), "broker", pl.col("tradeDate").alias("date")
    ).agg(
        pl.col("net").filter(pl.col("net") > 0).sum().alias("gp"),
        pl.col("net").filter(pl.col("net") < 0).sum().alias("gl"),
        (pl.col("net") > 0).mean().alias("win"),
        pl.col("lots").sum().alias("lots"),
        pl.col("stdSymbol").n_unique().alias("symbols"),
        pl.col("duration").mean().alias("duration"),
        pl.col("net").min().alias("min"),
        pl.col("net").max().alias("max"),
    )
    d = data.metrics_daily.join(stats, on=[*ACCOUNT_KEY, "date"], how="inner")
    assert d.height > 1000
    assert (d["grossProfit"] - d["gp"]).abs().max() < 0.005
    assert (d["grossLoss"] - d["gl"]).abs().max() < 0.005
    assert (d["successRate"] - d["win"] * 100).abs().max() < 0.01
    assert (d["totalLots"] - d["lots"]).abs().max() < 1e-6
    assert (d["numTradedSymbols"] == d["symbols"]).all()
    assert (d["meanDuration"] - d["duration"]).abs().max() < 1e-3
    assert (d["minProfit"] - d["min"]).abs().max() < 0.005
    assert (d["maxProfit"] - d["max"]).abs().max() < 0.005
    assert (d["grossProfit"] >= 0).all() and (d["grossLoss"] <= 0).all()
    assert (d["maxDrawDown"] <= 0).all() and (d["maxDrawDown"] <= d["meanDrawDown"] + 1e-9).all()
    no_loss = d.filter(pl.col("gl") == 0)
    assert no_loss.height > 0 and no_loss["profitFactor"].is_null().all()
    with_loss = d.filter(pl.col("gl") < 0)
    expected_pf = with_loss["gp"] / -with_loss["gl"]
    assert ((with_loss["profitFactor"] - expected_pf).abs() < 1e-3).all()
    idle = data.metrics_daily.filter(pl.col("numTrades") == 0)
    assert idle.height > 0
    assert (idle["netProfit"] == 0).all() and idle["successRate"].is_null().all()


def test_hourly_rows_sum_to_the_daily_row(data: SandboxData) -> None:
    hourly = data.metrics_hourly.group_by([*ACCOUNT_KEY, "date"]).agg(
        pl.col("numTrades").sum().alias("n"), _cents("netProfit").sum().alias("net_c")
    )
    daily = data.metrics_daily.filter(pl.col("numTrades") > 0)
    joined = daily.join(hourly, on=[*ACCOUNT_KEY, "date"], how="left")
    assert joined["n"].null_count() == 0
    assert (joined["numTrades"] == joined["n"]).all()
    assert (joined.select(_cents("netProfit"))["netProfit"] == joined["net_c"]).all()
    assert (data.metrics_hourly["numTrades"] > 0).all()
    # The last hour's balance is the day's balance before payouts.
    last = (
        data.metrics_hourly.sort([*ACCOUNT_KEY, "date", "hour"])
        .group_by([*ACCOUNT_KEY, "date"], maintain_order=True)
        .last()
        .join(data.metrics_daily, on=[*ACCOUNT_KEY, "date"], suffix="_d")
    )
    expected = last["currentBalance_d"] + last["todays_payouts"]
    assert ((last["currentBalance"] - expected).abs() < 0.005).all()


def test_hour_and_trade_date_follow_the_broker_day(data: SandboxData) -> None:
    trades = data.trades_closed.with_columns(broker_time=pl.col("closeTime") + pl.duration(hours=2))
    assert (trades["broker_time"].dt.date() == trades["tradeDate"]).all()
    # The trap: some trades of a day closed on the previous UTC calendar date.
    early = trades.filter(pl.col("closeTime").dt.date() < pl.col("tradeDate"))
    assert 0 < early.height < trades.height * 0.1
    hours = trades.group_by(
        "login", pl.col("platform").alias("mt_version"), "broker",
        pl.col("tradeDate").alias("date"), pl.col("broker_time").dt.hour().cast(pl.Int64).alias("hour"),
    ).len()  # fmt: skip
    joined = data.metrics_hourly.join(hours, on=[*ACCOUNT_KEY, "date", "hour"], how="left")
    assert (joined["numTrades"] == joined["len"]).all()


def test_balances_roll_forward(data: SandboxData) -> None:
    d = _daily_sorted(data).with_columns(
        prev_bal=pl.col("currentBalance").shift(1).over(ACCOUNT_KEY),
        prev_eq=pl.col("currentEquity").shift(1).over(ACCOUNT_KEY),
        prev_date=pl.col("date").shift(1).over(ACCOUNT_KEY),
    )
    rolled = d.select(
        _cents("currentBalance") - _cents("priorDaysBalance") - _cents("netProfit")
        + _cents("todays_payouts")
    ).to_series()  # fmt: skip
    assert (rolled == 0).all()
    later = d.filter(pl.col("prev_bal").is_not_null())
    assert (later["priorDaysBalance"] == later["prev_bal"]).all()
    assert (later["priorDaysEquity"] == later["prev_eq"]).all()
    assert (later["date"] - later["prev_date"] == dt.timedelta(days=1)).all()  # no gaps
    first = d.filter(pl.col("prev_bal").is_null())
    assert (first["priorDaysBalance"] == first["startingBalance"]).all()
    assert (first["priorDaysEquity"] == first["startingBalance"]).all()


def test_equity_is_balance_plus_open_positions(data: SandboxData) -> None:
    unrealised = data.trades_open.group_by(
        "login", pl.col("platform").alias("mt_version"), "broker", pl.col("tradeDate").alias("date")
    ).agg(_cents("profit").sum().alias("u"))
    d = data.metrics_daily.join(unrealised, on=[*ACCOUNT_KEY, "date"], how="left").with_columns(
        pl.col("u").fill_null(0)
    )
    gap = d.select(_cents("currentEquity") - _cents("currentBalance")).to_series()
    assert (gap == d["u"]).all()
    assert (d["u"] != 0).sum() > 100


def test_open_positions_close_on_the_next_day(data: SandboxData) -> None:
    last_day = data.config.end_date
    breach_days = data.metrics_daily.filter(pl.col("status") == 3).select(*ACCOUNT_KEY, "date")
    snapshots = data.trades_open.join(
        breach_days,
        left_on=["login", "platform", "broker", "tradeDate"],
        right_on=[*ACCOUNT_KEY, "date"],
        how="anti",
    ).filter(pl.col("tradeDate") < last_day)
    closes = data.trades_closed.select(
        "broker", "platform", "position", "tradeDate", "openTime", "swap"
    )
    matched = snapshots.join(closes, on=["broker", "platform", "position"], suffix="_c")
    assert matched.height == snapshots.height > 0
    assert (matched["tradeDate_c"] == matched["tradeDate"] + dt.timedelta(days=1)).all()
    assert (matched["openTime_c"] == matched["openTime"]).all()
    assert (matched["swap_c"] != 0).mean() > 0.9  # held over the rollover


def test_payouts_only_on_funded_accounts(data: SandboxData) -> None:
    d = _daily_sorted(data)
    paid = d.filter(pl.col("todays_payouts") > 0)
    assert paid.height > 10
    assert (paid["phase"] == 4).all()
    assert (d.filter(pl.col("phase") != 4)["approved_payouts"] == 0).all()
    assert (d.filter(pl.col("pending_payouts") > 0)["phase"] == 4).all()
    cumulative = d.with_columns(c=_cents("todays_payouts").cum_sum().over(ACCOUNT_KEY)).select(
        pl.col("c") - _cents("approved_payouts")
    )
    assert (cumulative.to_series() == 0).all()
    funded = d.filter((pl.col("phase") == 4) & (pl.col("status") != 3))
    assert funded["days_to_next_payout"].null_count() == 0
    assert funded["days_to_next_payout"].is_between(1, data.config.payout_cycle_days).all()
    others = d.filter((pl.col("phase") != 4) | (pl.col("status") == 3))
    assert others["days_to_next_payout"].is_null().all()


def _with_limits(data: SandboxData) -> pl.DataFrame:
    plans = data.plans.select(
        "planId", "dailyLossLimitPct", "maxTrailingDrawdownPct", "makeDrawdownStatic",
        "dailyDrawdownByBalanceEquity",
    )  # fmt: skip
    d = _daily_sorted(data).join(plans, on="planId", how="left")
    return d.with_columns(
        hwm=pl.max_horizontal(
            pl.col("startingBalance"),
            pl.col("currentEquity").shift(1).cum_max().over(ACCOUNT_KEY),
        ),
        ref=pl.when(pl.col("dailyDrawdownByBalanceEquity"))
        .then(pl.col("priorDaysEquity"))
        .otherwise(pl.col("priorDaysBalance")),
        dll=pl.col("startingBalance") * pl.col("dailyLossLimitPct") / 100,
        dd=pl.col("startingBalance") * pl.col("maxTrailingDrawdownPct") / 100,
    ).with_columns(
        daily_breach=(pl.col("ref") - pl.col("currentEquity")) > pl.col("dll") + 0.005,
        dd_breach=pl.when(pl.col("makeDrawdownStatic"))
        .then(pl.col("currentEquity") < pl.col("startingBalance") - pl.col("dd") - 0.005)
        .otherwise(pl.col("currentEquity") < pl.col("hwm") - pl.col("dd") - 0.005),
        near=((pl.col("ref") - pl.col("currentEquity")) - pl.col("dll")).abs() < 0.02,
    )


def test_breaches_follow_the_plan_rules_and_stop_the_account(data: SandboxData) -> None:
    d = _with_limits(data)
    breached = d.filter(pl.col("status") == 3)
    assert breached.height > 10
    assert (breached["daily_breach"] | breached["dd_breach"]).all()
    survivors = d.filter(pl.col("status") != 3)
    assert not (survivors["daily_breach"] | survivors["dd_breach"]).any()
    assert breached["daily_breach"].any() and breached["dd_breach"].any()
    # A breach is the account's last row: no metrics and no trades after it.
    last = d.group_by(ACCOUNT_KEY).agg(pl.col("date").max().alias("last"))
    check = breached.join(last, on=ACCOUNT_KEY)
    assert (check["date"] == check["last"]).all()
    later_trades = data.trades_closed.join(
        breached.select(*ACCOUNT_KEY, pl.col("date").alias("breach")),
        left_on=["login", "platform", "broker"],
        right_on=ACCOUNT_KEY,
    ).filter(pl.col("tradeDate") > pl.col("breach"))
    assert later_trades.height == 0
    assert (data.accounts_alltime["status"] == 3).sum() == breached.height


def test_phases_move_forward_by_plan_type(data: SandboxData) -> None:
    d = _daily_sorted(data)
    steps = d.with_columns(prev=pl.col("phase").shift(1).over(ACCOUNT_KEY)).filter(
        pl.col("prev").is_not_null() & (pl.col("prev") != pl.col("phase"))
    )
    moves = set(zip(steps["type"], steps["prev"], steps["phase"], strict=True))
    assert moves <= {(1, 1, 2), (1, 2, 4), (2, 1, 4)}
    assert {(1, 1, 2), (2, 1, 4)} <= moves
    assert (d.filter(pl.col("type") == 3)["phase"] == 4).all()
    assert set(d["phase"].unique()) == {1, 2, 4}


def test_accounts_start_over_the_window_and_traders_hold_several(data: SandboxData) -> None:
    first = data.metrics_daily.group_by(ACCOUNT_KEY).agg(pl.col("date").min())
    assert (first["date"] == data.config.start_date).mean() < 0.7
    assert first["date"].n_unique() > 30
    per_trader = data.accounts_alltime.group_by("trader").len()
    assert per_trader["len"].max() >= 3 and (per_trader["len"] == 1).any()
    # The natural key of an account is (login, mt_version, broker): logins repeat across brokers.
    logins = data.accounts_alltime.group_by("login").agg(pl.col("broker").n_unique())
    assert (logins["broker"] > 1).any()
    assert data.accounts_alltime.select(ACCOUNT_KEY).is_unique().all()
    assert data.accounts_alltime["accountId"].is_unique().all()


def test_some_account_ids_are_null_but_known_elsewhere(data: SandboxData) -> None:
    for frame in (data.metrics_daily, data.metrics_hourly):
        share = frame["accountId"].null_count() / frame.height
        assert 0.004 < share < 0.02
        known = frame.drop_nulls("accountId").select(*ACCOUNT_KEY, "accountId").unique()
        assert known.select(ACCOUNT_KEY).is_unique().all()
        missing = frame.filter(pl.col("accountId").is_null()).select(ACCOUNT_KEY).unique()
        assert missing.join(known, on=ACCOUNT_KEY, how="anti").height == 0


def test_alltime_rows_are_the_account_master_as_of_the_last_day(data: SandboxData) -> None:
    d = _daily_sorted(data)
    totals = d.group_by(ACCOUNT_KEY).agg(
        pl.col("numTrades").sum().alias("n"),
        _cents("netProfit").sum().alias("net_c"),
        pl.col("currentBalance").last().alias("bal"),
        pl.col("phase").last().alias("ph"),
        pl.len().alias("days"),
    )
    a = data.accounts_alltime.join(totals, on=ACCOUNT_KEY)
    assert a.height == data.accounts_alltime.height
    assert (a["numTrades"] == a["n"]).all()
    assert (a.select(_cents("netProfit"))["netProfit"] == a["net_c"]).all()
    assert (a["currentBalance"] == a["bal"]).all() and (a["phase"] == a["ph"]).all()
    assert (a["lifeTimeInDays"] == a["days"]).all()
    assert a["dailySharpe"].null_count() < a.height
    assert tuple(data.accounts.columns)[:3] == ("login", "accountId", "planId")


def test_trade_records_are_well_formed(data: SandboxData) -> None:
    t = data.trades_closed
    assert (t["closeTime"] >= t["openTime"]).all()
    hours = (t["closeTime"] - t["openTime"]).dt.total_milliseconds() / 3_600_000
    assert ((hours - t["duration"]).abs() < 1e-5).all()
    assert (t["lots"] > 0).all()
    assert ((t["qtyInBaseCrncy"] - t["lots"] * t["contractSize"]).abs() < 0.01).all()
    assert set(t["side"].str.to_lowercase().unique()) == {"buy", "sell"}
    assert t["side"].n_unique() >= 4  # mixed letter case
    assert set(t["stdSymbol"].unique()) <= set(SYMBOLS)
    assert t.select("broker", "platform", "position", "tradeDate").is_unique().all()
    assert t["position"].is_unique().all()
    assert t["stopLoss"].null_count() > 0 and (t["stopLoss"] == 0).any()
    assert t["trdSymbol"].str.contains(r"\.raw$").any()
    assert (t["volumeUSD"] > 0).all()
    assert (t["commission"] <= 0).all() and (t["fee"] <= 0).all()
    assert ((t["swap"] <= 0) | (t["swap"] > 0)).all() and (t["swap"] <= 0).mean() > 0.95
    per_active_day = data.metrics_daily.filter(pl.col("numTrades") > 0)["numTrades"].mean()
    assert 2.0 <= per_active_day <= 5.0


def test_weekends_trade_crypto_only(data: SandboxData) -> None:
    weekend = data.trades_closed.filter(pl.col("tradeDate").dt.weekday() >= 6)
    assert weekend.height > 0
    assert (weekend["stdSymbol"] == "BTCUSD").all()
    rows = data.metrics_daily.with_columns(weekend=pl.col("date").dt.weekday() >= 6)
    assert rows["weekend"].any()  # accounts have rows at weekends, mostly without trades
    activity = rows.group_by("weekend").agg((pl.col("numTrades") > 0).mean())
    share = dict(zip(activity["weekend"], activity["numTrades"], strict=True))
    assert share[True] < 0.2 < share[False]


def test_regimes_form_a_persistent_chain(data: SandboxData) -> None:
    r = data.regimes
    assert r.height == data.config.n_days
    assert set(r["volatilityRegime"].unique()) == {"COMPRESSED", "BALANCED", "DISPERSED"}
    stay = (r["volatilityRegime"].head(-1) == r["volatilityRegime"].tail(-1)).mean()
    assert stay > 0.7
    assert r.select((pl.col("riskOnProb") + pl.col("riskOffProb")) <= 1 + 1e-9).to_series().all()
    calm = r.filter(pl.col("volatilityRegime") == "COMPRESSED")
    assert ((calm["volSpikeProb"] - (1 - calm["riskOnProb"])).abs() < 1e-5).all()
    assert (r.filter(pl.col("volatilityRegime") == "DISPERSED")["volSpikeProb"] == 0).all()
    instruments = r["instruments"].struct.fields
    assert instruments == list(SYMBOLS)
    eurusd = r["instruments"].struct.field("EURUSD").struct.unnest()
    assert set(eurusd.columns) == {"eodPrice", "dailyReturn", "volatility90d"}
    assert (eurusd["eodPrice"] > 0).all() and (eurusd["volatility90d"] > 0).all()
    assert r["sentimentScore"].drop_nulls().is_between(-1, 1).all()


def test_martingale_traders_size_up_after_losing_days(data: SandboxData) -> None:
    escalators = data.latent.filter(pl.col("martingale") > 0).select("accountId")
    d = (
        _daily_sorted(data)
        .join(escalators, on="accountId")
        .with_columns(prev=pl.col("netProfit").shift(1).over(ACCOUNT_KEY))
        .filter((pl.col("numTrades") > 0) & pl.col("prev").is_not_null() & (pl.col("prev") != 0))
        .with_columns(size=pl.col("totalLots"))
    )
    after_loss = d.filter(pl.col("prev") < 0)["size"].median()
    after_win = d.filter(pl.col("prev") > 0)["size"].median()
    assert after_loss > 1.1 * after_win


def test_plans_csv_is_a_realistic_export(data: SandboxData, tmp_path: Path) -> None:
    path = data.write_plans_csv(tmp_path / "plans.csv")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == PLAN_COLUMNS
    ids = [int(r["planId"]) for r in rows]
    assert len(ids) > len(set(ids))  # repeated planIds
    last = {int(r["planId"]): r for r in rows}
    assert sorted(last) == sorted(data.plans["planId"].to_list())
    for plan in data.plans.to_dicts():
        row = last[plan["planId"]]
        assert float(row["profitSharePct"]) == plan["profitSharePct"]
        assert float(row["dailyLossLimitPct"]) == plan["dailyLossLimitPct"]
        assert (row["makeDrawdownStatic"] in {"TRUE", "1"}) == plan["makeDrawdownStatic"]
        assert (row["maximumTime"] == "") == (plan["maximumTime"] is None)
    bools = {r["liquidateFriday"] for r in rows}
    assert bools & {"TRUE", "FALSE"} and bools & {"1", "0"}


def test_ground_truth_parquet(data: SandboxData, tmp_path: Path) -> None:
    path = data.write_ground_truth(tmp_path / "gt" / "ground_truth.parquet")
    back = pl.read_parquet(path)
    assert back.equals(data.ground_truth)
    keys = data.metrics_daily.filter(pl.col("status") != 3).height
    assert back.height == keys
    assert (back["next_day_std"] >= 0).all()
    assert np.isfinite(back["expected_next_day_net_profit"].to_numpy()).all()
