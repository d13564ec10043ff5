"""No trader identity in clear in anything a raw run records: the Dagster UI shows every event's
metadata and message (materialisations, check results, logs, step errors), so a login, trader id
or account id in any of them is one the desk's every UI user can read."""

from __future__ import annotations

import re

import dagster as dg
import polars as pl
import pytest
from dagster_shared.serdes import serialize_value

from daily_profit.config import get_settings
from daily_profit.defs.raw.assets import raw_assets
from daily_profit.defs.raw.checks import raw_checks
from daily_profit.defs.resources import RiskApiResource, WarehouseResource
from daily_profit.privacy import mask_value
from daily_profit.sandbox.server import SandboxServer
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.migrate import upgrade

DAY = "2025-01-07"  # a Tuesday: every source has rows
# Faults that put identities in play: conflicting copies (their natural keys hold account ids and
# logins), malformed records (quarantine reasons), unknown fields; small pages to draw many.
FAULTS = "conflict=0.6, malformed=0.4, extra=0.2, seed=5"
IDENTITY_FIELDS = ("login", "trader", "accountId")
RAW_IDENTITY_COLUMNS = ("login", "trader", "account_id")


@pytest.fixture(scope="module")
def sandbox_data():
    return simulate(SimulationConfig(n_accounts=40, n_days=12, seed=11))


def _identities(sandbox_data, store: Warehouse) -> set[str]:
    """Every login, trader id and account id served or landed (derived account ids included)."""
    values: set[str] = set()
    for frame in (sandbox_data.accounts, sandbox_data.accounts_alltime):
        for name in IDENTITY_FIELDS:
            values.update(frame[name].drop_nulls().cast(pl.String).to_list())
    for table in ("raw_metrics_alltime", "raw_metrics_daily", "raw_metrics_hourly"):
        landed = store.read_table(table)
        for name in RAW_IDENTITY_COLUMNS:
            if name in landed.columns:
                values.update(landed[name].drop_nulls().cast(pl.String).to_list())
    return values


def _in_clear(text: str, identities: set[str]) -> set[str]:
    # An identity as a whole token: a login's digits inside a longer number or hash are not it.
    tokens = set(re.findall(r"[0-9A-Za-z]+", text))
    return tokens & identities


def test_no_identity_in_clear_in_any_event_of_a_raw_run(sandbox_data, sqlite_url) -> None:
    upgrade(sqlite_url)
    store = Warehouse(sqlite_url)
    sandbox_data.write_plans_csv(get_settings().resolved_plans_csv_path)
    instance = dg.DagsterInstance.ephemeral()
    try:
        with SandboxServer(sandbox_data, rate_limit=None) as server:
            result = dg.materialize(
                [*raw_assets, *raw_checks],
                partition_key=DAY,
                resources={
                    "warehouse": WarehouseResource(url=sqlite_url),
                    "risk_api": RiskApiResource(
                        base_url=server.base_url,
                        requests_per_second=0,
                        sandbox_faults=FAULTS,
                        page_size=25,
                    ),
                },
                instance=instance,
                raise_on_error=False,
            )
        identities = _identities(sandbox_data, store)
    finally:
        store.dispose()
    assert len(identities) > 100
    events = instance.all_logs(result.run_id)
    assert len(events) > 50
    # The faults did reach the metadata: conflicts were reported, records were quarantined.
    materialized = {
        e.asset_key.path[-1]: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert materialized["raw_metrics_daily"]["conflicting_duplicates"].value > 0
    assert sum(m["rows_quarantined"].value for m in materialized.values()) > 0
    leaks = {}
    for event in events:
        found = _in_clear(serialize_value(event), identities)
        if found:
            where = f"{event.step_key}: {event.dagster_event_type or event.user_message[:60]}"
            leaks[where] = sorted(found)[:5]
    assert not leaks, leaks
    # Masks are there instead, the same ones previews use, so a conflict can be matched by eye.
    conflicts = materialized["raw_metrics_daily"]["conflicts"].value
    masked = [c[f] for c in conflicts for f in IDENTITY_FIELDS if c.get(f) is not None]
    assert conflicts and masked and all(m.startswith("h:") for m in masked)
    assert set(masked) <= {mask_value(v) for v in identities}
