"""The production instance end to end: webserver and daemon on deploy/dagster.yaml (PostgreSQL),
a backfill launched over GraphQL through the run queue, one of its runs killed mid-way (its run
worker and the step it was running, as a lost host or an OOM kill would), the daemon's run retry
finishing it; every day's checks readable over GraphQL and nothing landed twice."""

import contextlib
import datetime as dt
import os
import signal
import subprocess
import time

import dagster as dg
import pytest
from dagster._core.storage.tags import WILL_RETRY_TAG
from dagster_graphql import DagsterGraphQLClient

from daily_profit.defs.raw import checks as raw_checks
from daily_profit.defs.raw.assets import RISK_API_POOL
from daily_profit.features import checks as feature_checks
from daily_profit.ingestion import sources
from daily_profit.warehouse.io import Warehouse
from daily_profit_tests.defs.dagster_dev import failure_messages
from daily_profit_tests.deploy.production import (
    BIN,
    backfill_runs,
    backfill_status,
    check_executions,
    instance_env,
    instance_for,
    launch_backfill,
    production_dagster,
)

DAYS = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
RAW_DAILY = [source.table for source in sources.DAILY_API_SOURCES]
RANGE_ASSETS = ["stg_accounts_daily", "account_features_daily"]
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _wait_run(client: DagsterGraphQLClient, run_id: str, env: dict, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (status := client.get_run_status(run_id).value) not in FINISHED:
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(1)
    assert status == "SUCCESS", failure_messages(env["DAGSTER_HOME"], run_id)


def _pids_of(instance: dg.DagsterInstance, run_id: str) -> tuple[int | None, int | None]:
    """(run worker, a started step's process) of a run, from the pids its events carry."""
    worker = step = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type_value == "PIPELINE_START":
            worker = event.pid
        if event.event_type_value == "STEP_START" and event.step_key in RAW_DAILY:
            step = event.pid
    return worker, step


def _kill_mid_way(instance: dg.DagsterInstance, port: int, backfill_id: str) -> str:
    """SIGKILL the run worker and the running step of the backfill's raw run once a raw step has
    started; returns the run's id."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        for run in backfill_runs(port, backfill_id):
            if run["status"] != "STARTED":
                continue
            worker, step = _pids_of(instance, run["runId"])
            if worker and step:
                time.sleep(1)  # inside the fetch, not at its first line
                for pid in (worker, step):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return run["runId"]
        time.sleep(0.5)
    pytest.fail("no raw step of the backfill started within 900 s")


def test_backfill_survives_a_killed_run_through_the_run_retry(
    fresh_postgres_url, tmp_path, monkeypatch
):
    started = time.monotonic()
    for name, value in instance_env(fresh_postgres_url).items():
        monkeypatch.setenv(name, value)  # this process reads the instance too
    with production_dagster(tmp_path, fresh_postgres_url) as (port, env):
        # The API's own pool limit, as README "Production" sets it.
        subprocess.run(
            [str(BIN / "dagster"), "instance", "concurrency", "set", RISK_API_POOL, "2"],
            env=env,
            check=True,
            capture_output=True,
        )
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        _wait_run(client, client.submit_job_execution("raw_reference"), env, 900)

        backfill_id = launch_backfill(port, RAW_DAILY + RANGE_ASSETS, DAYS)
        with instance_for(env) as instance:
            killed = _kill_mid_way(instance, port, backfill_id)
            # A loaded 2-core machine: each step's process imports the project in minutes.
            deadline = time.monotonic() + 1500
            while (status := backfill_status(port, backfill_id)) == "REQUESTED":
                assert time.monotonic() < deadline, "the backfill did not finish within 1500 s"
                time.sleep(2)
            runs = {run["runId"]: run for run in backfill_runs(port, backfill_id)}
            assert status == "COMPLETED_SUCCESS", (
                status,
                {
                    r: (run["status"], failure_messages(env["DAGSTER_HOME"], r))
                    for r, run in runs.items()
                },
            )
            # The killed run failed as a crash (not an asset's failure) and was retried once.
            assert runs[killed]["status"] == "FAILURE"
            tags = {t["key"]: t["value"] for t in runs[killed]["tags"]}
            assert tags.get(WILL_RETRY_TAG) == "true", tags
            retries = [r for r in runs.values() if r["parentRunId"] == killed]
            assert [r["status"] for r in retries] == ["SUCCESS"], runs
            assert instance.get_run_by_id(killed).tags.get("dagster/failure_reason") != (
                "STEP_FAILURE"
            )

        # Every day's checks over GraphQL: the raw audit of each source and the features' own.
        for day in DAYS:
            for table in RAW_DAILY:
                for check in (raw_checks.SCHEMA_VALID, raw_checks.COMPLETE_AGAINST_API):
                    latest = check_executions(port, table, check, day)
                    assert latest and latest[0]["status"] == "SUCCEEDED", (table, check, day)
            for asset, check in (
                ("stg_accounts_daily", feature_checks.ONE_ROW_PER_ACCOUNT_DAY),
                ("account_features_daily", feature_checks.ONE_ROW_PER_ACCOUNT_DAY),
            ):
                latest = check_executions(port, asset, check, day)
                assert latest and latest[0]["status"] == "SUCCEEDED", (asset, check, day)

    # Nothing doubled: each day holds exactly what its last publication landed, once.
    store = Warehouse(fresh_postgres_url)
    first, last = dt.date.fromisoformat(DAYS[0]), dt.date.fromisoformat(DAYS[-1])
    audit = store.read_publication_audit(RAW_DAILY[0], first, last)
    assert audit.height >= len(DAYS)
    for table in RAW_DAILY:
        audit = store.read_publication_audit(table, first, last).sort("id")
        published = {
            row["partition_date"]: row["rows"]
            for row in audit.iter_rows(named=True)
            if row["outcome"] == "published"
        }
        assert set(published) == {dt.date.fromisoformat(d) for d in DAYS}, table
        assert store.partition_row_counts(table, first, last) == {
            d: n for d, n in published.items() if n
        }, table
    staged = store.partition_row_counts("stg_accounts_daily", first, last)
    features = store.partition_row_counts("account_features_daily", first, last)
    assert features == staged and len(staged) == len(DAYS)
    store.dispose()
    print(f"production end to end: {time.monotonic() - started:.0f} s")
