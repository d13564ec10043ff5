"""The detached sandbox: started once and shared, stopped by `./dp sandbox --stop`, and never left
behind by the test suite."""

from __future__ import annotations

import datetime as dt
import os
import socket

import httpx

from daily_profit.config import Settings
from daily_profit.sandbox.launcher import ensure_sandbox, sandbox_info, stop_sandbox
from daily_profit.sandbox.server import SandboxServer
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit_tests import processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_started_sandbox_is_found_and_stopped(tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        sandbox_port=_free_port(),
        sandbox_accounts=8,
        sandbox_days=3,
    )
    url = ensure_sandbox(settings)
    try:
        pid = sandbox_info(settings)["pid"]
        # The session's leak check finds it by the folder it writes into.
        assert processes.sandboxes_writing_under(tmp_path) == [pid]
        # A second caller shares it instead of starting another.
        assert ensure_sandbox(settings) == url
        assert processes.sandboxes_writing_under(tmp_path) == [pid]
    finally:
        stopped = stop_sandbox(settings.sandbox_port)
    assert stopped == pid
    assert processes.sandboxes_writing_under(tmp_path) == []
    assert sandbox_info(settings) is None


def test_stop_leaves_a_sandbox_served_in_process_alone() -> None:
    # A test serving the sandbox in one of its threads answers with the test's own pid:
    # stopping "the sandbox on that port" must not kill the test process.
    data = simulate(
        SimulationConfig(seed=1, n_accounts=5, n_days=2, start_date=dt.date(2025, 1, 1))
    )
    with SandboxServer(data, rate_limit=None) as server:
        port = int(server.base_url.rstrip("/").rsplit(":", 1)[1])
        assert httpx.get(server.base_url + "_sandbox/info").json()["pid"] == os.getpid()
        assert stop_sandbox(port) is None
        assert httpx.get(server.base_url + "_sandbox/info").status_code == 200


def test_stop_when_nothing_answers() -> None:
    assert stop_sandbox(_free_port()) is None
