"""Raw sources of the Risk API (and the plans CSV): declarative field specs and record parsing.

The specs below are the single source of truth for the raw layer: the warehouse tables
(``tables.py``) and the migrations are generated from them, and ``parse_records`` validates
API records against them. No dagster here.

Column names: the API's name in snake_case (``startingBalance`` -> ``starting_balance``,
``volumeUSD`` -> ``volume_usd``), except ``mt_version`` -> ``platform`` (metrics and trades then
share one name for the platform code).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from operator import itemgetter
from pathlib import Path
from unicodedata import category

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from daily_profit.privacy import IDENTITY_COLUMNS
from daily_profit.served import FlaggedRecord, ServedLast, conflicting_copy_reason


class Kind(StrEnum):
    """Contract types. ``JSON`` is an object stored as canonical JSON text."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    TS = "ts"
    JSON = "json"


# Warehouse-side polars types: timestamps are UTC with millisecond precision like the API's.
POLARS_TYPES: dict[Kind, pl.DataType] = {
    Kind.STR: pl.String(),
    Kind.INT: pl.Int64(),
    Kind.FLOAT: pl.Float64(),
    Kind.BOOL: pl.Boolean(),
    Kind.DATE: pl.Date(),
    Kind.TS: pl.Datetime("ms", "UTC"),
    Kind.JSON: pl.String(),
}


# What a JSON page's values are read as, column-wise (``SourceSpec.record_type``).
_JSON_ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.STR: pa.string(),
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.BOOL: pa.bool_(),
    Kind.DATE: pa.string(),
    Kind.TS: pa.string(),
}


def snake_case(name: str) -> str:
    """API name -> warehouse column: acronyms stay one word (``volumeUSD`` -> ``volume_usd``)."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name)
    return name.lower()


# Columns whose name is not the snake_case of the API name.
_RENAMED = {"mt_version": "platform", "instruments": "instruments_json"}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a source record and the warehouse column it lands in.

    Value rules (``gt``/``ge``/``lt``/``le``/``choices``) describe impossible values: a record
    that breaks one is quarantined, never clipped. Nulls pass value rules (``required`` covers
    them).
    """

    api: str
    column: str
    kind: Kind
    required: bool
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    # Allowed values of a string field, compared after case normalisation when ``fold_case``.
    choices: tuple[str, ...] | None = None
    # The contract allows any letter case (trade ``side``): the canonical spelling is stored.
    fold_case: bool = False
    # JSON objects: each value must itself be an object with these numeric members.
    item_fields: tuple[str, ...] | None = None
    # An identity (login, account, trader, ticket, position): no invisible or control
    # character may hide in it, or one account would silently become two.
    identifier: bool = False

    @property
    def dtype(self) -> pl.DataType:
        return POLARS_TYPES[self.kind]


def _f(
    api: str,
    kind: Kind,
    required: bool = True,
    *,
    column: str | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] | None = None,
    fold_case: bool = False,
    item_fields: tuple[str, ...] | None = None,
    identifier: bool = False,
) -> FieldSpec:
    return FieldSpec(
        api=api,
        column=column or _RENAMED.get(api) or snake_case(api),
        kind=kind,
        required=required,
        gt=gt,
        ge=ge,
        lt=lt,
        le=le,
        choices=choices,
        fold_case=fold_case,
        item_fields=item_fields,
        identifier=identifier,
    )


STR, INT, FLOAT, BOOL = Kind.STR, Kind.INT, Kind.FLOAT, Kind.BOOL
DATE, TS, JSON = Kind.DATE, Kind.TS, Kind.JSON
OPT = False  # readability: _f("country", STR, OPT)


