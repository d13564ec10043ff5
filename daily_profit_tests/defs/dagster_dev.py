"""`dagster dev` (webserver and daemon) from the project root on a temporary instance, as a
user starts it, with the built-in sandbox; stopped with everything it started."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import httpx
import pytest
from dagster_graphql import DagsterGraphQLClient

from daily_profit.config import PROJECT_ROOT
from daily_profit.sandbox.launcher import stop_sandbox
from daily_profit_tests import processes

START_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def dagster_dev(folder: Path, **settings: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Yields (webserver port, environment). ``settings`` are DAILY_PROFIT_* overrides."""
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(folder / "dagster_home"),
        "DAILY_PROFIT_DATA_DIR": str(folder / "data"),
        "DAILY_PROFIT_SANDBOX_PORT": str(free_port()),
        "DAILY_PROFIT_SANDBOX_ACCOUNTS": "30",
        "DAILY_PROFIT_SANDBOX_DAYS": "10",
        # A loaded 2-core machine (CI, or helpers sharing one) answers the daemon's and the
        # webserver's calls to the code server in minutes, not Dagster's default 60 s: a launch
        # would fail as "user code unreachable" before its run started.
        "DAGSTER_GRPC_TIMEOUT_SECONDS": "600",
        **{f"DAILY_PROFIT_{k.upper()}": v for k, v in settings.items()},
    }
    (folder / "dagster_home").mkdir()
    # Loading the definitions takes minutes there too (Dagster gives the code server 180 s).
    (folder / "dagster_home" / "dagster.yaml").write_text(
        "code_servers:\n  local_startup_timeout: 900\ntelemetry:\n  enabled: false\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-p", str(port), "-h", "127.0.0.1"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # The webserver answers once the code location is loaded: minutes on a loaded machine.
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        else:
            pytest.fail(f"dagster dev did not start within {START_TIMEOUT_S} s")
        yield port, env
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        # The sandbox the runs started lives on detached: stop it too, and any a run still
        # starting when the webserver stopped brought up after that.
        stop_sandbox(int(env["DAILY_PROFIT_SANDBOX_PORT"]))
        time.sleep(2)
        processes.terminate(processes.sandboxes_writing_under(folder))


def failure_messages(home: str, run_id: str) -> list[str]:
    """Why a run failed, from the instance the UI wrote to (for an assertion message)."""
    with dg.DagsterInstance.from_config(home) as instance:
        return [
            f"{r.dagster_event.step_key}: {r.dagster_event.event_specific_data.error.message}"
            for r in instance.all_logs(run_id)
            if r.dagster_event is not None
            and r.dagster_event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")
            and getattr(r.dagster_event.event_specific_data, "error", None) is not None
        ]


def wait_for_run(port: int, env: dict[str, str], run_id: str, timeout_s: float = 420) -> None:
    """Fails the test unless the run succeeds within ``timeout_s``, saying why it did not.

    A loaded 2-core machine needs most of the default: one process per step, 4 s of imports
    each."""
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    started = time.monotonic()
    status = None
    while time.monotonic() < started + timeout_s:
        status = client.get_run_status(run_id).value
        if status in {"SUCCESS", "FAILURE", "CANCELED"}:
            break
        time.sleep(2)
    assert status == "SUCCESS", (
        f"run {run_id}: {status} after {time.monotonic() - started:.0f} s",
        failure_messages(env["DAGSTER_HOME"], run_id),
    )
