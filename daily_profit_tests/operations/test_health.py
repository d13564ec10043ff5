"""``./dp health``: each part's line against the real sandbox, a real SQLite warehouse, a real
MLflow store and a real Dagster instance; the exit status and what the output never shows."""

from __future__ import annotations

import datetime as dt
import socket
import sqlite3
import time

import dagster as dg
import mlflow
import polars as pl
import pytest
from dagster._daemon.types import DaemonHeartbeat

from daily_profit.cli import main
from daily_profit.config import get_settings
from daily_profit.modeling.tracking import CHALLENGER, CHAMPION, DEFAULT_REGISTERED_MODEL
from daily_profit.operations.health import (
    NOT_RUNNING_SANDBOX,
    HealthResult,
    check_api,
    check_dagster,
    check_mlflow,
    check_nightly,
    check_warehouse,
    expected_latest_day,
    run_health,
    safe_url,
)
from daily_profit.sandbox.server import SandboxServer
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit.warehouse.io import Warehouse, table_info
from daily_profit.warehouse.migrate import upgrade

WRONG_KEY = "wrong-key-7f3a9c"


@pytest.fixture(scope="module")
def sandbox():
    data = simulate(SimulationConfig(n_accounts=10, n_days=5, seed=3))
    with SandboxServer(data, rate_limit=None) as server:
        yield server


@pytest.fixture
def configured(tmp_path, settings_env, sandbox):
    """Settings pointing at the test sandbox and a warehouse and MLflow store under tmp."""
    settings_env(data_dir=tmp_path, risk_api_base_url=sandbox.base_url, risk_api_key="sandbox-key")
    return get_settings()


@pytest.fixture
def migrated(configured):
    upgrade(configured.resolved_warehouse_url)
    return configured


def by_name(results: list[HealthResult]) -> dict[str, HealthResult]:
    return {r.name: r for r in results}


def test_api_and_warehouse_are_ok_on_a_running_sandbox_and_a_migrated_warehouse(migrated):
    api = check_api(migrated)
    warehouse = check_warehouse(migrated)

    assert api.ok, api.detail
    assert "10 accounts" in api.detail
    assert warehouse.ok, warehouse.detail
    assert api.line().startswith("ok   api: ")


def test_a_wrong_key_fails_the_api_line_without_showing_the_key(
    migrated, settings_env, tmp_path, monkeypatch, capsys
):
    settings_env(risk_api_key=WRONG_KEY)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()

    status = main(["health"])

    out = capsys.readouterr()
    lines = {line.split(":", 1)[0]: line for line in out.out.splitlines()}
    assert lines["FAIL api"].endswith("key rejected (HTTP 401)")
    assert "ok   warehouse" in lines
    assert WRONG_KEY not in out.out + out.err
    assert status == 1


def test_the_sandbox_not_running_is_a_failure_not_a_start(configured, settings_env):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings_env(risk_api_base_url="sandbox", sandbox_port=port)

    result = check_api(get_settings())

    assert not result.ok
    assert result.detail == NOT_RUNNING_SANDBOX


def test_an_unmigrated_warehouse_fails_and_a_missing_one_is_not_created(configured):
    url = configured.resolved_warehouse_url
    database = configured.data_dir / "warehouse.sqlite"

    missing = check_warehouse(configured)
    assert not missing.ok and "no database file" in missing.detail
    assert not database.exists()

    sqlite3.connect(database).close()  # an empty database: no migration applied
    empty = check_warehouse(configured)
    assert not empty.ok
    assert "at revision none" in empty.detail and "./dp migrate" in empty.detail

    upgrade(url)
    assert check_warehouse(configured).ok


