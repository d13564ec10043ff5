"""Risk API client: pooled httpx, one retry layer, a shared allowance, a circuit breaker.

The only HTTP retry layer of the platform lives here (tenacity): 429 (honouring Retry-After),
5xx, timeouts and HTTP 200s with a failed status are retried with exponential backoff and jitter,
within a bounded total time. The per-key allowance is a limiter that every process using the key
shares (``daily_profit.api.limits``); the breaker stops hammering an API that keeps failing, and
Dagster's step retry takes over from there.

``fetch_all`` pages through an endpoint with ``include-total``, de-duplicates on the natural key
(identical repeats dropped and counted, conflicting repeats kept once and reported) and, when what
it kept falls short of the API's ``total``, re-pages with smaller pages to recover what offset
paging skipped before declaring the shortfall.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

import httpx
import orjson
import pybreaker
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from daily_profit.api.errors import (
    RiskApiAuthError,
    RiskApiCircuitOpen,
    RiskApiError,
    RiskApiPermanentError,
    RiskApiRateLimited,
    RiskApiTransientError,
)

# Largest page each endpoint serves (contract): 500 for accounts, 1000 for metrics and trades.
MAX_PAGE_SIZE: dict[str, int] = {
    "accounts": 500,
    "v2/metrics/alltime": 1000,
    "v2/metrics/daily": 1000,
    "v2/metrics/hourly": 1000,
    "v2/trades/closed": 1000,
    "v2/trades/open": 1000,
    "v2/regimes/daily": 1000,
}

# Fields that identify a record for de-duplication, in the API's own names. Metrics use the
# account's identity triple rather than accountId because accountId may be null on a row.
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "accounts": ("login", "mt_version", "broker"),
    "v2/metrics/alltime": ("login", "mt_version", "broker"),
    "v2/metrics/daily": ("login", "mt_version", "broker", "date"),
    "v2/metrics/hourly": ("login", "mt_version", "broker", "date", "hour"),
    "v2/trades/closed": ("broker", "platform", "position", "tradeDate"),
    "v2/trades/open": ("broker", "platform", "position", "tradeDate"),
    "v2/regimes/daily": ("date",),
}

TRANSIENT_STATUS = frozenset({500, 502, 503, 504})


class AllowanceLimiter(Protocol):
    """Blocks until the API key's allowance admits one more request."""

    def acquire(self) -> None: ...


@dataclass(frozen=True)
class RetrySettings:
    """Bounds of the HTTP retry layer."""

    max_attempts: int = 8
    max_total_seconds: float = 120.0
    initial_backoff: float = 0.2
    max_backoff: float = 10.0
    jitter: float = 0.2


@dataclass(frozen=True)
class BreakerSettings:
    """Open after ``fail_max`` consecutive failed attempts (5xx/timeouts), for ``reset_seconds``."""

    fail_max: int = 12
    reset_seconds: float = 30.0


@dataclass
class CallStats:
    """What talking to the API cost; thread-safe counters."""

    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    transient_failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "calls": self.calls,
                "retries": self.retries,
                "rate_limited": self.rate_limited,
                "transient_failures": self.transient_failures,
            }


@dataclass(frozen=True)
class Page:
    """One page of an endpoint: the records and the envelope's counters."""

    records: list[dict[str, Any]]
    total: int | None
    skip: int
    limit: int
    count: int


@dataclass
class FetchResult:
    """Everything an endpoint served for one query, de-duplicated, with the accounting."""

    endpoint: str
    params: dict[str, str]
    records: list[dict[str, Any]]
    total: int
    identical_duplicates: int = 0
    conflicting_duplicates: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    recovered: int = 0
    recovery_passes: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def shortfall(self) -> int:
        """Records the API said it had but paging never delivered (0 when complete)."""
        return max(self.total - len(self.records), 0)


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


class _WaitHonouringRetryAfter:
    """Exponential backoff with jitter, but never shorter than the server's Retry-After."""

    def __init__(self, settings: RetrySettings) -> None:
        self._backoff = wait_exponential_jitter(
            initial=settings.initial_backoff, max=settings.max_backoff, jitter=settings.jitter
        )
        self._max = settings.max_backoff

    def __call__(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RiskApiRateLimited) and error.retry_after is not None:
            return max(min(error.retry_after, self._max * 3), backoff * 0.25)
        return backoff


