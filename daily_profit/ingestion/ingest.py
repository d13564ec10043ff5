"""Land one day (or one snapshot) of a Risk API source in its raw table, and account for it.

The flow is the same for every source: page everything through the client (de-duplicated,
skipped records recovered where possible), resolve null account ids, validate against the
source's spec (invalid records go to quarantine with their reason), and replace the partition in
one transaction. The report says what landed, what was rejected and why, and what the API said it
had, so that completeness is checked against the API rather than assumed.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from daily_profit.api.client import FetchResult, RiskApiClient
from daily_profit.ingestion.account_ids import resolve_account_ids
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
from daily_profit.ingestion.sources import METRICS_ALLTIME, ApiSource
from daily_profit.warehouse.io import PublicationAttempt, Warehouse, WriteResult
from daily_profit.warehouse.records import SourceSpec, parse_records, source_spec

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
    conflicting_duplicates: int = 0
    conflict_keys: list[dict[str, Any]] = field(default_factory=list)
    recovered: int = 0
    shortfall: int = 0
    unknown_fields: dict[str, int] = field(default_factory=dict)
    account_ids_from_known: int = 0
    account_ids_derived: int = 0
    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    checksum: str = ""
    frame: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)
    quarantine: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)
    # The audit of the new rows, and what it let the write do.
    checks: list[CheckOutcome] = field(default_factory=list)
    outcome: Outcome = Outcome.PUBLISHED
    waiver_reason: str | None = None

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
    def accounted(self) -> int:
        return self.landed + self.quarantined

    @property
    def complete(self) -> bool:
        """Every record the API said it had landed or sits in quarantine with a reason."""
        return self.accounted == self.api_total


def _reason_counts(quarantine: pl.DataFrame) -> dict[str, int]:
    if quarantine.height == 0:
        return {}
    counts = quarantine.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))


def _conflict_keys(fetched: FetchResult) -> list[dict[str, Any]]:
    keys = []
    for conflict in fetched.conflicts[:CONFLICT_SAMPLE]:
        kept, dropped = conflict["kept"], conflict["dropped"]
        differing = sorted(k for k in set(kept) | set(dropped) if kept.get(k) != dropped.get(k))
        keys.append({**conflict["key"], "differing_fields": differing})
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
    # Fields the contract does not name are counted by the parser, never a conflict.
    fetched = client.fetch_all(
        source.endpoint,
        source.params_for(day),
        compare_fields=frozenset(source.spec.by_api),
    )
    parsed = parse_records(source.source, fetched.records, partition=day)
    valid = parsed.valid
    resolution = None
    if "account_id" in valid.columns:
        valid, resolution = resolve_account_ids(valid, known_accounts)
    counts = FetchCounts(
        api_total=fetched.total,
        landed=valid.height,
        quarantined=parsed.quarantine.height,
        recovered=fetched.recovered,
        identical_duplicates=fetched.identical_duplicates,
        conflicting_duplicates=fetched.conflicting_duplicates,
        shortfall=fetched.shortfall,
        unknown_fields=parsed.unknown_fields,
    )
    checks, outcome, attempt, written = _audited_write(
        warehouse,
        source.spec,
        valid,
        parsed.quarantine,
        counts,
        day,
        run_id=run_id,
        threshold=threshold,
        waiver_reason=waiver_reason,
    )
    return IngestReport(
        table=source.table,
        partition=day,
        api_total=fetched.total,
        landed=valid.height,
        quarantined=parsed.quarantine.height,
        quarantine_reasons=_reason_counts(parsed.quarantine),
        identical_duplicates=fetched.identical_duplicates,
        conflicting_duplicates=fetched.conflicting_duplicates,
        conflict_keys=_conflict_keys(fetched),
        recovered=fetched.recovered,
        shortfall=fetched.shortfall,
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
) -> tuple[list[CheckOutcome], Outcome, PublicationAttempt, WriteResult]:
    """Audit the new rows, then write them (published or withheld) with the attempt's record."""
    checks = audit_batch(
        spec, valid, counts, threshold=threshold or QuarantineThreshold.from_settings(), day=day
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
        frame=parsed.valid,
        quarantine=parsed.quarantine,
        checks=checks,
        outcome=outcome,
        waiver_reason=attempt.waiver_reason,
    )


def summarise_reasons(reports: list[IngestReport]) -> Counter[str]:
    total: Counter[str] = Counter()
    for report in reports:
        total.update(report.quarantine_reasons)
    return total
