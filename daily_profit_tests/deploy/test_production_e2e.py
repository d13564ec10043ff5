"""The production instance end to end: a code server, the webserver and the daemon on
deploy/dagster.yaml (PostgreSQL storage, the run queue, the ``risk_api`` pool, run retries, run
monitoring), a backfill of raw days and the range assets launched over GraphQL, the process of
one of its runs killed mid-way and the daemon's run retry finishing the backfill; a run failed
by a blocking check is not retried. Every day's checks are read over GraphQL and the warehouse
holds every day once."""

import datetime as dt
import os
import signal
import time
from typing import Any

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    PARENT_RUN_ID_TAG,
    RETRY_NUMBER_TAG,
    RUN_FAILURE_REASON_TAG,
    WILL_RETRY_TAG,
)
from dagster_graphql import DagsterGraphQLClient

from daily_profit.defs.features import checks as feature_checks
from daily_profit.defs.raw import checks as raw_checks
from daily_profit.defs.raw.assets import RISK_API_POOL
from daily_profit.ingestion import audit, sources
from daily_profit.warehouse.io import Warehouse
from daily_profit_tests.defs.dagster_dev import failure_messages
from daily_profit_tests.deploy.production import (
    backfill_runs,
    backfill_status,
    check_executions,
    instance_env,
    instance_for,
    launch_backfill,
    production_dagster,
)

# Every day the sandbox has (SANDBOX_DAYS from the start date): a backfill of raw days fans out
# to the feature days whose lookback reads them, up to the last partition; with every day in it
# the raw days, staging and features form one range and one run.
SANDBOX_DAYS = 4
DAYS = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
RAW_DAILY = [source.table for source in sources.DAILY_API_SOURCES]
RANGE_ASSETS = ["stg_accounts_daily", "account_features_daily"]
# Landed once before the backfill with a fault that its blocking audit withholds; the backfill
# then publishes it.
WITHHELD_DAY = DAYS[-1]
WITHHELD_FAULT = "drop_field=1, seed=7"  # numTrades missing from every record: blocking drift
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

