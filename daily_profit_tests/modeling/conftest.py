"""Shared, session-scoped fixtures: trained bundles and one MLflow store, each built once.

Training and MLflow's store creation dominate the modeling tests' time. The main fixture is the
real thing at its default size: the sandbox firm (300 accounts x 120 days) through the
platform's feature and label pipeline, trained with a small search budget.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from daily_profit.modeling.dataset import TARGET
from daily_profit.modeling.synthetic import SYNTHETIC_CALENDAR, SyntheticData, make_synthetic
from daily_profit.modeling.tracking import TrackingTarget
from daily_profit.modeling.train import SearchBudget, TrainConfig, TrainResult, train_profit_model
from daily_profit_tests.modeling.sandbox_frame import SandboxFrame, sandbox_frame

SMALL_BUDGET = SearchBudget(n_trials=2, max_seconds=60.0, n_folds=2)


def small_config(seed: int = 0) -> TrainConfig:
    return TrainConfig(seed=seed, budget=SMALL_BUDGET)


@pytest.fixture(scope="session")
def sandbox() -> SandboxFrame:
    return sandbox_frame(seed=7, n_accounts=300, n_days=120)


@pytest.fixture(scope="session")
def trained(sandbox: SandboxFrame) -> TrainResult:
    return train_profit_model(
        sandbox.frame, sandbox.feature_columns, small_config(), history=sandbox.history
    )


@pytest.fixture(scope="session")
def synthetic() -> SyntheticData:
    """A small calm synthetic firm: quick to train twice, rows close to exchangeable."""
    return make_synthetic(n_accounts=150, n_days=60, seed=3, regimes=False)


@pytest.fixture(scope="session")
def trained_synthetic(synthetic: SyntheticData) -> TrainResult:
    return train_profit_model(
        synthetic.frame,
        synthetic.feature_columns,
        small_config(),
        history=synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
    )


@pytest.fixture(scope="session")
def mlflow_target(tmp_path_factory: pytest.TempPathFactory) -> TrackingTarget:
    data_dir: Path = tmp_path_factory.mktemp("mlflow")
    return TrackingTarget.embedded(data_dir, registered_model_name="test_daily_profit")


def mean_lost_in_noise(out_of_sample: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """Walk-forward rows whose expected profit had noise as large as the outcomes' spread
    added: a version that cannot match any baseline, its intervals untouched."""
    spread = float(out_of_sample[TARGET].std())
    noise = np.random.default_rng(seed).normal(0.0, spread, out_of_sample.height)
    return out_of_sample.with_columns(pl.col("expected_net_profit") + noise)
