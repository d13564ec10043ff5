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
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from dataclasses import dataclass, field, fields, replace
from typing import Any

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
)


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
    # Seed of record-level choices (which record, which value), for reproducibility.
    record_seed: int = 0

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

    def decide(self, config: FaultConfig, signature: str) -> FaultDecision:
        if not config.any:
            return FaultDecision()
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
            return FaultDecision(
                delay=delay,
                shift=shift,
                conflict=conflict,
                malformed=malformed,
                extra_fields=extra,
                record_seed=record_seed,
            )

    def reset(self) -> None:
        with self._lock:
            self._state.clear()


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
