"""The production instance config (deploy/dagster.yaml) runs Dagster's storage on PostgreSQL."""

import shutil

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef

from daily_profit.config import PROJECT_ROOT

DEPLOY_YAML = PROJECT_ROOT / "deploy" / "dagster.yaml"


@pytest.mark.postgres
def test_materialises_on_a_postgres_backed_instance(fresh_postgres_url, tmp_path, monkeypatch):
    url = sa.make_url(fresh_postgres_url)
    monkeypatch.setenv("DAGSTER_PG_USERNAME", url.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", url.password or "")
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_DB", url.database or "")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port or 5432))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")

    daily = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-03")

    @dg.asset(partitions_def=daily)
    def probe(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"day": context.partition_key})

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
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
