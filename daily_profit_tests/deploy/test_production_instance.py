"""The production instance config (deploy/dagster.yaml) runs Dagster's storage on PostgreSQL and
retries runs that crashed, not runs that an asset or a check failed."""

import shutil
from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import WILL_RETRY_TAG

from daily_profit_tests.deploy.production import DEPLOY_YAML, instance_env

pytestmark = pytest.mark.postgres
daily = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-03")


@pytest.fixture
def production_instance(fresh_postgres_url, tmp_path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    for name, value in instance_env(fresh_postgres_url).items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield instance


def test_materialises_on_a_postgres_backed_instance(production_instance, fresh_postgres_url):
    @dg.asset(partitions_def=daily)
    def probe(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"day": context.partition_key})

    instance = production_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    result = dg.materialize([probe], partition_key="2025-01-02", instance=instance)
    assert result.success
    assert instance.get_materialized_partitions(dg.AssetKey("probe")) == {"2025-01-02"}

    engine = sa.create_engine(fresh_postgres_url, hide_parameters=True)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        stored_runs = conn.execute(sa.text("select count(*) from runs")).scalar_one()
    engine.dispose()
    assert {"runs", "event_logs", "asset_keys"} <= tables
    assert stored_runs == 1


def test_a_crashed_run_is_retried_a_failed_check_is_not(production_instance):
    instance = production_instance
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2

    # A day withheld by its blocking audit checks fails its step (the raw assets raise).
    @dg.asset(check_specs=[dg.AssetCheckSpec("schema_valid", asset="withheld", blocking=True)])
    def withheld() -> dg.MaterializeResult:
        raise dg.Failure("2025-01-02 withheld: schema_valid failed on 3 rows")

    failed = dg.materialize([withheld], instance=instance, raise_on_error=False)
    assert not failed.success
    assert instance.get_run_by_id(failed.run_id).tags[WILL_RETRY_TAG] == "false"

    @dg.op
    def step() -> None:
        pass

    @dg.job
    def crash_probe() -> None:
        step()

    # What the code server reports when a run's process died (killed, lost host, OOM).
    crashed = instance.create_run_for_job(crash_probe)
    instance.report_run_failed(crashed)
    assert instance.get_run_by_id(crashed.run_id).tags[WILL_RETRY_TAG] == "true"


def test_a_dead_runs_pool_slots_are_given_back(production_instance):
    # A killed run never frees the pool slots its running steps held; run monitoring does, once
    # the run has ended this long ago (test_production_e2e.py kills one).
    instance = production_instance
    assert instance.run_monitoring_enabled
    assert 0 < instance.run_monitoring_settings["free_slots_after_run_end_seconds"] <= 300
