"""Land one day (or one snapshot) of a Risk API source in its raw table, and account for it.

The flow is the same for every source: page everything through the client (de-duplicated by
the served-last rule, skipped records recovered where possible), validate against the source's
spec (invalid records go to quarantine with their reason), resolve null account ids, settle the
copies that now share a natural key by the same rule, and replace the partition in one
transaction. The report says what landed, what was rejected and why, what the API said it had
(so that completeness is checked against the API rather than assumed) and how each contract field
looked (schema drift).

Accounting: every record served, identical repeats aside, lands or is quarantined
(``served == landed + quarantined``); the API's total counts a natural key once, so conflicting
copies are taken out before comparing with it (``accounted``).
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from daily_profit.api.client import FetchResult, RiskApiClient
from daily_profit.ingestion.account_ids import Resolution, resolve_account_ids
from daily_profit.ingestion.audit import (
    CheckOutcome,
    FetchCounts,
    Outcome,
    QuarantineThreshold,
    audit_batch,
    decide,
    describe_failure,
    failed_blocking,
)
from daily_profit.ingestion.drift import SchemaDrift, schema_drift
from daily_profit.ingestion.sources import METRICS_ALLTIME, ApiSource
from daily_profit.privacy import IDENTITY_COLUMNS, mask_value
from daily_profit.served import CONFLICTING_COPY
from daily_profit.warehouse.io import PublicationAttempt, Warehouse, WriteResult
from daily_profit.warehouse.records import FieldProfile, SourceSpec, parse_records, source_spec

# How many conflicting repeats a report keeps by key (the count is always complete).
CONFLICT_SAMPLE = 20


@dataclass
class IngestReport:
    """What one materialisation of a raw table did."""

    table: str
    partition: dt.date | None
    api_total: int
    landed: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    identical_duplicates: int = 0
    # Conflicting copies of a natural key quarantined as ``conflicting_copy``.
    conflicting_duplicates: int = 0
    # A sample of them: the key with identity values masked, and the fields that differ.
    conflict_keys: list[dict[str, Any]] = field(default_factory=list)
    recovered: int = 0
    # Re-reads made to recover a shortfall (API calls), and why they stopped short, if so.
    rereads: int = 0
    reread_stopped: str | None = None
    shortfall: int = 0
    unknown_fields: dict[str, int] = field(default_factory=dict)
    account_ids_from_known: int = 0
    account_ids_derived: int = 0
    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    checksum: str = ""
    # Records served, identical repeats aside: what must land or sit in quarantine.
    served: int = 0
    field_profile: FieldProfile | None = field(default=None, repr=False)
    schema_drift: SchemaDrift | None = None
    frame: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)
    quarantine: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)
    # The audit of the new rows, and what it let the write do.
    checks: list[CheckOutcome] = field(default_factory=list)
    outcome: Outcome = Outcome.PUBLISHED
    waiver_reason: str | None = None
    # Checksum of the rows the day holds after this attempt (the published ones): what
    # downstream compares to know whether the day changed. Empty when nothing is published.
    published_checksum: str = ""

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        return failed_blocking(self.checks)

    @property
    def failure(self) -> str | None:
        """The message naming the day, each failed blocking check and its numbers."""
        failed = self.failed_checks
        if not failed or self.outcome.published_now:
            return None
        return describe_failure(self.table, self.partition, failed, self.outcome)

    @property
    def nothing_lost(self) -> bool:
        """Every record served landed or sits in quarantine with its reason."""
        return self.served == self.landed + self.quarantined

    @property
    def accounted(self) -> int:
        """Natural keys accounted for: landed plus quarantined, conflicting copies counted once
        (the API's total counts a key once)."""
        return self.landed + self.quarantined - self.conflicting_duplicates

    @property
    def complete(self) -> bool:
        """Every record the API said it had landed or sits in quarantine with a reason."""
        return self.accounted == self.api_total


def _reason_counts(quarantine: pl.DataFrame) -> dict[str, int]:
    if quarantine.height == 0:
        return {}
    counts = quarantine.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))


def _masked_key(key: dict[str, Any]) -> dict[str, Any]:
    return {
        k: mask_value(str(v)) if k in IDENTITY_COLUMNS and v is not None else v
        for k, v in key.items()
    }


