"""Schema drift of one batch: what the API sent, field by field, against the source's spec.

``schema_drift(spec, profile)`` reads the field profile that ``parse_records`` returns (per
contract field: records holding it, non-null values, their JSON types) and names what changed on
the API's side. Blocking: a field the record kind must carry that no record of a non-empty batch
carries, and a field whose every non-null value has a type the contract does not allow for it (a
new type). Warnings: an optional field that no record of a sizeable batch carries, and an integer
field carrying non-integer numbers (widened to float). Pure: no Dagster, no warehouse.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from daily_profit.warehouse.records import (
    ACCEPTED_JSON_TYPES,
    FieldProfile,
    FieldSpec,
    Kind,
    SourceSpec,
)

# An optional field all-null in a handful of records says little; from this many it is news.
MIN_RECORDS_FOR_ALL_NULL = 50

REQUIRED_FIELD_MISSING = "required_field_missing"
NEW_TYPE = "new_type"
OPTIONAL_FIELD_ALL_NULL = "optional_field_all_null"
INT_WIDENED_TO_FLOAT = "int_widened_to_float"

Severity = Literal["blocking", "warning"]


@dataclass(frozen=True)
class DriftFinding:
    """One field of one batch that does not look like the contract says."""

    rule: str
    severity: Severity
    source: str
    day: dt.date | None
    field: str
    records: int
    present: int
    non_null: int
    types: dict[str, int]
    message: str

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "source": self.source,
            "day": None if self.day is None else self.day.isoformat(),
            "field": self.field,
            "records": self.records,
            "present": self.present,
            "non_null": self.non_null,
            "types": dict(self.types),
            "message": self.message,
        }


@dataclass(frozen=True)
class SchemaDrift:
    """The drift findings of one batch (a source's day, or a snapshot)."""

    source: str
    day: dt.date | None
    records: int
    findings: tuple[DriftFinding, ...]

    @property
    def blocking(self) -> list[DriftFinding]:
        return [f for f in self.findings if f.severity == "blocking"]

    @property
    def warnings(self) -> list[DriftFinding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def passed(self) -> bool:
        """No blocking finding (warnings allowed)."""
        return not self.blocking

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "day": None if self.day is None else self.day.isoformat(),
            "records": self.records,
            "passed": self.passed,
            "blocking": [f.to_dict() for f in self.blocking],
            "warnings": [f.to_dict() for f in self.warnings],
        }


def _accepted(spec: SourceSpec, f: FieldSpec) -> frozenset[str]:
    # The plans CSV carries every value as text.
    return frozenset({"string"}) if spec.from_text else ACCEPTED_JSON_TYPES[f.kind]


def _types_text(types: dict[str, int]) -> str:
    return ", ".join(f"{n} {t}" for t, n in sorted(types.items(), key=lambda kv: -kv[1]))


def schema_drift(
    spec: SourceSpec,
    profile: FieldProfile,
    *,
    min_records_for_all_null: int = MIN_RECORDS_FOR_ALL_NULL,
) -> SchemaDrift:
    """The drift findings of one batch's field profile against ``spec``."""
    n = profile.records
    where = profile.source + (f" {profile.partition.isoformat()}" if profile.partition else "")
    findings: list[DriftFinding] = []

    def add(rule: str, severity: Severity, f: FieldSpec, message: str) -> None:
        stats = profile.fields.get(f.api)
        present, non_null, types = (
            (stats.present, stats.non_null, dict(stats.types)) if stats else (0, 0, {})
        )
        findings.append(
            DriftFinding(
                rule=rule,
                severity=severity,
                source=profile.source,
                day=profile.partition,
                field=f.api,
                records=n,
                present=present,
                non_null=non_null,
                types=types,
                message=f"{where}: {f.api} {message}",
            )
        )

    if n == 0:
        return SchemaDrift(profile.source, profile.partition, 0, ())
    for f in spec.fields:
        stats = profile.fields.get(f.api)
        non_null = stats.non_null if stats else 0
        types = stats.types if stats else {}
        if non_null == 0:
            if f.required:
                absent = n - (stats.present if stats else 0)
                add(
                    REQUIRED_FIELD_MISSING,
                    "blocking",
                    f,
                    f"is required and no record of {n} carries a value "
                    f"({absent} without the field, {n - absent} with null)",
                )
            elif n >= min_records_for_all_null:
                add(
                    OPTIONAL_FIELD_ALL_NULL,
                    "warning",
                    f,
                    f"is optional and null or absent in all {n} records",
                )
            continue
        accepted = _accepted(spec, f)
        if f.kind is Kind.INT and not spec.from_text and types.get("number"):
            add(
                INT_WIDENED_TO_FLOAT,
                "warning",
                f,
                f"is an integer field and {types['number']} of its {non_null} values are "
                "non-integer numbers (widened to float)",
            )
        if not set(types) & accepted:
            add(
                NEW_TYPE,
                "blocking",
                f,
                f"takes {' or '.join(sorted(accepted))} and all {non_null} values are "
                f"of another type ({_types_text(types)})",
            )
    return SchemaDrift(profile.source, profile.partition, n, tuple(findings))
