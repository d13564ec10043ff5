"""Apply the warehouse migrations (Alembic), programmatically or from the command line.

    uv run python -m daily_profit.warehouse.migrate            # upgrade the configured warehouse
    uv run python -m daily_profit.warehouse.migrate --url URL  # or any other one
    uv run python -m daily_profit.warehouse.migrate --current  # print the revision only

Idempotent: a database at head is left alone, and on PostgreSQL concurrent upgrades are
serialised by an advisory lock (migrations/env.py).
"""

from __future__ import annotations

import argparse
import sys
import threading
from contextlib import nullcontext
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock

from daily_profit.config import PROJECT_ROOT, get_settings
from daily_profit.warehouse.io import create_warehouse_engine, normalise_url

MIGRATIONS_DIR: Path = PROJECT_ROOT / "migrations"
VERSION_TABLE = "daily_profit_alembic_version"

# Alembic's ``context`` is process-global: two threads must not run it at once. Across
# processes, PostgreSQL upgrades are serialised by an advisory lock (migrations/env.py).
_UPGRADE_LOCK = threading.Lock()


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` that does not depend on the working directory."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Through attributes, not set_main_option: a password with '%' would trip ConfigParser.
    cfg.attributes["url"] = normalise_url(url)
    # Leave the host process's logging (Dagster's) alone.
    cfg.attributes["configure_logging"] = False
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the warehouse migrations must have one head, found {heads}")
    return heads[0]


def current_revision(url: str) -> str | None:
    """The revision the database is at (None for an empty database)."""
    engine = create_warehouse_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str | None = None, revision: str = "head") -> str | None:
    """Bring the warehouse at ``url`` (default: the configured one) to ``revision``.

    Returns the revision it is at afterwards. Cheap when already there: one query.
    """
    url = url or get_settings().resolved_warehouse_url
    database = _ensure_sqlite_folder(url)
    # The check inside the lock too: reading the revision while another thread rebuilds a
    # SQLite table (batch migrations) would wait on its lock and could time out. Two processes
    # (two runs launched at once on a fresh SQLite warehouse) take turns through a file lock.
    cross_process = FileLock(f"{database}.migrate.lock") if database else nullcontext()
    with _UPGRADE_LOCK, cross_process:
        if revision == "head" and current_revision(url) == head_revision():
            return head_revision()
        command.upgrade(alembic_config(url), revision)
        return current_revision(url)


def _ensure_sqlite_folder(url: str) -> str | None:
    """The SQLite database file's path, its folder created; None for other databases."""
    parsed = sa.engine.make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return parsed.database
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Upgrade the daily-profit warehouse schema.")
    parser.add_argument("--url", help="SQLAlchemy URL (default: the configured warehouse)")
    parser.add_argument("--revision", default="head")
    parser.add_argument("--current", action="store_true", help="print the revision only")
    args = parser.parse_args(argv)
    url = args.url or get_settings().resolved_warehouse_url
    _ensure_sqlite_folder(url)
    shown = sa.engine.make_url(normalise_url(url)).render_as_string(hide_password=True)
    if args.current:
        print(f"{shown}: {current_revision(url) or 'empty'}")
        return 0
    before = current_revision(url)
    after = upgrade(url, args.revision)
    print(f"{shown}: {before or 'empty'} -> {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