@dataclass(frozen=True, slots=True)
class RowRule:
    """A rule across fields of one record.

    ``violated`` maps the typed columns (name -> Series) to a boolean Series, true where a row
    breaks the rule; a null (a value missing or already rejected) does not count.
    """

    columns: tuple[str, ...]
    violated: Callable[[Mapping[str, pl.Series]], pl.Series]
    reason: str


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A raw source: its fields, natural key, partition column and cross-field rules."""

    name: str
    table: str
    fields: tuple[FieldSpec, ...]
    # Warehouse columns; in the order of the primary key (partition column first, so a
    # partition's rows are one index range).
    natural_key: tuple[str, ...]
    # The record's own date column the daily partitions are keyed by; None = unpartitioned.
    partition_column: str | None
    row_rules: tuple[RowRule, ...] = ()
    # Plans come from a CSV: every value arrives as text and is parsed from it.
    from_text: bool = False
    description: str = ""
    by_api: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)
    by_column: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_api", {f.api: f for f in self.fields})
        object.__setattr__(self, "by_column", {f.column: f for f in self.fields})
        missing = [c for c in self.natural_key if c not in self.by_column]
        if missing:
            raise ValueError(f"{self.name}: natural key columns {missing} are not fields")

    @property
    def columns(self) -> list[str]:
        """Business columns, in table order."""
        return [f.column for f in self.fields]

    @property
    def polars_schema(self) -> pl.Schema:
        return pl.Schema({f.column: f.dtype for f in self.fields})

    @property
    def natural_key_api(self) -> tuple[str, ...]:
        return tuple(self.by_column[c].api for c in self.natural_key)

    @property
    def record_type(self) -> pa.StructType | None:
        """The record's fields as Arrow reads them from a JSON page (dates and timestamps as
        text, parsed here); None for a source read record by record (the CSV, JSON objects)."""
        if self.from_text or any(f.kind is Kind.JSON for f in self.fields):
            return None
        return pa.struct([(f.api, _JSON_ARROW_TYPES[f.kind]) for f in self.fields])


# --- metrics ----------------------------------------------------------------------------------
#
# The three metrics kinds share one list of fields; which of them a kind must carry is the
# contract's paragraph "Which record kind must carry which field". A field listed with ``OPT``
# is optional on every kind; the others are required on daily rows and, on hourly and alltime
# rows, only when named in ``_HOURLY_REQUIRED`` / ``_ALLTIME_REQUIRED``.

# Identity fields every metrics row carries (alltime, daily, hourly).
_METRICS_IDENTITY = (
    _f("login", STR, identifier=True),
    # Nullable here: the raw layer resolves a null accountId before writing (contract).
    _f("accountId", STR, OPT, identifier=True),
    _f("planId", INT),
    _f("trader", STR, identifier=True),
    _f("status", INT, ge=1, le=3),
    _f("type", INT),
    _f("phase", INT, ge=1, le=4),
    _f("broker", INT),
    _f("mt_version", INT),
    _f("country", STR, OPT),
)

_METRICS_BALANCES = (
    _f("startingBalance", FLOAT),
    _f("priorDaysBalance", FLOAT),
    _f("priorDaysEquity", FLOAT),
    _f("currentBalance", FLOAT),
    _f("currentEquity", FLOAT),
    _f("approved_payouts", FLOAT, ge=0),
    _f("pending_payouts", FLOAT, ge=0),
)

_METRICS_STATS = (
    _f("firstTradeDate", DATE, OPT),
    _f("daysSinceInitialDeposit", INT, ge=0),
    _f("daysSinceFirstTrade", INT, ge=0),
    _f("numTrades", INT, ge=0),
    _f("netProfit", FLOAT),
    _f("grossProfit", FLOAT, ge=0),
    _f("grossLoss", FLOAT, le=0),
    _f("profitFactor", FLOAT, OPT, ge=0),
    _f("successRate", FLOAT, OPT, ge=0, le=100),
    _f("meanProfit", FLOAT, OPT),
    _f("medianProfit", FLOAT, OPT),
    _f("stdProfits", FLOAT, OPT, ge=0),
    _f("minProfit", FLOAT, OPT),
    _f("maxProfit", FLOAT, OPT),
    _f("riskAdjProfit", FLOAT, OPT),
    _f("expectancy", FLOAT, OPT),
    _f("meanDrawDown", FLOAT, OPT, le=0),
    _f("maxDrawDown", FLOAT, OPT, le=0),
    _f("relMaxDrawDown", FLOAT, OPT),
    _f("totalLots", FLOAT, ge=0),
    _f("totalVolume", FLOAT, ge=0),
    _f("meanWinningLot", FLOAT, OPT, ge=0),
    _f("meanLosingLot", FLOAT, OPT, ge=0),
    _f("meanDuration", FLOAT, OPT, ge=0),
    _f("meanSL", FLOAT, OPT),
    _f("meanTP", FLOAT, OPT),
    _f("maxNumConsecWins", INT, OPT, ge=0),
    _f("maxNumConsecLosses", INT, OPT, ge=0),
    _f("maxNumOpenPos", FLOAT, OPT, ge=0),
    _f("maxValOpenPos", FLOAT, OPT),
    _f("numTradedSymbols", INT, ge=0),
    _f("mostTradedSymbol", STR, OPT),
)

# The identity fields every metrics kind must carry (contract).
_IDENTITY_REQUIRED = frozenset(
    ("login", "planId", "trader", "status", "type", "phase", "broker", "mt_version")
)
# An hour's slice of trading: identity, the hour, and what was traded in it.
_HOURLY_REQUIRED = _IDENTITY_REQUIRED | {"date", "hour", "numTrades", "netProfit"}
# The account as of now: identity, its balances and its lifetime trading.
_ALLTIME_REQUIRED = _IDENTITY_REQUIRED | {
    "startingBalance",
    "currentBalance",
    "currentEquity",
    "numTrades",
    "netProfit",
}


def _required_only(
    required: frozenset[str], fields: tuple[FieldSpec, ...]
) -> tuple[FieldSpec, ...]:
    """The fields with every one outside ``required`` optional (value rules unchanged)."""
    return tuple(replace(f, required=f.required and f.api in required) for f in fields)


METRICS_ALLTIME = SourceSpec(
    name="metrics_alltime",
    table="raw_metrics_alltime",
    fields=_required_only(
        _ALLTIME_REQUIRED,
        (
            *_METRICS_IDENTITY,
            *_METRICS_BALANCES,
            *_METRICS_STATS,
            # The contract leaves these untyped: float accepts integers too, and a timestamp
            # accepts a midnight date string, so neither choice rejects a well-formed value.
            _f("lifeTimeInDays", FLOAT, OPT, ge=0),
            _f("dailySharpe", FLOAT, OPT),
            _f("dailySortino", FLOAT, OPT),
            _f("updatedDate", TS, OPT),
        ),
    ),
    natural_key=("account_id",),
    partition_column=None,
    description="Lifetime metrics, one row per account as of now: the account master.",
)

METRICS_DAILY = SourceSpec(
    name="metrics_daily",
    table="raw_metrics_daily",
    fields=(
        *_METRICS_IDENTITY,
        _f("date", DATE),
        *_METRICS_BALANCES,
        _f("todays_payouts", FLOAT, ge=0),
        _f("days_to_next_payout", INT, OPT),
        *_METRICS_STATS,
    ),
    natural_key=("date", "account_id"),
    partition_column="date",
    description="Daily metrics, one row per account per day it existed.",
)

METRICS_HOURLY = SourceSpec(
    name="metrics_hourly",
    table="raw_metrics_hourly",
    fields=_required_only(
        _HOURLY_REQUIRED,
        (
            *_METRICS_IDENTITY,
            _f("date", DATE),
            _f("hour", INT, ge=0, le=23),
            *_METRICS_BALANCES,
            *_METRICS_STATS,
        ),
    ),
    natural_key=("date", "account_id", "hour"),
    partition_column="date",
    description="Hourly metrics, one row per account per hour with activity.",
)

# --- trades ----------------------------------------------------------------------------------


def _trade_fields(closed: bool) -> tuple[FieldSpec, ...]:
    head = (
        _f("tradeDate", DATE),
        _f("broker", INT),
        _f("mngr", INT),
        _f("platform", INT),
        _f("ticket", STR, identifier=True),
        _f("position", STR, identifier=True),
        _f("login", STR, identifier=True),
        _f("stdSymbol", STR),
        _f("trdSymbol", STR, OPT),
        _f("side", STR, choices=("Buy", "Sell"), fold_case=True),
        _f("lots", FLOAT, gt=0),
        _f("contractSize", FLOAT, gt=0),
        _f("qtyInBaseCrncy", FLOAT),
        _f("volumeUSD", FLOAT, ge=0),
        _f("stopLoss", FLOAT, OPT),
        _f("takeProfit", FLOAT, OPT),
        _f("openTime", TS),
        _f("openPrice", FLOAT),
    )
    close = (_f("closeTime", TS), _f("closePrice", FLOAT)) if closed else ()
    tail = (
        _f("duration", FLOAT, ge=0),
        _f("profit", FLOAT),
        _f("commission", FLOAT),
        _f("fee", FLOAT),
        _f("swap", FLOAT),
        _f("comment", STR, OPT),
    )
    return head + close + tail


_TRADE_KEY = ("trade_date", "broker", "platform", "position")

TRADES_CLOSED = SourceSpec(
    name="trades_closed",
    table="raw_trades_closed",
    fields=_trade_fields(closed=True),
    natural_key=_TRADE_KEY,
    partition_column="trade_date",
    row_rules=(
        RowRule(
            columns=("close_time", "open_time"),
            violated=lambda c: c["close_time"] < c["open_time"],
            reason="closeTime: before openTime",
        ),
    ),
    description="Trades closed on a trade date.",
)

TRADES_OPEN = SourceSpec(
    name="trades_open",
    table="raw_trades_open",
    fields=_trade_fields(closed=False),
    natural_key=_TRADE_KEY,
    partition_column="trade_date",
    description="Open positions at the end of a trade date (snapshot).",
)

# --- regimes ---------------------------------------------------------------------------------

REGIMES_DAILY = SourceSpec(
    name="regimes_daily",
    table="raw_regimes_daily",
    fields=(
        _f("date", DATE),
        _f("volatilityRegime", STR, choices=("COMPRESSED", "BALANCED", "DISPERSED")),
        _f("liquidityState", STR, OPT),
        _f("sentimentScore", FLOAT, OPT, ge=-1, le=1),
        _f("riskOnProb", FLOAT, OPT, ge=0, le=1),
        _f("riskOffProb", FLOAT, OPT, ge=0, le=1),
        _f("volSpikeProb", FLOAT, OPT, ge=0, le=1),
        _f("fedFundsRate", FLOAT, OPT),
        _f("treasury2y", FLOAT, OPT),
        _f("treasury10y", FLOAT, OPT),
        # Per symbol {"eodPrice", "dailyReturn", "volatility90d"}: canonical JSON text
        # (sorted keys) so equal objects give equal checksums.
        _f("instruments", JSON, item_fields=("eodPrice", "dailyReturn", "volatility90d")),
    ),
    natural_key=("date",),
    partition_column="date",
    description="Market regime, one row per calendar day.",
)

# --- plans (CSV) -----------------------------------------------------------------------------

PLANS = SourceSpec(
    name="plans",
    table="raw_plans",
    fields=(
        _f("planId", INT),
        _f("type", STR),
        # Free text; an empty cell is null, not an invalid plan.
        _f("description", STR, OPT),
        _f("startingBalance", FLOAT, gt=0),
        _f("profitTargetPct", FLOAT, ge=0),
        _f("dailyLossLimitPct", FLOAT, ge=0),
        _f("maxTrailingDrawdownPct", FLOAT, ge=0),
        _f("leverage", INT, gt=0),
        _f("profitSharePct", FLOAT, ge=0, le=100),
        _f("liquidateFriday", BOOL),
        _f("makeDrawdownStatic", BOOL),
        _f("dailyDrawdownByBalanceEquity", BOOL),
        _f("enableConsistency", BOOL),
        _f("inactivityPeriod", INT, OPT, ge=0),
        _f("minimumRequiredActiveTradingDays", INT, OPT, ge=0),
        _f("maximumTime", INT, OPT, ge=0),
        # Names (MT5, a broker's name), not the integer codes of metrics and trades.
        _f("platform", STR),
        _f("broker", STR),
    ),
    natural_key=("plan_id",),
    partition_column=None,
    from_text=True,
    description="Plans CSV export; the last row of a planId wins.",
)

SOURCES: dict[str, SourceSpec] = {
    s.name: s
    for s in (
        METRICS_ALLTIME,
        METRICS_DAILY,
        METRICS_HOURLY,
        TRADES_CLOSED,
        TRADES_OPEN,
        REGIMES_DAILY,
        PLANS,
    )
}

# Table name -> spec, for the warehouse side.
SOURCES_BY_TABLE: dict[str, SourceSpec] = {s.table: s for s in SOURCES.values()}


def source_spec(source: str) -> SourceSpec:
    """Look a source up by its name (``trades_closed``) or table (``raw_trades_closed``)."""
    spec = SOURCES.get(source) or SOURCES_BY_TABLE.get(source)
    if spec is None:
        raise KeyError(f"unknown source {source!r}; known: {sorted(SOURCES)}")
    return spec


# --- parsing ---------------------------------------------------------------------------------
#
# Speed: a batch is handled column by column, with polars Series operations only (no
# expression queries: their planning costs more than the work on 1,000 rows). Each column is
# pulled out of the dicts once and built in strict mode, where a string among floats raises
# instead of becoming null; only a column that raises is then looked at value by value. Every
# rule is first checked by an O(1)-ish test (min/max against a bound, a null count) and the
# offending rows and their reasons are only worked out when that test fires.

# Reason of a record dated outside the partition being materialised.
OUTSIDE_PARTITION = "outside_partition"

QUARANTINE_SCHEMA = pl.Schema(
    {
        "source": pl.String,
        "partition_date": pl.Date,
        "natural_key": pl.String,
        "reason": pl.String,
        "raw_payload": pl.String,
    }
)


# JSON type names of the field profile (JSON Schema's words).
JSON_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
}

# The JSON types each contract type accepts (a float field takes integers too).
ACCEPTED_JSON_TYPES: dict[Kind, frozenset[str]] = {
    Kind.STR: frozenset({"string"}),
    Kind.INT: frozenset({"integer"}),
    Kind.FLOAT: frozenset({"integer", "number"}),
    Kind.BOOL: frozenset({"boolean"}),
    Kind.DATE: frozenset({"string"}),
    Kind.TS: frozenset({"string"}),
    Kind.JSON: frozenset({"object"}),
}


@dataclass(frozen=True, slots=True)
class FieldStats:
    """What one contract field looked like across the object records of a batch.

    ``types`` counts the JSON type of each non-null value. A float field's values are counted
    as ``number`` whether or not they have a fraction (both are what the field accepts); in any
    other field a ``number`` is a non-integer JSON number.
    """

    present: int
    non_null: int
    types: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return {"present": self.present, "non_null": self.non_null, "types": dict(self.types)}


@dataclass(frozen=True, slots=True)
class FieldProfile:
    """Per contract field, over every object record a batch received (valid or quarantined)."""

    source: str
    partition: dt.date | None
    records: int
    fields: dict[str, FieldStats]

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "partition": None if self.partition is None else self.partition.isoformat(),
            "records": self.records,
            "fields": {name: stats.to_dict() for name, stats in self.fields.items()},
        }


def _field_stats(
    f: FieldSpec,
    values: Sequence[object],
    s: pl.Series,
    rejected: set[int],
    present: int,
    text: bool,
) -> FieldStats:
    """A field's stats; the typed column answers unless a value was rejected (rare)."""
    if not rejected:
        # Every non-null value was of a type the field accepts: the column's nulls say it all.
        non_null = len(s) - s.null_count()
        if text:
            # CSV: an empty cell is missing; every other cell is text.
            name = "string"
        elif f.kind is Kind.INT:
            name = "integer"
        elif f.kind is Kind.FLOAT:
            name = "number"
        else:
            name = next(iter(ACCEPTED_JSON_TYPES[f.kind]))
        return FieldStats(present, non_null, {name: non_null} if non_null else {})
    counts: dict[str, int] = {}
    non_null = 0
    for t, k in Counter(map(type, values)).items():
        if t is type(None):
            continue
        non_null += k
        name = JSON_TYPES.get(t, t.__name__)
        if text and name == "string":
            continue
        counts[name] = counts.get(name, 0) + k
    if text:
        # Blank cells are missing, not values.
        blank = sum(1 for v in values if type(v) is str and not v.strip())
        non_null -= blank
        strings = sum(1 for v in values if type(v) is str) - blank
        if strings:
            counts["string"] = strings
    if f.kind is Kind.FLOAT and "integer" in counts:
        counts["number"] = counts.get("number", 0) + counts.pop("integer")
    return FieldStats(present, non_null, counts)


