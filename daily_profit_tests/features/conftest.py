"""Shared fixtures: a small simulated firm as the warehouse holds it, and its feature build."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl
import pytest

from daily_profit.features.pipeline import build_features, build_labels, build_staging
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit_tests.support import raw_frames_from_sandbox


@dataclass(frozen=True)
class Firm:
    """Raw frames of a simulated firm and the date range they cover."""

    raw: dict[str, pl.DataFrame]
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class Built:
    """Staging, features and labels of a ``Firm`` over its whole range."""

    firm: Firm
    staging: pl.DataFrame
    features: pl.DataFrame
    labels: pl.DataFrame


def make_firm(n_accounts: int, n_days: int, seed: int) -> Firm:
    data = simulate(SimulationConfig(seed=seed, n_accounts=n_accounts, n_days=n_days))
    return Firm(
        raw=raw_frames_from_sandbox(data),
        start=data.config.start_date,
        end=data.config.end_date,
    )


def build_all(firm: Firm, *, start: dt.date | None = None, end: dt.date | None = None) -> Built:
    start, end = start or firm.start, end or firm.end
    raw = firm.raw
    staging = build_staging(
        raw["metrics_daily"], raw["plans"], raw["metrics_alltime"], start=start, end=end
    )
    features = build_features(
        staging,
        raw["metrics_daily"],
        raw["metrics_hourly"],
        raw["trades_closed"],
        raw["trades_open"],
        raw["regimes_daily"],
        start=start,
        end=end,
    )
    labels = build_labels(staging, raw["metrics_daily"], start=start, end=end)
    return Built(firm=firm, staging=staging, features=features, labels=labels)


@pytest.fixture(scope="session")
def firm() -> Firm:
    """120 accounts over 75 days: every family has data, and the build takes well under a second."""
    return make_firm(n_accounts=120, n_days=75, seed=11)


@pytest.fixture(scope="session")
def built(firm: Firm) -> Built:
    return build_all(firm)


@pytest.fixture(scope="session")
def small_firm() -> Firm:
    """A smaller firm for property tests that rebuild many times."""
    return make_firm(n_accounts=40, n_days=45, seed=5)