def _conflict_keys(fetched: FetchResult, quarantine: pl.DataFrame) -> list[dict[str, Any]]:
    """Up to CONFLICT_SAMPLE conflicts, identities masked: the client's with the fields that
    differ, then those found once account ids were resolved (key only)."""
    keys = []
    for conflict in fetched.conflicts[:CONFLICT_SAMPLE]:
        kept, dropped = conflict["kept"], conflict["dropped"]
        if isinstance(kept, dict) and isinstance(dropped, dict):
            differing = sorted(k for k in set(kept) | set(dropped) if kept.get(k) != dropped.get(k))
        else:
            differing = []
        keys.append({**_masked_key(conflict["key"]), "differing_fields": differing})
    found_here = quarantine.height and max(
        0,
        int(quarantine["reason"].str.starts_with(CONFLICTING_COPY).sum())
        - fetched.conflicting_duplicates,
    )
    if found_here and len(keys) < CONFLICT_SAMPLE:
        later = (
            quarantine.filter(pl.col("reason").str.starts_with(CONFLICTING_COPY))
            .tail(found_here)
            .head(CONFLICT_SAMPLE - len(keys))
        )
        for text in later["natural_key"].to_list():
            keys.append(_masked_key(orjson.loads(text)) if text else {})
    return keys


def known_account_ids(warehouse: Warehouse) -> pl.DataFrame | None:
    """The account master's (login, platform, broker) -> account_id, if it has been loaded."""
    master = warehouse.read_table(
        METRICS_ALLTIME.table, columns=["login", "platform", "broker", "account_id"]
    )
    return master if master.height else None


def ingest_api_source(
    client: RiskApiClient,
    warehouse: Warehouse,
    source: ApiSource,
    day: dt.date | None,
    *,
    run_id: str,
    known_accounts: pl.DataFrame | None = None,
    threshold: QuarantineThreshold | None = None,
    waiver_reason: str | None = None,
) -> IngestReport:
    """Fetch, validate, audit and land one partition (``day``) or snapshot (``day=None``).

    The new rows replace the published ones only when the audit's blocking checks pass, or
    when an operator gives a ``waiver_reason`` (recorded with the attempt). Otherwise the
    published rows stay and the attempt's rows are kept in the quarantine: ``report.failure``
    says why and ``report.outcome`` what became of the day.
    """
    started = time.perf_counter()
    spec = source.spec
    # Fields the contract does not name are counted by the parser, never a conflict. Plain
    # pages are read straight into columns (``record_type``); others record by record.
    fetched = client.fetch_all(
        source.endpoint,
        source.params_for(day),
        compare_fields=frozenset(spec.by_api),
        record_type=spec.record_type,
    )
    resolutions: list[Resolution] = []

    def resolve(frame: pl.DataFrame) -> pl.DataFrame:
        resolved, resolution = resolve_account_ids(frame, known_accounts)
        resolutions.append(resolution)
        return resolved

    # Account ids are resolved before copies are matched on the contract's natural key.
    parsed = parse_records(
        source.source,
        fetched.records if fetched.columns is None else fetched.columns,
        partition=day,
        superseded=fetched.superseded,
        resolve=resolve if "account_id" in spec.columns else None,
    )
    valid = parsed.valid
    resolution = resolutions[0] if resolutions else None
    profile = parsed.profile
    assert profile is not None
    drift = schema_drift(spec, profile)
    landed, quarantined = valid.height, parsed.quarantine.height
    conflicting = parsed.conflicting_copies
    shortfall = max(fetched.total - (landed + quarantined - conflicting), 0)
    counts = FetchCounts(
        api_total=fetched.total,
        landed=landed,
        quarantined=quarantined,
        recovered=fetched.recovered,
        identical_duplicates=fetched.identical_duplicates + parsed.dropped,
        conflicting_duplicates=conflicting,
        shortfall=shortfall,
        served=fetched.served - parsed.dropped,
        unknown_fields=parsed.unknown_fields,
    )
    checks, outcome, attempt, written = _audited_write(
        warehouse,
        spec,
        valid,
        parsed.quarantine,
        counts,
        day,
        run_id=run_id,
        threshold=threshold,
        waiver_reason=waiver_reason,
        drift=drift,
    )
    return IngestReport(
        table=source.table,
        partition=day,
        api_total=fetched.total,
        landed=landed,
        quarantined=quarantined,
        quarantine_reasons=_reason_counts(parsed.quarantine),
        identical_duplicates=fetched.identical_duplicates + parsed.dropped,
        conflicting_duplicates=conflicting,
        conflict_keys=_conflict_keys(fetched, parsed.quarantine),
        recovered=fetched.recovered,
        rereads=fetched.rereads,
        reread_stopped=fetched.reread_stopped,
        shortfall=shortfall,
        served=counts.served,
        field_profile=profile,
        schema_drift=drift,
        unknown_fields=parsed.unknown_fields,
        account_ids_from_known=resolution.from_known if resolution else 0,
        account_ids_derived=resolution.derived if resolution else 0,
        calls=fetched.stats.get("calls", 0),
        retries=fetched.stats.get("retries", 0),
        rate_limited=fetched.stats.get("rate_limited", 0),
        seconds=time.perf_counter() - started,
        checksum=written.checksums[day],
        frame=valid,
        quarantine=parsed.quarantine,
        checks=checks,
        outcome=outcome,
        waiver_reason=attempt.waiver_reason,
        published_checksum=written.checksums[day]
        if outcome.published_now
        else warehouse.published_checksum(spec.table, day) or "",
    )