@dataclass(frozen=True, slots=True)
class ParsedRecords:
    """What ``parse_records`` made of one batch.

    Every record received is accounted for: ``received == len(valid) + len(quarantine) +
    dropped``.
    """

    source: str
    partition: dt.date | None
    # Valid rows: typed warehouse columns in table order (``SourceSpec.polars_schema``).
    valid: pl.DataFrame
    # One row per rejected record (``QUARANTINE_SCHEMA``); ``reason`` names each field at fault.
    quarantine: pl.DataFrame
    # Field names the contract does not know -> number of records carrying them.
    unknown_fields: dict[str, int]
    # Records dropped without loss of information: exact repeats of a kept record (offset
    # pagination) and plans CSV rows superseded by a later row of the same planId.
    dropped: int = 0
    # Per contract field: presence, non-null values and their JSON types (schema drift).
    profile: FieldProfile | None = None
    # Conflicting copies of a natural key quarantined as ``conflicting_copy`` (the client's
    # and this batch's): the API's total counts each key once.
    conflicting_copies: int = 0

    @property
    def received(self) -> int:
        return self.valid.height + self.quarantine.height + self.dropped


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()

# An ISO date, optionally with a midnight UTC time (the API sends 2025-06-01T00:00:00.000Z):
# any other time of day is not a date and is rejected rather than truncated.
_DATE_RE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T00:00(?::00(?:\.0+)?)?(?:Z|[+-]00(?::?00)?)?)?")
# Plans CSV booleans.
_TEXT_BOOLS = {"TRUE": True, "FALSE": False, "1": True, "0": False}

