"""The audit of one fetched day (or snapshot) before it may replace what the warehouse holds.

Write, audit, publish: the checks below run on the *new* rows, before they are written. When a
blocking check fails, the rows already published stay as they were and the attempt goes to the
quarantine with reason ``unpublished_attempt`` (see ``Warehouse.replace_partitions``). The checks
are pure functions of the fetch (no Dagster): the raw assets report them as asset-check results,
and the guard of the downstream layers reads the outcome back from the warehouse's audit table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import polars as pl

from daily_profit.ingestion.drift import SchemaDrift
from daily_profit.ingestion.schemas import schema_failures
from daily_profit.warehouse.records import SourceSpec

SCHEMA_VALID = "schema_valid"
NATURAL_KEY_UNIQUE = "natural_key_unique"
COMPLETE_AGAINST_API = "complete_against_api"
QUARANTINE_SHARE = "quarantine_share_in_bounds"
NO_UNKNOWN_FIELDS = "no_unknown_fields"
SCHEMA_NOT_DRIFTED = "schema_not_drifted"
FIELDS_IN_LINE = "fields_in_line"
DAY_PUBLISHED = "day_published"

# Quarantine reason of the rows of an attempt whose audit failed: kept, never published.
UNPUBLISHED_ATTEMPT = "unpublished_attempt"


class Outcome(StrEnum):
    """What became of one attempt to land a day."""

    # Audit passed: the new rows replaced the day.
    PUBLISHED = "published"
    # Audit failed and an operator forced the replace: published, with the waiver recorded.
    WAIVED = "waived"
    # Audit failed on a day that held no published rows: it stays empty, downstream skips it.
    WITHHELD = "withheld"
    # Audit failed on a re-fetch: the rows published earlier stay and remain usable.
    KEPT_PUBLISHED = "kept_published"

    @property
    def published_now(self) -> bool:
        return self in (Outcome.PUBLISHED, Outcome.WAIVED)


@dataclass(frozen=True)
class QuarantineThreshold:
    """The share of a source-day's records that may sit in quarantine before the day fails.

    A source-day of at least ``min_records`` fails above ``max_share``; a smaller one fails only
    when records were served and none of them was valid (a share of a handful of records says
    nothing, but nothing landing from them does).
    """

    max_share: float = 0.02
    min_records: int = 50

    @classmethod
    def from_settings(cls) -> QuarantineThreshold:
        from daily_profit.config import get_settings

        settings = get_settings()
        return cls(settings.raw_quarantine_max_share, settings.raw_quarantine_min_records)


@dataclass(frozen=True)
class CheckOutcome:
    """One check of the audit: its verdict on the new rows and the evidence."""

    name: str
    passed: bool
    blocking: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def summary(self) -> str:
        """One line naming the check and its numbers, for errors and the audit table."""
        numbers = ", ".join(
            f"{k}={v}" for k, v in self.metadata.items() if isinstance(v, int | float | str)
        )
        return f"{self.name} ({numbers})" if numbers else self.name


@dataclass(frozen=True)
class FetchCounts:
    """What the API said it had against what the parse made of it."""

    api_total: int
    landed: int
    quarantined: int
    recovered: int = 0
    identical_duplicates: int = 0
    conflicting_duplicates: int = 0
    shortfall: int = 0
    # Records served, identical repeats aside (None: not counted, e.g. a CSV export).
    served: int | None = None
    unknown_fields: dict[str, int] = field(default_factory=dict)


def audit_batch(
    spec: SourceSpec,
    valid: pl.DataFrame,
    counts: FetchCounts,
    *,
    threshold: QuarantineThreshold,
    day: dt.date | None,
    drift: SchemaDrift | None = None,
) -> list[CheckOutcome]:
    """Every check of the new rows of one source-day (``day`` None for a snapshot)."""
    outcomes = [
        schema_check(spec, valid),
        natural_key_check(spec, valid),
        completeness_check(counts),
        quarantine_share_check(counts, threshold),
        unknown_fields_check(counts),
    ]
    if drift is not None:
        outcomes += drift_checks(drift)
    return outcomes


def drift_checks(drift: SchemaDrift) -> list[CheckOutcome]:
    """Schema drift on the API's side: blocking (a required field gone from every record, a
    field of a new type) and warnings (an optional field turned all-null, int widened to float)."""
    return [
        CheckOutcome(
            SCHEMA_NOT_DRIFTED,
            passed=not drift.blocking,
            blocking=True,
            metadata={
                "records": drift.records,
                "drifted_fields": ", ".join(f.field for f in drift.blocking),
                "findings": [f.to_dict() for f in drift.blocking],
            },
            description="No field the record kind must carry is missing from every record, and "
            "no field arrives in a type the contract does not allow (schema drift upstream).",
        ),
        CheckOutcome(
            FIELDS_IN_LINE,
            passed=not drift.warnings,
            blocking=False,
            metadata={
                "records": drift.records,
                "fields": ", ".join(f.field for f in drift.warnings),
                "findings": [f.to_dict() for f in drift.warnings],
            },
            description="Warns when an optional field turned all-null or an integer field "
            "widened to float.",
        ),
    ]


def schema_check(spec: SourceSpec, valid: pl.DataFrame) -> CheckOutcome:
    failures = schema_failures(spec.name, valid)
    return CheckOutcome(
        SCHEMA_VALID,
        passed=failures is None,
        blocking=True,
        metadata={
            "rows_checked": valid.height,
            **({"failure_cases": failures} if failures is not None else {}),
        },
        description="Every new row has the contract's types, nullability and value rules "
        "(pandera).",
    )


def natural_key_check(spec: SourceSpec, valid: pl.DataFrame) -> CheckOutcome:
    key = list(spec.natural_key)
    duplicated = (
        valid.filter(pl.struct(key).is_duplicated()).select(key).unique()
        if valid.height
        else pl.DataFrame()
    )
    return CheckOutcome(
        NATURAL_KEY_UNIQUE,
        passed=duplicated.height == 0,
        blocking=True,
        metadata={
            "natural_key": ", ".join(key),
            "duplicated_keys": duplicated.height,
            **({"examples": duplicated.head(20)} if duplicated.height else {}),
        },
        description="No two new rows share the natural key.",
    )


def completeness_check(counts: FetchCounts) -> CheckOutcome:
    # The API's total counts a natural key once: conflicting copies (quarantined) count once.
    accounted = counts.landed + counts.quarantined - counts.conflicting_duplicates
    nothing_lost = counts.served is None or counts.served == counts.landed + counts.quarantined
    return CheckOutcome(
        COMPLETE_AGAINST_API,
        passed=accounted == counts.api_total and counts.shortfall == 0 and nothing_lost,
        blocking=True,
        metadata={
            "api_total": counts.api_total,
            "records_served": counts.served if counts.served is not None else "n/a",
            "rows_landed": counts.landed,
            "rows_quarantined": counts.quarantined,
            "missing": counts.api_total - accounted,
            "shortfall_after_rereads": counts.shortfall,
            "recovered_after_repaging": counts.recovered,
            "identical_duplicates_dropped": counts.identical_duplicates,
            "conflicting_duplicates": counts.conflicting_duplicates,
        },
        description="Rows landed + rows quarantined = the total the API reported: nothing "
        "served was lost, nothing the API holds was skipped by paging.",
    )


def quarantine_share_check(counts: FetchCounts, threshold: QuarantineThreshold) -> CheckOutcome:
    # Conflicting copies are the API serving one record twice, not bad records: not counted.
    served = counts.landed + counts.quarantined - counts.conflicting_duplicates
    rejected = counts.quarantined - counts.conflicting_duplicates
    share = rejected / served if served else 0.0
    if served >= threshold.min_records:
        passed = share <= threshold.max_share
        rule = f"at most {threshold.max_share:.1%} of {served} records"
    else:
        passed = rejected == 0 or counts.landed > 0
        rule = f"fewer than {threshold.min_records} records: at least one valid when any served"
    return CheckOutcome(
        QUARANTINE_SHARE,
        passed=passed,
        blocking=True,
        metadata={
            "records": served,
            "rows_quarantined": rejected,
            "conflicting_copies": counts.conflicting_duplicates,
            "quarantined_share": round(share, 6),
            "max_share": threshold.max_share,
            "rule": rule,
        },
        description="The share of the day's records sent to quarantine stays under the "
        "threshold (DAILY_PROFIT_RAW_QUARANTINE_MAX_SHARE, for source-days of at least "
        "DAILY_PROFIT_RAW_QUARANTINE_MIN_RECORDS records; a smaller day fails only when nothing "
        "valid landed).",
    )


def unknown_fields_check(counts: FetchCounts) -> CheckOutcome:
    return CheckOutcome(
        NO_UNKNOWN_FIELDS,
        passed=not counts.unknown_fields,
        blocking=False,
        metadata={"unknown_fields": dict(counts.unknown_fields)},
        description="Warns when records carry fields the contract does not name "
        "(schema drift upstream).",
    )


def failed_blocking(outcomes: list[CheckOutcome]) -> list[CheckOutcome]:
    return [o for o in outcomes if o.blocking and not o.passed]


def decide(outcomes: list[CheckOutcome], *, previously_published: bool, forced: bool) -> Outcome:
    """Publish when the audit passed (or an operator waived it); otherwise keep what stands."""
    if not failed_blocking(outcomes):
        return Outcome.PUBLISHED
    if forced:
        return Outcome.WAIVED
    return Outcome.KEPT_PUBLISHED if previously_published else Outcome.WITHHELD


def describe_failure(
    table: str, day: dt.date | None, failed: list[CheckOutcome], outcome: Outcome
) -> str:
    """The message of a failed attempt: the day, each failed check and its numbers."""
    where = f"{table} {day.isoformat()}" if day else table
    checks = "; ".join(o.summary() for o in failed)
    kept = (
        "the rows published earlier stay published"
        if outcome is Outcome.KEPT_PUBLISHED
        else "nothing was published for it"
    )
    return f"{where}: audit failed, {kept}: {checks}"
