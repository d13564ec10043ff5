"""Fault injection for the sandbox server: deterministic for a seed, decided per request.

A :class:`FaultConfig` holds one probability per kind of fault. The server has one (set when it
starts); a request can override any of its fields with the ``X-Sandbox-Faults`` header.

Header format
-------------
``X-Sandbox-Faults: key=value, key=value, ...`` (commas or semicolons between pairs). Every key
overrides that field of the server's config for this request only; ``off`` (alone) disables
every fault. Keys (aliases in brackets)::

    seed=<int>                     seed of the decisions
    429=<p> [storm]                probability that a request starts a storm of 429s
    storm_length=<n>               429s in a storm (default 3)
    retry_after=<s>                Retry-After of a storm's 429s, whole seconds (default 1)
    5xx=<p> [server_error]         probability that a request starts a burst of 5xx
    burst_length=<n>               5xx in a burst (default 2)
    5xx_status=<code>              force 500, 502, 503 or 504 (default: drawn among them)
    fail=<p>                       probability of HTTP 200 with {"Status": "fail", "Error": ...}
    slow=<p>                       probability that the response is delayed
    slow_seconds=<s>               the delay (default 1.0)
    shift=<p> [page_shift]         probability that a page's window is shifted
    max_shift=<n>                  largest shift, records (default 3)
    shift_by=<n>                   force this shift (+n skips n records, -n repeats n)
    conflict=<p>                   probability that a page repeats one record with a different
                                   value under the same natural key
    malformed=<p>                  probability that a page carries one malformed record
    malformed_kind=<kind>          force missing | type | value | time (closed trades only)
    extra=<p> [extra_fields]       probability that a page's records carry unknown fields
    nan=<p>                        probability that a page's record holds a NaN or Infinity
                                   literal (not valid JSON) in a numeric field
    non_object=<p>                 probability that a page's record is served as something else
                                   than an object (its JSON text as a string, a number, null,
                                   an array)
    invisible=<p> [unicode]        probability that a page's record has an invisible character
                                   (zero-width space, RTL/LTR mark, BOM) inside its login
    huge=<p> [huge_string]         probability that a page's record has a huge string in a text
                                   field
    huge_chars=<n>                 its length (default 5 MiB of characters)
    outside=<p> [outside_partition]  probability that a page's record is dated the day after
    drop_field=<p>                 probability, per listing, that one required field is dropped
                                   from every record of it (a whole day's query)
    drop_field_name=<name>         the field to drop (default per endpoint, see DAY_DAMAGE)
    retype_field=<p>               probability, per listing, that one field changes type in
                                   every record of it (numTrades as a string)
    retype_field_name=<name>       the field to retype (default per endpoint)
    inflate_total=<p>              probability, per listing, that ``total`` exceeds what is
                                   served on every page of it
    inflate_by=<n>                 by how much (default 5)

Example: ``X-Sandbox-Faults: 429=1, storm_length=2, seed=3``.

Semantics
---------
Decisions are a pure function of (seed, the request's signature, the attempt number of that
signature). The signature is the path, the sorted query string and the fault header, so a
fault is a property of one request and never a permanent hole: asking again (the next attempt),
with a smaller page or by ``logins`` (another signature) draws again.

* 429 storms and 5xx bursts are runs: with ``429=1, storm_length=2`` the first two attempts of
  a request get 429 and the third succeeds. After any failed attempt whose run is over, the
  next attempt of that signature is free of 429/5xx/fail faults, so a client that retries
  always gets through; then the runs can start again.
* A shifted page serves the window ``[skip + shift, skip + shift + limit)`` instead of
  ``[skip, skip + limit)``, as if rows had been deleted (shift > 0: records are skipped between
  pages) or inserted (shift < 0: records repeat) while paging. ``total`` stays true.
* A conflicting repeat appends a copy of one of the page's records with the same natural key
  and one value changed (``count`` includes it).
* A malformed record lacks a required field (``missing``), has a wrong type such as
  ``"netProfit": "abc"`` (``type``), an impossible value such as ``lots < 0`` or
  ``numTrades = -1`` (``value``), or a ``closeTime`` before its ``openTime`` (``time``).
* Unknown extra fields are added to every record of the page.
* ``nan``, ``non_object``, ``invisible``, ``huge`` and ``outside`` each damage one record of a
  page in place (``count`` and ``total`` unchanged): the record is still served, in a form the
  platform must quarantine without losing the page.
* ``drop_field``, ``retype_field`` and ``inflate_total`` are decided per listing (the query
  without its paging parameters: a source's day), not per request: every page and every
  retry or re-read of that listing gets them, as an API whose schema changed for a day would.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from dataclasses import dataclass, field, fields, replace
from typing import Any

import orjson

FAULTS_HEADER = "X-Sandbox-Faults"
SERVER_ERROR_CODES = (500, 502, 503, 504)
MALFORMED_KINDS = ("missing", "type", "value", "time")

_KEYS: dict[str, str] = {
    "seed": "seed",
    "429": "rate_limit_storm",
    "storm": "rate_limit_storm",
    "storm_length": "storm_length",
    "retry_after": "retry_after",
    "5xx": "server_error",
    "server_error": "server_error",
    "burst_length": "burst_length",
    "5xx_status": "server_error_status",
    "fail": "fail_status",
    "slow": "slow",
    "slow_seconds": "slow_seconds",
    "shift": "page_shift",
    "page_shift": "page_shift",
    "max_shift": "max_shift",
    "shift_by": "shift_by",
    "conflict": "conflict",
    "malformed": "malformed",
    "malformed_kind": "malformed_kind",
    "extra": "extra_fields",
    "extra_fields": "extra_fields",
    "nan": "nan",
    "non_object": "non_object",
    "invisible": "invisible_login",
    "unicode": "invisible_login",
    "huge": "huge_string",
    "huge_string": "huge_string",
    "huge_chars": "huge_chars",
    "outside": "outside_partition",
    "outside_partition": "outside_partition",
    "drop_field": "drop_field",
    "drop_field_name": "drop_field_name",
    "retype_field": "retype_field",
    "retype_field_name": "retype_field_name",
    "inflate_total": "inflate_total",
    "inflate_by": "inflate_by",
}
_PROBABILITIES = (
    "rate_limit_storm",
    "server_error",
    "fail_status",
    "slow",
    "page_shift",
    "conflict",
    "malformed",
    "extra_fields",
    "nan",
    "non_object",
    "invisible_login",
    "huge_string",
    "outside_partition",
    "drop_field",
    "retype_field",
    "inflate_total",
)
# Text-valued keys of the header (the rest are numbers).
_TEXT_KEYS = frozenset({"malformed_kind", "drop_field_name", "retype_field_name"})
HUGE_CHARS = 5 * 1024 * 1024
# Invisible characters put inside a login: zero-width space, right-to-left mark, left-to-right
# mark, zero-width no-break space (BOM).
INVISIBLE_CHARACTERS = ("\u200b", "\u200f", "\u200e", "\ufeff")


class FaultSpecError(ValueError):
    """A fault header or config that cannot be understood."""


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities (0..1) of each fault and their shapes; all zero means no faults."""

    seed: int = 0
    rate_limit_storm: float = 0.0
    storm_length: int = 3
    retry_after: int = 1
    server_error: float = 0.0
    burst_length: int = 2
    server_error_status: int | None = None
    fail_status: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 1.0
    page_shift: float = 0.0
    max_shift: int = 3
    shift_by: int | None = None
    conflict: float = 0.0
    malformed: float = 0.0
    malformed_kind: str | None = None
    extra_fields: float = 0.0
    nan: float = 0.0
    non_object: float = 0.0
    invisible_login: float = 0.0
    huge_string: float = 0.0
    huge_chars: int = HUGE_CHARS
    outside_partition: float = 0.0
    drop_field: float = 0.0
    drop_field_name: str | None = None
    retype_field: float = 0.0
    retype_field_name: str | None = None
    inflate_total: float = 0.0
    inflate_by: int = 5

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise FaultSpecError(f"{name} must be a probability in [0, 1], got {p}")
        if self.storm_length < 1 or self.burst_length < 1 or self.max_shift < 1:
            raise FaultSpecError("storm_length, burst_length and max_shift must be >= 1")
        if self.retry_after < 0 or self.slow_seconds < 0:
            raise FaultSpecError("retry_after and slow_seconds must be >= 0")
        if self.server_error_status is not None and (
            self.server_error_status not in SERVER_ERROR_CODES
        ):
            raise FaultSpecError(f"5xx_status must be one of {SERVER_ERROR_CODES}")
        if self.shift_by == 0:
            raise FaultSpecError("shift_by must not be 0")
        if self.malformed_kind is not None and self.malformed_kind not in MALFORMED_KINDS:
            raise FaultSpecError(f"malformed_kind must be one of {MALFORMED_KINDS}")
        if self.huge_chars < 1 or self.inflate_by < 1:
            raise FaultSpecError("huge_chars and inflate_by must be >= 1")

    @property
    def any(self) -> bool:
        return any(getattr(self, name) > 0 for name in _PROBABILITIES)

    @classmethod
    def off(cls, seed: int = 0) -> FaultConfig:
        return cls(seed=seed)

    @classmethod
    def chaos(cls, seed: int = 0, level: float = 0.05) -> FaultConfig:
        """Every fault at probability ``level``: a realistic bad day for resilience tests."""
        return cls(
            seed=seed,
            rate_limit_storm=level,
            server_error=level,
            fail_status=level,
            slow=level,
            slow_seconds=0.2,
            page_shift=level,
            conflict=level,
            malformed=level,
            extra_fields=level,
        )

    def with_header(self, header: str | None) -> FaultConfig:
        """This config overridden by an ``X-Sandbox-Faults`` header value."""
        if header is None or not header.strip():
            return self
        text = header.strip()
        if text.lower() in {"off", "none"}:
            return FaultConfig.off(self.seed)
        types = {f.name: f.type for f in fields(self)}
        changes: dict[str, Any] = {}
        for part in text.replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, value = part.partition("=")
            key = _KEYS.get(name.strip().lower())
            if not sep or key is None:
                raise FaultSpecError(
                    f"bad {FAULTS_HEADER} item {part!r}: expected key=value with key in "
                    f"{sorted(_KEYS)}"
                )
            changes[key] = _convert(key, types[key], value.strip())
        try:
            return replace(self, **changes)
        except FaultSpecError as exc:
            raise FaultSpecError(f"bad {FAULTS_HEADER}: {exc}") from None

    def to_header(self) -> str:
        """The header value that reproduces this config on any server."""
        reverse = {v: k for k, v in reversed(list(_KEYS.items()))}
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                parts.append(f"{reverse[f.name]}={value}")
        return ", ".join(parts)