_KIND_NAMES = {
    Kind.STR: "string",
    Kind.INT: "integer",
    Kind.FLOAT: "number",
    Kind.BOOL: "boolean",
    Kind.DATE: "ISO date",
    Kind.TS: "ISO timestamp with offset",
    Kind.JSON: "object",
}

# Classes, not instances: pl.Series(..., dtype=pl.Float64()) costs ~12 µs more per column
# than dtype=pl.Float64 (measured, polars 2.1), and a batch builds ~50 columns.
_BUILD_TYPES: dict[Kind, type[pl.DataType]] = {
    Kind.STR: pl.String,
    Kind.INT: pl.Int64,
    Kind.FLOAT: pl.Float64,
    Kind.BOOL: pl.Boolean,
}


class _Reasons:
    """Reasons of the (few) rejected rows: row -> reasons, in field order."""

    __slots__ = ("by_row",)

    def __init__(self) -> None:
        self.by_row: dict[int, list[str]] = {}

    def add(self, row: int, reason: str) -> None:
        self.by_row.setdefault(row, []).append(reason)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _rows(mask: pl.Series) -> list[int]:
    return mask.fill_null(False).arg_true().to_list()


def _type_ok(kind: Kind, value: object) -> bool:
    """Exact JSON types: a bool is not a number, a float is not an int, a number is not text."""
    t = type(value)
    if kind is Kind.FLOAT:
        return t is float or t is int
    if kind is Kind.INT:
        return t is int and _I64_MIN <= value <= _I64_MAX  # type: ignore[operator]
    if kind is Kind.BOOL:
        return t is bool
    if kind is Kind.JSON:
        return t is dict
    return t is str  # STR, DATE, TS


def _shown(f: FieldSpec, value: object) -> str:
    # A reason names an identity field and its rule, never its value: the raw payload beside
    # it keeps the record whole, behind the warehouse's permissions.
    return "(value withheld: identity)" if f.api in IDENTITY_COLUMNS else _short(value)


def _type_reason(f: FieldSpec, value: object, text: bool = False) -> str:
    if text:
        return f"{f.api}: expected text, got {type(value).__name__} {_shown(f, value)}"
    if type(value) is int and f.kind is Kind.INT:
        return f"{f.api}: integer out of the int64 range ({_shown(f, value)})"
    return f"{f.api}: expected {_KIND_NAMES[f.kind]}, got {type(value).__name__} {_shown(f, value)}"


def _parse_reason(f: FieldSpec, value: object) -> str:
    return f"{f.api}: not a valid {_KIND_NAMES[f.kind]} ({_shown(f, value)})"


def _invalid_text(f: FieldSpec, value: object) -> str:
    if f.fold_case and f.choices is not None:
        allowed = ", ".join(f.choices)
        return f"{f.api}: must be one of {allowed}, any case (got {_shown(f, value)})"
    return _parse_reason(f, value)


def _strict(
    f: FieldSpec, values: list, dtype: pl.DataType | type[pl.DataType], reasons: _Reasons
) -> tuple[pl.Series, set[int]]:
    """Build a column in strict mode; on a wrong-typed value, null it out with its reason."""
    try:
        return pl.Series(f.column, values, dtype=dtype, strict=True), set()
    except (TypeError, OverflowError, pl.exceptions.PolarsError):
        pass
    # Rare: find the culprits in Python, for this column only.
    clean = list(values)
    rejected: set[int] = set()
    for i, v in enumerate(values):
        if v is not None and not _type_ok(f.kind, v):
            reasons.add(i, _type_reason(f, v))
            clean[i] = None
            rejected.add(i)
    return pl.Series(f.column, clean, dtype=dtype, strict=True), rejected


def _reject_bools(
    f: FieldSpec, s: pl.Series, values: list, reasons: _Reasons, rejected: set[int]
) -> pl.Series:
    """JSON true/false builds as 1/0 in a numeric column: only a 0 or 1 can hide one."""
    lo, hi = s.min(), s.max()
    if lo is None or lo > 1 or hi < 0:  # type: ignore[operator]
        return s
    a = s.to_numpy()
    if not ((a == 0) | (a == 1)).any() or bool not in map(type, values):
        return s
    rows = [i for i, v in enumerate(values) if type(v) is bool]
    for i in rows:
        reasons.add(i, _type_reason(f, values[i]))
    rejected.update(rows)
    return s.scatter(rows, None)


