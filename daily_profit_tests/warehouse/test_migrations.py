"""Migrations: the same logical schema on SQLite and PostgreSQL, idempotent, own version table."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from daily_profit.warehouse import migrate
from daily_profit.warehouse.io import create_warehouse_engine
from daily_profit.warehouse.tables import metadata, partitioned_tables


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[sa.Engine]:
    eng = create_warehouse_engine(warehouse_url)
    yield eng
    eng.dispose()


def _logical_schema(engine: sa.Engine) -> dict[str, object]:
    """Tables -> (columns with generic type and nullability, primary key, indexes)."""
    inspector = sa.inspect(engine)
    schema: dict[str, object] = {}
    for name in sorted(inspector.get_table_names()):
        if name.startswith(("raw_", "partition_loads")) and "_p20" in name:
            continue  # PostgreSQL partitions: children of a table already listed
        columns = [
            (c["name"], c["type"]._type_affinity.__name__, c["nullable"])  # type: ignore[attr-defined]
            for c in inspector.get_columns(name)
        ]
        pk = inspector.get_pk_constraint(name)["constrained_columns"]
        indexes = sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(name))
        schema[name] = (columns, pk, indexes)
    return schema


def test_upgrade_builds_the_metadata_and_is_idempotent(
    warehouse_url: str, engine: sa.Engine
) -> None:
    assert migrate.current_revision(warehouse_url) is None
    assert migrate.upgrade(warehouse_url) == migrate.head_revision()
    assert migrate.upgrade(warehouse_url) == migrate.head_revision()
    names = set(sa.inspect(engine).get_table_names())
    assert set(metadata.tables) <= names
    assert migrate.VERSION_TABLE in names
    # MLflow and dagster-postgres own "alembic_version": never ours.
    assert "alembic_version" not in names
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert [d for d in diff if not _ignorable(d)] == []


def _ignorable(diff: object) -> bool:
    # Tables Alembic sees but the metadata does not declare: the version table and the
    # PostgreSQL partitions created on demand.
    if isinstance(diff, tuple) and diff[0] == "remove_table":
        name = diff[1].name
        return name == migrate.VERSION_TABLE or "_p20" in name
    return False


@pytest.mark.postgres
def test_same_logical_schema_on_both_engines(sqlite_url: str, fresh_postgres_url: str) -> None:
    schemas = []
    for url in (sqlite_url, fresh_postgres_url):
        migrate.upgrade(url)
        eng = create_warehouse_engine(url)
        schemas.append(_logical_schema(eng))
        eng.dispose()
    assert schemas[0] == schemas[1]


def test_upgrade_leaves_a_foreign_alembic_version_alone(
    warehouse_url: str, engine: sa.Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('mlflow_rev')"))
    migrate.upgrade(warehouse_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == (
            "mlflow_rev"
        )


def test_downgrade_removes_everything(warehouse_url: str, engine: sa.Engine) -> None:
    from alembic import command

    migrate.upgrade(warehouse_url)
    command.downgrade(migrate.alembic_config(warehouse_url), "base")
    left = set(sa.inspect(engine).get_table_names()) - {migrate.VERSION_TABLE}
    assert left == set()


def test_cli_upgrades_the_given_url(warehouse_url: str, capsys: pytest.CaptureFixture) -> None:
    assert migrate.main(["--url", warehouse_url]) == 0
    assert f"empty -> {migrate.head_revision()}" in capsys.readouterr().out
    assert migrate.main(["--url", warehouse_url, "--current"]) == 0
    assert migrate.head_revision() in capsys.readouterr().out


@pytest.mark.postgres
def test_daily_tables_are_range_partitioned(fresh_postgres_url: str) -> None:
    migrate.upgrade(fresh_postgres_url)
    eng = create_warehouse_engine(fresh_postgres_url)
    with eng.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT c.relname, p.partstrat, pg_get_partkeydef(c.oid) FROM pg_partitioned_table p "
                "JOIN pg_class c ON c.oid = p.partrelid ORDER BY 1"
            )
        ).all()
    eng.dispose()
    expected = {t.name: t.info["partition_column"] for t in partitioned_tables()}
    assert {r[0]: r[2] for r in rows} == {name: f"RANGE ({col})" for name, col in expected.items()}


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_upgrades_serialise(fresh_postgres_url: str) -> None:
    """Separate processes (as two runs starting together would be) upgrade one database."""
    command = [sys.executable, "-m", "daily_profit.warehouse.migrate", "--url", fresh_postgres_url]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outcomes
    assert migrate.current_revision(fresh_postgres_url) == migrate.head_revision()


def test_threads_upgrading_at_once(warehouse_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate.upgrade(warehouse_url)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert migrate.current_revision(warehouse_url) == migrate.head_revision()


@pytest.mark.postgres
def test_two_transactions_needing_the_same_new_partition(fresh_postgres_url: str) -> None:
    """The second creator waits on the advisory lock, then finds the partition made."""
    migrate.upgrade(fresh_postgres_url)
    eng = create_warehouse_engine(fresh_postgres_url)
    day = dt.date(2025, 6, 1)
    ensure = sa.text("SELECT dp_ensure_partitions('raw_trades_closed'::regclass, :d, :d)")
    results: dict[str, object] = {}
    second_started = threading.Event()

    def second() -> None:
        try:
            with eng.begin() as conn:
                second_started.set()
                results["second"] = conn.execute(ensure, {"d": day}).scalar_one()
        except BaseException as exc:
            results["second"] = exc

    try:
        with eng.connect() as first:
            tx = first.begin()
            assert first.execute(ensure, {"d": day}).scalar_one() == 1
            thread = threading.Thread(target=second)
            thread.start()
            second_started.wait(10)
            # Still holding the lock (and the uncommitted partition): the second must wait.
            thread.join(0.5)
            assert thread.is_alive()
            tx.commit()
        thread.join(30)
        assert results["second"] == 0
        with eng.connect() as conn:
            count = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_inherits WHERE inhparent = 'raw_trades_closed'::regclass"
                )
            ).scalar_one()
        assert count == 1
    finally:
        eng.dispose()


@pytest.mark.postgres
def test_ensure_partitions_months_and_ranges(fresh_postgres_url: str) -> None:
    migrate.upgrade(fresh_postgres_url)
    eng = create_warehouse_engine(fresh_postgres_url)
    with eng.begin() as conn:
        made = conn.execute(
            sa.text(
                "SELECT dp_ensure_partitions('raw_metrics_daily'::regclass, "
                "'2025-01-30', '2025-02-02')"
            )
        ).scalar_one()
        again = conn.execute(
            sa.text(
                "SELECT dp_ensure_partitions('raw_metrics_daily'::regclass, "
                "'2025-01-31', '2025-02-01')"
            )
        ).scalar_one()
        months = conn.execute(
            sa.text(
                "SELECT dp_ensure_partitions('raw_metrics_hourly'::regclass, "
                "'2025-01-15', '2025-03-01', 'month')"
            )
        ).scalar_one()
    eng.dispose()
    assert (made, again, months) == (4, 0, 3)
