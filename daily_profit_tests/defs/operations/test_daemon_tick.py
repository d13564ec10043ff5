"""The automation runs by itself: `dagster dev` (webserver and daemon) on a temporary instance
with the sandbox, the project's automation sensor RUNNING on the fresh instance, and the nightly
tick launching the raw layer's latest day, which lands in the warehouse."""

import datetime as dt
import time
from zoneinfo import ZoneInfo

import dagster as dg
from dagster_graphql import DagsterGraphQLClient

from daily_profit.warehouse.io import Warehouse
from daily_profit_tests.defs.dagster_dev import dagster_dev

ZONE = "Etc/GMT-2"
SANDBOX_START = dt.date(2025, 1, 1)
SANDBOX_DAYS = 6
LAST_DAY = SANDBOX_START + dt.timedelta(days=SANDBOX_DAYS - 1)

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
    # while the test watches.
    at = dt.datetime.now(ZoneInfo(ZONE)) + dt.timedelta(minutes=2)
    return dt.time(at.hour, at.minute)


def test_the_nightly_tick_lands_the_raw_day_by_itself(tmp_path):
    tick = _next_tick()
    with dagster_dev(
        tmp_path,
        automation_enabled="true",
        broker_timezone=ZONE,
        nightly_run_time=tick.isoformat(),
        restatement_days="0",
        sandbox_days=str(SANDBOX_DAYS),
        sandbox_accounts="20",
    ) as (port, env):
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        sensors = client._execute(SENSORS_QUERY)["sensorsOrError"]["results"]
        states = {s["name"]: s["sensorState"]["status"] for s in sensors}
        assert states["daily_profit_automation"] == "RUNNING", states

        store = Warehouse(f"sqlite:///{env['DAILY_PROFIT_DATA_DIR']}/warehouse.sqlite")
        deadline = time.monotonic() + 600
        landed = False
        while time.monotonic() < deadline and not landed:
            time.sleep(10)
            try:
                landed = store.has_published("raw_metrics_daily", LAST_DAY)
            except Exception:  # the warehouse is created by the first run
                landed = False
        store.dispose()
        assert landed, f"raw_metrics_daily {LAST_DAY} did not land after the {tick} tick"

        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            runs = instance.get_runs()
            automated = [
                r
                for r in runs
                if "raw_metrics_daily" in {k.to_user_string() for k in r.asset_selection or []}
            ]
            assert automated, [r.tags for r in runs]
            # Launched by the automation, not by a person.
            assert all(r.tags.get("dagster/from_automation_condition") for r in automated) or all(
                "dagster/sensor_name" in r.tags or "dagster/backfill" in r.tags for r in automated
            ), [r.tags for r in automated]
