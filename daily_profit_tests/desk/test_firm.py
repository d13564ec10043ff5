"""The firm's next-session distribution: quantiles and ES on known cases, the dependence it
estimates, and its check against the sandbox's realised firm sums."""

import datetime as dt
import math
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest

from daily_profit.desk import firm
from daily_profit.desk.report import DeskSettings, firm_backtest
from daily_profit.sandbox.simulation import SimulationConfig, simulate

N = NormalDist()
SIGMA = 1_000.0


def _accounts(n: int, traders: list[str] | None = None, share: float = 50.0) -> pl.DataFrame:
    half = firm.Z95 * SIGMA
    return pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "trader": traders or [f"t{i}" for i in range(n)],
            "p05": [-half] * n,
            "p50": [0.0] * n,
            "p95": [half] * n,
            "profit_share_pct": [share] * n,
        }
    )


def _normal_es(sd: float) -> float:
    """ES95 of the lower tail of N(0, sd): -sd * phi(z95) / 0.05."""
    return -sd * math.exp(-(firm.Z95**2) / 2) / math.sqrt(2 * math.pi) / 0.05


def test_one_account_reproduces_its_quantiles_and_the_normal_tail():
    sim = firm.simulate_firm(_accounts(1), firm.INDEPENDENT, n_sims=200_000, seed=1)
    s = firm.lower_tail(sim.pnl)
    assert s["p05"] == pytest.approx(-firm.Z95 * SIGMA, rel=0.02)
    assert s["p95"] == pytest.approx(firm.Z95 * SIGMA, rel=0.02)
    assert abs(s["p50"]) < 0.02 * SIGMA
    assert s["es95"] == pytest.approx(_normal_es(SIGMA), rel=0.02)
    # The payout is the profit share of the positive part: E = 0.5 * sigma / sqrt(2 pi).
    assert sim.payout.mean() == pytest.approx(0.5 * SIGMA / math.sqrt(2 * math.pi), rel=0.02)
    assert sim.payout.min() == 0.0


def test_a_skewed_interval_keeps_its_own_quantiles():
    accounts = pl.DataFrame(
        {"trader": ["t"], "p05": [-3_000.0], "p50": [100.0], "p95": [900.0],
         "profit_share_pct": [80.0]}
    )  # fmt: skip
    s = firm.lower_tail(firm.simulate_firm(accounts, firm.INDEPENDENT, n_sims=100_000).pnl)
    assert s["p05"] == pytest.approx(-3_000.0, rel=0.03)
    assert s["p50"] == pytest.approx(100.0, abs=40.0)
    assert s["p95"] == pytest.approx(900.0, rel=0.03)


def test_the_sum_under_a_market_factor_has_the_variance_of_the_factor_model():
    n, rho = 20, 0.2
    dep = firm.Dependence(market=rho, trader=0.0)
    sim = firm.simulate_firm(_accounts(n), dep, n_sims=100_000, seed=2)
    sd = SIGMA * math.sqrt(n * (1 + (n - 1) * rho))
    s = firm.lower_tail(sim.pnl)
    assert s["p95"] == pytest.approx(firm.Z95 * sd, rel=0.03)
    assert s["es95"] == pytest.approx(_normal_es(sd), rel=0.03)


def test_dependence_widens_the_firm_distribution_against_independent():
    # Ten accounts held by two traders: each trader's accounts move together.
    traders = ["t1"] * 5 + ["t2"] * 5
    accounts = _accounts(10, traders)
    dep = firm.Dependence(market=0.05, trader=0.5)
    together = firm.lower_tail(firm.simulate_firm(accounts, dep, n_sims=60_000, seed=3).pnl)
    apart = firm.lower_tail(
        firm.simulate_firm(accounts, firm.INDEPENDENT, n_sims=60_000, seed=3).pnl
    )
    # Var of the sum: n + sum over pairs of 2 rho; 2 * 10 pairs within a trader, 25 between.
    expected_ratio = math.sqrt((10 + 2 * (20 * 0.55 + 25 * 0.05)) / 10)
    width = (together["p95"] - together["p05"]) / (apart["p95"] - apart["p05"])
    assert width == pytest.approx(expected_ratio, rel=0.04)
    assert together["es95"] < apart["es95"] < 0


def test_the_payout_tail_is_the_upper_one():
    sim = firm.simulate_firm(_accounts(5), firm.INDEPENDENT, n_sims=20_000, seed=4)
    s = firm.upper_tail(sim.payout)
    assert s["es95"] > s["p95"] > s["p50"] > 0


