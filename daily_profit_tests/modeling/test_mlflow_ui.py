"""As a person does it: `./dp mlflow` on a tracking store holding two training runs, the two
compared side by side on the compare page, in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import mlflow
import pytest
from playwright.sync_api import Page, expect

from daily_profit.config import PROJECT_ROOT, get_settings
from daily_profit.modeling.tracking import TrackingTarget, open_run
from daily_profit_tests import processes
from daily_profit_tests.defs.dagster_dev import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# (run name, max_depth, test MAE): two candidates a risk analyst would weigh against each other.
RUNS = [("shallow trees", 4, 120.5), ("deeper trees", 6, 98.25)]


@dataclass(frozen=True)
class TrackedRuns:
    experiment_id: str
    run_ids: list[str]


@pytest.fixture
def tracked_runs(tmp_path, settings_env) -> TrackedRuns:
    """Two finished runs with params and metrics in a fresh store under the test's data folder,
    logged the way the platform logs them (``open_run`` on the configured target)."""
    settings_env(data_dir=tmp_path / "data")
    target = TrackingTarget.from_settings(get_settings())
    run_ids = []
    for name, depth, mae in RUNS:
        with open_run(target, run_name=name) as run:
            mlflow.log_params({"max_depth": depth, "learning_rate": 0.1})
            mlflow.log_metrics({"test_mae": mae})
            run_ids.append(run.info.run_id)
    return TrackedRuns(target.experiment_id(), run_ids)


@pytest.fixture
def mlflow_ui(tracked_runs: TrackedRuns) -> Iterator[str]:
    """`daily-profit mlflow-ui` (what `./dp mlflow` runs) on the test's store; its base URL.
    Stopped with the server's workers (its own process group) after the test."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daily_profit.cli", "mlflow-ui", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),  # the test's DAILY_PROFIT_DATA_DIR: its own store
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # A loaded 2-core machine spends minutes importing MLflow's server.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"`daily-profit mlflow-ui` exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/health", timeout=2).text.strip() == "OK":
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        else:
            pytest.fail("the MLflow UI did not answer /health within 300 s")
        yield base
    finally:
        processes.stop_group(process.pid)
        process.wait(timeout=10)


def test_two_runs_compared_side_by_side(
    tracked_runs: TrackedRuns, mlflow_ui: str, page: Page
) -> None:
    runs = json.dumps(tracked_runs.run_ids, separators=(",", ":"))
    experiments = json.dumps([tracked_runs.experiment_id])
    page.goto(f"{mlflow_ui}/#/compare-runs?runs={runs}&experiments={experiments}")

    expect(page.get_by_role("heading", name="Comparing 2 Runs from 1 Experiment")).to_be_visible()
    # Side by side: one column per run, in the order asked, for the name, params and metrics.
    row = page.get_by_role("row")
    expect(
        row.filter(has=page.get_by_role("rowheader", name="Run Name:")).get_by_role("cell")
    ).to_have_text([name for name, _, _ in RUNS])
    expect(
        row.filter(has=page.get_by_role("rowheader", name="max_depth", exact=True)).get_by_role(
            "cell"
        )
    ).to_have_text([str(depth) for _, depth, _ in RUNS])
    expect(page.get_by_role("link", name="test_mae")).to_be_visible()
    for _, _, mae in RUNS:
        expect(page.get_by_text(str(mae), exact=True).first).to_be_visible()