def _py_date(value: object) -> dt.date | None:
    if type(value) is not str:
        return None
    m = _DATE_RE.fullmatch(value)
    if m is None:
        return None
    try:
        return dt.date.fromisoformat(m.group(1))
    except ValueError:
        return None


def _mapped(
    f: FieldSpec,
    values: list,
    convert: Callable[[object], object | None],
    dtype: pl.DataType | type[pl.DataType],
    reasons: _Reasons,
) -> tuple[pl.Series, set[int]]:
    """Convert each distinct value once (dates and choices repeat across a batch)."""
    try:
        distinct = set(values)
    except TypeError:  # an unhashable value (an object, a list): the wrong type anyway
        distinct = None
    if distinct is not None and len(distinct) == 1 and None not in distinct:
        # Typical: every record of a daily batch carries the same date.
        out = convert(next(iter(distinct)))
        if out is not None:
            return pl.Series(f.column, [out], dtype=dtype).new_from_index(0, len(values)), set()
    if distinct is not None:
        table = {v: convert(v) for v in distinct}
        converted = [table[v] for v in values]
    else:
        converted = [convert(v) if type(v) is str else None for v in values]
    rejected: set[int] = set()
    if distinct is None or any(out is None and v is not None for v, out in table.items()):
        for i, (v, out) in enumerate(zip(values, converted, strict=True)):
            if out is None and v is not None:
                bad_type = type(v) is not str
                reasons.add(i, _type_reason(f, v) if bad_type else _invalid_text(f, v))
                rejected.add(i)
    if dtype == pl.Date:
        days = [None if d is None else d.toordinal() - _EPOCH_ORDINAL for d in converted]  # type: ignore[attr-defined]
        return pl.Series(f.column, days, dtype=pl.Int32).cast(pl.Date), rejected
    return pl.Series(f.column, converted, dtype=dtype), rejected


def _choice_converter(f: FieldSpec) -> Callable[[object], str | None]:
    assert f.choices is not None
    canonical = {c.lower(): c for c in f.choices}
    return lambda v: canonical.get(v.lower()) if type(v) is str else None


def _json_column(f: FieldSpec, values: list, reasons: _Reasons) -> tuple[pl.Series, set[int]]:
    """Objects -> canonical JSON text (sorted keys: equal objects, equal text and checksum)."""
    out: list[str | None] = [None] * len(values)
    rejected: set[int] = set()
    for i, v in enumerate(values):
        if v is None:
            continue
        bad = None
        if type(v) is not dict:
            bad = _type_reason(f, v)
        elif f.item_fields and (problem := _bad_json_items(v, f.item_fields)):
            bad = f"{f.api}: {problem}"
        if bad is None:
            out[i] = orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
        else:
            reasons.add(i, bad)
            rejected.add(i)
    return pl.Series(f.column, out, dtype=pl.String), rejected


def _bad_json_items(obj: dict, members: tuple[str, ...]) -> str | None:
    for key, item in obj.items():
        if type(item) is not dict:
            return f"{key} is not an object"
        for m in members:
            v = item.get(m)
            if type(v) not in (int, float) or not math.isfinite(v):  # type: ignore[arg-type]
                return f"{key}.{m} is not a finite number ({_short(v)})"
    return None


_TS_ARROW = pa.timestamp("ms", tz="UTC")


def _ts_value(value: str) -> object | None:
    """One timestamp through Arrow's ISO 8601 parser (the fast path's rules), or None."""
    try:
        return pa.array([value], pa.string()).cast(_TS_ARROW)[0]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _timestamps(
    f: FieldSpec, values: list | pa.Array, reasons: _Reasons, rejected: set[int]
) -> pl.Series:
    """ISO timestamps with an offset -> Datetime(ms, UTC).

    Arrow's ISO 8601 cast is several times faster than polars' strptime on distinct strings;
    it refuses a timestamp without an offset and one more precise than milliseconds (nothing
    is truncated). A batch it refuses is redone value by value to find the culprits.
    """
    if isinstance(values, pa.Array):
        text = values
    else:
        try:
            text = pa.array(values, pa.string())
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            s, bad = _strict(f, values, pl.String, reasons)
            rejected.update(bad)
            values = s.to_list()
            text = s.to_arrow()
    try:
        return pl.Series(f.column, text.cast(_TS_ARROW))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if isinstance(values, pa.Array):
        values = values.to_pylist()
    parsed = {v: _ts_value(v) for v in set(values) if v is not None}
    out: list[object | None] = []
    for i, v in enumerate(values):
        ts = parsed.get(v) if v is not None else None
        if v is not None and ts is None:
            reasons.add(i, _parse_reason(f, v))
            rejected.add(i)
        out.append(ts)
    return pl.Series(f.column, pa.array(out, _TS_ARROW))


def _api_column(f: FieldSpec, values: list, reasons: _Reasons) -> tuple[pl.Series, set[int]]:
    """A JSON field's column: typed, with every wrong-typed or unparseable value nulled."""
    if f.kind is Kind.DATE:
        return _mapped(f, values, _py_date, pl.Date, reasons)
    if f.kind is Kind.JSON:
        return _json_column(f, values, reasons)
    if f.fold_case:
        return _mapped(f, values, _choice_converter(f), pl.String, reasons)
    if f.kind is Kind.TS:
        rejected: set[int] = set()
        return _timestamps(f, values, reasons, rejected), rejected
    s, rejected = _strict(f, values, _BUILD_TYPES[f.kind], reasons)
    if f.kind is Kind.INT or f.kind is Kind.FLOAT:
        s = _reject_bools(f, s, values, reasons, rejected)
    return s, rejected


def _distinct_mapped(
    f: FieldSpec,
    s: pl.Series,
    convert: Callable[[object], object | None],
    dtype: pl.DataType | type[pl.DataType],
    reasons: _Reasons,
) -> tuple[pl.Series, set[int]]:
    """``_mapped`` for a text column read column-wise: each distinct value converted once."""
    table = {v: convert(v) for v in s.unique().to_list() if v is not None}
    rejected: set[int] = set()
    bad = [v for v, out in table.items() if out is None]
    if bad:
        for i in _rows(s.is_in(bad)):
            reasons.add(i, _invalid_text(f, s[i]))
            rejected.add(i)
    good = {v: out for v, out in table.items() if out is not None}
    if not good:
        return pl.Series(f.column, [None] * len(s), dtype=dtype), rejected
    if len(good) == 1 and not bad and not s.null_count():
        # Typical: every record of a daily batch carries the same date.
        (out,) = good.values()
        return pl.Series(f.column, [out], dtype=dtype).new_from_index(0, len(s)), rejected
    mapped = s.replace_strict(
        list(good), pl.Series(list(good.values()), dtype=dtype), default=None, return_dtype=dtype
    )
    return mapped.alias(f.column), rejected


