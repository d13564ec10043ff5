"""As a user runs it: `dagster dev` (webserver and daemon) from the project root on a temporary
instance with the sandbox. A day launched from the UI's GraphQL API lands the raw layer of that
day in the warehouse; and by itself, with the project's automation sensor RUNNING on the fresh
instance, the nightly tick launches the raw layer's latest day, which lands too.

The runs' steps run in the run's own process (``step_execution=in_process``): a process per
step costs minutes of start-up on a loaded 2-core machine, and steps in processes of their own
are what the Celery test (``deploy/test_celery_workers.py``) runs."""

import datetime as dt
import time
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient

from daily_profit.warehouse.io import Warehouse
from daily_profit_tests.defs.dagster_dev import dagster_dev, wait_for_run

pytestmark = pytest.mark.slow

ZONE = "Etc/GMT-2"
SANDBOX_START = dt.date(2025, 1, 1)
SANDBOX_DAYS = 6
LAST_DAY = SANDBOX_START + dt.timedelta(days=SANDBOX_DAYS - 1)
# Older than the nightly window (the last day, no restatement days): the automation leaves it
# and what is downstream of it to the person who launched it.
LAUNCHED_DAY = SANDBOX_START + dt.timedelta(days=2)

SENSORS_QUERY = """
query {
  sensorsOrError(repositorySelector: {repositoryName: "__repository__",
                                      repositoryLocationName: "daily_profit"}) {
    ... on Sensors { results { name sensorState { status } } }
  }
}
"""


def _next_tick() -> dt.time:
    # The nightly time set to the next minute but one in the broker's zone: the tick passes
    # while the test watches (after the sensor's first evaluation).
    at = dt.datetime.now(ZoneInfo(ZONE)) + dt.timedelta(minutes=2)
    return dt.time(at.hour, at.minute)


def _raw_runs(home: str) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(home) as instance:
        return [
            r
            for r in instance.get_runs()
            if "raw_metrics_daily" in {k.to_user_string() for k in r.asset_selection or []}
            or r.job_name == "raw_daily"
        ]


def test_a_day_launched_from_the_ui_and_the_nightly_tick_both_land(tmp_path):
    tick = _next_tick()
    with dagster_dev(
        tmp_path,
        automation_enabled="true",
        broker_timezone=ZONE,
        nightly_run_time=tick.isoformat(),
        restatement_days="0",
        sandbox_days=str(SANDBOX_DAYS),
        sandbox_accounts="20",
        step_execution="in_process",
    ) as (port, env):
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        sensors = client._execute(SENSORS_QUERY)["sensorsOrError"]["results"]
        states = {s["name"]: s["sensorState"]["status"] for s in sensors}
        assert states["daily_profit_automation"] == "RUNNING", states

        # A person launches an older day while the night's tick is still to come.
        client.submit_job_execution("raw_reference")
        run_id = client.submit_job_execution(
            "raw_daily", tags={"dagster/partition": LAUNCHED_DAY.isoformat()}
        )
        wait_for_run(port, env, run_id)
        store = Warehouse(f"sqlite:///{env['DAILY_PROFIT_DATA_DIR']}/warehouse.sqlite")
        try:
            for table in ("raw_metrics_daily", "raw_trades_closed"):
                assert store.read_partitions(table, LAUNCHED_DAY, LAUNCHED_DAY).height > 0

            deadline = time.monotonic() + 600
            landed = False
            while time.monotonic() < deadline and not landed:
                landed = store.has_published("raw_metrics_daily", LAST_DAY)
                if not landed:
                    time.sleep(10)
        finally:
            store.dispose()
        assert landed, f"raw_metrics_daily {LAST_DAY} did not land after the {tick} tick"

        automated = [r for r in _raw_runs(env["DAGSTER_HOME"]) if r.run_id != run_id]
        assert automated, "no run of the raw layer but the one launched from the UI"
        # Launched by the automation, not by a person.
        assert all(r.tags.get("dagster/from_automation_condition") for r in automated) or all(
            "dagster/sensor_name" in r.tags or "dagster/backfill" in r.tags for r in automated
        ), [r.tags for r in automated]
