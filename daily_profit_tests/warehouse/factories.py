"""Well-formed raw records in the API's shape (camelCase, ISO strings), for the warehouse tests."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from daily_profit.warehouse.records import SOURCES, Kind, SourceSpec


def iso_date(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00.000Z"


def iso_ts(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def metrics_record(
    day: dt.date, i: int, *, rng: random.Random, source: str = "metrics_daily", hour: int = 0
) -> dict[str, Any]:
    spec = SOURCES[source]
    gross_profit = round(rng.uniform(0, 5000), 2)
    gross_loss = -round(rng.uniform(0, 5000), 2)
    rec: dict[str, Any] = {
        "login": str(100000 + i),
        "accountId": f"acc-{i:06d}",
        "planId": 1 + i % 5,
        "trader": f"trader-{i // 3}",
        "status": 1,
        "type": 2,
        "phase": 1 + i % 4,
        "broker": 7,
        "mt_version": 5,
        "country": "DE",
        "date": iso_date(day),
        "hour": hour,
        "startingBalance": 100000.0,
        "priorDaysBalance": 101000.5,
        "priorDaysEquity": 101010.25,
        "currentBalance": 101500.0,
        "currentEquity": 101480.75,
        "approved_payouts": 0.0,
        "pending_payouts": 250.0,
        "todays_payouts": 0.0,
        "days_to_next_payout": 9,
        "firstTradeDate": iso_date(day - dt.timedelta(days=30)),
        "daysSinceInitialDeposit": 40,
        "daysSinceFirstTrade": 30,
        "numTrades": rng.randint(0, 40),
        "netProfit": round(gross_profit + gross_loss, 2),
        "grossProfit": gross_profit,
        "grossLoss": gross_loss,
        "profitFactor": 1.2,
        "successRate": 55.5,
        "meanDrawDown": -120.5,
        "maxDrawDown": -480.0,
        "lifeTimeInDays": 40,
        "dailySharpe": 0.8,
        "dailySortino": 1.1,
        "updatedDate": iso_ts(dt.datetime.combine(day, dt.time(6, 0, 1, 123000))),
    }
    for f in spec.fields:
        if f.api not in rec:
            rec[f.api] = _filler(f.kind, rng)
    return {f.api: rec[f.api] for f in spec.fields}


def _filler(kind: Kind, rng: random.Random) -> Any:
    if kind is Kind.FLOAT:
        return round(rng.uniform(2, 900), 4)
    if kind is Kind.INT:
        return rng.randint(2, 30)
    if kind is Kind.STR:
        return "EURUSD"
    raise AssertionError(kind)


def trade_record(
    day: dt.date, i: int, *, rng: random.Random, closed: bool = True
) -> dict[str, Any]:
    opened = dt.datetime.combine(day, dt.time(0)) + dt.timedelta(seconds=rng.randint(0, 40000))
    duration_s = rng.randint(1, 40000)
    rec: dict[str, Any] = {
        "tradeDate": iso_date(day),
        "broker": 7,
        "mngr": 3,
        "platform": 5,
        "ticket": f"T{i}",
        "position": f"P{i}",
        "login": str(100000 + i % 300),
        "stdSymbol": rng.choice(["EURUSD", "XAUUSD", "NDX100", "BTCUSD"]),
        "trdSymbol": "EURUSD.r",
        "side": rng.choice(["Buy", "Sell"]),
        "lots": round(rng.uniform(0.01, 5), 2),
        "contractSize": 100000.0,
        "qtyInBaseCrncy": 150000.0,
        "volumeUSD": 162000.0,
        "stopLoss": None,
        "takeProfit": 1.105,
        "openTime": iso_ts(opened),
        "openPrice": 1.0812,
        "closeTime": iso_ts(opened + dt.timedelta(seconds=duration_s)),
        "closePrice": 1.0822,
        "duration": round(duration_s / 3600, 4),
        "profit": round(rng.uniform(-500, 500), 2),
        "commission": -3.5,
        "fee": 0.0,
        "swap": -0.12,
        "comment": None,
    }
    if not closed:
        del rec["closeTime"], rec["closePrice"]
    return rec


def regime_record(day: dt.date) -> dict[str, Any]:
    return {
        "date": iso_date(day),
        "volatilityRegime": "BALANCED",
        "liquidityState": "NORMAL",
        "sentimentScore": 0.2,
        "riskOnProb": 0.3,
        "riskOffProb": 0.1,
        "volSpikeProb": 0.05,
        "fedFundsRate": 4.33,
        "treasury2y": 3.9,
        "treasury10y": 4.4,
        "instruments": {
            "EURUSD": {"eodPrice": 1.08, "dailyReturn": 0.001, "volatility90d": 0.07},
            "XAUUSD": {"eodPrice": 2350.5, "dailyReturn": -0.004, "volatility90d": 0.15},
        },
    }


def records_for(source: str, day: dt.date, n: int, *, seed: int = 1) -> list[dict[str, Any]]:
    """``n`` distinct valid records of ``source`` dated ``day``."""
    rng = random.Random(seed)
    spec: SourceSpec = SOURCES[source]
    if source.startswith("metrics"):
        if source == "metrics_hourly":
            return [
                metrics_record(day, i // 24, rng=rng, source=source, hour=i % 24) for i in range(n)
            ]
        return [metrics_record(day, i, rng=rng, source=source) for i in range(n)]
    if source.startswith("trades"):
        return [trade_record(day, i, rng=rng, closed=source == "trades_closed") for i in range(n)]
    if source == "regimes_daily":
        return [regime_record(day + dt.timedelta(days=i)) for i in range(n)]
    raise ValueError(f"no factory for {spec.name}")


PLANS_CSV_HEADER = (
    "planId,type,description,startingBalance,profitTargetPct,dailyLossLimitPct,"
    "maxTrailingDrawdownPct,leverage,profitSharePct,liquidateFriday,makeDrawdownStatic,"
    "dailyDrawdownByBalanceEquity,enableConsistency,inactivityPeriod,"
    "minimumRequiredActiveTradingDays,maximumTime,platform,broker"
)


def plans_csv(rows: list[str]) -> bytes:
    return ("\n".join([PLANS_CSV_HEADER, *rows]) + "\n").encode()


def plan_row(plan_id: int, **overrides: str) -> str:
    values = {
        "planId": str(plan_id),
        "type": "2-step",
        "description": f"Plan {plan_id}",
        "startingBalance": "100000",
        "profitTargetPct": "8",
        "dailyLossLimitPct": "5",
        "maxTrailingDrawdownPct": "10",
        "leverage": "100",
        "profitSharePct": "80",
        "liquidateFriday": "FALSE",
        "makeDrawdownStatic": "TRUE",
        "dailyDrawdownByBalanceEquity": "1",
        "enableConsistency": "0",
        "inactivityPeriod": "30",
        "minimumRequiredActiveTradingDays": "",
        "maximumTime": "",
        "platform": "MT5",
        "broker": "Acme Markets",
    }
    values.update(overrides)
    return ",".join(values[k] for k in PLANS_CSV_HEADER.split(","))


def minimal_record(source: str, day: dt.date, i: int, *, hour: int = 0) -> dict[str, Any]:
    """A record carrying only what its kind must carry (and its accountId): the contract's floor."""
    rng = random.Random(i)
    full = metrics_record(day, i, rng=rng, source=source, hour=hour)
    spec = SOURCES[source]
    return {f.api: full[f.api] for f in spec.fields if f.required or f.api == "accountId"}