def _arrow_column(f: FieldSpec, values: pa.Array, reasons: _Reasons) -> tuple[pl.Series, set[int]]:
    """A field's column as Arrow's JSON reader typed it (``SourceSpec.record_type``).

    The reader already refused any value of another JSON type, so only text is checked here:
    dates, timestamps and case-insensitive choices, as ``_api_column`` does.
    """
    if f.kind is Kind.TS:
        rejected: set[int] = set()
        return _timestamps(f, values, reasons, rejected), rejected
    s = pl.Series(f.column, values)
    if f.kind is Kind.DATE:
        return _distinct_mapped(f, s, _py_date, pl.Date, reasons)
    if f.fold_case:
        return _distinct_mapped(f, s, _choice_converter(f), pl.String, reasons)
    return s, set()


class _TableRows:
    """Rows of an Arrow table as dicts, made only for the (few) rows a quarantine holds."""

    __slots__ = ("table",)

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __getitem__(self, i: int) -> dict:
        return self.table.slice(i, 1).to_pylist()[0]


def _text_column(f: FieldSpec, values: list, reasons: _Reasons) -> tuple[pl.Series, set[int]]:
    """A CSV cell's column: text stripped of surrounding blanks, an empty cell missing."""
    rejected: set[int] = set()
    cells: list[str | None] = [None] * len(values)
    for i, v in enumerate(values):
        if type(v) is str:
            cells[i] = v.strip() or None
        elif v is not None:
            reasons.add(i, _type_reason(f, v, text=True))
            rejected.add(i)
    text = pl.Series(f.column, cells, dtype=pl.String)
    if f.kind is Kind.STR and not f.fold_case:
        return text, rejected
    if f.kind is Kind.TS:
        return _timestamps(f, cells, reasons, rejected), rejected
    if f.kind is Kind.DATE or f.fold_case:
        convert = _py_date if f.kind is Kind.DATE else _choice_converter(f)
        s, more = _mapped(f, cells, convert, f.dtype, reasons)
        return s, rejected | more
    if f.kind is Kind.BOOL:
        s, more = _mapped(
            f,
            cells,
            lambda v: _TEXT_BOOLS.get(v.upper()),
            pl.Boolean,
            reasons,  # type: ignore[attr-defined]
        )
        return s, rejected | more
    if f.kind is Kind.INT:
        s = text.str.to_integer(strict=False)
    else:
        s = text.cast(pl.Float64, strict=False)
    if s.null_count() != text.null_count():
        for i in _rows(s.is_null() & text.is_not_null()):
            reasons.add(i, _parse_reason(f, text[i]))
            rejected.add(i)
    return s.alias(f.column), rejected


def _check_column(f: FieldSpec, s: pl.Series, rejected: set[int], reasons: _Reasons) -> None:
    """Required values and value rules of one typed column (rejected values are null)."""
    if f.required and s.null_count() > len(rejected):
        for i in _rows(s.is_null()):
            if i not in rejected:
                reasons.add(i, f"{f.api}: required, missing or null")
    # NaN and infinity propagate into the sum: one cheap screen for a non-finite value.
    if f.kind is Kind.FLOAT and not math.isfinite(s.sum()):
        a = s.to_numpy()  # nulls come out as NaN: skip them
        for i in np.flatnonzero(~np.isfinite(a)).tolist():
            if s[i] is not None:
                reasons.add(i, f"{f.api}: not a finite number ({s[i]!r})")
    lo, hi = (s.min(), s.max()) if f.kind in (Kind.INT, Kind.FLOAT) else (None, None)
    for bound, op, fired, violation in (
        (f.gt, ">", lo is not None and f.gt is not None and lo <= f.gt, lambda b: s <= b),
        (f.ge, ">=", lo is not None and f.ge is not None and lo < f.ge, lambda b: s < b),
        (f.lt, "<", hi is not None and f.lt is not None and hi >= f.lt, lambda b: s >= b),
        (f.le, "<=", hi is not None and f.le is not None and hi > f.le, lambda b: s > b),
    ):
        if fired:
            for i in _rows(violation(bound)):
                reasons.add(i, f"{f.api}: must be {op} {bound:g} (got {s[i]!r})")
    if f.choices is not None and not f.fold_case:
        outside = ~s.is_in(list(f.choices)) & s.is_not_null()
        if outside.any():
            allowed = ", ".join(f.choices)
            for i in _rows(outside):
                reasons.add(i, f"{f.api}: must be one of {allowed} (got {s[i]!r})")
    if f.kind is Kind.STR:
        _check_text(f, s, reasons)
    if f.kind is Kind.STR and f.required:
        # A blank identifier is no identifier. The minimum is a cheap screen: a blank value
        # sorts before any value starting with a printable character.
        first = s.min()
        if first is not None and (first == "" or first[0] <= " "):  # type: ignore[index,operator]
            for i, v in enumerate(s.to_list()):
                if v is not None and not v.strip():
                    reasons.add(i, f"{f.api}: required, blank ({v!r})")


# Longest text a field may hold. The contract's text fields are codes, symbols, names and short
# comments; a megabyte string is a fault upstream, kept whole in the quarantine's raw payload
# rather than carried into tables, previews and metadata.
MAX_TEXT_CHARS = 10_000

# Characters that show nothing (format: zero-width space, RTL/LTR marks, BOM) or control the
# terminal (control), and line/paragraph separators.
_INVISIBLE = r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]"
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _check_text(f: FieldSpec, s: pl.Series, reasons: _Reasons) -> None:
    """Text length, and no invisible character in an identity (names code points, not values)."""
    longest = s.str.len_chars().max()
    if longest is not None and longest > MAX_TEXT_CHARS:  # type: ignore[operator]
        lengths = s.str.len_chars()
        for i in _rows(lengths > MAX_TEXT_CHARS):
            reasons.add(
                i, f"{f.api}: text of {lengths[i]:,} characters, longer than {MAX_TEXT_CHARS:,}"
            )
    if f.identifier:
        hidden = s.str.contains(_INVISIBLE)
        if hidden.any():
            for i in _rows(hidden):
                points = sorted(
                    {f"U+{ord(c):04X}" for c in s[i] if category(c) in _INVISIBLE_CATEGORIES}
                )
                reasons.add(i, f"{f.api}: invisible or control character {', '.join(points)}")


