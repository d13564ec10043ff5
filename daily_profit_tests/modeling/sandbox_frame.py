"""The real modeling frame from the sandbox: simulate, stage, features, labels, joined.

Shared by the modeling tests and ``benchmarks/scoring_100k_accounts.py``. The road is the
platform's own (``features.pipeline``) over the raw frames the warehouse would hold
(``daily_profit_tests.support``); only Dagster and the warehouse are skipped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

import polars as pl

from daily_profit.features.catalog import catalog
from daily_profit.features.pipeline import build_features, build_labels, build_staging
from daily_profit.modeling.dataset import DATE, ID
from daily_profit.modeling.evaluate import truth_over_spans
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit_tests.support import raw_frames_from_sandbox


@dataclass(frozen=True)
class SandboxFrame:
    frame: pl.DataFrame  # account_features_daily joined with labels_next_session (sessions)
    truth: pl.DataFrame  # account_id, session, expected P&L of its span and its std
    history: pl.DataFrame  # account_id, date, net_profit (every daily metrics row)
    feature_columns: tuple[str, ...]


@cache
def sandbox_frame(seed: int = 7, n_accounts: int = 300, n_days: int = 120) -> SandboxFrame:
    """Features and labels of every live funded account and session of a simulated firm, the
    sandbox's truth over each session's span, and the raw daily P&L history (cached)."""
    return sandbox_frame_for(SimulationConfig(seed=seed, n_accounts=n_accounts, n_days=n_days))


def sandbox_frame_for(config: SimulationConfig) -> SandboxFrame:
    """The same for any simulated firm (size, seed and firm parameters), not cached."""
    n_days = config.n_days
    data = simulate(config)
    raw = raw_frames_from_sandbox(data)
    start = config.start_date
    end = start + dt.timedelta(days=n_days - 1)
    daily = raw["metrics_daily"]
    staging = build_staging(daily, raw["plans"], raw["metrics_alltime"], start=start, end=end)
    features = build_features(
        staging,
        daily,
        raw["metrics_hourly"],
        raw["trades_closed"],
        raw["trades_open"],
        raw["regimes_daily"],
        start=start,
        end=end,
    )
    labels = build_labels(staging, daily, start=start, end=end)
    frame = features.join(labels, on=[DATE, ID], how="inner")
    daily_truth = data.ground_truth.select(
        pl.col("accountId").alias(ID),
        DATE,
        "expected_next_day_net_profit",
        "next_day_std",
    ).drop_nulls(ID)
    truth = truth_over_spans(daily_truth)
    history = daily.select(ID, DATE, "net_profit").drop_nulls()
    return SandboxFrame(
        frame=frame,
        truth=truth,
        history=history,
        feature_columns=tuple(f.name for f in catalog()),
    )