def _audited_write(
    warehouse: Warehouse,
    spec: SourceSpec,
    valid: pl.DataFrame,
    quarantine: pl.DataFrame,
    counts: FetchCounts,
    day: dt.date | None,
    *,
    run_id: str,
    threshold: QuarantineThreshold | None,
    waiver_reason: str | None,
    drift: SchemaDrift | None = None,
) -> tuple[list[CheckOutcome], Outcome, PublicationAttempt, WriteResult]:
    """Audit the new rows, then write them (published or withheld) with the attempt's record."""
    checks = audit_batch(
        spec,
        valid,
        counts,
        threshold=threshold or QuarantineThreshold.from_settings(),
        day=day,
        drift=drift,
    )
    outcome = decide(
        checks,
        previously_published=warehouse.has_published(spec.table, day),
        forced=waiver_reason is not None,
    )
    attempt = PublicationAttempt(
        publish=outcome.published_now,
        outcome=outcome.value,
        api_total=counts.api_total,
        # Every failed check, warnings too: the declared checks read their verdict back here.
        failed_checks=tuple(c.summary() for c in checks if not c.passed),
        waiver_reason=waiver_reason if outcome is Outcome.WAIVED else None,
    )
    if day is None:
        written = warehouse.replace_table(
            spec.table, valid, run_id=run_id, quarantine=quarantine, attempt=attempt
        )
    else:
        written = warehouse.replace_partitions(
            spec.table, valid, dates=[day], run_id=run_id, quarantine=quarantine, attempt=attempt
        )
    return checks, outcome, attempt, written


def ingest_plans_csv(
    warehouse: Warehouse,
    path: Path,
    *,
    run_id: str,
    threshold: QuarantineThreshold | None = None,
    waiver_reason: str | None = None,
) -> IngestReport:
    """Land the plans CSV export: every data row lands (the last of a planId) or is quarantined.

    Audited like an API snapshot: a failing export does not replace the plans in force."""
    started = time.perf_counter()
    if not path.exists():
        raise FileNotFoundError(
            f"plans CSV not found at {path}: set DAILY_PROFIT_PLANS_CSV_PATH to the export"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    parsed = parse_records("plans", rows, partition=None)
    spec = source_spec("plans")
    # Superseded rows of a planId are accounted for, not lost: the export's row count.
    counts = FetchCounts(
        api_total=len(rows) - parsed.dropped,
        landed=parsed.valid.height,
        quarantined=parsed.quarantine.height,
        identical_duplicates=parsed.dropped,
        unknown_fields=parsed.unknown_fields,
    )
    checks, outcome, attempt, written = _audited_write(
        warehouse,
        spec,
        parsed.valid,
        parsed.quarantine,
        counts,
        None,
        run_id=run_id,
        threshold=threshold,
        waiver_reason=waiver_reason,
    )
    return IngestReport(
        table=spec.table,
        partition=None,
        api_total=counts.api_total,
        landed=parsed.valid.height,
        quarantined=parsed.quarantine.height,
        quarantine_reasons=_reason_counts(parsed.quarantine),
        identical_duplicates=parsed.dropped,
        unknown_fields=parsed.unknown_fields,
        seconds=time.perf_counter() - started,
        checksum=written.checksums[None],
        served=len(rows) - parsed.dropped,
        field_profile=parsed.profile,
        schema_drift=schema_drift(source_spec("plans"), parsed.profile) if parsed.profile else None,
        frame=parsed.valid,
        quarantine=parsed.quarantine,
        checks=checks,
        outcome=outcome,
        waiver_reason=attempt.waiver_reason,
        published_checksum=written.checksums[None]
        if outcome.published_now
        else warehouse.published_checksum(spec.table, None) or "",
    )


def summarise_reasons(reports: list[IngestReport]) -> Counter[str]:
    total: Counter[str] = Counter()
    for report in reports:
        total.update(report.quarantine_reasons)
    return total