def _check_rows(
    spec: SourceSpec, columns: dict[str, pl.Series], partition: dt.date | None, reasons: _Reasons
) -> None:
    for rule in spec.row_rules:
        violated = rule.violated(columns)
        if violated.any():
            for i in _rows(violated):
                reasons.add(i, rule.reason)
    pc = spec.partition_column
    if partition is not None and pc is not None:
        # A record dated outside the partition being materialised could never be replaced by
        # a rerun of that partition: quarantined, not filed under another day.
        s = columns[pc]
        if s.min() not in (None, partition) or s.max() not in (None, partition):
            api = spec.by_column[pc].api
            for i in _rows(s != partition):
                reasons.add(
                    i,
                    f"{OUTSIDE_PARTITION}: {api} {s[i]} is not the partition "
                    f"{partition.isoformat()}",
                )


def _maybe_duplicated(spec: SourceSpec, columns: Mapping[str, pl.Series], n: int) -> bool:
    key = [columns[c] for c in spec.natural_key]
    # A key holding a column that is unique on its own is unique (the usual case: position,
    # accountId): checking that is much cheaper than hashing the whole key.
    if any(s.n_unique() == n for s in reversed(key)):
        return False
    return bool(pl.DataFrame(key).is_duplicated().any())


def _served_last(spec: SourceSpec, frame: pl.DataFrame) -> tuple[list[int], list[int]]:
    """Rows of ``frame`` repeating a natural key: (identical repeats, conflicting copies).

    The served-last rule of ``daily_profit.served``, on typed rows in the order served: rows
    equal in every column are one record; of differing rows the last is kept. Rows with a
    null key part (an unresolved accountId) cannot be matched and are left alone.
    """
    key = list(spec.natural_key)
    keyed = pl.all_horizontal(pl.col(key).is_not_null())
    candidates = frame.select((keyed & pl.struct(key).is_duplicated()).alias("c"))["c"]
    rows = candidates.arg_true().to_list()
    served: ServedLast[int] = ServedLast()
    key_at = frame.select(key).row
    row_at = frame.row
    for i in rows:
        served.add(key_at(i), i, row_at)
    kept = set(served.kept())
    superseded = {i for _, i, _ in served.superseded()}
    identical = [i for i in rows if i not in kept and i not in superseded]
    return identical, sorted(superseded)


def _last_row_wins(spec: SourceSpec, records: list[dict]) -> tuple[list[dict], int]:
    """CSV exports repeat rows: keep the last row of each raw natural key, in file order."""
    key_api = spec.natural_key_api
    last: dict[tuple, int] = {}
    for i, r in enumerate(records):
        key = tuple(v.strip() if isinstance(v := r.get(a), str) else v for a in key_api)
        last[key] = i
    keep = sorted(last.values())
    return [records[i] for i in keep], len(records) - len(keep)


def _unknown_fields(spec: SourceSpec, records: list[dict], all_present: bool) -> dict[str, int]:
    # Fast path: every record holds every known field and has no more keys than that.
    if all_present and set(map(len, records)) <= {len(spec.fields)}:
        return {}
    seen = set().union(*records) - spec.by_api.keys()
    return {str(k): sum(1 for r in records if k in r) for k in sorted(seen, key=str)}


def _json_text(value: object) -> str:
    # The standard library, not orjson, on this rare path: it keeps what orjson cannot
    # (NaN and Infinity as tokens instead of null, integers beyond 64 bits), so the payload
    # shows the record as it came.
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
    )


_NO_QUARANTINE = pl.DataFrame(schema=QUARANTINE_SCHEMA)


def _quarantine_frame(
    spec: SourceSpec,
    records: Sequence[dict] | _TableRows,
    rows: list[int],
    reasons: list[str],
    dates: list[dt.date | None],
    raw_text: Mapping[int, str] | None = None,
) -> pl.DataFrame:
    if not rows:
        return _NO_QUARANTINE
    raw_text = raw_text or {}
    key_api = spec.natural_key_api
    return pl.DataFrame(
        {
            "source": [spec.name] * len(rows),
            "partition_date": dates,
            "natural_key": [_json_text({a: records[i].get(a) for a in key_api}) for i in rows],
            "reason": reasons,
            "raw_payload": [raw_text.get(i) or _json_text(records[i]) for i in rows],
        },
        schema=QUARANTINE_SCHEMA,
    )


def parse_records(
    source: str,
    records: Sequence[object] | pa.Table,
    *,
    partition: dt.date | None,
    superseded: Sequence[object] = (),
    resolve: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
) -> ParsedRecords:
    """Validate one batch of raw records against the source's spec.

    ``source`` is a source name (``trades_closed``) or its table (``raw_trades_closed``).
    ``partition`` is the day being materialised (None for unpartitioned sources or a range
    parse); a record dated outside it is quarantined (``outside_partition``). Values are never
    coerced: a wrong type, an unparseable date or an impossible value sends the record to
    quarantine with a reason naming each field at fault. The one normalisation is the
    canonical spelling of case-insensitive choices (trade ``side``: ``bUY`` -> ``Buy``).

    Copies of one natural key follow the served-last rule (``daily_profit.served``):
    ``superseded`` are the conflicting copies the client already set aside, quarantined as
    ``conflicting_copy``; copies that meet here (among the valid rows, after ``resolve``) are
    settled the same way. ``resolve`` fills what the key needs before that (the raw layer's
    null accountIds): it takes the valid rows and returns them in the same order. A
    :class:`~daily_profit.served.FlaggedRecord` is parsed like any record and quarantined with
    its problem and its text as served.

    ``records`` may also be an Arrow table of the contract's fields typed by
    ``SourceSpec.record_type`` (what the client reads from plain pages, its keys distinct):
    the same rules then run on its columns, with no Python object per record; only the rows
    sent to quarantine are turned into dicts, for their payload.
    """
    spec = source_spec(source)
    if isinstance(records, pa.Table):
        return _parse_columns(spec, records, partition=partition, resolve=resolve)
    items: list = records if isinstance(records, list) else list(records)
    if superseded:
        items = [*items, *superseded]
    first_superseded = len(items) - len(superseded)
    copy_reason = conflicting_copy_reason(spec.natural_key_api)
    recs: list[dict] = items
    reasons = _Reasons()
    raw_text: dict[int, str] = {}
    not_objects: list[object] = []
    conflicting = 0
    if not set(map(type, items)) <= {dict}:
        # Records flagged at decoding, and a page's "data" holding something else than
        # objects: kept in quarantine too.
        recs = []
        flagged_rows: list[tuple[int, FlaggedRecord]] = []
        for position, item in enumerate(items):
            inner = item.record if isinstance(item, FlaggedRecord) else item
            if isinstance(inner, Mapping):
                if isinstance(item, FlaggedRecord):
                    flagged_rows.append((len(recs), item))
                if position >= first_superseded:
                    reasons.add(len(recs), copy_reason)
                    conflicting += 1
                recs.append(inner if type(inner) is dict else dict(inner))
            else:
                not_objects.append(item)
        for row, item in flagged_rows:
            reasons.add(row, item.problem)
            raw_text[row] = item.raw_text
    else:
        for row in range(first_superseded, len(recs)):
            reasons.add(row, copy_reason)
        conflicting = len(superseded)
    dropped = 0
    if spec.from_text and recs:
        recs, dropped = _last_row_wins(spec, recs)
    n = len(recs)
    columns: dict[str, pl.Series] = {}
    all_present = True
    make_column = _text_column if spec.from_text else _api_column
    stats: dict[str, FieldStats] = {}
    for f in spec.fields:
        try:
            # itemgetter runs in C: the cheap way to pull one field out of every dict.
            values = list(map(itemgetter(f.api), recs))
            present = n
        except KeyError:
            all_present = False
            values = [r.get(f.api) for r in recs]
            present = sum(1 for r in recs if f.api in r)
        s, rejected = make_column(f, values, reasons)
        _check_column(f, s, rejected, reasons)
        columns[f.column] = s
        stats[f.api] = _field_stats(f, values, s, rejected, present, spec.from_text)
    return _settle(
        spec,
        columns,
        stats,
        reasons,
        recs,
        partition=partition,
        resolve=resolve,
        dropped=dropped,
        conflicting=conflicting,
        unknown_fields=_unknown_fields(spec, recs, all_present) if n else {},
        raw_text=raw_text,
        not_objects=not_objects,
    )