class RiskApiClient:
    """Client of the Risk API contract (``shared/contracts/risk-api.md``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetrySettings | None = None,
        breaker: BreakerSettings | None = None,
        limiter: AllowanceLimiter | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_connections: int = 8,
        page_size: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.endswith("/"):
            base_url += "/"
        headers = {"apiKey": api_key, "Accept": "application/json", **(extra_headers or {})}
        self._http = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )
        self.base_url = base_url
        self._retry = retry or RetrySettings()
        breaker_settings = breaker or BreakerSettings()
        # 429 means "slow down", not "the API is down": it never trips the breaker.
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=breaker_settings.fail_max,
            reset_timeout=breaker_settings.reset_seconds,
            exclude=[RiskApiRateLimited, RiskApiPermanentError],
        )
        self._limiter = limiter
        # Pages smaller than the contract's maximum, when an API struggles with large ones.
        self.page_size = page_size
        self.stats = CallStats()

    def __enter__(self) -> RiskApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def breaker_state(self) -> str:
        return str(self._breaker.current_state)

    # -- one request -----------------------------------------------------------------------------

    def _attempt(self, endpoint: str, params: Mapping[str, str]) -> dict[str, Any]:
        if self._limiter is not None:
            self._limiter.acquire()
        self.stats.add(calls=1)
        try:
            response = self._http.get(endpoint, params=params)
        except httpx.TimeoutException as exc:
            raise RiskApiTransientError(
                f"timed out ({exc.__class__.__name__})", endpoint=endpoint, params=params
            ) from None
        except httpx.TransportError as exc:
            raise RiskApiTransientError(
                f"connection failed ({exc.__class__.__name__})", endpoint=endpoint, params=params
            ) from None
        status = response.status_code
        if status == 429:
            raise RiskApiRateLimited(
                "rate limited",
                retry_after=_retry_after_seconds(response),
                endpoint=endpoint,
                params=params,
                status_code=status,
            )
        body = self._decode(response, endpoint, params)
        if status in TRANSIENT_STATUS:
            raise RiskApiTransientError(
                _error_message(body), endpoint=endpoint, params=params, status_code=status
            )
        if status == 401:
            raise RiskApiAuthError(
                _error_message(body), endpoint=endpoint, params=params, status_code=status
            )
        if status >= 400:
            raise RiskApiPermanentError(
                _error_message(body), endpoint=endpoint, params=params, status_code=status
            )
        if not isinstance(body, dict) or body.get("Status") != "ok":
            # A 200 whose Status is not "ok" is a failure the API reports in-band.
            raise RiskApiTransientError(
                f"failed status {body.get('Status')!r}: {_error_message(body)}"
                if isinstance(body, dict)
                else "response is not a JSON object",
                endpoint=endpoint,
                params=params,
                status_code=status,
            )
        return body

    @staticmethod
    def _decode(response: httpx.Response, endpoint: str, params: Mapping[str, str]) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            error = (
                RiskApiTransientError
                if response.status_code in TRANSIENT_STATUS or response.status_code < 300
                else RiskApiPermanentError
            )
            raise error(
                "response body is not JSON",
                endpoint=endpoint,
                params=params,
                status_code=response.status_code,
            ) from None

    def _guarded_attempt(self, endpoint: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            return self._breaker.call(self._attempt, endpoint, params)
        except pybreaker.CircuitBreakerError:
            raise RiskApiCircuitOpen(
                "circuit breaker open after repeated failures; failing fast",
                endpoint=endpoint,
                params=params,
            ) from None
        except RiskApiTransientError as exc:
            self.stats.add(
                rate_limited=int(isinstance(exc, RiskApiRateLimited)),
                transient_failures=int(not isinstance(exc, RiskApiRateLimited)),
            )
            raise

    def request(self, endpoint: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET one endpoint with retries; returns the decoded success envelope."""
        params = dict(params or {})

        def count_retry(state: RetryCallState) -> None:
            self.stats.add(retries=1)

        retrying = Retrying(
            retry=retry_if_exception_type(RiskApiTransientError),
            wait=_WaitHonouringRetryAfter(self._retry),
            stop=stop_after_attempt(self._retry.max_attempts)
            | stop_after_delay(self._retry.max_total_seconds),
            before_sleep=count_retry,
            reraise=True,
        )
        return retrying(self._guarded_attempt, endpoint, params)

    def get_page(
        self,
        endpoint: str,
        params: Mapping[str, str] | None = None,
        *,
        skip: int = 0,
        limit: int | None = None,
    ) -> Page:
        """One page of ``endpoint`` at offset ``skip``, with the API's total."""
        limit = limit or MAX_PAGE_SIZE.get(endpoint, 1000)
        query = {**(params or {}), "skip": str(skip), "limit": str(limit), "include-total": "1"}
        body = self.request(endpoint, query)
        data = body.get("Data")
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise RiskApiTransientError(
                "envelope has no Data.data list", endpoint=endpoint, params=query
            )
        records = data["data"]
        total = data.get("total")
        return Page(
            records=records,
            total=total if isinstance(total, int) else None,
            skip=skip,
            limit=limit,
            count=len(records),
        )

    # -- a whole query ---------------------------------------------------------------------------

    def fetch_all(
        self,
        endpoint: str,
        params: Mapping[str, str] | None = None,
        *,
        page_size: int | None = None,
        concurrency: int = 4,
        recovery_passes: int = 4,
        compare_fields: frozenset[str] | None = None,
    ) -> FetchResult:
        """Every record of a query: paged, de-duplicated, skipped records recovered if possible.

        Two records with the same natural key are identical repeats when they agree on
        ``compare_fields`` (default: every field); fields outside it, such as ones the contract
        does not name, never make a conflict. When the kept records fall short of ``total``,
        up to ``recovery_passes`` re-reads with ever smaller pages look for what was skipped.
        """
        started = time.perf_counter()
        before = self.stats.snapshot()
        params = dict(params or {})
        page_size = min(
            page_size or self.page_size or MAX_PAGE_SIZE[endpoint], MAX_PAGE_SIZE[endpoint]
        )
        dedup = _Deduplicator(NATURAL_KEYS[endpoint], compare_fields)

        first = self.get_page(endpoint, params, skip=0, limit=page_size)
        if first.total is None:
            raise RiskApiTransientError(
                "include-total=1 returned no total", endpoint=endpoint, params=params
            )
        total = first.total
        dedup.add_all(first.records)
        self._page_through(
            endpoint, params, dedup, page_size, total, first_skip=page_size, concurrency=concurrency
        )

        passes = 0
        kept_after_first_pass = dedup.kept
        # Each re-read uses smaller pages than the last: a record that slipped between two
        # pages is unlikely to slip again at other page boundaries.
        smaller = page_size
        for _ in range(recovery_passes):
            if dedup.kept >= total:
                break
            smaller = max(smaller // 2, 1)
            passes += 1
            self._page_through(
                endpoint,
                params,
                dedup,
                smaller,
                total,
                first_skip=0,
                concurrency=concurrency,
                rereading=True,
            )

        after = self.stats.snapshot()
        return FetchResult(
            endpoint=endpoint,
            params=params,
            records=dedup.records(),
            total=total,
            identical_duplicates=dedup.identical,
            conflicting_duplicates=len(dedup.conflicts),
            conflicts=dedup.conflicts,
            recovered=dedup.kept - kept_after_first_pass,
            recovery_passes=passes,
            stats={k: after[k] - before[k] for k in after},
            seconds=time.perf_counter() - started,
        )

    def _page_through(
        self,
        endpoint: str,
        params: Mapping[str, str],
        dedup: _Deduplicator,
        page_size: int,
        total: int,
        *,
        first_skip: int,
        concurrency: int,
        rereading: bool = False,
    ) -> None:
        offsets = list(range(first_skip, total, page_size))
        if not offsets:
            return

        def fetch(skip: int) -> list[dict[str, Any]]:
            return self.get_page(endpoint, params, skip=skip, limit=page_size).records

        if concurrency <= 1 or len(offsets) == 1:
            for skip in offsets:
                dedup.add_all(fetch(skip), rereading=rereading)
            return
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="risk-api") as pool:
            # map() yields in offset order, so de-duplication keeps the first-served copy.
            for records in pool.map(fetch, offsets):
                dedup.add_all(records, rereading=rereading)


