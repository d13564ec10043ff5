"""The main job as a user runs it (`daily-profit main`), against a Risk API whose closed trades
of one day fail their audit: the other days land, every later layer skips what needs that day,
the model never trains on it, and the job exits non-zero naming the table and the day."""

from __future__ import annotations

import dataclasses
import datetime as dt

import polars as pl
import pytest

from daily_profit import cli
from daily_profit.config import get_settings
from daily_profit.modeling.tracking import CHALLENGER, TrackingTarget, load_version
from daily_profit.sandbox.server import SandboxServer
from daily_profit.sandbox.simulation import SandboxData, SimulationConfig, simulate
from daily_profit.warehouse.io import Warehouse

START = dt.date(2025, 1, 1)
DAYS = 42
FAILED_DAY = START + dt.timedelta(days=37)


def _with_unusable_trades(data: SandboxData, day: dt.date) -> SandboxData:
    """Every closed trade of ``day`` served with a negative size: all quarantined, the day
    fails its audit (nothing published for it)."""
    trades = data.trades_closed
    on_day = pl.col("tradeDate").cast(pl.String).str.slice(0, 10) == day.isoformat()
    assert trades.filter(on_day).height > 0
    damaged = trades.with_columns(
        pl.when(on_day).then(-pl.col("lots").abs() - 1).otherwise(pl.col("lots")).alias("lots")
    )
    return dataclasses.replace(data, trades_closed=damaged)


@pytest.fixture
def faulty_api(tmp_path, monkeypatch):
    data = simulate(SimulationConfig(seed=11, n_accounts=80, n_days=DAYS, start_date=START))
    plans = data.write_plans_csv(tmp_path / "plans.csv")
    with SandboxServer(_with_unusable_trades(data, FAILED_DAY), rate_limit=None) as server:
        monkeypatch.setenv("DAILY_PROFIT_RISK_API_BASE_URL", server.base_url)
        monkeypatch.setenv("DAILY_PROFIT_RISK_API_KEY", server.api_key)
        monkeypatch.setenv("DAILY_PROFIT_PLANS_CSV_PATH", str(plans))
        monkeypatch.setenv("DAILY_PROFIT_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
        (tmp_path / "dagster_home").mkdir()
        get_settings.cache_clear()
        yield server
    get_settings.cache_clear()


@pytest.mark.slow
def test_the_main_job_names_a_failed_raw_day_and_never_trains_on_it(faulty_api, capsys):
    status = cli.main(["main", "--days", str(DAYS)])
    out = capsys.readouterr().out

    assert status == 1
    assert "1 raw day(s) failed and were not published" in out
    assert f"raw_trades_closed {FAILED_DAY.isoformat()}: withheld, failed checks:" in out
    # One range run landed the history's raw layer, and the other days of every source were
    # published.
    assert f"raw layer (5 sources x {DAYS - 1} days, one run): FAILED" in out
    settings = get_settings()
    store = Warehouse(settings.resolved_warehouse_url)
    try:
        [failed] = cli.failed_raw_days(store, [START + dt.timedelta(days=i) for i in range(DAYS)])
        assert (failed.table, failed.day, failed.outcome) == (
            "raw_trades_closed",
            FAILED_DAY,
            "withheld",
        )
        assert store.read_partitions("raw_trades_closed", FAILED_DAY, FAILED_DAY).height == 0
        # Features need the day and the 20 before it: none exists from the failed day on.
        features = store.read_partitions(
            "account_features_daily", START, START + dt.timedelta(DAYS)
        )
        assert features.height > 0
        assert features["date"].max() < FAILED_DAY
    finally:
        store.dispose()
    # The model was trained, and only on days before the failed one.
    version = load_version(TrackingTarget.from_settings(settings), alias=CHALLENGER)
    assert version is not None
    assert dt.date.fromisoformat(version.tags["window.fit_label_end"][:10]) < FAILED_DAY
    assert dt.date.fromisoformat(version.test_window[1][:10]) < FAILED_DAY
    # What the desk reads of the model: the paired tests' verdicts and the conditional coverage.
    assert "promotion: " in out and " mse_vs_" in out
    assert "judged on the challenger's " in out  # its walk-forward or test days, and how many
    assert "expected P&L: " in out  # which mean the desk is served: anchor, stack or baseline
    assert "conditional coverage of the 90% interval on the test days" in out
    assert "| non_zero | all |" in out
    # The console stays the job's: no MLflow notices, no Dagster log lines, no download bars.
    for noise in (
        "INFO mlflow",
        "Successfully registered model",
        "Downloading artifacts",
        " - dagster - ",
    ):
        assert noise not in out
    assert "stop it with: ./dp sandbox --stop" not in out  # not the built-in sandbox here


def test_failed_raw_days_reads_the_last_attempt_of_each_unpublished_day(tmp_path):
    from daily_profit.ingestion.sources import DAILY_API_SOURCES
    from daily_profit.warehouse.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    upgrade(url)
    store = Warehouse(url)
    try:
        days = [START, START + dt.timedelta(days=1)]
        # Nothing landed yet: every (table, day) is named, with no attempt recorded.
        failed = cli.failed_raw_days(store, days)
        assert len(failed) == len(DAILY_API_SOURCES) * len(days)
        assert all(f.outcome is None for f in failed)
        assert failed[0].describe() == f"{failed[0].table} {START.isoformat()}: no attempt recorded"
    finally:
        store.dispose()