def _parse_columns(
    spec: SourceSpec,
    table: pa.Table,
    *,
    partition: dt.date | None,
    resolve: Callable[[pl.DataFrame], pl.DataFrame] | None,
) -> ParsedRecords:
    """``parse_records`` of an Arrow table read from plain pages: every field of every record
    is present with a value of its JSON type or null, so presence, types and unknown fields are
    settled; values, rules and keys are checked as for records."""
    if table.column_names != [f.api for f in spec.fields]:
        raise ValueError(
            f"{spec.name}: columns {table.column_names} are not the contract's fields in order"
        )
    n = table.num_rows
    reasons = _Reasons()
    columns: dict[str, pl.Series] = {}
    stats: dict[str, FieldStats] = {}
    for f in spec.fields:
        values = table.column(f.api).combine_chunks()
        s, rejected = _arrow_column(f, values, reasons)
        _check_column(f, s, rejected, reasons)
        columns[f.column] = s
        stats[f.api] = _field_stats(
            f, values.to_pylist() if rejected else (), s, rejected, n, text=False
        )
    return _settle(
        spec,
        columns,
        stats,
        reasons,
        _TableRows(table),
        partition=partition,
        resolve=resolve,
        dropped=0,
        conflicting=0,
        unknown_fields={},
    )


def _settle(
    spec: SourceSpec,
    columns: dict[str, pl.Series],
    stats: dict[str, FieldStats],
    reasons: _Reasons,
    recs: Sequence[dict] | _TableRows,
    *,
    partition: dt.date | None,
    resolve: Callable[[pl.DataFrame], pl.DataFrame] | None,
    dropped: int,
    conflicting: int,
    unknown_fields: dict[str, int],
    raw_text: Mapping[int, str] | None = None,
    not_objects: Sequence[object] = (),
) -> ParsedRecords:
    """The typed columns of a batch -> valid rows and quarantine: row rules, account ids,
    copies of one key (served last), and a reason for every record set aside."""
    n = len(next(iter(columns.values()))) if columns else 0
    copy_reason = conflicting_copy_reason(spec.natural_key_api)
    _check_rows(spec, columns, partition, reasons)

    frame = pl.DataFrame(list(columns.values()))
    keep = pl.Series([True] * n, dtype=pl.Boolean)
    if reasons.by_row:
        keep = keep.scatter(list(reasons.by_row), False)
    good = keep.arg_true()
    valid = frame.filter(keep) if reasons.by_row else frame
    if resolve is not None and valid.height:
        resolved = resolve(valid)
        if resolved.height != valid.height:
            raise ValueError(f"{spec.name}: resolve changed the number of rows")
        valid = resolved.select(frame.columns)
    if valid.height and _maybe_duplicated(spec, valid.to_dict(), valid.height):
        identical, superseded_rows = _served_last(spec, valid)
        for i in superseded_rows:
            reasons.add(good[i], copy_reason)
        dropped += len(identical)
        conflicting += len(superseded_rows)
        gone = sorted(identical + superseded_rows)
        if gone:
            keep_valid = pl.Series([True] * valid.height).scatter(gone, False)
            valid = valid.filter(keep_valid)

    bad_rows = sorted(reasons.by_row)
    if partition is not None or spec.partition_column is None:
        dates: list[dt.date | None] = [partition] * len(bad_rows)
    else:
        # A range parse: file the record under its own date where that date parses.
        dates = columns[spec.partition_column].gather(bad_rows).to_list()
    quarantine = _quarantine_frame(
        spec,
        recs,
        bad_rows,
        ["; ".join(reasons.by_row[i]) for i in bad_rows],
        dates,
        raw_text,
    )
    if not_objects:
        quarantine = pl.concat([quarantine, _not_objects_frame(spec, list(not_objects), partition)])
    return ParsedRecords(
        source=spec.name,
        partition=partition,
        valid=valid,
        quarantine=quarantine,
        unknown_fields=unknown_fields,
        dropped=dropped,
        profile=FieldProfile(spec.name, partition, n, stats),
        conflicting_copies=conflicting,
    )


def _not_objects_frame(
    spec: SourceSpec, items: list[object], partition: dt.date | None
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source": [spec.name] * len(items),
            "partition_date": [partition] * len(items),
            "natural_key": [None] * len(items),
            "reason": [f"record: expected object, got {type(x).__name__}" for x in items],
            "raw_payload": [_json_text(x) for x in items],
        },
        schema=QUARANTINE_SCHEMA,
    )


def parse_plans_csv(path_or_bytes: str | Path | bytes) -> ParsedRecords:
    """Read the plans CSV export (every value as text) and parse it; last row of a planId wins."""
    if isinstance(path_or_bytes, bytes):
        text = path_or_bytes.decode("utf-8-sig")
    else:
        text = Path(path_or_bytes).read_text(encoding="utf-8-sig")
    # A row with more cells than the header keeps them under this key: an unknown field.
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="__extra_cells__")
    return parse_records(PLANS.name, list(reader), partition=None)
