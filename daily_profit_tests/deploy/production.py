"""The production deployment on one machine, as README "Production" starts it: the sandbox,
then a code server, `dagster-webserver` and `dagster-daemon` on deploy/dagster.yaml (PostgreSQL
storage) and deploy/workspace.yaml, each its own process; stopped with everything they started."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
import yaml

from daily_profit.config import PROJECT_ROOT, Settings
from daily_profit.sandbox.launcher import ensure_sandbox, stop_sandbox
from daily_profit_tests import processes
from daily_profit_tests.defs.dagster_dev import free_port

DEPLOY_YAML = PROJECT_ROOT / "deploy" / "dagster.yaml"
DEPLOY_WORKSPACE = PROJECT_ROOT / "deploy" / "workspace.yaml"
BIN = Path(sys.executable).parent


def instance_env(postgres_url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads, for a database URL."""
    url = sa.make_url(postgres_url)
    return {
        "DAGSTER_PG_USERNAME": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_DB": url.database or "",
        "DAGSTER_PG_PORT": str(url.port or 5432),
    }


def start_logged(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in a session of its own (stopped as a group), output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(process: subprocess.Popen) -> None:
    """SIGINT to the process's group, then SIGKILL to what stays of it: the code server the
    daemon started and its run workers wait for their runs to end otherwise."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _wait_for_code_server(process: subprocess.Popen, log: Path, timeout_s: float = 600) -> None:
    """Until the code server has imported the code location (~10 s, minutes on a loaded
    machine): the webserver and the daemon then find it at once."""
    deadline = time.monotonic() + timeout_s
    while "Started Dagster code server" not in log.read_text(errors="replace"):
        if process.poll() is not None:
            pytest.fail(f"the code server exited; see {log}")
        if time.monotonic() > deadline:
            pytest.fail(f"the code server did not load within {timeout_s:.0f} s; see {log}")
        time.sleep(1)


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def write_instance_yaml(home: Path, overrides: dict[str, Any] | None = None) -> None:
    """deploy/dagster.yaml as the instance's config, with ``overrides`` merged into its sections
    (a test's shorter intervals); without overrides the file is copied as it is."""
    if not overrides:
        shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
        return
    config = _merged(yaml.safe_load(DEPLOY_YAML.read_text()), overrides)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@contextmanager
def production_dagster(
    folder: Path,
    postgres_url: str,
    instance_overrides: dict[str, Any] | None = None,
    **settings: str,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yields (webserver port, environment). Dagster's storage and the warehouse share the
    database ``postgres_url`` (the warehouse keeps its own Alembic version table);
    ``instance_overrides`` are merged into deploy/dagster.yaml (see write_instance_yaml);
    ``settings`` are DAILY_PROFIT_* overrides."""
    home = folder / "dagster_home"
    home.mkdir()
    write_instance_yaml(home, instance_overrides)
    port = free_port()
    code_server_port = free_port()
    env = {
        **os.environ,
        **instance_env(postgres_url),
        "DAGSTER_HOME": str(home),
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(code_server_port),
        "DAILY_PROFIT_DATA_DIR": str(folder / "data"),
        "DAILY_PROFIT_WAREHOUSE_URL": postgres_url,
        "DAILY_PROFIT_SANDBOX_PORT": str(free_port()),
        "DAILY_PROFIT_SANDBOX_ACCOUNTS": "30",
        "DAILY_PROFIT_SANDBOX_DAYS": "10",
        "DAILY_PROFIT_AUTOMATION_ENABLED": "false",
        # Launching a run asks the code server to start its process; on a loaded 2-core
        # machine that outlasts Dagster's 60 s default and the launch fails.
        "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
        **{f"DAILY_PROFIT_{k.upper()}": v for k, v in settings.items()},
    }
    sandbox_settings = Settings(
        data_dir=Path(env["DAILY_PROFIT_DATA_DIR"]),
        sandbox_port=int(env["DAILY_PROFIT_SANDBOX_PORT"]),
        sandbox_accounts=int(env["DAILY_PROFIT_SANDBOX_ACCOUNTS"]),
        sandbox_days=int(env["DAILY_PROFIT_SANDBOX_DAYS"]),
    )
    started: list[subprocess.Popen] = []
    try:
        # The sandbox first: the code location's partitions end on its clock.
        ensure_sandbox(sandbox_settings)
        started.append(
            start_logged(
                [
                    str(BIN / "dagster"),
                    "code-server",
                    "start",
                    "-m",
                    "daily_profit.definitions",
                    "--location-name",
                    "daily_profit",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(code_server_port),
                    "--startup-timeout",
                    "600",
                ],
                env,
                folder / "code_server.log",
            )
        )
        _wait_for_code_server(started[-1], folder / "code_server.log")
        workspace = ["-w", str(DEPLOY_WORKSPACE)]
        started.append(
            start_logged(
                [str(BIN / "dagster-webserver"), *workspace, "-h", "127.0.0.1", "-p", str(port)],
                env,
                folder / "webserver.log",
            )
        )
        started.append(
            start_logged(
                [str(BIN / "dagster-daemon"), "run", *workspace], env, folder / "daemon.log"
            )
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if any(p.poll() is not None for p in started):
                pytest.fail(f"a Dagster process exited; see {folder}/*.log")
            time.sleep(1)
        else:
            pytest.fail("dagster-webserver did not answer within 300 s")
        yield port, env
    finally:
        for process in started:
            stop_group(process)
        stop_sandbox(sandbox_settings.sandbox_port)
        time.sleep(1)
        processes.terminate(processes.sandboxes_writing_under(folder))


def instance_for(env: dict[str, str]) -> dg.DagsterInstance:
    """The deployment's instance, read from this process (for pids and failure messages)."""
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def graphql(port: int, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables},
        timeout=60,
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}"""

BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""

BACKFILL_RUNS = """
query($id: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status parentRunId tags { key value } } }
  }
}"""

CHECK_EXECUTIONS = """
query($path: [String!]!, $check: String!, $partition: String) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: $check, partition: $partition,
                       limit: 10) {
    runId status partition timestamp
  }
}"""


def launch_backfill(
    port: int, assets: list[str], days: list[str], run_config: dict[str, Any] | None = None
) -> str:
    """An asset backfill of ``assets`` for ``days``; ``run_config`` goes to each of its runs."""
    params: dict[str, Any] = {
        "assetSelection": [{"path": [a]} for a in assets],
        "partitionNames": days,
    }
    if run_config is not None:
        params["runConfigData"] = run_config
    launched = graphql(port, LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def backfill_status(port: int, backfill_id: str) -> str:
    found = graphql(port, BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]
    assert found["__typename"] == "PartitionBackfill", found
    return found["status"]


def backfill_runs(port: int, backfill_id: str) -> list[dict[str, Any]]:
    return graphql(port, BACKFILL_RUNS, id=backfill_id)["runsOrError"]["results"]


def check_executions(port: int, asset: str, check: str, day: str) -> list[dict[str, Any]]:
    """The check's executions recorded for ``day``, newest first."""
    return graphql(port, CHECK_EXECUTIONS, path=[asset], check=check, partition=day)[
        "assetCheckExecutions"
    ]
