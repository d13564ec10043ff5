"""A seeded simulation of a prop firm, shaped exactly like the Risk API contract.

``simulate(SimulationConfig(...))`` returns a :class:`SandboxData` whose polars frames use the
API's own field names (``contracts/risk-api.md``). It is pure (numpy + polars, no IO, no HTTP):
the same config gives byte-identical frames. Everything is vectorised across accounts; the only
Python loop runs over days.

The generative model
--------------------
* **Plans**: a fixed catalogue (:data:`PLANS`) of two-step and one-step evaluations and instant
  funding, 10k-200k starting balances, daily loss limit, trailing or static drawdown, profit
  target, profit share. Metrics carry the plan type as an integer ``type`` code
  (1 = ``2-Step``, 2 = ``1-Step``, 3 = ``Instant``) and the plan's ``mt_version``/``broker`` codes
  (MT5 = 5, MT4 = 4; broker 1 = "Northwind Markets", broker 2 = "Harbor Prime Ltd").
* **Traders** hold one or more accounts and carry persistent latent traits: an edge (mean daily
  P&L in units of the day's P&L standard deviation), a risk habit (daily P&L standard deviation
  as % of the starting balance), an activity rate, a martingale habit (after a losing day the next
  day's volatility is multiplied by ``1 + k``, capped; a winning day relaxes it), whether they
  trade crypto (the only thing traded at weekends), how often they hold positions overnight,
  how many trades they split a day into and how long they hold them. A trader's accounts share a
  common daily shock and, mostly, the same idle days.
* **Regimes**: one per calendar day, a Markov chain over COMPRESSED/BALANCED/DISPERSED whose
  transition row leans with a persistent news-sentiment score. The regime scales every account's
  P&L volatility (:attr:`SimulationConfig.regime_vol`) and shifts its drift a little. The regime
  row of day D publishes the chain's row for D -> D+1: ``riskOnProb`` = P(next is COMPRESSED),
  ``riskOffProb`` = P(next is DISPERSED), ``volSpikeProb`` = P(next is more volatile than today).
  ``instruments`` holds eight symbols' end-of-day prices (random walks whose volatility follows
  the regime; FX, metals and indices do not move at weekends, BTCUSD does).
* **Days**: the broker's day D runs from 22:00 UTC of D-1 to 22:00 UTC of D (server time UTC+2),
  so trades closed in its first two broker hours carry a ``closeTime`` on the previous UTC date.
  ``hour`` of hourly metrics is the broker hour (0-23) of ``closeTime``. Every account has a daily
  row on every calendar day from its start until the window ends or it breaches, weekends
  included: weekend rows have zero trades except for crypto traders' BTCUSD trades.
* **A day's P&L**: an active account's net P&L on day D is ``mu + sigma * eps`` where
  ``sigma = base * regime_vol[r] * escalation * phase_mult[phase]``, ``mu = sigma * (edge +
  regime_drift[r])`` and ``eps`` is unit-variance Student-t; it is split into 1 + Poisson trades
  whose net amounts (profit + commission + fee + swap) add up to it. Idle days have no trades.
  Positions held overnight (Mon-Thu, by traders with that habit) are in the open-trades snapshot
  of D with their unrealised profit ``u`` and close on D+1 with a net amount of ``u`` plus noise.
  Commission, fee and swap are bookkeeping: ``profit`` is the net amount minus them.
* **Balances** are integers of cents throughout: every trade amount is rounded to cents first
  and every aggregate is a sum of cents, so trades, hourly and daily metrics agree exactly.
  ``currentBalance = priorDaysBalance + netProfit - todays_payouts``;
  ``currentEquity = currentBalance + sum(profit of that day's open snapshot)``; the open
  snapshot books commission, fee and swap as 0 (they are charged at close).
* **Breaches** follow the contract's plan rules on end-of-day equity: daily loss when
  ``reference - currentEquity > dailyLossLimitPct% * startingBalance`` with reference =
  ``priorDaysBalance`` (``priorDaysEquity`` with ``dailyDrawdownByBalanceEquity``); drawdown when
  ``currentEquity < hwm - maxTrailingDrawdownPct% * startingBalance`` where hwm is the largest of
  startingBalance and the account's earlier ``currentEquity`` values, or, with
  ``makeDrawdownStatic``, ``currentEquity < startingBalance * (1 - pct)``. The breach day's row has
  status 3 and the account has no row or trade after it; its open positions stay in that day's
  open snapshot and never close through the API (the firm liquidates them off-platform).
  ``inactivityPeriod``, ``maximumTime`` and ``enableConsistency`` are not enforced; status 2
  (inactive) marks an account with no trade in the last 7 days.
* **Phases**: 2-Step plans go 1 -> 2 -> 4, 1-Step plans 1 -> 4, Instant plans start at 4. A phase
  is passed at the end of a day when ``currentBalance`` exceeds the balance at the phase's start
  by ``profitTargetPct%`` of the starting balance and the phase has at least
  ``minimumRequiredActiveTradingDays`` trading days; the new phase shows from the next row.
  Accounts open on the first day may already be in phase 2 or funded (as if promoted earlier).
* **Payouts** (funded accounts only): every ``payout_cycle_days`` the trader's share
  (``profitSharePct``) of the profit above the starting balance is requested (``pending_payouts``)
  and withdrawn ``payout_lag_days`` later (``todays_payouts``, added to ``approved_payouts``);
  a withdrawal is capped so that it can never itself breach a limit, the rest is declined.
* **Ground truth**: for every account-day D that is not a breach, ``expected_next_day_net_profit``
  and ``next_day_std`` are the model's exact mean and standard deviation of the account's net
  P&L on D+1 given everything known at the end of D: latent edge and risk, escalation state,
  phase, the regime chain's transition row, D+1's weekday and the activity probability, and the
  unrealised profit of positions carried overnight. (Only the cent rounding of trades is ignored.)

Money is USD. Optional fields are null where the contract allows. About 1% of daily and hourly
rows carry a null ``accountId`` (never an account's first daily row).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl

SYMBOLS: tuple[str, ...] = (
    "EURUSD",
    "GBPUSD",
    "USDJPY",
    "XAUUSD",
    "NDX100",
    "SPX500",
    "US30",
    "BTCUSD",
)
BTC = SYMBOLS.index("BTCUSD")
USDJPY = SYMBOLS.index("USDJPY")
_BASE_PRICE = np.array([1.085, 1.265, 151.5, 2640.0, 21100.0, 5880.0, 42600.0, 94000.0])
_ANNUAL_VOL = np.array([0.075, 0.085, 0.095, 0.15, 0.21, 0.17, 0.16, 0.55])
_DIGITS = np.array([5, 5, 3, 2, 1, 1, 1, 2])
_CONTRACT = np.array([100_000.0, 100_000.0, 100_000.0, 100.0, 1.0, 10.0, 1.0, 1.0])
# FX and metals pay a per-lot commission; indices and crypto a notional fee instead.
_HAS_COMMISSION = np.array([True, True, True, True, False, False, False, False])
# Overnight swap in USD per lot, [long, short]: mostly a cost, a credit on a few carry trades.
_SWAP_PER_LOT = np.array(
    [[6.9, -2.1], [4.2, 1.3], [-9.8, 14.5], [28.0, 11.0], [5.5, 2.0], [1.6, 0.6], [11.0, 4.0],
     [24.0, 24.0]]
)  # fmt: skip
_TRD_SYMBOL = {
    1: (
        "EURUSD.raw",
        "GBPUSD.raw",
        "USDJPY.raw",
        "XAUUSD.raw",
        "NAS100",
        "SPX500",
        "US30",
        "BTCUSD",
    ),
    2: ("EURUSDm", "GBPUSDm", "USDJPYm", "GOLD", "USTEC", "US500", "DJ30", "BTCUSDm"),
}
BROKER_NAMES = {1: "Northwind Markets", 2: "Harbor Prime Ltd"}
_MANAGER = {(1, 5): 101, (1, 4): 104, (2, 5): 201, (2, 4): 204}
_COMMISSION_PER_LOT = {1: 7.0, 2: 6.0}
REGIMES: tuple[str, str, str] = ("COMPRESSED", "BALANCED", "DISPERSED")
# Persistent chain; sentiment tilts each row toward calm (positive) or stress (negative).
_BASE_TRANSITION = np.array([[0.86, 0.11, 0.03], [0.08, 0.84, 0.08], [0.04, 0.17, 0.79]])
_SENTIMENT_TILT = 0.8
# Share of a day's close hours by broker hour (UTC+2): Asia quiet, London and New York busy.
_HOUR_WEIGHTS = np.array([0.6, 0.6] + [1.0] * 7 + [3.0] * 6 + [4.0] * 5 + [1.5] * 4)
_HOUR_P = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
_MS_HOUR = 3_600_000
_MS_DAY = 86_400_000
_BURN_IN_DAYS = 120
_PHASE_MULT = np.array([1.0, 1.15, 1.05, 1.0, 0.85])  # indexed by phase code 0..4
_ESCALATION_CAP = 2.5
_ESCALATION_RELAX = 0.35
_INACTIVE_AFTER_DAYS = 7
_COMMENTS = np.array(
    ["", "manual", "EA:grid v2", "[sl]", "[tp]", "copytrade", "hedge"], dtype=object
)
_COMMENT_P = np.array([0.0, 0.12, 0.06, 0.08, 0.1, 0.04, 0.02])
_COUNTRIES = np.array(
    ["GB", "DE", "NG", "IN", "AE", "FR", "ZA", "PK", "BR", "PL", "CA", "AU", "KE", "MY", "NL",
     "ES", "IT", "CH", "PH", "EG"],
    dtype=object,
)  # fmt: skip

PLAN_TYPE_CODE = {"2-Step": 1, "1-Step": 2, "Instant": 3}

# planId, type, description, startingBalance, profitTargetPct, dailyLossLimitPct,
# maxTrailingDrawdownPct, leverage, profitSharePct, liquidateFriday, makeDrawdownStatic,
# dailyDrawdownByBalanceEquity, enableConsistency, inactivityPeriod,
# minimumRequiredActiveTradingDays, maximumTime, platform, broker, weight (share of accounts)
PLANS: tuple[tuple[Any, ...], ...] = (
    (101, "2-Step", "10K Two-Step Challenge", 10_000.0, 8.0, 5.0, 10.0, 100, 80.0,
     False, False, False, False, 30, 4, None, "MT5", BROKER_NAMES[1], 0.12),
    (102, "2-Step", "25K Two-Step Challenge", 25_000.0, 8.0, 5.0, 10.0, 100, 80.0,
     False, True, False, False, 30, 4, None, "MT5", BROKER_NAMES[1], 0.12),
    (103, "2-Step", "50K Two-Step Challenge", 50_000.0, 8.0, 5.0, 10.0, 100, 80.0,
     False, False, True, False, 30, 4, 60, "MT4", BROKER_NAMES[2], 0.10),
    (104, "2-Step", "100K Two-Step Challenge", 100_000.0, 10.0, 5.0, 10.0, 50, 85.0,
     True, True, True, True, 30, 5, None, "MT5", BROKER_NAMES[2], 0.10),
    (201, "1-Step", "25K One-Step", 25_000.0, 10.0, 4.0, 6.0, 50, 80.0,
     False, False, False, True, 30, 3, None, "MT5", BROKER_NAMES[1], 0.10),
    (202, "1-Step", "100K One-Step", 100_000.0, 10.0, 3.0, 6.0, 30, 90.0,
     False, True, False, True, 45, 3, 90, "MT5", BROKER_NAMES[2], 0.08),
    (301, "Instant", "10K Instant Funding", 10_000.0, 0.0, 3.0, 6.0, 30, 70.0,
     True, False, False, True, 30, None, None, "MT5", BROKER_NAMES[1], 0.14),
    (302, "Instant", "50K Instant Funding", 50_000.0, 0.0, 4.0, 8.0, 30, 75.0,
     False, True, True, False, 30, None, None, "MT4", BROKER_NAMES[1], 0.14),
    (303, "Instant", "200K Instant Funding", 200_000.0, 0.0, 4.0, 8.0, 30, 80.0,
     True, True, False, True, 30, None, None, "MT5", BROKER_NAMES[2], 0.07),
)  # fmt: skip
PLAN_COLUMNS: tuple[str, ...] = (
    "planId", "type", "description", "startingBalance", "profitTargetPct", "dailyLossLimitPct",
    "maxTrailingDrawdownPct", "leverage", "profitSharePct", "liquidateFriday",
    "makeDrawdownStatic", "dailyDrawdownByBalanceEquity", "enableConsistency",
    "inactivityPeriod", "minimumRequiredActiveTradingDays", "maximumTime", "platform", "broker",
)  # fmt: skip
_PLAN_BOOL_COLUMNS = (
    "liquidateFriday",
    "makeDrawdownStatic",
    "dailyDrawdownByBalanceEquity",
    "enableConsistency",
)
_PLAN_OPTIONAL_INT_COLUMNS = ("inactivityPeriod", "minimumRequiredActiveTradingDays", "maximumTime")

IDENTITY_COLUMNS: tuple[str, ...] = (
    "login", "accountId", "planId", "trader", "status", "type", "phase", "broker", "mt_version",
    "country",
)  # fmt: skip
STATS_COLUMNS: tuple[str, ...] = (
    "numTrades", "netProfit", "grossProfit", "grossLoss", "profitFactor", "successRate",
    "meanProfit", "medianProfit", "stdProfits", "minProfit", "maxProfit", "riskAdjProfit",
    "expectancy", "meanDrawDown", "maxDrawDown", "relMaxDrawDown", "totalLots", "totalVolume",
    "meanWinningLot", "meanLosingLot", "meanDuration", "meanSL", "meanTP", "maxNumConsecWins",
    "maxNumConsecLosses", "maxNumOpenPos", "maxValOpenPos", "numTradedSymbols",
    "mostTradedSymbol",
)  # fmt: skip
DAILY_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS, "date", "startingBalance", "priorDaysBalance", "priorDaysEquity",
    "currentBalance", "currentEquity", "approved_payouts", "pending_payouts", "todays_payouts",
    "days_to_next_payout", "firstTradeDate", "daysSinceInitialDeposit", "daysSinceFirstTrade",
    *STATS_COLUMNS,
)  # fmt: skip
HOURLY_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS, "date", "hour", "startingBalance", "priorDaysBalance", "priorDaysEquity",
    "currentBalance", "currentEquity", "approved_payouts", "pending_payouts", "firstTradeDate",
    "daysSinceInitialDeposit", "daysSinceFirstTrade", *STATS_COLUMNS,
)  # fmt: skip
ALLTIME_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS, "startingBalance", "priorDaysBalance", "priorDaysEquity", "currentBalance",
    "currentEquity", "approved_payouts", "pending_payouts", "firstTradeDate",
    "daysSinceInitialDeposit", "daysSinceFirstTrade", *STATS_COLUMNS, "lifeTimeInDays",
    "dailySharpe", "dailySortino", "updatedDate",
)  # fmt: skip
ACCOUNT_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS, "startingBalance", "currentBalance", "currentEquity", "approved_payouts",
    "pending_payouts", "firstTradeDate", "updatedDate",
)  # fmt: skip
CLOSED_TRADE_COLUMNS: tuple[str, ...] = (
    "tradeDate", "broker", "mngr", "platform", "ticket", "position", "login", "stdSymbol",
    "trdSymbol", "side", "lots", "contractSize", "qtyInBaseCrncy", "volumeUSD", "stopLoss",
    "takeProfit", "openTime", "openPrice", "closeTime", "closePrice", "duration", "profit",
    "commission", "fee", "swap", "comment",
)  # fmt: skip
OPEN_TRADE_COLUMNS: tuple[str, ...] = tuple(
    c for c in CLOSED_TRADE_COLUMNS if c not in ("closeTime", "closePrice")
)
REGIME_COLUMNS: tuple[str, ...] = (
    "date", "volatilityRegime", "liquidityState", "sentimentScore", "riskOnProb", "riskOffProb",
    "volSpikeProb", "fedFundsRate", "treasury2y", "treasury10y", "instruments",
)  # fmt: skip
GROUND_TRUTH_COLUMNS: tuple[str, ...] = (
    "accountId",
    "login",
    "mt_version",
    "broker",
    "date",
    "expected_next_day_net_profit",
    "next_day_std",
)


# A skilled trader expects to make at least a quarter of a day's P&L standard deviation a day.
SKILLED_EDGE = 0.25


@dataclass(frozen=True)
class SimulationConfig:
    """Size, seed and generative knobs of the simulated firm (defaults are the tuned ones)."""

    seed: int = 7
    n_accounts: int = 300
    start_date: dt.date = dt.date(2025, 1, 1)
    n_days: int = 120
    trades_per_active_day: float = 3.0
    accounts_per_trader: float = 1.35
    initial_account_share: float = 0.45
    null_account_id_share: float = 0.01
    # Edge: mean daily net P&L in units of the day's P&L standard deviation, per trader.
    edge_mean: float = 0.05
    edge_sd: float = 0.33
    # Firm parameters (``benchmarks/seed_sweep.py`` varies them across simulated firms).
    # Share of skilled traders: those whose edge is at least SKILLED_EDGE. None keeps the tuned
    # edge_mean (an expected skilled share of 27%, ``expected_skilled_share()``); a number moves
    # the mean of the edge distribution so that this share of traders is skilled in expectation.
    # The other firm parameters are martingale_share, weekend_activity and regime_vol.
    skilled_share: float | None = None
    # Risk habit: daily P&L standard deviation as % of startingBalance (log-normal).
    risk_pct_median: float = 0.9
    risk_pct_log_sd: float = 0.45
    risk_size_elasticity: float = 0.3
    activity_beta: tuple[float, float] = (5.0, 2.0)
    martingale_share: float = 0.3
    crypto_share: float = 0.25
    weekend_activity: float = 0.35
    overnight_share: float = 0.35
    overnight_size: float = 0.35
    trader_day_correlation: float = 0.5
    regime_vol: tuple[float, float, float] = (0.55, 1.0, 1.8)
    regime_drift: tuple[float, float, float] = (0.04, 0.0, -0.06)
    student_t_df: float = 6.0
    payout_cycle_days: int = 14
    payout_lag_days: int = 2

    def __post_init__(self) -> None:
        if self.n_accounts < 1 or self.n_days < 1:
            raise ValueError("n_accounts and n_days must be >= 1")
        if self.student_t_df <= 2:
            raise ValueError("student_t_df must be > 2 (finite variance)")
        if self.trades_per_active_day < 1:
            raise ValueError("trades_per_active_day must be >= 1")
        if self.skilled_share is not None and not 0.0 < self.skilled_share < 1.0:
            raise ValueError(f"skilled_share must lie in (0, 1), got {self.skilled_share}")
        for name in ("martingale_share", "weekend_activity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if len(self.regime_vol) != 3 or min(self.regime_vol) <= 0:
            raise ValueError(
                "regime_vol must be three positive multipliers (COMPRESSED, BALANCED, "
                f"DISPERSED), got {self.regime_vol}"
            )

    @property
    def trader_edge_mean(self) -> float:
        """Mean of the traders' edge distribution: the tuned one, or the one that makes
        ``skilled_share`` of traders skilled."""
        if self.skilled_share is None:
            return self.edge_mean
        return SKILLED_EDGE + self.edge_sd * NormalDist().inv_cdf(self.skilled_share)

    def expected_skilled_share(self) -> float:
        """Expected share of traders with an edge of at least SKILLED_EDGE."""
        return 1.0 - NormalDist(self.trader_edge_mean, self.edge_sd).cdf(SKILLED_EDGE)

    @property
    def end_date(self) -> dt.date:
        return self.start_date + dt.timedelta(days=self.n_days - 1)

    def firm_parameters(self) -> dict[str, Any]:
        """The firm parameters as the sandbox's settings and ``/_sandbox/info`` name them."""
        return {
            "skilled_share": self.skilled_share,
            "martingale_share": self.martingale_share,
            "weekend_activity": self.weekend_activity,
            "regime_vol": list(self.regime_vol),
        }

    def firm_arguments(self) -> list[str]:
        """The firm parameters as ``python -m daily_profit.sandbox`` options."""
        args = [
            "--martingale-share",
            repr(self.martingale_share),
            "--weekend-activity",
            repr(self.weekend_activity),
            "--regime-vol",
            ",".join(repr(v) for v in self.regime_vol),
        ]
        if self.skilled_share is not None:
            args += ["--skilled-share", repr(self.skilled_share)]
        return args


