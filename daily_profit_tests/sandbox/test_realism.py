"""The realism band: next-day P&L is mostly noise, but learnable, and its spread varies a lot.

At the default size, over funded, non-breach account-days with a next day, the simulation's own
oracle (the ground truth) must beat the best naive forecast by 3-15% in MSE, while the oracle's
standard deviation varies several-fold across accounts and regimes and is calibrated.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from daily_profit.sandbox.simulation import SandboxData, SimulationConfig, oracle_report, simulate


@pytest.fixture(scope="module")
def data() -> SandboxData:
    return simulate(SimulationConfig())


@pytest.fixture(scope="module")
def report(data: SandboxData) -> dict[str, Any]:
    return oracle_report(data)


def test_oracle_beats_the_best_naive_baseline_by_3_to_15_percent(report: dict[str, Any]) -> None:
    assert report["n"] > 5000
    assert 0.03 <= report["improvement_over_best_baseline"] <= 0.15, report
    # Every naive baseline is worse than the oracle, and chasing yesterday is the worst.
    for name in ("zero", "last", "mean5", "mean20", "history"):
        assert report[f"mse_{name}"] > report["oracle_mse"]
    assert report["mse_last"] > report["mse_zero"]


def test_next_day_spread_varies_across_accounts_and_regimes(report: dict[str, Any]) -> None:
    assert report["std_p90_p10_ratio"] > 3
    assert report["std_dispersed_over_compressed"] > 1.5


def test_ground_truth_is_calibrated_and_heavy_tailed(report: dict[str, Any]) -> None:
    assert abs(report["z_mean"]) < 0.05
    assert 0.85 < report["z_var"] < 1.15
    assert report["z_kurtosis"] > 3.5  # fatter tails than a normal
    assert report["zero_next_day_share"] > 0.2  # idle days and weekends


def test_latent_skill_persists(data: SandboxData) -> None:
    """Accounts' mean daily P&L in the first and second half of their life correlate."""
    d = data.metrics_daily.join(data.latent.select("accountId", "edge"), on="accountId")
    d = d.with_columns(
        half=pl.col("date") >= pl.col("date").min().over("accountId") + pl.duration(days=30),
        scaled=pl.col("netProfit") / pl.col("startingBalance"),
    )
    halves = (
        d.group_by("accountId", "half")
        .agg(pl.col("scaled").mean(), pl.len())
        .filter(pl.col("len") >= 25)
        .pivot(on="half", index="accountId", values="scaled")
        .drop_nulls()
    )
    assert halves.height > 50
    assert halves.select(pl.corr("false", "true")).item() > 0.1
