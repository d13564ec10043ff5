"""Alembic environment of the warehouse.

The version table is ``daily_profit_alembic_version``: MLflow's SQL store and dagster-postgres
both keep Alembic's default ``alembic_version`` and may share the database.
"""

from __future__ import annotations

from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from daily_profit.warehouse.io import create_warehouse_engine, normalise_url
from daily_profit.warehouse.tables import metadata

VERSION_TABLE = "daily_profit_alembic_version"
# Any fixed number: the key of the advisory lock that serialises concurrent upgrades.
_UPGRADE_LOCK_KEY = 0x64705F6D6967  # "dp_mig"

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        from daily_profit.config import get_settings

        url = get_settings().resolved_warehouse_url
    return normalise_url(url)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        version_table=VERSION_TABLE,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: sa.Connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # One transaction for the whole upgrade (PostgreSQL and, with the engine's explicit
        # BEGIN, SQLite too): a failed upgrade leaves the previous schema.
        transaction_per_migration=False,
        render_as_batch=is_sqlite,
        # The engine emits a real BEGIN on SQLite too (io.create_warehouse_engine), so DDL
        # there is transactional as well.
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes upgrading at once (say, two runs starting together): the second
            # waits here, then finds the schema at head and does nothing.
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _UPGRADE_LOCK_KEY}
            )
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_warehouse_engine(_url())
    try:
        # dp_write: on SQLite, BEGIN IMMEDIATE takes the write lock up front.
        with engine.connect().execution_options(dp_write=True) as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