@dataclass(frozen=True)
class SandboxData:
    """The simulated firm: every frame uses the API's field names (see the module docstring)."""

    config: SimulationConfig
    plans: pl.DataFrame
    accounts_alltime: pl.DataFrame
    metrics_daily: pl.DataFrame
    metrics_hourly: pl.DataFrame
    trades_closed: pl.DataFrame
    trades_open: pl.DataFrame
    regimes: pl.DataFrame
    ground_truth: pl.DataFrame
    # Latent traits per account (not served by the API): for tests and model diagnostics.
    latent: pl.DataFrame = field(repr=False)

    @property
    def accounts(self) -> pl.DataFrame:
        """The ``accounts`` endpoint's records: identity and balance fields of alltime rows."""
        return self.accounts_alltime.select(ACCOUNT_COLUMNS)

    def frames(self) -> dict[str, pl.DataFrame]:
        return {
            "plans": self.plans,
            "accounts_alltime": self.accounts_alltime,
            "metrics_daily": self.metrics_daily,
            "metrics_hourly": self.metrics_hourly,
            "trades_closed": self.trades_closed,
            "trades_open": self.trades_open,
            "regimes": self.regimes,
            "ground_truth": self.ground_truth,
            "latent": self.latent,
        }

    def write_plans_csv(self, path: str | Path) -> Path:
        """Write the plans as a realistic CSV export and return its path.

        Like the firm's real export: some planIds appear more than once with stale values
        before their current row (the last row of a planId wins), booleans are written as
        ``TRUE``/``FALSE`` on some rows and ``1``/``0`` on others, and optional ints are empty
        where the plan has none.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(self.config.seed + 1_000_003)
        rows = self.plans.to_dicts()
        out: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            if i % 3 == 1:
                stale = dict(row)
                stale["profitSharePct"] = float(row["profitSharePct"]) - 10.0
                stale["description"] = f"{row['description']} (legacy)"
                stale["dailyLossLimitPct"] = float(row["dailyLossLimitPct"]) + 1.0
                out.append(stale)
            out.append(row)
        # Stale rows must come before the current row of their planId, but the export is not
        # sorted: shuffle whole planId groups, keep order inside a group.
        groups: dict[int, list[dict[str, Any]]] = {}
        for row in out:
            groups.setdefault(int(row["planId"]), []).append(row)
        order = rng.permutation(list(groups))
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(PLAN_COLUMNS)
            for k, plan_id in enumerate(order):
                for j, row in enumerate(groups[int(plan_id)]):
                    numeric_bools = (k + j) % 2 == 1
                    writer.writerow([_csv_cell(c, row[c], numeric_bools) for c in PLAN_COLUMNS])
        return path

    def write_ground_truth(self, path: str | Path) -> Path:
        """Write the ground truth (one row per non-breach account-day) as parquet."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.ground_truth.write_parquet(path)
        return path