class _Deduplicator:
    """Keeps the first copy of each natural key; counts identical and conflicting repeats."""

    def __init__(
        self, key_fields: tuple[str, ...], compare_fields: frozenset[str] | None = None
    ) -> None:
        self._key_fields = key_fields
        # Always a tuple (itemgetter of one field returns the bare value).
        self._get_key = (
            itemgetter(*key_fields) if len(key_fields) > 1 else lambda r: (r[key_fields[0]],)
        )
        self._compare_fields = compare_fields
        # key -> (first record, its canonical body or None until a repeat of the key needs it)
        self._kept: dict[bytes, tuple[dict[str, Any], bytes | None]] = {}
        self._unkeyed: list[Any] = []
        self.identical = 0
        self.conflicts: list[dict[str, Any]] = []
        self._conflicting_bodies: set[tuple[bytes, bytes]] = set()

    @property
    def kept(self) -> int:
        return len(self._kept) + len(self._unkeyed)

    def _body(self, record: dict[str, Any]) -> bytes:
        """Canonical JSON of the compared fields: what makes two copies identical."""
        compared = (
            record
            if self._compare_fields is None
            else {k: v for k, v in record.items() if k in self._compare_fields}
        )
        return orjson.dumps(compared, option=orjson.OPT_SORT_KEYS)

    def add_all(self, records: list[Any], *, rereading: bool = False) -> None:
        """Add served records; on a re-read (recovery pass) identical repeats are expected."""
        # Speed (benchmarks/ingest_e2e.py): the canonical body of a record is computed only
        # when its key repeats (or is incomplete), not for every record. Serialising every
        # record's body capped a day's paging at ~55,000 records/s under the GIL; the results
        # (kept copy, identical/conflicting counts) are the same.
        fields = self._key_fields
        kept = self._kept
        get_key = self._get_key
        for record in records:
            if not isinstance(record, dict):
                # Kept as-is so the parser quarantines it with a reason; never dropped here.
                self._unkeyed.append(record)
                continue
            try:
                key_values = get_key(record)  # a tuple, in C
            except KeyError:
                key_values = tuple(record.get(f) for f in fields)
            body: bytes | None = None
            if None in key_values:
                # Without its key a record cannot be matched: identical bodies are still repeats.
                body = self._body(record)
                key = b"unkeyed:" + body
            else:
                key = orjson.dumps(key_values)
            seen = kept.get(key)
            if seen is None:
                kept[key] = (record, body)
                continue
            seen_body = seen[1]
            if seen_body is None:
                seen_body = self._body(seen[0])
                kept[key] = (seen[0], seen_body)
            if body is None:
                body = self._body(record)
            if seen_body == body:
                self.identical += not rereading
            elif (key, body) not in self._conflicting_bodies:
                # The same conflicting copy served again (a re-read) is still one conflict.
                self._conflicting_bodies.add((key, body))
                self.conflicts.append(
                    {
                        "key": dict(zip(fields, key_values, strict=True)),
                        "kept": seen[0],
                        "dropped": record,
                    }
                )

    def records(self) -> list[Any]:
        return [record for record, _ in self._kept.values()] + self._unkeyed


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("Error") or body.get("error") or "no error message")
    return "no error message"


def dates_param(days: Sequence[Any]) -> str:
    """The contract's comma-separated YYYYMMDD list."""
    return ",".join(d.strftime("%Y%m%d") for d in days)


__all__ = [
    "MAX_PAGE_SIZE",
    "NATURAL_KEYS",
    "AllowanceLimiter",
    "BreakerSettings",
    "CallStats",
    "FetchResult",
    "Page",
    "RetrySettings",
    "RiskApiClient",
    "RiskApiError",
    "dates_param",
]