def _convert(key: str, annotation: Any, value: str) -> Any:
    kind = str(annotation)
    try:
        if key == "malformed_kind":
            return value.lower()
        if key in _TEXT_KEYS:
            return value
        if "int" in kind:
            return int(value)
        return float(value)
    except ValueError:
        raise FaultSpecError(f"bad {FAULTS_HEADER} value {value!r} for {key}") from None


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one response."""

    status: int | None = None  # 429 or 5xx: the whole response is an error
    retry_after: int | None = None
    fail: bool = False  # HTTP 200 with Status "fail"
    delay: float = 0.0
    shift: int = 0
    conflict: bool = False
    malformed: str | None = None
    extra_fields: bool = False
    nan: bool = False
    non_object: bool = False
    invisible_login: bool = False
    huge_string: int = 0  # characters of the huge string, 0: none
    outside_partition: bool = False
    # Per listing: a field dropped from / retyped in every record (None: the endpoint's
    # default field), the excess of ``total``.
    drop_field: bool = False
    drop_field_name: str | None = None
    retype_field: bool = False
    retype_field_name: str | None = None
    inflate_total: int = 0
    # Seed of record-level choices (which record, which value), for reproducibility.
    record_seed: int = 0

    @property
    def damages_records(self) -> bool:
        return bool(
            self.conflict
            or self.malformed
            or self.extra_fields
            or self.nan
            or self.non_object
            or self.invisible_login
            or self.huge_string
            or self.outside_partition
            or self.drop_field
            or self.retype_field
        )

    @property
    def kinds(self) -> list[str]:
        out = []
        if self.status == 429:
            out.append("storm_429")
        elif self.status is not None:
            out.append("server_error")
        if self.fail:
            out.append("fail_status")
        if self.delay:
            out.append("slow")
        if self.shift:
            out.append("page_shift")
        if self.conflict:
            out.append("conflict")
        if self.malformed:
            out.append("malformed")
        if self.extra_fields:
            out.append("extra_fields")
        for name in ("nan", "non_object", "invisible_login", "huge_string", "outside_partition"):
            if getattr(self, name):
                out.append(name)
        for name in ("drop_field", "retype_field", "inflate_total"):
            if getattr(self, name):
                out.append(name)
        return out


@dataclass
class _Signature:
    attempts: int = 0
    storm_left: int = 0
    burst_left: int = 0
    burst_status: int = 503
    cool_down: bool = False


@dataclass
class FaultInjector:
    """Decides the faults of each request; state is per request signature."""

    _state: dict[str, _Signature] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(
        self, config: FaultConfig, signature: str, listing: str | None = None
    ) -> FaultDecision:
        """The faults of one request. ``listing`` (the request without its paging parameters)
        keys the per-listing faults; default the signature."""
        if not config.any:
            return FaultDecision()
        day = _listing_faults(config, listing or signature)
        with self._lock:
            st = self._state.setdefault(signature, _Signature())
            attempt = st.attempts
            st.attempts += 1
            # A str seed goes through SHA-512: the same in every process (no hash salting).
            rng = random.Random(f"{config.seed}|{signature}|{attempt}")
            record_seed = rng.getrandbits(32)
            if st.storm_left > 0:
                st.storm_left -= 1
                st.cool_down = st.storm_left == 0
                return FaultDecision(status=429, retry_after=config.retry_after)
            if st.burst_left > 0:
                st.burst_left -= 1
                st.cool_down = st.burst_left == 0
                return FaultDecision(status=st.burst_status)
            failing_allowed = not st.cool_down
            st.cool_down = False
            if failing_allowed:
                if rng.random() < config.rate_limit_storm:
                    st.storm_left = config.storm_length - 1
                    st.cool_down = st.storm_left == 0
                    return FaultDecision(status=429, retry_after=config.retry_after)
                if rng.random() < config.server_error:
                    st.burst_status = config.server_error_status or rng.choice(SERVER_ERROR_CODES)
                    st.burst_left = config.burst_length - 1
                    st.cool_down = st.burst_left == 0
                    return FaultDecision(status=st.burst_status)
                if rng.random() < config.fail_status:
                    st.cool_down = True
                    return FaultDecision(fail=True)
            delay = config.slow_seconds if rng.random() < config.slow else 0.0
            shift = 0
            if rng.random() < config.page_shift:
                shift = config.shift_by or rng.choice(
                    [s for s in range(-config.max_shift, config.max_shift + 1) if s]
                )
            conflict = rng.random() < config.conflict
            malformed = None
            if rng.random() < config.malformed:
                malformed = config.malformed_kind or rng.choice(MALFORMED_KINDS)
            extra = rng.random() < config.extra_fields
            # Drawn after the older faults, so a seed keeps giving those the same decisions.
            nan = rng.random() < config.nan
            non_object = rng.random() < config.non_object
            invisible = rng.random() < config.invisible_login
            huge = config.huge_chars if rng.random() < config.huge_string else 0
            outside = rng.random() < config.outside_partition
            return replace(
                day,
                delay=delay,
                shift=shift,
                conflict=conflict,
                malformed=malformed,
                extra_fields=extra,
                nan=nan,
                non_object=non_object,
                invisible_login=invisible,
                huge_string=huge,
                outside_partition=outside,
                record_seed=record_seed,
            )

    def reset(self) -> None:
        with self._lock:
            self._state.clear()


def _listing_faults(config: FaultConfig, listing: str) -> FaultDecision:
    """The per-listing faults: the same for every page, attempt and re-read of a listing."""
    if not (config.drop_field or config.retype_field or config.inflate_total):
        return FaultDecision()
    rng = random.Random(f"{config.seed}|{listing}|listing")
    drop = rng.random() < config.drop_field
    retype = rng.random() < config.retype_field
    inflate = rng.random() < config.inflate_total
    return FaultDecision(
        drop_field=drop,
        drop_field_name=config.drop_field_name,
        retype_field=retype,
        retype_field_name=config.retype_field_name,
        inflate_total=config.inflate_by if inflate else 0,
    )


# Record-level damage, per endpoint: (field to change for a conflict, required field to drop,
# field to give a wrong type, (field, impossible value) ).
RECORD_DAMAGE: dict[str, tuple[str, str, str, tuple[str, Any]]] = {
    "accounts": ("currentBalance", "login", "currentBalance", ("startingBalance", -1.0)),
    "v2/metrics/alltime": ("netProfit", "accountId", "netProfit", ("numTrades", -1)),
    "v2/metrics/daily": ("netProfit", "netProfit", "netProfit", ("numTrades", -1)),
    "v2/metrics/hourly": ("netProfit", "netProfit", "netProfit", ("hour", 27)),
    "v2/trades/closed": ("profit", "profit", "profit", ("lots", -1.0)),
    "v2/trades/open": ("profit", "position", "profit", ("lots", -1.0)),
    "v2/regimes/daily": ("sentimentScore", "volatilityRegime", "riskOnProb", ("riskOnProb", 1.7)),
}


# Per endpoint: (required field a whole day loses, field a whole day serves as a string, text
# field that gets the huge string, date field of the partition).
DAY_DAMAGE: dict[str, tuple[str, str, str, str | None]] = {
    "accounts": ("login", "numTrades", "country", None),
    "v2/metrics/alltime": ("currentEquity", "numTrades", "mostTradedSymbol", None),
    "v2/metrics/daily": ("numTrades", "numTrades", "mostTradedSymbol", "date"),
    "v2/metrics/hourly": ("netProfit", "numTrades", "mostTradedSymbol", "date"),
    "v2/trades/closed": ("profit", "lots", "comment", "tradeDate"),
    "v2/trades/open": ("profit", "lots", "comment", "tradeDate"),
    "v2/regimes/daily": ("volatilityRegime", "sentimentScore", "liquidityState", "date"),
}

_NAN_MARK = "__sandbox_non_finite__"


def nan_record(record: dict[str, Any], endpoint: str, rng: random.Random) -> bytes:
    """The record's JSON with a NaN, Infinity or -Infinity literal in a numeric field."""
    name = RECORD_DAMAGE[endpoint][0]
    literal = rng.choice((b"NaN", b"Infinity", b"-Infinity"))
    copy = dict(record)
    copy[name] = _NAN_MARK
    return orjson.dumps(copy).replace(b'"' + _NAN_MARK.encode() + b'"', literal)


