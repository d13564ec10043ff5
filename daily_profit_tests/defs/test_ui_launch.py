"""As a user does it: `dagster dev` from the project root, a day launched from the UI's GraphQL
API, the run lands the raw layer of that day in the warehouse with its checks."""

import datetime as dt

import pytest
from dagster_graphql import DagsterGraphQLClient

from daily_profit.warehouse.io import Warehouse
from daily_profit_tests.defs.dagster_dev import dagster_dev as running_dagster_dev
from daily_profit_tests.defs.dagster_dev import wait_for_run

DAY = "2025-01-03"


@pytest.fixture
def dagster_dev(tmp_path):
    # This test is about a launch from the UI: the nightly automation stays off.
    with running_dagster_dev(tmp_path, automation_enabled="false") as started:
        yield started


def test_a_day_launched_from_the_ui_lands_in_the_warehouse(dagster_dev):
    port, env = dagster_dev
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    client.submit_job_execution("raw_reference")
    run_id = client.submit_job_execution("raw_daily", tags={"dagster/partition": DAY})
    wait_for_run(port, env, run_id)
    store = Warehouse(f"sqlite:///{env['DAILY_PROFIT_DATA_DIR']}/warehouse.sqlite")
    day = dt.date.fromisoformat(DAY)
    assert store.read_partitions("raw_metrics_daily", day, day).height > 0
    assert store.read_partitions("raw_trades_closed", day, day).height > 0
    store.dispose()