def _csv_cell(column: str, value: Any, numeric_bools: bool) -> str:
    if value is None:
        return ""
    if column in _PLAN_BOOL_COLUMNS:
        if numeric_bools:
            return "1" if value else "0"
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return f"{value:g}" if value != int(value) else f"{value:.1f}"
    return str(value)


def plans_frame() -> pl.DataFrame:
    """The plan catalogue as a frame with the CSV's columns and types."""
    rows = [dict(zip(PLAN_COLUMNS, p[:-1], strict=True)) for p in PLANS]
    schema = {
        "planId": pl.Int64, "type": pl.String, "description": pl.String,
        "startingBalance": pl.Float64, "profitTargetPct": pl.Float64,
        "dailyLossLimitPct": pl.Float64, "maxTrailingDrawdownPct": pl.Float64,
        "leverage": pl.Int64, "profitSharePct": pl.Float64, "liquidateFriday": pl.Boolean,
        "makeDrawdownStatic": pl.Boolean, "dailyDrawdownByBalanceEquity": pl.Boolean,
        "enableConsistency": pl.Boolean, "inactivityPeriod": pl.Int64,
        "minimumRequiredActiveTradingDays": pl.Int64, "maximumTime": pl.Int64,
        "platform": pl.String, "broker": pl.String,
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row")


# --------------------------------------------------------------------------------------------
# Regimes and markets


@dataclass(frozen=True)
class _Market:
    state: np.ndarray  # (n_days,) regime index per calendar day of the window
    transition: np.ndarray  # (n_days, 3) row of day d: distribution of day d+1's regime
    prices: np.ndarray  # (n_days + 1, n_symbols) eod prices; row 0 is the day before the window
    frame: pl.DataFrame


def _transition_row(state: int, sentiment: float) -> np.ndarray:
    tilt = np.exp(_SENTIMENT_TILT * sentiment * np.array([1.0, 0.0, -1.0]))
    row = _BASE_TRANSITION[state] * tilt
    return row / row.sum()


def _simulate_market(rng: np.random.Generator, config: SimulationConfig) -> _Market:
    total = _BURN_IN_DAYS + config.n_days
    first = config.start_date - dt.timedelta(days=_BURN_IN_DAYS)
    weekday = (first.weekday() + np.arange(total)) % 7
    state = np.empty(total, dtype=np.int64)
    transition = np.empty((total, 3))
    latent = np.empty(total)
    sentiment = np.empty(total)
    x, s = 0.0, 1
    for d in range(total):
        x = 0.92 * x + 0.35 * rng.standard_normal()
        latent[d] = x
        sentiment[d] = math.tanh(0.6 * x)
        state[d] = s
        transition[d] = _transition_row(s, sentiment[d])
        s = int(rng.choice(3, p=transition[d]))
    vol_mult = np.asarray(config.regime_vol)[state]
    daily_vol = _ANNUAL_VOL / math.sqrt(252.0)
    shocks = rng.standard_t(5, size=(total, len(SYMBOLS))) / math.sqrt(5.0 / 3.0)
    returns = shocks * daily_vol[None, :] * vol_mult[:, None] + 0.00005
    closed = weekday >= 5
    returns[closed, :BTC] = 0.0  # FX, metals and indices do not trade at weekends
    log_price = np.log(_BASE_PRICE)[None, :] + np.cumsum(returns, axis=0)
    prices = np.exp(log_price)
    prices = np.round(prices, _DIGITS.max())
    for j, digits in enumerate(_DIGITS):
        prices[:, j] = np.round(prices[:, j], digits)
    simple = np.zeros_like(prices)
    simple[1:] = prices[1:] / prices[:-1] - 1.0
    vol90 = np.zeros_like(prices)
    window = 90
    csum = np.cumsum(np.vstack([np.zeros((1, len(SYMBOLS))), simple]), axis=0)
    csq = np.cumsum(np.vstack([np.zeros((1, len(SYMBOLS))), simple**2]), axis=0)
    for d in range(window, total):
        m = (csum[d + 1] - csum[d + 1 - window]) / window
        v = (csq[d + 1] - csq[d + 1 - window]) / window - m**2
        vol90[d] = np.sqrt(np.maximum(v, 0.0) * window / (window - 1) * 365.0)

    fed = np.empty(total)
    t2 = np.empty(total)
    t10 = np.empty(total)
    f, a, b = 4.33, 4.25, 4.55
    for d in range(total):
        if d % 45 == 44 and rng.random() < 0.35:
            f -= 0.25
        a += 0.025 * rng.standard_normal() + 0.002 * (f - a)
        b += 0.022 * rng.standard_normal() + 0.001 * (a + 0.3 - b)
        fed[d], t2[d], t10[d] = f, a, b

    win = slice(_BURN_IN_DAYS, total)
    st = state[win]
    tr = transition[win]
    dates = [config.start_date + dt.timedelta(days=d) for d in range(config.n_days)]
    more_volatile = np.where(st == 0, tr[:, 1] + tr[:, 2], np.where(st == 1, tr[:, 2], 0.0))
    liquidity = np.where(
        weekday[win] >= 5,
        "THIN",
        np.where(st == 0, "DEEP", np.where(st == 1, "NORMAL", "STRESSED")),
    ).astype(object)
    missing_liq = rng.random(config.n_days) < 0.02
    liquidity[missing_liq] = None
    sent = np.round(sentiment[win], 3).astype(object)
    sent[rng.random(config.n_days) < 0.02] = None
    instruments = pl.struct(
        [
            pl.struct(
                pl.Series("eodPrice", prices[win, j]),
                pl.Series("dailyReturn", np.round(simple[win, j], 6)),
                pl.Series("volatility90d", np.round(vol90[win, j], 6)),
            ).alias(sym)
            for j, sym in enumerate(SYMBOLS)
        ]
    )
    frame = pl.DataFrame(
        {
            "date": pl.Series(dates, dtype=pl.Date),
            "volatilityRegime": pl.Series([REGIMES[i] for i in st], dtype=pl.String),
            "liquidityState": pl.Series(liquidity.tolist(), dtype=pl.String),
            "sentimentScore": pl.Series(list(sent), dtype=pl.Float64),
            "riskOnProb": np.round(tr[:, 0], 6),
            "riskOffProb": np.round(tr[:, 2], 6),
            "volSpikeProb": np.round(more_volatile, 6),
            "fedFundsRate": np.round(fed[win], 2),
            "treasury2y": np.round(t2[win], 3),
            "treasury10y": np.round(t10[win], 3),
        }
    ).with_columns(instruments.alias("instruments"))
    return _Market(
        state=st,
        transition=tr,
        prices=prices[_BURN_IN_DAYS - 1 : total],
        frame=frame.select(REGIME_COLUMNS),
    )


# --------------------------------------------------------------------------------------------
# Accounts and traders


@dataclass(frozen=True)
class _Accounts:
    n: int
    n_traders: int
    trader: np.ndarray  # trader index per account
    trader_id: np.ndarray  # str per trader
    plan_row: np.ndarray  # index into PLANS
    start_day: np.ndarray
    phase0: np.ndarray
    login: np.ndarray  # str
    account_id: np.ndarray  # str
    broker: np.ndarray
    mt_version: np.ndarray
    country: np.ndarray  # object (str or None) per account
    # Trader traits, per trader
    edge: np.ndarray
    risk_pct: np.ndarray
    p_active: np.ndarray
    martingale: np.ndarray
    crypto: np.ndarray
    hold: np.ndarray
    trades_lambda: np.ndarray
    duration_h: np.ndarray
    symbol_cdf: np.ndarray  # (n_traders, n_symbols)
    shared_idle: np.ndarray  # per account: idles on its trader's idle days


def _make_accounts(rng: np.random.Generator, config: SimulationConfig) -> _Accounts:
    n = config.n_accounts
    n_traders = max(1, min(n, round(n / config.accounts_per_trader)))
    trader = np.concatenate(
        [np.arange(n_traders), rng.integers(0, n_traders, n - n_traders)]
    ).astype(np.int64)
    rng.shuffle(trader)
    trader_id = np.array(
        [f"TR{v}" for v in rng.choice(900_000, n_traders, replace=False) + 100_000], dtype=object
    )

    edge = rng.normal(config.trader_edge_mean, config.edge_sd, n_traders)
    risk_pct = np.exp(
        rng.normal(math.log(config.risk_pct_median), config.risk_pct_log_sd, n_traders)
    )
    risk_pct = np.clip(risk_pct, 0.2, 5.0)
    p_active = rng.beta(*config.activity_beta, n_traders)
    escalates = rng.random(n_traders) < config.martingale_share
    martingale = np.where(escalates, rng.uniform(0.2, 0.6, n_traders), 0.0)
    edge = edge - 0.05 * escalates  # martingale habits go with weaker traders
    crypto = rng.random(n_traders) < config.crypto_share
    holds = rng.random(n_traders) < config.overnight_share
    hold = np.where(holds, rng.uniform(0.2, 0.5, n_traders), 0.03)
    lam = np.clip(
        config.trades_per_active_day * np.exp(rng.normal(-0.06, 0.35, n_traders)), 1.0, 12.0
    )
    duration_h = np.exp(rng.normal(math.log(0.75), 0.9, n_traders))
    prefs = rng.dirichlet(np.full(len(SYMBOLS), 0.6), n_traders)
    prefs[:, BTC] = np.where(crypto, prefs[:, BTC] + 0.15, 0.0)
    prefs /= prefs.sum(axis=1, keepdims=True)
    symbol_cdf = np.cumsum(prefs, axis=1)
    symbol_cdf[:, -1] = 1.0
    country_of_trader = rng.choice(_COUNTRIES, n_traders)
    country_of_trader[rng.random(n_traders) < 0.02] = None

    weights = np.array([p[-1] for p in PLANS])
    plan_row = rng.choice(len(PLANS), n, p=weights / weights.sum())
    initial = rng.random(n) < config.initial_account_share
    if config.n_days > 1:
        start_day = np.where(initial, 0, rng.integers(1, config.n_days, n))
    else:
        start_day = np.zeros(n, dtype=np.int64)
    start_day = start_day.astype(np.int64)
    kind = np.array([PLAN_TYPE_CODE[p[1]] for p in PLANS])[plan_row]
    older = rng.choice([1, 2, 4], n, p=[0.45, 0.2, 0.35])
    phase0 = np.where(kind == 3, 4, np.where(initial, older, 1))
    phase0 = np.where((kind == 2) & (phase0 == 2), 1, phase0).astype(np.int64)

    platform_code = {"MT5": 5, "MT4": 4}
    broker_code = {v: k for k, v in BROKER_NAMES.items()}
    mt_version = np.array([platform_code[PLANS[i][16]] for i in plan_row], dtype=np.int64)
    broker = np.array([broker_code[PLANS[i][17]] for i in plan_row], dtype=np.int64)

    # Logins grow with the opening date within each broker, with gaps like a real server.
    login_num = np.zeros(n, dtype=np.int64)
    order = np.lexsort((np.arange(n), start_day))
    for b, base in ((1, 5_100_000), (2, 3_400_000)):
        members = order[broker[order] == b]
        login_num[members] = base + np.cumsum(rng.integers(1, 40, members.size))
    # A few accounts at broker 2 reuse a login number that also exists at broker 1: the
    # natural key is (login, mt_version, broker), never login alone.
    b1 = np.flatnonzero(broker == 1)
    b2 = np.flatnonzero(broker == 2)
    n_dup = min(b1.size, b2.size, max(1 if n >= 50 else 0, round(0.02 * b2.size)))
    if n_dup:
        login_num[rng.choice(b2, n_dup, replace=False)] = login_num[
            rng.choice(b1, n_dup, replace=False)
        ]
    ids = rng.integers(0, 2**62, n, dtype=np.int64)
    while np.unique(ids).size < n:  # pragma: no cover - 2**62 space
        ids = rng.integers(0, 2**62, n, dtype=np.int64)
    # Account index order is accountId order, so sorting by index sorts by the natural key.
    account_id = np.array(sorted(f"{v:016x}" for v in ids), dtype=object)
    shared_idle = rng.random(n) < 0.7
    return _Accounts(
        n=n,
        n_traders=n_traders,
        trader=trader,
        trader_id=trader_id,
        plan_row=plan_row.astype(np.int64),
        start_day=start_day,
        phase0=phase0,
        login=np.array([str(v) for v in login_num], dtype=object),
        account_id=account_id,
        broker=broker,
        mt_version=mt_version,
        country=country_of_trader[trader],
        edge=edge,
        risk_pct=risk_pct,
        p_active=p_active,
        martingale=martingale,
        crypto=crypto,
        hold=hold,
        trades_lambda=lam,
        duration_h=duration_h,
        symbol_cdf=symbol_cdf,
        shared_idle=shared_idle,
    )


# --------------------------------------------------------------------------------------------
# The day loop


class _Growing:
    """Per-day numpy chunks of one column, concatenated once at the end."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[np.ndarray]] = {}

    def add(self, **columns: np.ndarray) -> None:
        for k, v in columns.items():
            self.chunks.setdefault(k, []).append(np.asarray(v))

    def get(self, key: str, dtype: Any) -> np.ndarray:
        parts = self.chunks.get(key)
        if not parts:
            return np.zeros(0, dtype=dtype)
        return np.concatenate(parts).astype(dtype, copy=False)


def _cents(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 100.0).astype(np.int64)


def _unit_t(rng: np.random.Generator, df: float, size: int) -> np.ndarray:
    return rng.standard_t(df, size) / math.sqrt(df / (df - 2.0))


def _run_days(
    rng: np.random.Generator, config: SimulationConfig, acc: _Accounts, market: _Market
) -> tuple[_Growing, _Growing, _Growing, _Growing, _Growing]:
    n = acc.n
    big = np.iinfo(np.int64).max // 4
    plan = np.array([p[:-1] for p in PLANS], dtype=object)[acc.plan_row]
    start_c = _cents(plan[:, 3].astype(float))
    target_c = _cents(plan[:, 3].astype(float) * plan[:, 4].astype(float) / 100.0)
    dll_c = _cents(plan[:, 3].astype(float) * plan[:, 5].astype(float) / 100.0)
    dd_c = _cents(plan[:, 3].astype(float) * plan[:, 6].astype(float) / 100.0)
    share = plan[:, 8].astype(float) / 100.0
    static = plan[:, 10].astype(bool)
    by_equity = plan[:, 11].astype(bool)
    min_days = np.array([0 if v is None else v for v in plan[:, 14]], dtype=np.int64)
    kind = np.array([PLAN_TYPE_CODE[t] for t in plan[:, 1]], dtype=np.int64)

    tr = acc.trader
    # Traders risk a smaller share of bigger accounts (and bigger plans have tighter limits).
    size_factor = (start_c / 100.0 / 50_000.0) ** -config.risk_size_elasticity
    base_sigma = start_c / 100.0 * acc.risk_pct[tr] / 100.0 * size_factor
    edge = acc.edge[tr]
    p_weekday = acc.p_active[tr]
    p_weekend = np.where(acc.crypto[tr], acc.p_active[tr] * config.weekend_activity, 0.0)
    vol = np.asarray(config.regime_vol)
    drift = np.asarray(config.regime_drift)
    rho = config.trader_day_correlation
    df = config.student_t_df
    first_weekday = config.start_date.weekday()

    alive = np.zeros(n, dtype=bool)
    bal = np.zeros(n, dtype=np.int64)
    eq = np.zeros(n, dtype=np.int64)
    hwm = np.zeros(n, dtype=np.int64)
    phase = acc.phase0.copy()
    phase_start = np.zeros(n, dtype=np.int64)
    phase_days = np.zeros(n, dtype=np.int64)
    esc = np.ones(n)
    approved = np.zeros(n, dtype=np.int64)
    pending = np.zeros(n, dtype=np.int64)
    pending_due = np.full(n, big, dtype=np.int64)
    next_request = np.full(n, big, dtype=np.int64)
    last_trade = np.zeros(n, dtype=np.int64)
    first_trade = np.full(n, -1, dtype=np.int64)

    carry_acc = np.zeros(0, dtype=np.int64)
    carry_u = np.zeros(0, dtype=np.int64)
    carry_s = np.zeros(0)
    carry_seq = np.zeros(0, dtype=np.int64)
    seq = 0

    rows, gt, intraday, overnight, closes = (_Growing() for _ in range(5))
    for d in range(config.n_days):
        weekday = (first_weekday + d) % 7
        weekend = weekday >= 5
        r = int(market.state[d])

        new = acc.start_day == d
        alive |= new
        bal[new] = start_c[new]
        eq[new] = start_c[new]
        hwm[new] = start_c[new]
        phase_start[new] = start_c[new]
        last_trade[new] = d - 1
        next_request[new & (phase == 4)] = d + config.payout_cycle_days

        idx = np.flatnonzero(alive)
        m = idx.size
        if m == 0:
            continue
        t_idx = tr[idx]
        prior_bal = bal[idx].copy()
        prior_eq = eq[idx].copy()

        p = p_weekend[idx] if weekend else p_weekday[idx]
        u_trader = rng.random(acc.n_traders)
        u_own = rng.random(m)
        active = np.where(acc.shared_idle[idx], u_trader[t_idx], u_own) < p
        sig = base_sigma[idx] * vol[r] * esc[idx] * _PHASE_MULT[phase[idx]]
        mu = sig * (edge[idx] + drift[r])

        # Intraday trades: 1 + Poisson trades per active account whose net amounts sum to
        # mu + sigma * eps, eps a unit-variance mix of a trader-day shock and trade noise.
        act = np.flatnonzero(active)
        n_tr = 1 + rng.poisson(acc.trades_lambda[t_idx[act]] - 1.0)
        owner = np.repeat(act, n_tr)
        k = n_tr[np.searchsorted(act, owner)].astype(float)
        common = _unit_t(rng, df, acc.n_traders)[t_idx[owner]]
        noise = _unit_t(rng, df, owner.size)
        trade_net = mu[owner] / k + sig[owner] * (
            math.sqrt(rho) * common / k + math.sqrt(1.0 - rho) * noise / np.sqrt(k)
        )
        trade_c = _cents(trade_net)
        n_new = owner.size
        intraday.add(
            acc=idx[owner],
            day=np.full(n_new, d),
            net=trade_c,
            sigma=sig[owner] / np.sqrt(k),
            seq=np.arange(seq, seq + n_new),
            regime=np.full(n_new, r),
        )
        seq += n_new

        # Positions carried from yesterday close today: net = unrealised at the snapshot +
        # noise, so yesterday's snapshot is an unbiased forecast of their contribution.
        carry_pos = np.searchsorted(idx, carry_acc)
        close_c = _cents(carry_u / 100.0 + carry_s * _unit_t(rng, df, carry_acc.size))
        closes.add(seq=carry_seq, day=np.full(carry_acc.size, d), net=close_c)

        net = np.rint(
            np.bincount(owner, weights=trade_c, minlength=m)
            + np.bincount(carry_pos, weights=close_c, minlength=m)
        ).astype(np.int64)
        n_trades = np.bincount(owner, minlength=m) + np.bincount(carry_pos, minlength=m)

        # New overnight positions (Mon-Thu) in today's open snapshot.
        if weekday < 4:
            holds = active & (rng.random(m) < acc.hold[t_idx])
            n_open = np.where(holds, 1 + (rng.random(m) < 0.2), 0)
        else:
            n_open = np.zeros(m, dtype=np.int64)
        open_owner = np.repeat(np.arange(m), n_open)
        open_s = sig[open_owner] * config.overnight_size
        open_u = _cents(open_s * 0.6 * rng.standard_normal(open_owner.size))
        unreal = np.rint(np.bincount(open_owner, weights=open_u, minlength=m)).astype(np.int64)
        open_seq = np.arange(seq, seq + open_owner.size)
        seq += open_owner.size

        # Withdrawals due today, capped so that paying never breaches a limit by itself.
        s_c = start_c[idx]
        ref = np.where(by_equity[idx], prior_eq, prior_bal)
        daily_floor = ref - dll_c[idx]
        dd_floor = np.where(static[idx], s_c - dd_c[idx], hwm[idx] - dd_c[idx])
        eq_pre = prior_bal + net + unreal
        due = (pending[idx] > 0) & (pending_due[idx] == d)
        cap = eq_pre - np.maximum(daily_floor, dd_floor) - dll_c[idx] // 5
        paid = np.where(due, np.clip(np.minimum(pending[idx], cap), 0, None), 0)
        approved[idx] += paid
        pending[idx[due]] = 0
        pending_due[idx[due]] = big

        new_bal = prior_bal + net - paid
        new_eq = new_bal + unreal
        breach = (ref - new_eq > dll_c[idx]) | (new_eq < dd_floor)
        ok = ~breach

        traded = n_trades > 0
        last_trade[idx[traded]] = d
        first_trade[idx[traded & (first_trade[idx] < 0)]] = d
        phase_days[idx] += traded
        status = np.where(breach, 3, np.where(d - last_trade[idx] >= _INACTIVE_AFTER_DAYS, 2, 1))
        row_phase = phase[idx].copy()

        bal[idx] = new_bal
        eq[idx] = new_eq
        hwm[idx] = np.maximum(hwm[idx], new_eq)

        # Phase changes take effect from the next row.
        passed = (
            ok
            & ((row_phase == 1) | (row_phase == 2))
            & (new_bal - phase_start[idx] >= target_c[idx])
            & (phase_days[idx] >= min_days[idx])
        )
        nxt = np.where((kind[idx] == 1) & (row_phase == 1), 2, 4)
        pi = idx[passed]
        phase[pi] = nxt[passed]
        phase_start[pi] = new_bal[passed]
        phase_days[pi] = 0
        funded_now = pi[phase[pi] == 4]
        next_request[funded_now] = d + 1 + config.payout_cycle_days

        # Payout requests at the end of a funded account's cycle.
        request = ok & (row_phase == 4) & (next_request[idx] == d)
        profit = new_bal - s_c
        asks = request & (profit >= s_c // 100) & (pending[idx] == 0)
        pending[idx[asks]] = np.rint(profit[asks] * share[idx[asks]]).astype(np.int64)
        pending_due[idx[asks]] = d + config.payout_lag_days
        next_request[idx[request]] += config.payout_cycle_days
        # A breached account has no next payout: null, like an account that is not funded.
        to_payout = np.where((row_phase == 4) & ok, next_request[idx] - d, -1)

        # Martingale habit: a losing day raises tomorrow's volatility, a winning one relaxes it.
        k_m = acc.martingale[t_idx]
        e = esc[idx]
        esc[idx] = np.where(
            traded & (net < 0),
            np.minimum(_ESCALATION_CAP, e * (1.0 + k_m)),
            np.where(traded & (net > 0), 1.0 + (e - 1.0) * _ESCALATION_RELAX, e),
        )

        rows.add(
            acc=idx,
            day=np.full(m, d),
            status=status,
            phase=row_phase,
            prior_bal=prior_bal,
            prior_eq=prior_eq,
            bal=new_bal,
            eq=new_eq,
            approved=approved[idx],
            pending=pending[idx],
            paid=paid,
            to_payout=to_payout,
            first_trade=first_trade[idx],
            net=net,
            n_trades=n_trades,
        )

        # Ground truth: exact moments of tomorrow's net P&L given the state now.
        next_weekend = (weekday + 1) % 7 >= 5
        p_next = p_weekend[idx] if next_weekend else p_weekday[idx]
        pi_row = market.transition[d]
        sig_r = (base_sigma[idx] * esc[idx] * _PHASE_MULT[phase[idx]])[:, None] * vol[None, :]
        mu_r = sig_r * (edge[idx][:, None] + drift[None, :])
        e1 = mu_r @ pi_row
        e2 = (sig_r**2 + mu_r**2) @ pi_row
        carried_mean = unreal / 100.0
        carried_var = np.bincount(open_owner, weights=open_s**2, minlength=m)
        expected = p_next * e1 + carried_mean
        variance = p_next * e2 - (p_next * e1) ** 2 + carried_var
        gt.add(
            acc=idx[ok],
            day=np.full(int(ok.sum()), d),
            expected=expected[ok],
            std=np.sqrt(variance[ok]),
        )

        keep = ok[open_owner]
        overnight.add(
            acc=idx[open_owner],
            day=np.full(open_owner.size, d),
            unreal=open_u,
            sigma=open_s,
            seq=open_seq,
            regime=np.full(open_owner.size, r),
            closes=keep & (d + 1 < config.n_days),
        )
        carry_acc = idx[open_owner[keep]]
        carry_u = open_u[keep]
        carry_s = open_s[keep]
        carry_seq = open_seq[keep]

        alive[idx[breach]] = False
    return rows, gt, intraday, overnight, closes


# --------------------------------------------------------------------------------------------
# Trades: descriptive fields for every position, vectorised over all of them at once


def _epoch_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def _build_trades(
    rng: np.random.Generator,
    config: SimulationConfig,
    acc: _Accounts,
    market: _Market,
    intraday: _Growing,
    overnight: _Growing,
    closes: _Growing,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Return (closed trades, open trades, closed-trade facts for the metric aggregations)."""
    i_acc = intraday.get("acc", np.int64)
    o_acc = overnight.get("acc", np.int64)
    n_i, n_o = i_acc.size, o_acc.size
    pos_acc = np.concatenate([i_acc, o_acc])
    open_day = np.concatenate([intraday.get("day", np.int64), overnight.get("day", np.int64)])
    sigma = np.concatenate([intraday.get("sigma", float), overnight.get("sigma", float)])
    seq = np.concatenate([intraday.get("seq", np.int64), overnight.get("seq", np.int64)])
    regime = np.concatenate([intraday.get("regime", np.int64), overnight.get("regime", np.int64)])
    is_over = np.concatenate([np.zeros(n_i, bool), np.ones(n_o, bool)])
    n_pos = pos_acc.size
    trader = acc.trader[pos_acc]
    broker = acc.broker[pos_acc]
    platform = acc.mt_version[pos_acc]

    weekday = (config.start_date.weekday() + open_day) % 7
    u = rng.random(n_pos)
    symbol = (u[:, None] > acc.symbol_cdf[trader]).sum(axis=1)
    symbol = np.where(weekday >= 5, BTC, symbol).astype(np.int64)

    # Close (or snapshot) day and times in ms since the epoch.
    o_closes = overnight.get("closes", bool)
    close_day = open_day.copy()
    close_day[n_i:] = np.where(o_closes, open_day[n_i:] + 1, -1)
    origin = _epoch_ms(config.start_date) - 2 * _MS_HOUR  # broker day 0 starts 22:00 UTC
    day_start = origin + open_day * _MS_DAY
    hour_i = np.where(weekday[:n_i] >= 5, rng.integers(0, 24, n_i), rng.choice(24, n_i, p=_HOUR_P))
    close_off = hour_i * _MS_HOUR + rng.integers(0, _MS_HOUR, n_i)
    dur_ms = np.exp(
        np.log(acc.duration_h[trader[:n_i]] * _MS_HOUR) + rng.normal(0.0, 1.0, n_i)
    ).astype(np.int64)
    dur_ms = np.clip(dur_ms, 2_000, np.maximum(close_off, 2_000))
    i_close = day_start[:n_i] + close_off
    i_open = np.maximum(i_close - dur_ms, day_start[:n_i])
    o_open = day_start[n_i:] + rng.integers(14 * _MS_HOUR, 24 * _MS_HOUR - 60_000, n_o)
    o_close_off = rng.choice(24, n_o, p=_HOUR_P) * _MS_HOUR + rng.integers(0, _MS_HOUR, n_o)
    o_close = day_start[n_i:] + _MS_DAY + o_close_off
    open_ms = np.concatenate([i_open, o_open])
    close_ms = np.concatenate([i_close, o_close])

    # Sizes and prices: lots so that one trade's typical move is worth its share of the day's
    # P&L standard deviation, prices near the previous close.
    ref_price = market.prices[open_day, symbol]
    daily_vol = _ANNUAL_VOL[symbol] / math.sqrt(252.0) * np.asarray(config.regime_vol)[regime]
    quote_usd = np.where(symbol == USDJPY, 1.0 / ref_price, 1.0)
    per_lot = _CONTRACT[symbol] * ref_price * quote_usd * daily_vol * 0.5
    lots_h = np.clip(np.rint(sigma / per_lot * 100.0), 1, 10_000).astype(np.int64)
    lots = lots_h / 100.0
    digits = _DIGITS[symbol]
    scale = 10.0**digits
    open_price = (
        np.rint(ref_price * np.exp(rng.normal(0.0, 0.3, n_pos) * daily_vol) * scale) / scale
    )
    buy = rng.random(n_pos) < 0.52
    side_sign = np.where(buy, 1.0, -1.0)
    qty = np.round(lots_h * _CONTRACT[symbol] / 100.0, 2)
    volume_c = np.rint(np.where(symbol == USDJPY, qty, qty * open_price) * 100.0).astype(np.int64)

    # Net amounts (cents): closed intraday trades, closes of overnight positions, snapshots.
    net_c = np.zeros(n_pos, dtype=np.int64)
    net_c[:n_i] = intraday.get("net", np.int64)
    c_seq = closes.get("seq", np.int64)
    c_net = closes.get("net", np.int64)
    o_seq = seq[n_i:]
    if c_seq.size:
        where = np.searchsorted(o_seq, c_seq)
        net_c[n_i + where] = c_net
    unreal_c = np.zeros(n_pos, dtype=np.int64)
    unreal_c[n_i:] = overnight.get("unreal", np.int64)

    comm_rate = np.array([0.0, _COMMISSION_PER_LOT[1], _COMMISSION_PER_LOT[2]])[broker]
    commission_c = np.where(_HAS_COMMISSION[symbol], -np.rint(lots_h * comm_rate), 0).astype(
        np.int64
    )
    fee_c = np.where(_HAS_COMMISSION[symbol], 0, -np.rint(volume_c * 1e-4)).astype(np.int64)
    odd_fee = rng.random(n_pos) < 0.02
    fee_c = np.where(odd_fee, fee_c - rng.integers(20, 300, n_pos), fee_c)
    swap_c = np.where(
        is_over,
        -np.rint(lots_h * _SWAP_PER_LOT[symbol, np.where(buy, 0, 1)]),
        0,
    ).astype(np.int64)
    profit_c = net_c - commission_c - fee_c - swap_c

    move = (profit_c / 100.0) / (lots * _CONTRACT[symbol] * quote_usd)
    close_price = np.maximum(open_price + side_sign * move, open_price * 0.5)
    close_price = np.rint(close_price * scale) / scale

    dist = open_price * rng.uniform(0.002, 0.012, n_pos)
    sl = np.rint((open_price - side_sign * dist) * scale) / scale
    tp = np.rint((open_price + side_sign * dist * rng.uniform(1.0, 3.0, n_pos)) * scale) / scale
    sl_kind = rng.choice(3, n_pos, p=[0.35, 0.15, 0.5])  # null, 0, a level
    tp_kind = rng.choice(3, n_pos, p=[0.4, 0.15, 0.45])
    sl_dist = np.where(sl_kind == 2, np.abs(open_price - sl), np.nan)
    tp_dist = np.where(tp_kind == 2, np.abs(tp - open_price), np.nan)

    # Position ids grow with the opening time per broker server, like MetaTrader's.
    order = np.lexsort((seq, open_ms))
    rank = np.empty(n_pos, dtype=np.int64)
    rank[order] = np.arange(n_pos)
    server_base = {(1, 5): 71_000_000, (1, 4): 43_000_000, (2, 5): 88_000_000, (2, 4): 26_000_000}
    base = np.zeros(n_pos, dtype=np.int64)
    for (b, pf), v in server_base.items():
        base[(broker == b) & (platform == pf)] = v
    position = base + rank * 3 + rng.integers(0, 3, n_pos)
    # MT4 tickets are the position ids; MT5 deal tickets are a separate, larger sequence.
    ticket = np.where(platform == 4, position, position + 9_000_000 + rank)
    mngr = np.zeros(n_pos, dtype=np.int64)
    for (b, pf), code in _MANAGER.items():
        mngr[(broker == b) & (platform == pf)] = code

    # Letter case of the side varies by broker: "Buy"/"buy" at one, "BUY"/"Buy" at the other.
    side_style = rng.random(n_pos)
    case = np.where(
        broker == 1, np.where(side_style < 0.85, 0, 1), np.where(side_style < 0.8, 2, 0)
    )
    side_idx = case * 2 + np.where(buy, 0, 1)
    trd_labels = [*_TRD_SYMBOL[1], *_TRD_SYMBOL[2], None]
    trd_idx = (broker - 1) * len(SYMBOLS) + symbol
    trd_idx[rng.random(n_pos) < 0.005] = len(trd_labels) - 1
    comment_idx = rng.choice(len(_COMMENTS), n_pos, p=_comment_p())
    epoch_day = config.start_date.toordinal() - dt.date(1970, 1, 1).toordinal()
    closed_mask = ~is_over | (close_day >= 0)
    trade_day = np.where(is_over & (close_day >= 0), close_day, open_day)
    snapshot_ms = origin + (open_day + 1) * _MS_DAY
    sl_value = np.where(sl_kind == 0, np.nan, np.where(sl_kind == 1, 0.0, sl))
    tp_value = np.where(tp_kind == 0, np.nan, np.where(tp_kind == 1, 0.0, tp))

    def frame(sel: np.ndarray, day: np.ndarray, is_open: bool) -> pl.DataFrame:
        # ``sel`` picks the rows and fixes their order (tradeDate, broker, platform, position):
        # permuting numpy arrays before building is much cheaper than sorting a wide frame.
        sel = sel[np.lexsort((position[sel], platform[sel], broker[sel], day[sel]))]
        end_ms = snapshot_ms if is_open else close_ms
        cols: dict[str, Any] = {
            "tradeDate": pl.Series((epoch_day + day[sel]).astype(np.int32)).cast(pl.Date),
            "broker": broker[sel],
            "mngr": mngr[sel],
            "platform": platform[sel],
            "ticket": pl.Series(ticket[sel]).cast(pl.String),
            "position": pl.Series(position[sel]).cast(pl.String),
            "login": _labels(acc.login, pos_acc[sel]),
            "stdSymbol": _labels(SYMBOLS, symbol[sel]),
            "trdSymbol": _labels(trd_labels, trd_idx[sel]),
            "side": _labels(_SIDES, side_idx[sel]),
            "lots": lots[sel],
            "contractSize": _CONTRACT[symbol[sel]],
            "qtyInBaseCrncy": qty[sel],
            "volumeUSD": volume_c[sel] / 100.0,
            "stopLoss": _nullable(sl_value[sel]),
            "takeProfit": _nullable(tp_value[sel]),
            "openTime": _ms_series(open_ms[sel]),
            "openPrice": open_price[sel],
            "closeTime": _ms_series(close_ms[sel]),
            "closePrice": close_price[sel],
            "duration": np.round((end_ms[sel] - open_ms[sel]) / _MS_HOUR, 6),
            # Snapshots carry unrealised profit; commission, fee and swap book at the close.
            "profit": (unreal_c[sel] if is_open else profit_c[sel]) / 100.0,
            "commission": 0.0 * sel if is_open else commission_c[sel] / 100.0,
            "fee": 0.0 * sel if is_open else fee_c[sel] / 100.0,
            "swap": 0.0 * sel if is_open else swap_c[sel] / 100.0,
            "comment": _labels([None, *_COMMENTS[1:]], comment_idx[sel]),
        }
        columns = OPEN_TRADE_COLUMNS if is_open else CLOSED_TRADE_COLUMNS
        return pl.DataFrame({c: cols[c] for c in columns})

    closed = frame(np.flatnonzero(closed_mask), trade_day, is_open=False)
    # Snapshots: every overnight position on the day it was opened.
    opened = frame(np.flatnonzero(is_over), open_day, is_open=True)
    sel = np.flatnonzero(closed_mask)
    # Facts for the metric aggregations, in (account, day, close time, position) order.
    sel = sel[np.lexsort((position[sel], close_ms[sel], trade_day[sel], pos_acc[sel]))]
    facts = pl.DataFrame(
        {
            "acc": pos_acc[sel],
            "day": trade_day[sel],
            "hour": (close_ms - origin)[sel] % _MS_DAY // _MS_HOUR,
            "open_ms": open_ms[sel],
            "close_ms": close_ms[sel],
            "position": position[sel],
            "net": net_c[sel],
            "lots_h": lots_h[sel],
            "volume_c": volume_c[sel],
            "sl_dist": sl_dist[sel],
            "tp_dist": tp_dist[sel],
            "symbol": symbol[sel],
        }
    )
    return closed, opened, facts


_SIDES = ("Buy", "Sell", "buy", "sell", "BUY", "SELL")


def _labels(labels: Any, idx: np.ndarray) -> pl.Series:
    """A string column picked from ``labels`` by integer index (None picks a null)."""
    return pl.Series(list(labels), dtype=pl.String).gather(np.asarray(idx, dtype=np.int64))


def _comment_p() -> np.ndarray:
    p = _COMMENT_P.copy()
    p[0] = 1.0 - p[1:].sum()
    return p


def _ms_series(ms: np.ndarray) -> pl.Series:
    return pl.Series(ms.astype(np.int64)).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")


# --------------------------------------------------------------------------------------------
# Metric aggregations (exact: integer cents, hundredths of lots, milliseconds)


def _trade_stats(facts: pl.DataFrame, keys: list[str], start_c: np.ndarray) -> pl.DataFrame:
    """Per-window statistics of closed trades, with ``keys`` as the window (e.g. acc, day).

    All numpy over contiguous groups (``reduceat``): polars group-bys over a million small
    groups cost seconds. Trades are ordered by close time within a window.
    """
    n = facts.height
    if n == 0:
        return pl.DataFrame(schema={**{k: pl.Int64 for k in keys}, **_STATS_SCHEMA})
    # ``facts`` comes sorted by (acc, day, close_ms, position); within a broker day the hour
    # grows with close_ms, so that order also serves (acc, day, hour) and (acc) windows.
    col = {c: facts[c].to_numpy() for c in facts.columns}
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for k in keys:
        a = col[k]
        change[1:] |= a[1:] != a[:-1]
    gid = np.cumsum(change) - 1
    starts = np.flatnonzero(change)
    ng = starts.size
    count = np.diff(np.append(starts, n))
    net = col["net"]
    win = net > 0
    loss = net < 0
    lots_h = col["lots_h"]
    volume_c = col["volume_c"]
    symbol = col["symbol"]
    dur = col["close_ms"] - col["open_ms"]
    sb = start_c[col["acc"][starts]].astype(float)

    def seg(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(x, starts)

    total = seg(net)
    gross_p = seg(np.where(win, net, 0))
    gross_l = seg(np.where(loss, net, 0))
    wins = seg(win.astype(np.int64))
    losses = seg(loss.astype(np.int64))
    mean = total / count
    dev = net - mean[gid]
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(seg(dev * dev) / (count - 1))
    std = np.where(count > 1, std, np.nan)
    by_value = np.lexsort((net, gid))
    sorted_net = net[by_value]
    lo = sorted_net[starts + (count - 1) // 2]
    hi = sorted_net[starts + count // 2]
    median = (lo + hi) / 2.0
    cs = np.cumsum(net)
    cum = cs - (cs - net)[starts][gid]
    span = int(np.abs(cum).max()) * 2 + 2
    peak = np.maximum.accumulate(cum + gid * span) - gid * span
    dd = cum - np.maximum(peak, 0)
    win_lots = seg(np.where(win, lots_h, 0))
    loss_lots = seg(np.where(loss, lots_h, 0))
    sl = col["sl_dist"]
    tp = col["tp_dist"]
    sl_n = seg((~np.isnan(sl)).astype(np.int64))
    tp_n = seg((~np.isnan(tp)).astype(np.int64))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sl = np.where(sl_n > 0, seg(np.nan_to_num(sl)) / sl_n, np.nan)
        mean_tp = np.where(tp_n > 0, seg(np.nan_to_num(tp)) / tp_n, np.nan)
    symbols_seen = np.bitwise_or.reduceat(np.left_shift(1, symbol), starts)
    n_symbols = np.zeros(ng, dtype=np.int64)
    for j in range(len(SYMBOLS)):
        n_symbols += (symbols_seen >> j) & 1
    per_symbol = np.bincount(gid * len(SYMBOLS) + symbol, minlength=ng * len(SYMBOLS))
    most = per_symbol.reshape(ng, len(SYMBOLS)).argmax(axis=1)  # ties: first in SYMBOLS

    # Concurrency peaks from open/close events; a close sorts before an open at the same ms.
    ev_g = np.concatenate([gid, gid])
    ev_t = np.concatenate([col["open_ms"], col["close_ms"]])
    ev_d = np.concatenate([np.ones(n, np.int64), -np.ones(n, np.int64)])
    ev_v = np.concatenate([volume_c, -volume_c])
    o = np.lexsort((ev_d, ev_t, ev_g))
    ev_g, ev_d, ev_v = ev_g[o], ev_d[o], ev_v[o]
    ev_starts = starts * 2  # each window holds exactly twice its trades as events
    cn = np.cumsum(ev_d)
    cv = np.cumsum(ev_v)
    cn = cn - (cn - ev_d)[ev_starts][ev_g]
    cv = cv - (cv - ev_v)[ev_starts][ev_g]
    max_open = np.maximum.reduceat(cn, ev_starts)
    max_val = np.maximum.reduceat(cv, ev_starts)

    def max_run(flag: np.ndarray) -> np.ndarray:
        begin = flag.copy()
        begin[1:] &= ~(flag[:-1] & (gid[1:] == gid[:-1]))
        run = np.cumsum(begin) - 1
        lengths = np.bincount(run[flag], minlength=int(begin.sum()))
        out = np.zeros(ng, dtype=np.int64)
        np.maximum.at(out, gid[begin], lengths)
        return out

    with np.errstate(invalid="ignore", divide="ignore"):
        pf = np.where(gross_l < 0, gross_p / -np.where(gross_l < 0, gross_l, 1), np.nan)
        risk_adj = np.where(std > 0, mean / std, np.nan)
        mean_win_lot = np.where(wins > 0, win_lots / np.maximum(wins, 1) / 100.0, np.nan)
        mean_loss_lot = np.where(losses > 0, loss_lots / np.maximum(losses, 1) / 100.0, np.nan)
    avg_win = np.where(wins > 0, gross_p / np.maximum(wins, 1), 0.0)
    avg_loss = np.where(losses > 0, gross_l / np.maximum(losses, 1), 0.0)
    expectancy = (wins * avg_win + losses * avg_loss) / count

    out = {k: col[k][starts] for k in keys}
    stats: dict[str, Any] = {
        "numTrades": count.astype(np.int64),
        "netProfit": total / 100.0,
        "grossProfit": gross_p / 100.0,
        "grossLoss": gross_l / 100.0,
        "profitFactor": _nullable(np.round(pf, 4)),
        "successRate": np.round(wins / count * 100.0, 2),
        "meanProfit": np.round(mean / 100.0, 2),
        "medianProfit": np.round(median / 100.0, 2),
        "stdProfits": _nullable(np.round(std / 100.0, 2)),
        "minProfit": np.minimum.reduceat(net, starts) / 100.0,
        "maxProfit": np.maximum.reduceat(net, starts) / 100.0,
        "riskAdjProfit": _nullable(np.round(risk_adj, 4)),
        "expectancy": np.round(expectancy / 100.0, 2),
        "meanDrawDown": np.round(seg(dd) / count / 100.0, 2),
        "maxDrawDown": np.minimum.reduceat(dd, starts) / 100.0,
        "relMaxDrawDown": np.round(np.minimum.reduceat(dd, starts) / 100.0 / sb, 6),
        "totalLots": seg(lots_h) / 100.0,
        "totalVolume": seg(volume_c) / 100.0,
        "meanWinningLot": _nullable(np.round(mean_win_lot, 4)),
        "meanLosingLot": _nullable(np.round(mean_loss_lot, 4)),
        "meanDuration": np.round(seg(dur) / count / _MS_HOUR, 4),
        "meanSL": _nullable(np.round(mean_sl, 6)),
        "meanTP": _nullable(np.round(mean_tp, 6)),
        "maxNumConsecWins": max_run(win),
        "maxNumConsecLosses": max_run(loss),
        "maxNumOpenPos": max_open.astype(float),
        "maxValOpenPos": max_val / 100.0,
        "numTradedSymbols": n_symbols,
        "mostTradedSymbol": _labels(SYMBOLS, most),
    }
    return pl.DataFrame({**out, **stats}).cast({k: pl.Int64 for k in keys})


def _nullable(x: np.ndarray) -> pl.Series:
    return pl.Series(x, dtype=pl.Float64).fill_nan(None)


_STATS_SCHEMA: dict[str, Any] = {
    "numTrades": pl.Int64, "netProfit": pl.Float64, "grossProfit": pl.Float64,
    "grossLoss": pl.Float64, "profitFactor": pl.Float64, "successRate": pl.Float64,
    "meanProfit": pl.Float64, "medianProfit": pl.Float64, "stdProfits": pl.Float64,
    "minProfit": pl.Float64, "maxProfit": pl.Float64, "riskAdjProfit": pl.Float64,
    "expectancy": pl.Float64, "meanDrawDown": pl.Float64, "maxDrawDown": pl.Float64,
    "relMaxDrawDown": pl.Float64, "totalLots": pl.Float64, "totalVolume": pl.Float64,
    "meanWinningLot": pl.Float64, "meanLosingLot": pl.Float64, "meanDuration": pl.Float64,
    "meanSL": pl.Float64, "meanTP": pl.Float64, "maxNumConsecWins": pl.Int64,
    "maxNumConsecLosses": pl.Int64, "maxNumOpenPos": pl.Float64, "maxValOpenPos": pl.Float64,
    "numTradedSymbols": pl.Int64, "mostTradedSymbol": pl.String,
}  # fmt: skip
# A window without trades: counts and sums are zero, the statistics of trades are null.
_EMPTY_WINDOW: dict[str, Any] = {
    "numTrades": 0,
    "netProfit": 0.0,
    "grossProfit": 0.0,
    "grossLoss": 0.0,
    "totalLots": 0.0,
    "totalVolume": 0.0,
    "numTradedSymbols": 0,
}


def _fill_empty_windows(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        [pl.col(c).fill_null(v).cast(_STATS_SCHEMA[c]) for c, v in _EMPTY_WINDOW.items()]
    )


def _identity(acc: _Accounts) -> pl.DataFrame:
    plan_ids = np.array([p[0] for p in PLANS], dtype=np.int64)[acc.plan_row]
    type_code = np.array([PLAN_TYPE_CODE[p[1]] for p in PLANS], dtype=np.int64)[acc.plan_row]
    return pl.DataFrame(
        {
            "acc": np.arange(acc.n, dtype=np.int64),
            "_start_day": acc.start_day,
            "login": _labels(acc.login, np.arange(acc.n)),
            "accountId": _labels(acc.account_id, np.arange(acc.n)),
            "planId": plan_ids,
            "trader": _labels(acc.trader_id, acc.trader),
            "type": type_code,
            "broker": acc.broker,
            "mt_version": acc.mt_version,
            "country": _labels(acc.country, np.arange(acc.n)),
            "startingBalance": _cents(np.array([p[3] for p in PLANS], dtype=float)[acc.plan_row])
            / 100.0,
        }
    )


def _day_to_date(expr: pl.Expr, start: dt.date) -> pl.Expr:
    epoch_day = start.toordinal() - dt.date(1970, 1, 1).toordinal()
    return (expr + epoch_day).cast(pl.Int32).cast(pl.Date)


# --------------------------------------------------------------------------------------------
# Entry point


def simulate(config: SimulationConfig | None = None) -> SandboxData:
    """Simulate the firm described by ``config`` (pure and deterministic for its seed)."""
    config = config or SimulationConfig()
    seeds = np.random.SeedSequence(config.seed).spawn(5)
    # Independent streams: the market path does not depend on the number of accounts.
    market = _simulate_market(np.random.default_rng(seeds[0]), config)
    acc = _make_accounts(np.random.default_rng(seeds[1]), config)
    rows, gt, intraday, overnight, closes = _run_days(
        np.random.default_rng(seeds[2]), config, acc, market
    )
    closed, opened, facts = _build_trades(
        np.random.default_rng(seeds[3]), config, acc, market, intraday, overnight, closes
    )
    del intraday, overnight, closes  # per-day chunks: the peak memory of big simulations
    rng_misc = np.random.default_rng(seeds[4])
    start_c = _cents(np.array([p[3] for p in PLANS], dtype=float)[acc.plan_row])
    identity = _identity(acc)
    start = config.start_date

    state = pl.DataFrame(
        {
            "acc": rows.get("acc", np.int64),
            "day": rows.get("day", np.int64),
            "status": rows.get("status", np.int64),
            "phase": rows.get("phase", np.int64),
            "priorDaysBalance": rows.get("prior_bal", np.int64) / 100.0,
            "priorDaysEquity": rows.get("prior_eq", np.int64) / 100.0,
            "currentBalance": rows.get("bal", np.int64) / 100.0,
            "currentEquity": rows.get("eq", np.int64) / 100.0,
            "approved_payouts": rows.get("approved", np.int64) / 100.0,
            "pending_payouts": rows.get("pending", np.int64) / 100.0,
            "todays_payouts": rows.get("paid", np.int64) / 100.0,
            "days_to_next_payout": pl.Series(rows.get("to_payout", np.int64)).replace(-1, None),
            "_first": rows.get("first_trade", np.int64),
            "_net_check": rows.get("net", np.int64),
        }
    )
    # Frames stay in (day, account) order throughout: account index order is accountId order,
    # and every join keeps the left order, so row-wise masks below are deterministic.
    day_stats = _trade_stats(facts, ["acc", "day"], start_c)
    daily = (
        state.join(day_stats, on=["acc", "day"], how="left", maintain_order="left")
        .join(identity, on="acc", how="left", maintain_order="left")
        .pipe(_fill_empty_windows)
        .with_columns(
            date=_day_to_date(pl.col("day"), start),
            firstTradeDate=pl.when(pl.col("_first") >= 0).then(
                _day_to_date(pl.col("_first"), start)
            ),
            daysSinceInitialDeposit=pl.col("day") - pl.col("_start_day"),
            daysSinceFirstTrade=pl.when(pl.col("_first") >= 0)
            .then(pl.col("day") - pl.col("_first"))
            .otherwise(0),
        )
    )
    mismatch = daily.filter(
        (pl.col("netProfit") * 100).round(0).cast(pl.Int64) != pl.col("_net_check")
    ).height
    if mismatch:  # pragma: no cover - an internal invariant, not an input error
        raise AssertionError(f"{mismatch} account-days whose trades do not sum to their P&L")
    alltime = _alltime(daily, facts, identity, start_c)

    # About 1% of daily rows lose their accountId (never an account's first row).
    drop_id = rng_misc.random(daily.height) < config.null_account_id_share
    daily = daily.with_columns(
        accountId=pl.when(pl.Series(drop_id) & (pl.col("day") != pl.col("_start_day")))
        .then(None)
        .otherwise(pl.col("accountId"))
    )

    hour_stats = _trade_stats(facts, ["acc", "day", "hour"], start_c)
    day_start = state.select(
        "acc",
        "day",
        "status",
        "phase",
        "priorDaysBalance",
        "priorDaysEquity",
        "_first",
        # Hourly rows report payouts as of the start of the day (a payout lands at its end).
        approved_payouts=(pl.col("approved_payouts") - pl.col("todays_payouts")).round(2),
        pending_payouts=pl.col("pending_payouts").shift(1).over("acc").fill_null(0.0),
    )
    hourly = (
        hour_stats.join(day_start, on=["acc", "day"], how="left", maintain_order="left")
        .join(identity, on="acc", how="left", maintain_order="left")
        .with_columns(
            currentBalance=(
                (pl.col("priorDaysBalance") * 100).round(0).cast(pl.Int64)
                + (pl.col("netProfit") * 100).round(0).cast(pl.Int64).cum_sum().over(["acc", "day"])
            )
            / 100.0,
        )
        .with_columns(
            currentEquity=pl.col("currentBalance"),
            date=_day_to_date(pl.col("day"), start),
            firstTradeDate=pl.when(pl.col("_first") >= 0).then(
                _day_to_date(pl.col("_first"), start)
            ),
            daysSinceInitialDeposit=pl.col("day") - pl.col("_start_day"),
            daysSinceFirstTrade=pl.when(pl.col("_first") >= 0)
            .then(pl.col("day") - pl.col("_first"))
            .otherwise(0),
        )
        .sort(["day", "acc", "hour"])
    )
    drop_h = rng_misc.random(hourly.height) < config.null_account_id_share
    hourly = hourly.with_columns(
        accountId=pl.when(pl.Series(drop_h)).then(None).otherwise(pl.col("accountId"))
    )

    gt_frame = (
        pl.DataFrame(
            {
                "acc": gt.get("acc", np.int64),
                "day": gt.get("day", np.int64),
                "expected_next_day_net_profit": gt.get("expected", float),
                "next_day_std": gt.get("std", float),
            }
        )
        .join(
            identity.select("acc", "accountId", "login", "mt_version", "broker"),
            on="acc",
            how="left",
            maintain_order="left",
        )
        .with_columns(date=_day_to_date(pl.col("day"), start))
        .select(GROUND_TRUTH_COLUMNS)
    )
    # Natural-key order (date, accountId), rows without an accountId last within their day.
    daily = daily.sort(["day", pl.col("accountId").is_null(), "acc"], maintain_order=True).select(
        DAILY_COLUMNS
    )
    hourly = hourly.sort(
        ["day", pl.col("accountId").is_null(), "acc", "hour"], maintain_order=True
    ).select(HOURLY_COLUMNS)
    latent = (
        identity.select("acc", "accountId", "login")
        .with_columns(
            edge=acc.edge[acc.trader],
            risk_pct=acc.risk_pct[acc.trader],
            p_active=acc.p_active[acc.trader],
            martingale=acc.martingale[acc.trader],
            crypto=acc.crypto[acc.trader],
            start_day=acc.start_day,
            start_date=_day_to_date(pl.Series(acc.start_day), start),
        )
        .drop("acc")
    )
    return SandboxData(
        config=config,
        plans=plans_frame(),
        accounts_alltime=alltime,
        metrics_daily=daily,
        metrics_hourly=hourly,
        trades_closed=closed,
        trades_open=opened,
        regimes=market.frame,
        ground_truth=gt_frame,
        latent=latent,
    )


def _alltime(
    daily: pl.DataFrame, facts: pl.DataFrame, identity: pl.DataFrame, start_c: np.ndarray
) -> pl.DataFrame:
    """Lifetime rows as of each account's last daily row (``daily`` is in day order)."""
    life = _trade_stats(facts, ["acc"], start_c)
    per_acc = (
        daily.group_by("acc", maintain_order=True)
        .agg(
            pl.col("status").last(),
            pl.col("phase").last(),
            pl.col("priorDaysBalance").last(),
            pl.col("priorDaysEquity").last(),
            pl.col("currentBalance").last(),
            pl.col("currentEquity").last(),
            pl.col("approved_payouts").last(),
            pl.col("pending_payouts").last(),
            pl.col("firstTradeDate").last(),
            pl.col("daysSinceInitialDeposit").last(),
            pl.col("daysSinceFirstTrade").last(),
            pl.len().cast(pl.Int64).alias("lifeTimeInDays"),
            pl.col("date").last().alias("updatedDate"),
            pl.col("netProfit").mean().alias("_mean"),
            pl.col("netProfit").std().alias("_std"),
            (pl.col("netProfit").clip(upper_bound=0.0) ** 2).mean().sqrt().alias("_down"),
        )
        .with_columns(
            dailySharpe=pl.when(pl.col("_std") > 0).then(
                (pl.col("_mean") / pl.col("_std")).round(4)
            ),
            dailySortino=pl.when(pl.col("_down") > 0).then(
                (pl.col("_mean") / pl.col("_down")).round(4)
            ),
        )
    )
    return (
        per_acc.join(life, on="acc", how="left")
        .join(identity, on="acc", how="left")
        .pipe(_fill_empty_windows)
        .sort("acc")
        .select(ALLTIME_COLUMNS)
    )


# --------------------------------------------------------------------------------------------
# The oracle against naive baselines


def oracle_report(data: SandboxData) -> dict[str, Any]:
    """How much the ground truth beats naive forecasts of next-day net profit.

    Over funded (phase 4), non-breach account-days that have a next day: the MSE of the oracle
    and of the naive baselines (zero, today's P&L, trailing 5- and 20-day means, the account's
    mean so far), the oracle's improvement over the best baseline, and how much the
    ground-truth spread varies (90th/10th percentile ratio, DISPERSED/COMPRESSED mean ratio).
    """
    d = (
        data.metrics_daily.join(
            data.ground_truth.select(
                "login", "mt_version", "broker", "date", "expected_next_day_net_profit",
                "next_day_std",
            ),
            on=["login", "mt_version", "broker", "date"],
            how="left",
        )
        .sort(["login", "mt_version", "broker", "date"])
        .with_columns(
            y_next=pl.col("netProfit").shift(-1).over(["login", "mt_version", "broker"]),
            next_date=pl.col("date").shift(-1).over(["login", "mt_version", "broker"]),
            b_last=pl.col("netProfit"),
            b_5=pl.col("netProfit").rolling_mean(5, min_samples=1).over(
                ["login", "mt_version", "broker"]
            ),
            b_20=pl.col("netProfit").rolling_mean(20, min_samples=1).over(
                ["login", "mt_version", "broker"]
            ),
            b_hist=(
                pl.col("netProfit").cum_sum() / pl.col("netProfit").cum_count()
            ).over(["login", "mt_version", "broker"]),
        )
        .join(
            data.regimes.select("date", "volatilityRegime"), on="date", how="left"
        )
        .filter(
            (pl.col("phase") == 4)
            & (pl.col("status") != 3)
            & pl.col("y_next").is_not_null()
            & (pl.col("next_date") == pl.col("date") + pl.duration(days=1))
        )
    )  # fmt: skip
    y = d["y_next"].to_numpy()
    if y.size == 0:
        return {"n": 0.0}

    def mse(pred: np.ndarray) -> float:
        return float(np.mean((y - pred) ** 2))

    baselines = {
        "zero": mse(np.zeros_like(y)),
        "last": mse(d["b_last"].to_numpy()),
        "mean5": mse(d["b_5"].to_numpy()),
        "mean20": mse(d["b_20"].to_numpy()),
        "history": mse(d["b_hist"].to_numpy()),
    }
    oracle = mse(d["expected_next_day_net_profit"].to_numpy())
    best = min(baselines.values())
    std = d["next_day_std"].to_numpy()
    by_regime = d.group_by("volatilityRegime").agg(pl.col("next_day_std").mean())
    means = dict(zip(by_regime["volatilityRegime"], by_regime["next_day_std"], strict=True))
    # A next day that cannot trade (a weekend for a non-crypto trader) has std 0: the spread
    # ratio is over the days that can.
    can_trade = std > 0
    z = (y[can_trade] - d["expected_next_day_net_profit"].to_numpy()[can_trade]) / std[can_trade]
    if z.size < 2:
        return {"n": float(y.size)}
    compressed = means.get("COMPRESSED") or np.nan  # tiny samples may lack a regime
    return {
        "n": float(y.size),
        "oracle_mse": oracle,
        **{f"mse_{k}": v for k, v in baselines.items()},
        "best_baseline": min(baselines, key=lambda k: baselines[k]),
        "improvement_over_best_baseline": 1.0 - oracle / best,
        "std_p90_p10_ratio": float(
            np.percentile(std[can_trade], 90) / np.percentile(std[can_trade], 10)
        ),
        "std_dispersed_over_compressed": float((means.get("DISPERSED") or np.nan) / compressed),
        "zero_next_day_share": float(np.mean(y == 0.0)),
        "z_mean": float(np.mean(z)),
        "z_var": float(np.var(z)),
        "z_kurtosis": float(np.mean((z - z.mean()) ** 4) / np.var(z) ** 2),
    }
