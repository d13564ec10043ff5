"""As a user does it: `dagster dev` from the project root, a day launched from the UI's GraphQL
API, the run lands the raw layer of that day in the warehouse with its checks."""

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time

import dagster as dg
import httpx
import pytest
from dagster_graphql import DagsterGraphQLClient

from daily_profit.config import PROJECT_ROOT
from daily_profit.sandbox.launcher import stop_sandbox
from daily_profit.warehouse.io import Warehouse

DAY = "2025-01-03"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dagster_dev(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "DAILY_PROFIT_DATA_DIR": str(tmp_path / "data"),
        "DAILY_PROFIT_SANDBOX_PORT": str(_free_port()),
        "DAILY_PROFIT_SANDBOX_ACCOUNTS": "30",
        "DAILY_PROFIT_SANDBOX_DAYS": "10",
        # This test is about a launch from the UI: the nightly automation stays off.
        "DAILY_PROFIT_AUTOMATION_ENABLED": "false",
    }
    (tmp_path / "dagster_home").mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-p", str(port), "-h", "127.0.0.1"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        else:
            pytest.fail("dagster dev did not start within 120 s")
        yield port, env
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        # The sandbox the run started lives on detached: stop it too.
        stop_sandbox(int(env["DAILY_PROFIT_SANDBOX_PORT"]))


def _failure_messages(home: str, run_id: str) -> list[str]:
    """Why a run failed, from the instance the UI wrote to (for the assertion message)."""
    with dg.DagsterInstance.from_config(home) as instance:
        return [
            f"{r.dagster_event.step_key}: {r.dagster_event.event_specific_data.error.message}"
            for r in instance.all_logs(run_id)
            if r.dagster_event is not None
            and r.dagster_event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")
            and getattr(r.dagster_event.event_specific_data, "error", None) is not None
        ]


def test_a_day_launched_from_the_ui_lands_in_the_warehouse(dagster_dev):
    port, env = dagster_dev
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    client.submit_job_execution("raw_reference")
    run_id = client.submit_job_execution("raw_daily", tags={"dagster/partition": DAY})
    started = time.monotonic()
    # A loaded 2-core machine needs most of this: one process per step, 4 s of imports each.
    deadline = started + 420
    status = None
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in {"SUCCESS", "FAILURE", "CANCELED"}:
            break
        time.sleep(2)
    assert status == "SUCCESS", (
        f"run {run_id}: {status} after {time.monotonic() - started:.0f} s",
        _failure_messages(env["DAGSTER_HOME"], run_id),
    )
    store = Warehouse(f"sqlite:///{env['DAILY_PROFIT_DATA_DIR']}/warehouse.sqlite")
    day = dt.date.fromisoformat(DAY)
    assert store.read_partitions("raw_metrics_daily", day, day).height > 0
    assert store.read_partitions("raw_trades_closed", day, day).height > 0
    store.dispose()