def non_object(record_json: bytes, rng: random.Random) -> bytes:
    """Something else than an object in the record's place."""
    choice = rng.randrange(4)
    if choice == 0:
        return orjson.dumps(record_json.decode())  # the record as a string of JSON
    if choice == 1:
        return b"null"
    if choice == 2:
        return b"[" + record_json + b"]"
    return str(rng.randint(-1000, 1000)).encode()


def invisible_login(record: dict[str, Any], rng: random.Random) -> bool:
    """An invisible character inside the record's login; False when it has none."""
    login = record.get("login")
    if not isinstance(login, str) or not login:
        return False
    at = rng.randint(0, len(login))
    record["login"] = login[:at] + rng.choice(INVISIBLE_CHARACTERS) + login[at:]
    return True


def huge_string(record: dict[str, Any], endpoint: str, chars: int) -> None:
    record[DAY_DAMAGE[endpoint][2]] = "W" * chars


def outside_partition(record: dict[str, Any], endpoint: str) -> bool:
    """Date the record the day after its own; False for an endpoint without a date."""
    name = DAY_DAMAGE[endpoint][3]
    value = record.get(name) if name else None
    if not isinstance(value, str):
        return False
    day = dt.date.fromisoformat(value[:10]) + dt.timedelta(days=1)
    record[name] = day.isoformat() + value[10:]  # type: ignore[index]
    return True


