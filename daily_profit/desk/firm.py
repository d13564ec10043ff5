"""The firm's next session: the sum of the funded accounts' net P&L and the payout exposure.

Method: a **Gaussian factor copula** (a factor simulation of the accounts' scores), stated
here because the desk reads the tail from it.

- *Marginals.* Each account's predictive distribution of tomorrow's net P&L is the split
  normal through its predicted quantiles: median ``p50``, scale ``(p50 - p05) / 1.645`` below
  it and ``(p95 - p50) / 1.645`` above, so it reproduces the model's p05, p50 and p95 exactly.
- *Dependence.* An account's score ``z`` (its standard normal quantile under its marginal) is
  ``sqrt(rho_m) M + sqrt(rho_t) T_k + sqrt(1 - rho_m - rho_t) e``: ``M`` the market factor that
  every account shares (the regime, the day's common direction), ``T_k`` a factor of trader
  ``k`` shared by the trader's accounts, ``e`` the account's own. Two accounts of different
  traders are correlated by ``rho_m``, two of the same trader by ``rho_m + rho_t``.
- *Estimation, from history.* The realised P&L of the past days, scored against what was
  predicted for them (``z = (y - p50) / scale``), gives the correlations by moments over the
  account pairs of each day: pairs of different traders estimate ``rho_m``, pairs of one
  trader ``rho_m + rho_t`` (``estimate_dependence``). With no history both are 0 and the
  report says so.
- *Outputs.* Per simulated session: ``firm_pnl = sum_i X_i`` and ``payout = sum_i share_i *
  max(X_i, 0)`` (the profit share the firm pays out of each account's positive day); their
  p05, p50, p95 and the 95% expected shortfall: for the P&L the mean of the worst 5% of
  sessions (a loss: negative), for the payout the mean of the largest 5% (what the firm pays in
  its bad 5%).

``backtest`` checks the method on the days whose outcome is known: the realised firm sum
against the dependent and the independent intervals.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
import polars as pl

Z95 = NormalDist().inv_cdf(0.95)
# Scores beyond this are clipped when estimating: one wild day of one account must not set
# the firm's correlation.
SCORE_CLIP = 5.0
# A quantile gap below this (USD) is a degenerate interval (an account that cannot move).
MIN_SCALE_USD = 1e-6
SIM_CHUNK = 2_000
TAIL = 0.05


@dataclass(frozen=True)
class Dependence:
    """Correlations of the accounts' scores: ``market`` between any two accounts, ``trader`` on
    top of it between two accounts of one trader; with what they were estimated from."""

    market: float
    trader: float
    days: int = 0
    scores: int = 0
    same_trader_pairs: int = 0

    def __post_init__(self) -> None:
        if self.market < 0.0 or self.trader < 0.0 or self.market + self.trader >= 1.0:
            raise ValueError(
                f"dependence: market={self.market}, trader={self.trader}: each must be >= 0 "
                "and their sum < 1"
            )

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


INDEPENDENT = Dependence(market=0.0, trader=0.0)


def scales(p05: np.ndarray, p50: np.ndarray, p95: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The split normal's scale below and above the median, from the 90% interval."""
    low = np.maximum((np.asarray(p50) - np.asarray(p05)) / Z95, MIN_SCALE_USD)
    high = np.maximum((np.asarray(p95) - np.asarray(p50)) / Z95, MIN_SCALE_USD)
    return low, high


def scores(frame: pl.DataFrame, realised: str = "realised") -> np.ndarray:
    """Each row's realised P&L as a standard normal score under its predicted split normal."""
    p50 = frame["p50"].to_numpy()
    low, high = scales(frame["p05"].to_numpy(), p50, frame["p95"].to_numpy())
    y = frame[realised].to_numpy()
    z = np.where(y < p50, (y - p50) / low, (y - p50) / high)
    return np.clip(z, -SCORE_CLIP, SCORE_CLIP)


