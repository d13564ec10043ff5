"""The local instance's event log (root dagster.yaml): Dagster's SQLite files, written faster."""

import dagster as dg
import yaml
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from daily_profit.config import PROJECT_ROOT
from daily_profit.instance_storage import FastSqliteEventLogStorage

DAYS = dg.StaticPartitionsDefinition(["2025-01-02", "2025-01-03", "2025-01-06"])


@dg.asset(
    partitions_def=DAYS,
    check_specs=[dg.AssetCheckSpec("rows_positive", asset="landed")],
)
def landed(context: dg.AssetExecutionContext):
    yield dg.MaterializeResult(metadata={"rows": 3})
    yield dg.AssetCheckResult(check_name="rows_positive", passed=True)


def _instance_from_root_config(tmp_path) -> dg.DagsterInstance:
    """The root dagster.yaml's storages, with their folders moved under ``tmp_path``."""
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    home = tmp_path / "home"
    home.mkdir()
    kept = {k: config[k] for k in ("run_storage", "event_log_storage", "schedule_storage")}
    for name, block in kept.items():
        block["config"]["base_dir"] = str(tmp_path / name)
    (home / "dagster.yaml").write_text(yaml.safe_dump(kept))
    return dg.DagsterInstance.from_config(str(home))


def test_the_local_instance_records_every_event_where_dagster_reads_them(tmp_path) -> None:
    with _instance_from_root_config(tmp_path) as instance:
        assert isinstance(instance.event_log_storage, FastSqliteEventLogStorage)
        for key in DAYS.get_partition_keys():
            assert dg.materialize([landed], instance=instance, partition_key=key).success
        run_ids = [r.run_id for r in instance.get_runs()]
    # Dagster's own SQLite event log, opened on the same files, sees every event.
    plain = SqliteEventLogStorage(str(tmp_path / "event_log_storage"))
    try:
        materialised = plain.get_materialized_partitions(dg.AssetKey("landed"))
        assert materialised == set(DAYS.get_partition_keys())
        checks = plain.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("landed"), "rows_positive"), limit=10
        )
        assert len(checks) == 3
        for run_id in run_ids:
            assert any(e.is_dagster_event for e in plain.get_logs_for_run(run_id))
    finally:
        plain.dispose()


def test_wiping_the_instance_closes_the_run_files_it_deletes(tmp_path) -> None:
    with _instance_from_root_config(tmp_path) as instance:
        assert dg.materialize([landed], instance=instance, partition_key="2025-01-02").success
        instance.wipe()
        assert instance.get_runs() == []
        # Writing again after the wipe works (no connection left on a deleted file).
        assert dg.materialize([landed], instance=instance, partition_key="2025-01-03").success
        assert instance.event_log_storage.get_materialized_partitions(dg.AssetKey("landed")) == {
            "2025-01-03"
        }
