"""The local Dagster instance's event log: Dagster's SQLite storage, made cheap per event.

Where the main job's time went (300 accounts x 120 days on 2 cores): not in fetching, features
or training, but in recording events. Every per-day check result is one event, and Dagster's
``SqliteEventLogStorage`` builds a new SQLAlchemy engine for every connection and makes each
of an event's two or three commits durable with an fsync: 20-60 ms per event, about two
thirds of the main job's wall time for its ~8,000 events.

This subclass stores exactly the same rows in the same per-run and index files (the UI,
``dagster dev`` and the SQLite storage's own readers see no difference). It keeps one engine
per shard (a bounded number of them) instead of one per connection, keeps its connection open
(closing the last connection to a WAL database checkpoints it, an fsync), and commits with
``synchronous=NORMAL``, the setting SQLite recommends with the write-ahead log that Dagster
already uses: a commit is atomic and consistent, and a power loss can lose only the last
events written (never corrupt the file). The root ``dagster.yaml`` selects it for the laptop
instance; production keeps its PostgreSQL storage (``deploy/dagster.yaml``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.pool import StaticPool

# Engines kept open at once: one per run recently written or read, plus the index shard. The
# UI reads many runs; an engine is small, and one evicted is simply made again.
MAX_ENGINES = 64


class FastSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log with one engine per shard and WAL-appropriate syncing."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, sa.Engine] = OrderedDict()
        self._tables_present: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)

    def has_table(self, table_name: str) -> bool:
        # Asked on every check result stored (does the index have the asset-check tables?):
        # a table once there stays until a wipe, so a yes is remembered.
        if table_name in self._tables_present:
            return True
        present = super().has_table(table_name)
        if present:
            self._tables_present.add(table_name)
        return present

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> FastSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine_for(self, shard: str) -> sa.Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            # One pooled connection per shard, kept open: closing the last connection to a
            # WAL database checkpoints it (an fsync), which cost more than the write itself.
            # The storage's lock serialises its use across threads.
            engine = sa.create_engine(
                self.conn_string_for_shard(shard),
                poolclass=StaticPool,
                connect_args={
                    "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                    "check_same_thread": False,
                },
            )
            sa.event.listen(engine, "connect", _sync_normal)
        self._engines[shard] = engine
        while len(self._engines) > MAX_ENGINES:
            _, evicted = self._engines.popitem(last=False)
            evicted.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:
        # The parent's body, but for the engine: same lock, same lazy creation of the shard.
        with self._db_lock:
            engine = self._engine_for(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _close_engines(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        self._tables_present.clear()

    def wipe(self) -> None:
        # The run shards' files are deleted: no connection may stay open on them.
        with self._db_lock:
            self._close_engines()
        super().wipe()

    def dispose(self) -> None:
        with self._db_lock:
            self._close_engines()
        super().dispose()


def _sync_normal(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
