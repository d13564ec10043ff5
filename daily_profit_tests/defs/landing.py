"""Land a simulated firm's raw layer through the raw assets' own code path (over real HTTP)."""

import datetime as dt
from pathlib import Path

from daily_profit.api.client import RiskApiClient
from daily_profit.ingestion import sources
from daily_profit.ingestion.ingest import ingest_api_source, ingest_plans_csv, known_account_ids
from daily_profit.sandbox.server import SandboxServer
from daily_profit.sandbox.simulation import SandboxData
from daily_profit.warehouse.io import Warehouse


def land_raw_layer(
    store: Warehouse,
    data: SandboxData,
    folder: Path,
    *,
    skip: frozenset[tuple[str, dt.date]] = frozenset(),
) -> None:
    """Plans, the account master and every simulated day of every daily source (but the
    ``(table, day)`` pairs in ``skip``)."""
    plans = data.write_plans_csv(folder / "plans.csv")
    with (
        SandboxServer(data, rate_limit=None) as server,
        RiskApiClient(server.base_url, server.api_key) as client,
    ):
        ingest_plans_csv(store, plans, run_id="setup")
        ingest_api_source(client, store, sources.METRICS_ALLTIME, None, run_id="setup")
        known = known_account_ids(store)
        for i in range(data.config.n_days):
            day = data.config.start_date + dt.timedelta(days=i)
            for source in sources.DAILY_API_SOURCES:
                if (source.table, day) in skip:
                    continue
                ingest_api_source(client, store, source, day, run_id="setup", known_accounts=known)