def estimate_dependence(history: pl.DataFrame) -> Dependence:
    """``market`` and ``trader`` correlations from past scores (``date, trader, z``).

    Moment estimators over the pairs of accounts scored on the same day: the mean product of
    the centred scores over pairs of different traders (``market``) and over pairs of one
    trader (``market + trader``), each divided by the scores' variance; clipped to a valid
    model (both >= 0, sum below 1).
    """
    if history.height == 0:
        return INDEPENDENT
    h = history.select("date", "trader", "z").drop_nulls()
    h = h.with_columns((pl.col("z") - pl.col("z").mean()).alias("z"))
    variance = float(h["z"].pow(2).mean() or 0.0)
    if variance <= 0.0:
        return INDEPENDENT
    per_day = h.group_by("date").agg(
        (pl.col("z").sum().pow(2) - pl.col("z").pow(2).sum()).alias("all_products"),
        (pl.len() * (pl.len() - 1)).alias("all_pairs"),
    )
    per_trader = h.group_by("date", "trader").agg(
        (pl.col("z").sum().pow(2) - pl.col("z").pow(2).sum()).alias("products"),
        (pl.len() * (pl.len() - 1)).alias("pairs"),
    )
    all_products = float(per_day["all_products"].sum())
    all_pairs = float(per_day["all_pairs"].sum())
    same_products = float(per_trader["products"].sum())
    same_pairs = float(per_trader["pairs"].sum())
    between_pairs = all_pairs - same_pairs
    market = (all_products - same_products) / between_pairs / variance if between_pairs else 0.0
    within = same_products / same_pairs / variance if same_pairs else market
    market = min(max(market, 0.0), 0.95)
    trader = min(max(within - market, 0.0), 0.98 - market)
    return Dependence(
        market=market,
        trader=trader,
        days=per_day.height,
        scores=h.height,
        same_trader_pairs=int(same_pairs // 2),
    )


@dataclass(frozen=True)
class FirmSimulation:
    """Simulated sessions of the firm: the net P&L sum and the payout exposure of each."""

    pnl: np.ndarray
    payout: np.ndarray
    dependence: Dependence
    accounts: int


def trader_codes(accounts: pl.DataFrame) -> np.ndarray:
    """Each row's trader as a code 0..k-1; a row without a trader is its own trader."""
    own = pl.lit("account:") + pl.col("account_id") if "account_id" in accounts.columns else None
    key = pl.col("trader").cast(pl.String)
    if own is not None:
        key = pl.coalesce(key, own)
    values = accounts.select(key.fill_null(pl.int_range(pl.len()).cast(pl.String)))
    return np.unique(values.to_series().to_numpy(), return_inverse=True)[1].astype(np.int64)


def simulate_firm(
    accounts: pl.DataFrame,
    dependence: Dependence,
    *,
    n_sims: int,
    seed: int = 0,
) -> FirmSimulation:
    """Simulate ``n_sims`` sessions of the accounts (``trader, p05, p50, p95,
    profit_share_pct``) under ``dependence`` (the factor copula of the module docstring)."""
    if n_sims < 1:
        raise ValueError(f"n_sims: {n_sims}; at least 1 simulated session is needed")
    n = accounts.height
    pnl = np.zeros(n_sims)
    payout = np.zeros(n_sims)
    if n == 0:
        return FirmSimulation(pnl, payout, dependence, 0)
    p50 = accounts["p50"].to_numpy().astype(np.float64)
    low, high = scales(accounts["p05"].to_numpy(), p50, accounts["p95"].to_numpy())
    # Without profit shares (a check of the P&L alone) no payout is simulated.
    share = (
        accounts["profit_share_pct"].to_numpy().astype(np.float64) / 100.0
        if "profit_share_pct" in accounts.columns
        else np.zeros(n)
    )
    codes = trader_codes(accounts)
    n_traders = int(codes.max()) + 1
    a_m, a_t = math.sqrt(dependence.market), math.sqrt(dependence.trader)
    a_e = math.sqrt(1.0 - dependence.market - dependence.trader)
    rng = np.random.default_rng(seed)
    for start in range(0, n_sims, SIM_CHUNK):
        k = min(SIM_CHUNK, n_sims - start)
        z = a_e * rng.standard_normal((k, n))
        if a_m:
            z += a_m * rng.standard_normal((k, 1))
        if a_t:
            z += a_t * rng.standard_normal((k, n_traders))[:, codes]
        x = p50 + np.where(z < 0.0, low, high) * z
        pnl[start : start + k] = x.sum(axis=1)
        payout[start : start + k] = (np.maximum(x, 0.0) * share).sum(axis=1)
    return FirmSimulation(pnl, payout, dependence, n)


def lower_tail(values: np.ndarray) -> dict[str, float]:
    """p05, p50, p95, mean and the 95% expected shortfall of the lower tail (mean of the
    worst 5%): for a P&L, the loss the firm expects in its bad sessions."""
    q05, q50, q95 = np.quantile(values, [TAIL, 0.5, 1.0 - TAIL])
    worst = np.sort(values)[: max(1, math.ceil(TAIL * values.size))]
    return {
        "p05": float(q05),
        "p50": float(q50),
        "p95": float(q95),
        "mean": float(values.mean()),
        "es95": float(worst.mean()),
    }


def upper_tail(values: np.ndarray) -> dict[str, float]:
    """Like ``lower_tail`` with the expected shortfall of the upper tail (mean of the largest
    5%): for a cost such as payouts, what the firm pays in its bad sessions."""
    out = lower_tail(values)
    largest = np.sort(values)[-max(1, math.ceil(TAIL * values.size)) :]
    out["es95"] = float(largest.mean())
    return out


def firm_summary(sim: FirmSimulation) -> pl.DataFrame:
    """One row per measure (net P&L, payout exposure) with its quantiles and ES."""
    rows = [
        {"measure": "firm_net_pnl", "tail": "lower", **lower_tail(sim.pnl)},
        {"measure": "payout_exposure", "tail": "upper", **upper_tail(sim.payout)},
    ]
    return pl.DataFrame(rows).with_columns(pl.lit(sim.accounts).alias("accounts"))


BACKTEST_SCHEMA = pl.Schema(
    {
        "date": pl.Date(),
        "accounts": pl.Int64(),
        "realised": pl.Float64(),
        "p05": pl.Float64(),
        "p50": pl.Float64(),
        "p95": pl.Float64(),
        "es95": pl.Float64(),
        "independent_p05": pl.Float64(),
        "independent_p95": pl.Float64(),
        "independent_es95": pl.Float64(),
        "rho_market": pl.Float64(),
        "rho_trader": pl.Float64(),
        "covered": pl.Boolean(),
        "covered_independent": pl.Boolean(),
    }
)


def backtest_day(
    day: dt.date,
    accounts: pl.DataFrame,
    dependence: Dependence,
    *,
    n_sims: int,
    seed: int = 0,
) -> dict[str, object]:
    """One known day: the realised firm sum (``realised`` per account) against the dependent
    and the independent simulations of the same accounts."""
    dep = lower_tail(simulate_firm(accounts, dependence, n_sims=n_sims, seed=seed).pnl)
    ind = lower_tail(simulate_firm(accounts, INDEPENDENT, n_sims=n_sims, seed=seed).pnl)
    realised = float(accounts["realised"].sum())
    return {
        "date": day,
        "accounts": accounts.height,
        "realised": realised,
        "p05": dep["p05"],
        "p50": dep["p50"],
        "p95": dep["p95"],
        "es95": dep["es95"],
        "independent_p05": ind["p05"],
        "independent_p95": ind["p95"],
        "independent_es95": ind["es95"],
        "rho_market": dependence.market,
        "rho_trader": dependence.trader,
        "covered": dep["p05"] <= realised <= dep["p95"],
        "covered_independent": ind["p05"] <= realised <= ind["p95"],
    }


def backtest_summary(days: pl.DataFrame) -> dict[str, float | int]:
    """Coverage of the firm's 90% interval, dependent and independent, over the known days;
    the width of one against the other; and, on the days the realised sum fell below p05, its
    mean against the mean predicted ES (a ratio near 1: the tail's depth is right)."""
    if days.height == 0:
        return {"days": 0}
    width = (days["p95"] - days["p05"]).mean()
    width_ind = (days["independent_p95"] - days["independent_p05"]).mean()
    below = days.filter(pl.col("realised") < pl.col("p05"))
    below_ind = days.filter(pl.col("realised") < pl.col("independent_p05"))
    out: dict[str, float | int] = {
        "days": days.height,
        "coverage": float(days["covered"].mean()),
        "coverage_independent": float(days["covered_independent"].mean()),
        "below_p05_days": below.height,
        "below_p05_days_independent": below_ind.height,
        "width_ratio_dependent_to_independent": float(width / width_ind) if width_ind else math.nan,
        "mean_width": float(width),
        "mean_width_independent": float(width_ind),
    }
    if below.height:
        out["realised_below_p05_mean"] = float(below["realised"].mean())
        out["es95_on_those_days_mean"] = float(below["es95"].mean())
    if below_ind.height:
        out["realised_below_independent_p05_mean"] = float(below_ind["realised"].mean())
        out["independent_es95_on_those_days_mean"] = float(below_ind["independent_es95"].mean())
    return out
