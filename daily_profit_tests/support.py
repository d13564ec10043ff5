"""Test support shared across test packages and benchmarks: sandbox data as the warehouse holds it.

``raw_frames_from_sandbox(data)`` turns a simulated firm into the raw tables' frames by the same
road the ingestion takes: every frame is rendered as API records (camelCase fields, ISO date and
timestamp strings, objects as dicts, the plans as their CSV export) and parsed by the
warehouse's ``parse_records``. Null ``accountId`` values are then resolved by the raw layer's own
``resolve_account_ids`` (the known id of the same login, platform and broker, else a stable
derived id), so the frames are what a feature computation reads from the warehouse.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Final

import polars as pl

from daily_profit.ingestion.account_ids import resolve_account_ids
from daily_profit.sandbox.simulation import SandboxData
from daily_profit.warehouse.records import parse_plans_csv, parse_records

# Raw source name -> SandboxData frame attribute.
SANDBOX_SOURCES: Final = {
    "metrics_alltime": "accounts_alltime",
    "metrics_daily": "metrics_daily",
    "metrics_hourly": "metrics_hourly",
    "trades_closed": "trades_closed",
    "trades_open": "trades_open",
    "regimes_daily": "regimes",
}


def api_records(frame: pl.DataFrame) -> list[dict]:
    """A frame as the API serialises it: dates and timestamps as ISO strings with milliseconds."""
    conversions = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Date:
            conversions.append(pl.col(name).dt.strftime("%Y-%m-%dT00:00:00.000Z"))
        elif isinstance(dtype, pl.Datetime):
            conversions.append(
                pl.col(name).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            )
    return (frame.with_columns(conversions) if conversions else frame).to_dicts()


def raw_frames_from_sandbox(data: SandboxData) -> dict[str, pl.DataFrame]:
    """Every raw table of the simulated firm, keyed by source name (``metrics_daily``, ...).

    Also ``plans`` (from the CSV export). Raises if ``parse_records`` quarantines anything: the
    sandbox without fault injection produces only valid records.
    """
    out: dict[str, pl.DataFrame] = {}
    for source, attribute in SANDBOX_SOURCES.items():
        parsed = parse_records(source, api_records(getattr(data, attribute)), partition=None)
        if parsed.quarantine.height:
            reasons = parsed.quarantine["reason"].head(3).to_list()
            raise ValueError(f"{source}: {parsed.quarantine.height} records quarantined: {reasons}")
        out[source] = parsed.valid
    with tempfile.TemporaryDirectory() as tmp:
        plans = parse_plans_csv(data.write_plans_csv(Path(tmp) / "plans.csv"))
    if plans.quarantine.height:
        raise ValueError(f"plans: {plans.quarantine.height} rows quarantined")
    out["plans"] = plans.valid
    # The raw layer's own resolution, with the account master as the known ids.
    known = out["metrics_alltime"].select("login", "platform", "broker", "account_id")
    for source in ("metrics_daily", "metrics_hourly"):
        out[source], _ = resolve_account_ids(out[source], known)
    return out