def test_estimate_dependence_recovers_the_factor_correlations():
    rng = np.random.default_rng(5)
    days, traders, per_trader = 150, 40, 3
    rho_m, rho_t = 0.1, 0.4
    trader = np.repeat(np.arange(traders), per_trader)
    m = rng.standard_normal((days, 1))
    t = rng.standard_normal((days, traders))[:, trader]
    e = rng.standard_normal((days, trader.size))
    z = math.sqrt(rho_m) * m + math.sqrt(rho_t) * t + math.sqrt(1 - rho_m - rho_t) * e
    start = dt.date(2025, 1, 1)
    history = pl.DataFrame(
        {
            "date": np.repeat([start + dt.timedelta(days=d) for d in range(days)], trader.size),
            "trader": np.tile([f"t{k}" for k in trader], days),
            "z": z.ravel(),
        }
    )
    dep = firm.estimate_dependence(history)
    assert dep.market == pytest.approx(rho_m, abs=0.04)
    assert dep.trader == pytest.approx(rho_t, abs=0.05)
    assert dep.days == days and dep.same_trader_pairs == days * traders * 3
    # Independent scores: nothing is made up.
    alone = history.with_columns(pl.Series("z", e.ravel()))
    quiet = firm.estimate_dependence(alone)
    assert quiet.market < 0.02 and quiet.trader < 0.05
    assert firm.estimate_dependence(history.clear()) == firm.INDEPENDENT


def test_scores_are_standard_normal_under_the_split_normal():
    frame = pl.DataFrame(
        {"p05": [-1_645.0, -1_645.0], "p50": [0.0, 0.0], "p95": [822.5, 822.5],
         "realised": [-1_645.0, 822.5]}
    )  # fmt: skip
    assert firm.scores(frame) == pytest.approx([-firm.Z95, firm.Z95], rel=1e-3)


def test_an_impossible_dependence_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"market=0\.7, trader=0\.4"):
        firm.Dependence(market=0.7, trader=0.4)


def _oracle_history(data) -> pl.DataFrame:
    """The sandbox's own truth as the predictions: each funded account's exact next-day mean
    and standard deviation as a normal 90% interval, with what happened the next day."""
    daily = data.metrics_daily.filter(pl.col("accountId").is_not_null()).select(
        pl.col("accountId").alias("account_id"), "date", "trader", "phase", "netProfit"
    )
    realised = daily.select(
        "account_id",
        (pl.col("date") - dt.timedelta(days=1)).alias("date"),
        pl.col("netProfit").alias("realised"),
    )
    mean, sd = pl.col("expected_next_day_net_profit"), pl.col("next_day_std")
    history = (
        data.ground_truth.select(pl.col("accountId").alias("account_id"), "date", mean, sd)
        .join(daily.select("account_id", "date", "trader", "phase"), on=["account_id", "date"])
        .filter(pl.col("phase") == 4)
        .join(realised, on=["account_id", "date"], how="inner")
        .select(
            "date",
            "account_id",
            "trader",
            "realised",
            # The truth is of the next day: known at its end.
            (pl.col("date") + dt.timedelta(days=1)).alias("target_end"),
            (mean - firm.Z95 * sd).alias("p05"),
            mean.alias("p50"),
            (mean + firm.Z95 * sd).alias("p95"),
        )
    )
    return history.with_columns(pl.Series("z", firm.scores(history)))


def test_against_the_sandbox_the_dependent_interval_covers_and_the_independent_is_too_narrow():
    # A firm whose traders hold about four funded accounts each: their shared daily shock is
    # the dependence an independent sum leaves out.
    data = simulate(
        SimulationConfig(
            n_accounts=400, n_days=150, seed=7, accounts_per_trader=4.0,
            initial_account_share=0.8,
        )
    )  # fmt: skip
    history = _oracle_history(data)
    days = sorted(history["date"].unique().to_list())[-60:]
    settings = DeskSettings(backtest_sims=2_000, dependence_days=60)
    checked = firm.backtest_summary(firm_backtest(history, days, settings))
    assert checked["days"] == 60
    assert checked["width_ratio_dependent_to_independent"] > 1.15
    assert checked["coverage"] >= 0.83
    assert checked["coverage_independent"] < 0.85
    assert checked["coverage"] - checked["coverage_independent"] >= 0.05