def drop_field(record: dict[str, Any], endpoint: str, name: str | None) -> None:
    record.pop(name or DAY_DAMAGE[endpoint][0], None)


def retype_field(record: dict[str, Any], endpoint: str, name: str | None) -> None:
    name = name or DAY_DAMAGE[endpoint][1]
    if record.get(name) is not None:
        record[name] = str(record[name])


def damage_record(record: dict[str, Any], endpoint: str, kind: str, rng: random.Random) -> str:
    """Make ``record`` malformed in place; return a short description of what was done."""
    _, missing, wrong_type, (bad_field, bad_value) = RECORD_DAMAGE[endpoint]
    if kind == "time" and "closeTime" not in record:
        kind = "value"
    if kind == "missing":
        record.pop(missing, None)
        return f"missing {missing}"
    if kind == "type":
        record[wrong_type] = "abc"
        return f"{wrong_type} of the wrong type"
    if kind == "time":
        opened = dt.datetime.fromisoformat(str(record["openTime"]).replace("Z", "+00:00"))
        earlier = opened - dt.timedelta(hours=1)
        record["closeTime"] = earlier.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return "closeTime before openTime"
    value = bad_value
    if bad_field == "lots" and isinstance(record.get("lots"), int | float):
        value = -abs(float(record["lots"])) or -1.0
    record[bad_field] = value
    return f"impossible {bad_field}"


def conflicting_copy(record: dict[str, Any], endpoint: str, rng: random.Random) -> dict[str, Any]:
    """A copy of ``record`` with the same natural key and one value changed."""
    name = RECORD_DAMAGE[endpoint][0]
    copy = dict(record)
    old = copy.get(name)
    if isinstance(old, int | float) and not isinstance(old, bool):
        copy[name] = round(float(old) + rng.choice([-1, 1]) * rng.randint(1, 50_000) / 100.0, 2)
    else:
        copy[name] = round(rng.uniform(-1.0, 1.0), 3)
    return copy


EXTRA_FIELDS = b',"riskEngineVersion":"4.2.1","x_internal_flags":{"reviewed":false,"score":0.37}'