# Test overrides written into the test instance's dagster.yaml (production keeps its values):
# the monitoring daemon looks every 5 s instead of 60, and frees the pool slots of a run that
# ended 10 s ago instead of 60 (the killed run's). Nothing else of deploy/dagster.yaml changes.
INSTANCE_OVERRIDES = {
    "run_monitoring": {"poll_interval_seconds": 5, "free_slots_after_run_end_seconds": 10}
}
# The runs execute their steps in their own process (the in-process executor, given as run
# config): under the multiprocess default every step is a process of its own, and the backfill's
# run is 62 steps (7 assets and the 55 checks declared on them), each taking 30-60 s to start
# on a loaded 2-core machine. The run retry does not depend on the executor (see the docstring).
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _wait_run(client: DagsterGraphQLClient, run_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while (status := client.get_run_status(run_id).value) not in FINISHED:
        assert time.monotonic() < deadline, f"run {run_id} still {status} after {timeout_s} s"
        time.sleep(1)
    return status


def _step_events(instance: dg.DagsterInstance, run_id: str, event_type: str) -> set[str]:
    return {
        str(r.dagster_event.step_key)
        for r in instance.all_logs(run_id)
        if r.dagster_event is not None and r.dagster_event.event_type_value == event_type
    }


def _kill_run_worker_mid_way(instance: dg.DagsterInstance, port: int, backfill_id: str) -> str:
    """SIGKILL the process of the backfill's run once one raw day landing is done and another
    is under way; returns the run's id."""
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        for run in backfill_runs(port, backfill_id):
            if run["status"] != "STARTED":
                continue
            records = instance.all_logs(run["runId"])
            events = [r.dagster_event for r in records if r.dagster_event is not None]
            worker = next((e.pid for e in events if e.event_type_value == "PIPELINE_START"), None)
            done = {e.step_key for e in events if e.event_type_value == "STEP_SUCCESS"}
            running = {e.step_key for e in events if e.event_type_value == "STEP_START"} - done
            if worker and done & set(RAW_DAILY) and running & set(RAW_DAILY):
                os.kill(worker, signal.SIGKILL)
                return run["runId"]
        time.sleep(0.3)
    pytest.fail("no raw landing of the backfill was under way within 420 s")


def _latest_evaluated(
    port: int, asset: str, check: str, day: str, unevaluated: dict[str, str]
) -> dict[str, Any]:
    """The newest execution of ``check`` for ``day`` that evaluated it (SUCCEEDED or FAILED).

    The others must be the ones ``unevaluated`` allows (run id -> status): EXECUTION_FAILED for
    the checks the killed run had planned and not reached; SKIPPED for the retry's declared
    audit checks of the assets the killed run had finished (in a range run such a check records
    one result for the range, not one per day, and Dagster 1.13 shows its planned days as
    SKIPPED)."""
    executions = check_executions(port, asset, check, day)
    evaluated = [e for e in executions if e["status"] in {"SUCCEEDED", "FAILED"}]
    assert evaluated, (asset, check, day, executions)
    others = {(e["runId"], e["status"]) for e in executions if e not in evaluated}
    assert others <= set(unevaluated.items()), (asset, check, day, executions)
    return evaluated[0]


def _tags(run: dg.DagsterRun | None) -> dict[str, str]:
    assert run is not None
    return dict(run.tags)


def test_backfill_finishes_through_the_run_retry_after_its_run_is_killed(
    fresh_postgres_url, tmp_path, monkeypatch
):
    """The fault: SIGKILL of the run's own process (the run worker), as an OOM kill, a lost
    host or a preempted node does. With the DefaultRunLauncher the code server that started the
    run notices its process is gone (it polls every 0.5 s) and fails the run with no step failure
    as its reason; the daemon's run retries (deploy/dagster.yaml) then re-execute it from the
    failure. Run monitoring does not detect a dead worker under this launcher (it has no worker
    health check); it frees the dead run's pool slots (``free_slots_after_run_end_seconds``),
    without which the retry's API steps wait for ever on the ``risk_api`` slots the killed run
    held. Killing only a step's process under the multiprocess executor is not this fault: the
    run then fails with STEP_FAILURE like an asset's failure and, by the rule "retries for
    transient failures only" (``retry_on_asset_or_op_failure: false``), is not retried.

    The second half of the rule: a day withheld by its blocking audit check fails its run with
    STEP_FAILURE, and that run is not retried."""
    started = time.monotonic()
    for name, value in instance_env(fresh_postgres_url).items():
        monkeypatch.setenv(name, value)  # this process reads the instance too
    with (
        production_dagster(
            tmp_path, fresh_postgres_url, INSTANCE_OVERRIDES, sandbox_days=str(SANDBOX_DAYS)
        ) as (port, env),
        instance_for(env) as instance,
    ):
        # The API's pool limit, as README "Production" sets it
        # (`dagster instance concurrency set risk_api 2`).
        instance.event_log_storage.set_concurrency_slots(RISK_API_POOL, 2)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        # The account master and plans; alongside, one day's landing that its blocking audit
        # check withholds.
        reference = client.submit_job_execution("raw_reference", run_config=IN_PROCESS)
        withheld = client.submit_job_execution(
            "raw_daily",
            run_config={
                **IN_PROCESS,
                "resources": {"risk_api": {"config": {"sandbox_faults": WITHHELD_FAULT}}},
            },
            tags={"dagster/partition": WITHHELD_DAY},
            asset_selection=[sources.METRICS_DAILY.table],
        )
        assert _wait_run(client, reference, 300) == "SUCCESS", failure_messages(
            env["DAGSTER_HOME"], reference
        )
        assert _wait_run(client, withheld, 300) == "FAILURE"

        backfill_id = launch_backfill(port, RAW_DAILY + RANGE_ASSETS, DAYS, IN_PROCESS)
        killed = _kill_run_worker_mid_way(instance, port, backfill_id)

        deadline = time.monotonic() + 480
        while (status := backfill_status(port, backfill_id)) == "REQUESTED":
            assert time.monotonic() < deadline, "the backfill did not finish within 480 s"
            time.sleep(2)
        runs = {run["runId"]: run for run in backfill_runs(port, backfill_id)}
        assert status == "COMPLETED_SUCCESS", {
            r: (run["status"], failure_messages(env["DAGSTER_HOME"], r)) for r, run in runs.items()
        }

        # The killed run failed as a crash, not a step failure, and was retried once, from the
        # failure: the steps it had finished were not run again.
        assert runs[killed]["status"] == "FAILURE"
        killed_tags = _tags(instance.get_run_by_id(killed))
        assert killed_tags.get(WILL_RETRY_TAG) == "true", killed_tags
        assert killed_tags.get(RUN_FAILURE_REASON_TAG) != "STEP_FAILURE", killed_tags
        [retry] = [r for r in runs.values() if r["parentRunId"] == killed]
        assert retry["status"] == "SUCCESS", runs
        # What the killed run had finished: its events end where its process died.
        done_before = _step_events(instance, killed, "STEP_SUCCESS")
        assert done_before & set(RAW_DAILY) and set(RAW_DAILY) - done_before, done_before
        retry_run = instance.get_run_by_id(retry["runId"])
        assert _tags(retry_run)[RETRY_NUMBER_TAG] == "1"
        assert retry_run is not None and retry_run.step_keys_to_execute is not None
        assert not set(retry_run.step_keys_to_execute) & done_before, done_before
        assert set(RAW_DAILY) - done_before <= set(retry_run.step_keys_to_execute)
        assert set(runs) == {killed, retry["runId"]}, runs  # raw and range days in one run
        # The killed run's risk_api slots were given back by run monitoring.
        claimed = instance.event_log_storage.get_concurrency_info(RISK_API_POOL).claimed_slots
        assert killed not in {slot.run_id for slot in claimed}, claimed

        # The withheld day: its run failed on the step, the daemon saw it and did not retry it.
        withheld_tags = _tags(instance.get_run_by_id(withheld))
        assert withheld_tags.get(RUN_FAILURE_REASON_TAG) == "STEP_FAILURE", withheld_tags
        assert withheld_tags.get(WILL_RETRY_TAG) == "false", withheld_tags
        deadline = time.monotonic() + 60
        while not any(
            "Not retrying run" in (record.message or "")
            for record in instance.all_logs(withheld, of_type=dg.DagsterEventType.ENGINE_EVENT)
        ):
            assert time.monotonic() < deadline, "the daemon never considered the withheld run"
            time.sleep(1)
        assert not instance.get_runs(dg.RunsFilter(tags={PARENT_RUN_ID_TAG: withheld}))
        drift = check_executions(
            port, sources.METRICS_DAILY.table, audit.SCHEMA_NOT_DRIFTED, WITHHELD_DAY
        )
        assert [e["status"] for e in drift if e["runId"] == withheld] == ["FAILED"], drift

        # Every day's checks over GraphQL: each raw source's audit and the range assets' own;
        # the latest evaluated result of each day passed (see _latest_evaluated).
        unevaluated = {killed: "EXECUTION_FAILED", retry["runId"]: "SKIPPED"}
        for day in DAYS:
            for table in RAW_DAILY:
                for check in (
                    raw_checks.SCHEMA_VALID,
                    audit.SCHEMA_NOT_DRIFTED,
                    raw_checks.COMPLETE_AGAINST_API,
                    raw_checks.DAY_PUBLISHED,
                ):
                    latest = _latest_evaluated(port, table, check, day, unevaluated)
                    assert latest["status"] == "SUCCEEDED", (table, check, day, latest)
            for asset in RANGE_ASSETS:
                check = feature_checks.ONE_ROW_PER_ACCOUNT_DAY
                latest = _latest_evaluated(port, asset, check, day, unevaluated)
                assert latest["status"] == "SUCCEEDED", (asset, check, day, latest)

    # Nothing doubled: each day holds exactly the rows its publication landed, once, also the
    # days the killed run had published before the retry landed them again: every publication
    # of a day landed the same count (the deterministic sandbox serves a day the same way), and
    # the table holds that count (its primary key is the records' natural key).
    store = Warehouse(fresh_postgres_url)
    first, last = dt.date.fromisoformat(DAYS[0]), dt.date.fromisoformat(DAYS[-1])
    days = {dt.date.fromisoformat(d) for d in DAYS}
    for table in RAW_DAILY:
        audit_rows = store.read_publication_audit(table, first, last).sort("id")
        published: dict[dt.date, set[int]] = {}
        for row in audit_rows.iter_rows(named=True):
            if row["outcome"] == "published":
                published.setdefault(row["partition_date"], set()).add(row["rows"])
        assert set(published) == days, table
        assert all(len(counts) == 1 for counts in published.values()), (table, published)
        assert store.partition_row_counts(table, first, last) == {
            d: n for d, (n,) in published.items() if n
        }, table
    staged = store.partition_row_counts("stg_accounts_daily", first, last)
    features = store.partition_row_counts("account_features_daily", first, last)
    assert set(staged) == days and features == staged
    withheld_attempts = store.read_publication_audit(
        sources.METRICS_DAILY.table, *[dt.date.fromisoformat(WITHHELD_DAY)] * 2
    ).sort("id")
    first_attempt, *later = withheld_attempts["outcome"].to_list()
    assert first_attempt == "withheld" and later and set(later) == {"published"}, later
    store.dispose()
    print(f"production end to end with a killed run: {time.monotonic() - started:.0f} s")
