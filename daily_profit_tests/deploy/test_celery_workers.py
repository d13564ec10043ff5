"""Backfill steps on Celery workers (dagster-celery, RabbitMQ): two workers started with
`daily-profit worker --concurrency 1` (prefetch 1) by the test, the daemon's runs hand them
their steps; the steps that call the Risk API travel on their own queue."""

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient
from pydantic import SecretStr

from daily_profit.config import Settings
from daily_profit.defs.executor import DEFAULT_QUEUE, RISK_API_QUEUE, celery_app
from daily_profit.ingestion import sources
from daily_profit_tests.defs.dagster_dev import failure_messages
from daily_profit_tests.deploy.production import (
    BIN,
    backfill_runs,
    backfill_status,
    instance_env,
    instance_for,
    launch_backfill,
    production_dagster,
    start_logged,
    stop_group,
)

BROKER = os.environ.get(
    "DAILY_PROFIT_TEST_CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"
)
DAYS = ["2025-01-02", "2025-01-03"]
RAW_DAILY = [source.table for source in sources.DAILY_API_SOURCES]
API_STEPS = {*RAW_DAILY, sources.METRICS_ALLTIME.table}
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _broker_app():
    app = celery_app(Settings(celery_broker_url=SecretStr(BROKER)))
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        reason = f"no Celery broker at {BROKER.rsplit('@', 1)[-1]}: {exc.__class__.__name__}"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true requires RabbitMQ; {reason}")
        pytest.skip(reason)
    return app


@contextmanager
def workers(env: dict[str, str], folder: Path, specs: dict[str, list[str]]) -> Iterator[None]:
    """One `daily-profit worker` per name, listening on its queues; stopped at the end."""
    started = []
    try:
        for name, queues in specs.items():
            argv = [str(BIN / "daily-profit"), "worker", "--concurrency", "1", "--name", name]
            for queue in queues:
                argv += ["--queue", queue]
            started.append(start_logged(argv, env, folder / f"{name.split('@')[0]}.log"))
        yield
    finally:
        for process in started:
            stop_group(process)  # SIGINT: Celery's warm shutdown


def _wait_for_workers(app, names: list[str], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answered = {name for reply in app.control.ping(timeout=2) for name in reply}
        if set(names) <= answered:
            return
        time.sleep(2)
    pytest.fail(f"Celery workers {names} did not answer within {timeout_s:.0f} s")


def _executed_by(instance, run_id: str) -> dict[str, str]:
    """Step key -> the Celery worker that executed it, from the run's engine events."""
    out = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.event_type_value != "ENGINE_EVENT" or not event.step_key:
            continue
        worker = event.engine_event_data.metadata.get("Celery worker")
        if worker is not None:
            out[event.step_key] = worker.value
    return out


def test_backfill_steps_run_on_two_celery_workers(fresh_postgres_url, tmp_path, monkeypatch):
    app = _broker_app()
    for queue in (DEFAULT_QUEUE, RISK_API_QUEUE):
        # What an earlier, interrupted test left (a queue not declared yet has nothing).
        with (
            app.connection_for_write() as conn,
            contextlib.suppress(*conn.channel_errors),
            conn.channel() as channel,
        ):
            channel.queue_purge(queue)
    for name, value in instance_env(fresh_postgres_url).items():
        monkeypatch.setenv(name, value)
    tag = uuid.uuid4().hex[:8]
    # The "api" worker takes only API steps: each step it ran came through the risk_api queue.
    api_worker, general_worker = f"api-{tag}@localhost", f"general-{tag}@localhost"
    specs = {api_worker: [RISK_API_QUEUE], general_worker: [DEFAULT_QUEUE, RISK_API_QUEUE]}
    with (
        production_dagster(tmp_path, fresh_postgres_url, celery_broker_url=BROKER) as (port, env),
        workers(env, tmp_path, specs),
    ):
        _wait_for_workers(app, list(specs))
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        reference = client.submit_job_execution("raw_reference")
        # A loaded 2-core machine: a step's process imports the project in minutes.
        deadline = time.monotonic() + 900
        while (status := client.get_run_status(reference).value) not in {"SUCCESS", "FAILURE"}:
            assert time.monotonic() < deadline, status
            time.sleep(1)
        assert status == "SUCCESS", failure_messages(env["DAGSTER_HOME"], reference)

        backfill_id = launch_backfill(port, RAW_DAILY, DAYS)
        deadline = time.monotonic() + 1200
        while (status := backfill_status(port, backfill_id)) == "REQUESTED":
            assert time.monotonic() < deadline, "the backfill did not finish within 1200 s"
            time.sleep(2)
        run_ids = [run["runId"] for run in backfill_runs(port, backfill_id)]
        assert status == "COMPLETED_SUCCESS", {
            r: failure_messages(env["DAGSTER_HOME"], r) for r in run_ids
        }
        with instance_for(env) as instance:
            executed = {
                step: worker
                for run_id in [reference, *run_ids]
                for step, worker in _executed_by(instance, run_id).items()
            }
    assert set(RAW_DAILY) <= set(executed), executed
    by_worker = {w: {s for s, ran_on in executed.items() if ran_on == w} for w in specs}
    assert by_worker[api_worker] and by_worker[general_worker], by_worker
    assert by_worker[api_worker] <= API_STEPS, by_worker
    assert executed["raw_plans"] == general_worker, executed  # no API call: the default queue
