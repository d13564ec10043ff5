"""Random fault mixes through the real client (the sandbox over HTTP) and the real write path.

For every day and source, whatever the API does: either the day lands exactly (served = landed
+ quarantined, nothing doubled, the warehouse holding what the report says), or the day failed
its audit loudly (a message naming the day and the check) and the rows published before are
intact, the attempt kept in the quarantine. And a day whose faults cannot push it past a
threshold lands: failing everything is not a pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import polars as pl
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from daily_profit.api.client import RereadSettings, RetrySettings, RiskApiClient
from daily_profit.ingestion import sources
from daily_profit.ingestion.audit import UNPUBLISHED_ATTEMPT, QuarantineThreshold
from daily_profit.ingestion.ingest import ingest_api_source, known_account_ids
from daily_profit.sandbox.faults import FAULTS_HEADER
from daily_profit.sandbox.server import SandboxServer
from daily_profit.sandbox.simulation import SandboxData, SimulationConfig, simulate
from daily_profit.warehouse import migrate
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.tables import partition_loads, table_for

KEY = "fault-mix-key"
START = dt.date(2025, 1, 6)
DAYS = [START + dt.timedelta(days=i) for i in range(5)]
FAST_RETRY = RetrySettings(max_attempts=8, initial_backoff=0.005, max_backoff=0.02, jitter=0.0)
REREADS = RereadSettings(max_passes=2, max_calls=60, max_seconds=30)
THRESHOLD = QuarantineThreshold()  # the defaults a deployment starts with

# Faults that never cost a valid record: retried, re-read, or served twice under one key.
BENIGN = ("429", "5xx", "fail", "extra", "conflict")
# Faults that damage records or a whole day's listing.
DAMAGING = (
    "malformed",
    "nan",
    "non_object",
    "invisible",
    "outside",
    "shift",
    "drop_field",
    "retype_field",
    "inflate_total",
)
SOURCES = [sources.METRICS_DAILY, sources.METRICS_HOURLY, sources.TRADES_CLOSED]


@pytest.fixture(scope="module")
def data() -> SandboxData:
    return simulate(SimulationConfig(seed=21, n_accounts=80, n_days=14))


@pytest.fixture(scope="module")
def server(data: SandboxData) -> Iterator[SandboxServer]:
    with SandboxServer(data, api_key=KEY, rate_limit=None) as running:
        yield running


@pytest.fixture(scope="module")
def store(tmp_path_factory, server: SandboxServer) -> Iterator[Warehouse]:
    url = f"sqlite:///{tmp_path_factory.mktemp('mix') / 'warehouse.sqlite'}"
    migrate.upgrade(url)
    warehouse = Warehouse(url)
    with RiskApiClient(server.base_url, KEY) as client:
        ingest_api_source(client, warehouse, sources.METRICS_ALLTIME, None, run_id="setup")
    yield warehouse
    warehouse.dispose()


def _never_published(store: Warehouse, table: str, day: dt.date) -> None:
    """Back to a first landing: the day's rows and its publication record gone."""
    t = table_for(table)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(t).where(t.c[t.info["partition_column"]] == day))
        conn.execute(
            sa.delete(partition_loads).where(
                partition_loads.c.table_name == table, partition_loads.c.partition_date == day
            )
        )


fault_mixes = st.fixed_dictionaries(
    {
        "benign": st.dictionaries(
            st.sampled_from(BENIGN), st.sampled_from([0.2, 0.5, 1.0]), max_size=3
        ),
        "damaging": st.dictionaries(
            st.sampled_from(DAMAGING), st.sampled_from([0.1, 0.5, 1.0]), max_size=2
        ),
        "seed": st.integers(0, 10_000),
    }
)


def _header(mix: dict) -> str:
    pairs = {**mix["benign"], **mix["damaging"]}
    text = ", ".join(f"{k}={v}" for k, v in pairs.items())
    return f"{text}, retry_after=0, seed={mix['seed']}" if text else "off"


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    mix=fault_mixes,
    source=st.sampled_from(SOURCES),
    day=st.sampled_from(DAYS),
    published_before=st.booleans(),
)
def test_every_day_lands_exactly_or_fails_loudly_with_its_prior_rows_intact(
    server: SandboxServer,
    store: Warehouse,
    mix: dict,
    source: sources.ApiSource,
    day: dt.date,
    published_before: bool,
) -> None:
    known = known_account_ids(store)
    table = source.table
    with RiskApiClient(server.base_url, KEY) as clean:
        if published_before or not store.has_published(table, day):
            # Every example starts from a known state: the clean day, or nothing at all.
            ingest_api_source(clean, store, source, day, run_id="clean", known_accounts=known)
    if not published_before:
        _never_published(store, table, day)
    before = store.read_partitions(table, day, day)
    kept_before = store.read_quarantine(table, day, day)

    with RiskApiClient(
        server.base_url,
        KEY,
        retry=FAST_RETRY,
        reread=REREADS,
        page_size=10,
        extra_headers={FAULTS_HEADER: _header(mix)},
    ) as client:
        report = ingest_api_source(
            client, store, source, day, run_id="mix", known_accounts=known, threshold=THRESHOLD
        )

    event(report.outcome.value)
    after = store.read_partitions(table, day, day)
    kept = store.read_quarantine(table, day, day)
    # Nothing served is lost, whatever became of the day.
    assert report.served == report.landed + report.quarantined, report
    if report.outcome.published_now:
        assert after.height == report.landed
        assert after.select(list(source.spec.natural_key)).is_unique().all()
        published_rejects = kept.filter(~pl.col("reason").str.starts_with(UNPUBLISHED_ATTEMPT))
        assert published_rejects.height == report.quarantined
    else:
        assert report.failure and day.isoformat() in report.failure
        assert after.equals(before)
        new_attempt = kept.height - kept_before.height
        assert new_attempt == report.landed + report.quarantined
    if not mix["damaging"]:
        assert report.outcome.published_now, (report.failure, _header(mix))