def test_mlflow_fails_without_a_champion_and_passes_with_one(configured, tmp_path):
    assert not check_mlflow(configured).ok  # no store yet
    uri = configured.resolved_mlflow_tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(DEFAULT_REGISTERED_MODEL)
    assert not check_mlflow(configured).ok  # a registered model, no version

    version = client.create_model_version(
        DEFAULT_REGISTERED_MODEL, source=(tmp_path / "model").as_uri()
    )
    client.set_registered_model_alias(DEFAULT_REGISTERED_MODEL, CHALLENGER, version.version)
    only_challenger = check_mlflow(configured)
    assert not only_challenger.ok
    assert f"no {CHAMPION} version" in only_challenger.detail

    client.set_registered_model_alias(DEFAULT_REGISTERED_MODEL, CHAMPION, version.version)
    with_champion = check_mlflow(configured)
    assert with_champion.ok, with_champion.detail
    assert f"version {version.version}" in with_champion.detail


def test_the_daemon_line_needs_a_recent_heartbeat_of_every_required_daemon():
    with dg.instance_for_test() as instance:
        results = by_name(check_dagster(instance))
        assert results["dagster"].ok
        assert not results["daemon"].ok
        assert "no heartbeat" in results["daemon"].detail

        required = instance.get_required_daemon_types()
        for daemon_type in required:
            instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), daemon_type, None, None))
        assert by_name(check_dagster(instance))["daemon"].ok

        old = time.time() - 3600
        instance.add_daemon_heartbeat(DaemonHeartbeat(old, required[0], None, None))
        stale = by_name(check_dagster(instance))["daemon"]
        assert not stale.ok
        assert required[0] in stale.detail


def test_expected_day_is_the_sandbox_end_or_the_day_closed_before_the_nightly_tick(
    configured, settings_env
):
    settings_env(risk_api_base_url="sandbox", sandbox_days=30, start_date="2025-01-01")
    assert expected_latest_day(get_settings()) == dt.date(2025, 1, 30)

    settings_env(
        risk_api_base_url="https://api.example/",
        broker_timezone="Etc/GMT-2",
        nightly_run_time="00:30",
    )
    real = get_settings()
    # 2025-03-10 00:10 at the broker (GMT+2): the nightly tick has not passed yet.
    before_tick = dt.datetime(2025, 3, 9, 22, 10, tzinfo=dt.UTC)
    after_tick = dt.datetime(2025, 3, 9, 23, 0, tzinfo=dt.UTC)
    assert expected_latest_day(real, before_tick) == dt.date(2025, 3, 8)
    assert expected_latest_day(real, after_tick) == dt.date(2025, 3, 9)


def test_nightly_lines_compare_the_latest_published_days_with_the_expected_one(
    migrated, settings_env
):
    settings_env(risk_api_base_url="sandbox", sandbox_days=5, start_date="2025-01-01")
    settings = get_settings()
    nothing = by_name(check_nightly(settings))
    assert not nothing["raw"].ok and not nothing["predictions"].ok

    with Warehouse(settings.resolved_warehouse_url) as store:
        for table, day in [
            ("raw_regimes_daily", dt.date(2025, 1, 5)),
            ("daily_predictions", dt.date(2025, 1, 3)),
        ]:
            empty = pl.DataFrame(schema=table_info(table).schema)
            store.replace_partitions(table, empty, dates=[day], run_id="health-test")

    results = by_name(check_nightly(settings))
    assert results["raw"].ok, results["raw"].detail
    assert not results["predictions"].ok
    assert "2025-01-03, expected 2025-01-05 (2 day(s) behind)" in results["predictions"].detail


def test_every_check_reports_even_when_one_raises(configured):
    def broken_instance():
        raise RuntimeError("storage down at postgresql://u:hunter2@db/dagster")

    results = run_health(configured, instance_factory=broken_instance)

    names = [r.name for r in results]
    assert names == ["api", "warehouse", "mlflow", "dagster", "raw", "predictions"]
    dagster = by_name(results)["dagster"]
    assert not dagster.ok and "hunter2" not in dagster.detail


def test_urls_are_shown_without_passwords():
    assert safe_url("postgresql://risk:s3cret@db:5432/wh") == "postgresql://risk:***@db:5432/wh"
    assert "s3cret" not in safe_url("https://user:s3cret@api.example/external/")
