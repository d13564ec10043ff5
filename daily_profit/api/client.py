"""Risk API client: pooled httpx, one retry layer, a shared allowance, a circuit breaker.

The only HTTP retry layer of the platform lives here (tenacity): 429 (honouring Retry-After),
5xx, timeouts and HTTP 200s with a failed status are retried with exponential backoff and jitter,
within a bounded total time. The per-key allowance is a limiter that every process using the key
shares (``daily_profit.api.limits``); the breaker stops hammering an API that keeps failing, and
Dagster's step retry takes over from there.

``fetch_all`` pages through an endpoint with ``include-total``, de-duplicates on the natural key
by the served-last rule of :mod:`daily_profit.served` (identical repeats dropped and counted; of
conflicting copies the last served is kept and the others are handed back for the quarantine)
and, when what it kept falls short of the API's ``total``, re-reads with smaller pages, bounded
in calls and time, to recover what offset paging skipped before declaring the shortfall.

Given the record type of the contract's fields (``record_type``, Arrow types), pages are read
from their bytes straight into columns by Arrow's JSON reader, with no Python object per record
(``benchmarks/ingest_e2e.py``: building dicts was most of the client's CPU). The reader is
strict: a value of another JSON type, a field the contract does not name, a field given twice,
a record that is not an object, all refuse the page. Such a page, one whose nullable values
cannot be told from absent fields, and a query whose natural keys repeat or fall short of the
total are handled record by record, as below: the rare faulty page costs itself the decoding
into dicts, and gets the same reasons, counts and quarantine.

A page holding a ``NaN`` or ``Infinity`` literal is not JSON; it is decoded leniently and each
record holding one comes back as a :class:`~daily_profit.served.FlaggedRecord`, so it costs only
itself. An envelope without ``Data.data`` or ``Data.total`` is a permanent error.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

import httpx
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pybreaker
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
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
from daily_profit.served import FlaggedRecord, ServedLast

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

# The contract's natural keys, in the API's own names: what identifies a record for
# de-duplication.
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "accounts": ("login", "mt_version", "broker"),
    "v2/metrics/alltime": ("accountId",),
    "v2/metrics/daily": ("accountId", "date"),
    "v2/metrics/hourly": ("accountId", "date", "hour"),
    "v2/trades/closed": ("broker", "platform", "position", "tradeDate"),
    "v2/trades/open": ("broker", "platform", "position", "tradeDate"),
    "v2/regimes/daily": ("date",),
}

# A metrics row may come with a null accountId (contract): while paging, such a row is told
# apart by the account's identity triple instead. The raw layer resolves the id afterwards and
# applies the same rule again on the contract's key.
FALLBACK_KEYS: dict[str, tuple[str, ...]] = {
    "v2/metrics/alltime": ("login", "mt_version", "broker"),
    "v2/metrics/daily": ("login", "mt_version", "broker", "date"),
    "v2/metrics/hourly": ("login", "mt_version", "broker", "date", "hour"),
}

TRANSIENT_STATUS = frozenset({500, 502, 503, 504})


class AllowanceLimiter(Protocol):
    """Blocks until the API key's allowance admits one more request."""

    def acquire(self) -> None: ...


@dataclass(frozen=True)
class RetrySettings:
    """Bounds of the HTTP retry layer.

    ``max_total_seconds`` bounds one request with its retries and waits, ``fetch_budget_seconds``
    one whole query (``fetch_all``, re-reads included). A 429's ``Retry-After`` is honoured up
    to ``max_retry_after`` seconds; one that would end beyond either budget fails the request
    at once instead of sleeping past it.
    """

    max_attempts: int = 8
    max_total_seconds: float = 600.0
    initial_backoff: float = 0.2
    max_backoff: float = 10.0
    jitter: float = 0.2
    max_retry_after: float = 300.0
    fetch_budget_seconds: float = 1800.0

    @classmethod
    def from_settings(cls, settings: Any) -> RetrySettings:
        """The bounds configured in ``daily_profit.config.Settings``."""
        return cls(
            max_total_seconds=settings.risk_api_request_budget_s,
            max_retry_after=settings.risk_api_max_retry_after_s,
            fetch_budget_seconds=settings.risk_api_fetch_budget_s,
        )


@dataclass(frozen=True)
class RereadSettings:
    """Bounds of the re-reads that look for records offset paging skipped."""

    max_passes: int = 4
    max_calls: int = 200
    max_seconds: float = 300.0

    @classmethod
    def from_settings(cls, settings: Any) -> RereadSettings:
        return cls(
            max_passes=settings.risk_api_reread_max_passes,
            max_calls=settings.risk_api_reread_max_calls,
            max_seconds=settings.risk_api_reread_max_s,
        )


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
    """One page of an endpoint: the records and the envelope's counters.

    A page read column-wise (``columns``: one Arrow column per contract field) has no
    ``records``; :meth:`as_records` makes them when a query needs them one by one.
    """

    records: list[dict[str, Any]]
    total: int | None
    skip: int
    limit: int
    count: int
    columns: pa.Table | None = None

    def as_records(self) -> list[Any]:
        return self.records if self.columns is None else self.columns.to_pylist()


@dataclass
class FetchResult:
    """Everything an endpoint served for one query, de-duplicated, with the accounting.

    ``records`` holds one copy per natural key (the last served), ``superseded`` every other
    conflicting copy, for the quarantine: together they are everything served, identical
    repeats aside (``identical_duplicates``). Either may hold a
    :class:`~daily_profit.served.FlaggedRecord` or a non-object the page served. When the
    query was read column-wise from start to end (every page plain, no key repeated, nothing
    short of the total), the records are in ``columns`` instead and ``records`` is empty.
    """

    endpoint: str
    params: dict[str, str]
    records: list[Any]
    total: int
    columns: pa.Table | None = None
    identical_duplicates: int = 0
    conflicting_duplicates: int = 0
    # One entry per superseded copy: {"key": {field: value}, "kept": record, "dropped": record}.
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    superseded: list[Any] = field(default_factory=list)
    recovered: int = 0
    recovery_passes: int = 0
    # API calls the re-reads made, and why they stopped short of their passes (None: they did
    # not, or none was needed).
    rereads: int = 0
    reread_stopped: str | None = None
    stats: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def kept(self) -> int:
        """One per natural key: the records landed or quarantined on their own merits."""
        return self.columns.num_rows if self.columns is not None else len(self.records)

    @property
    def served(self) -> int:
        """Records served, identical repeats not counted: kept plus superseded copies."""
        return self.kept + len(self.superseded)

    @property
    def shortfall(self) -> int:
        """Records the API said it had but paging never delivered (0 when complete)."""
        return max(self.total - self.kept, 0)


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _honoured_retry_after(error: BaseException | None, settings: RetrySettings) -> float | None:
    """The wait a 429 asks for, capped at the configured maximum; None when it asks none."""
    if isinstance(error, RiskApiRateLimited) and error.retry_after is not None:
        return min(error.retry_after, settings.max_retry_after)
    return None


class _WaitHonouringRetryAfter:
    """Exponential backoff with jitter, but never shorter than the server's Retry-After."""

    def __init__(self, settings: RetrySettings) -> None:
        self._backoff = wait_exponential_jitter(
            initial=settings.initial_backoff, max=settings.max_backoff, jitter=settings.jitter
        )
        self._settings = settings

    def __call__(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        asked = _honoured_retry_after(
            state.outcome.exception() if state.outcome else None, self._settings
        )
        return backoff if asked is None else max(asked, backoff * 0.25)


class _StopAtBudget:
    """Stop retrying after the attempts, at the deadline, or when a Retry-After outlasts it."""

    def __init__(self, settings: RetrySettings, deadline: float) -> None:
        self._settings = settings
        self._deadline = deadline
        self.why: str | None = None

    def __call__(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self._settings.max_attempts:
            return True
        left = self._deadline - time.monotonic()
        if left <= 0:
            return True
        asked = _honoured_retry_after(
            state.outcome.exception() if state.outcome else None, self._settings
        )
        if asked is not None and asked > left:
            self.why = f"Retry-After {asked:g} s outlasts the {left:.0f} s left of the time budget"
            return True
        return False


class RiskApiClient:
    """Client of the Risk API contract (``shared/contracts/risk-api.md``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetrySettings | None = None,
        reread: RereadSettings | None = None,
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
        self._reread = reread or RereadSettings()
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

    def _attempt(
        self,
        endpoint: str,
        params: Mapping[str, str],
        record_type: pa.StructType | None = None,
    ) -> dict[str, Any] | _ColumnPage:
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
        if status == 200 and record_type is not None:
            read = _column_page(response.content, record_type)
            if read is not None:
                return read
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
            body = _lenient_decode(response.content)
            if body is not None:
                return body
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

    def _guarded_attempt(
        self,
        endpoint: str,
        params: Mapping[str, str],
        record_type: pa.StructType | None = None,
    ) -> dict[str, Any] | _ColumnPage:
        try:
            if self._breaker.current_state != pybreaker.STATE_CLOSED:
                # Open: fails fast, or lets one trial through once the timeout is over
                # (half-open trials are meant to go one at a time, under the breaker's lock).
                return self._breaker.call(self._attempt, endpoint, params, record_type)
            # pybreaker holds its lock for the whole wrapped call (danielfm/pybreaker#3), so
            # the pages a query keeps in flight would be fetched one at a time: while closed,
            # the request runs outside the breaker and only its outcome goes through it.
            outcome = _Outcome.of(self._attempt, endpoint, params, record_type)
            return self._breaker.call(outcome.replay)
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

    def request(
        self,
        endpoint: str,
        params: Mapping[str, str] | None = None,
        *,
        deadline: float | None = None,
        record_type: pa.StructType | None = None,
    ) -> dict[str, Any] | _ColumnPage:
        """GET one endpoint with retries; returns the decoded success envelope.

        ``deadline`` (``time.monotonic()``) ends the retries of a request that is part of a
        larger budget (a whole query); the request's own budget applies too. With
        ``record_type``, a plain success page comes back as columns (:class:`_ColumnPage`).
        """
        params = dict(params or {})
        own = time.monotonic() + self._retry.max_total_seconds
        stop = _StopAtBudget(self._retry, own if deadline is None else min(own, deadline))

        def count_retry(state: RetryCallState) -> None:
            self.stats.add(retries=1)

        retrying = Retrying(
            retry=retry_if_exception_type(RiskApiTransientError),
            wait=_WaitHonouringRetryAfter(self._retry),
            stop=stop,
            before_sleep=count_retry,
            reraise=True,
        )
        try:
            return retrying(self._guarded_attempt, endpoint, params, record_type)
        except RiskApiRateLimited as exc:
            if stop.why is None:
                raise
            raise RiskApiRateLimited(
                f"rate limited; {stop.why}",
                retry_after=exc.retry_after,
                endpoint=endpoint,
                params=params,
                status_code=exc.status_code,
            ) from None

    def get_page(
        self,
        endpoint: str,
        params: Mapping[str, str] | None = None,
        *,
        skip: int = 0,
        limit: int | None = None,
        deadline: float | None = None,
        record_type: pa.StructType | None = None,
    ) -> Page:
        """One page of ``endpoint`` at offset ``skip``, with the API's total.

        An envelope without a ``Data.data`` list or an integer ``Data.total`` (asked for with
        ``include-total=1``) breaks the contract: a permanent error naming the call. With
        ``record_type``, a plain page is read into ``Page.columns`` (module docstring).
        """
        limit = limit or MAX_PAGE_SIZE.get(endpoint, 1000)
        query = {**(params or {}), "skip": str(skip), "limit": str(limit), "include-total": "1"}
        body = self.request(endpoint, query, deadline=deadline, record_type=record_type)
        if isinstance(body, _ColumnPage):
            n = body.columns.num_rows
            return Page(
                records=[], total=body.total, skip=skip, limit=limit, count=n, columns=body.columns
            )
        data = body.get("Data")
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise RiskApiPermanentError(
                "envelope has no Data.data list", endpoint=endpoint, params=query
            )
        records = data["data"]
        total = data.get("total")
        if type(total) is not int:
            raise RiskApiPermanentError(
                f"envelope has no integer Data.total although include-total=1 was asked "
                f"(got {type(total).__name__})",
                endpoint=endpoint,
                params=query,
            )
        return Page(
            records=records,
            total=total,
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
        recovery_passes: int | None = None,
        compare_fields: frozenset[str] | None = None,
        record_type: pa.StructType | None = None,
    ) -> FetchResult:
        """Every record of a query: paged, de-duplicated, skipped records recovered if possible.

        Two copies with the same natural key are identical repeats when they agree on
        ``compare_fields`` (default: every field); fields outside it, such as ones the contract
        does not name, never make a conflict. Of conflicting copies the last served is kept
        (``daily_profit.served``). When the kept records fall short of ``total``, re-reads with
        ever smaller pages look for what was skipped, within the re-read bounds
        (``RereadSettings``; ``recovery_passes`` overrides its passes) and the query's time
        budget (``RetrySettings.fetch_budget_seconds``).

        ``record_type`` (the contract's fields as an Arrow struct, ``SourceSpec.record_type``)
        reads pages column-wise; the result then holds ``columns`` when the whole query was
        plain (module docstring), and records as before otherwise.
        """
        started = time.perf_counter()
        deadline = time.monotonic() + self._retry.fetch_budget_seconds
        before = self.stats.snapshot()
        params = dict(params or {})
        page_size = min(
            page_size or self.page_size or MAX_PAGE_SIZE[endpoint], MAX_PAGE_SIZE[endpoint]
        )
        dedup = _Deduplicator(NATURAL_KEYS[endpoint], FALLBACK_KEYS.get(endpoint), compare_fields)

        first = self.get_page(
            endpoint, params, skip=0, limit=page_size, deadline=deadline, record_type=record_type
        )
        assert first.total is not None  # get_page refuses an envelope without it
        total = first.total
        pages = [first]
        self._page_through(
            endpoint,
            params,
            pages.append,
            page_size,
            total,
            first_skip=page_size,
            concurrency=concurrency,
            deadline=deadline,
            record_type=record_type,
        )
        columns = _distinct_columns(pages, dedup.key_fields, dedup.fallback_fields, total)
        if columns is not None:
            after = self.stats.snapshot()
            return FetchResult(
                endpoint=endpoint,
                params=params,
                records=[],
                columns=columns,
                total=total,
                stats={k: after[k] - before[k] for k in after},
                seconds=time.perf_counter() - started,
            )
        # Served-last, re-reads and flagged records are settled record by record.
        for page in pages:
            dedup.add_all(page.as_records())

        passes = 0
        kept_after_first_pass = dedup.kept
        budget = _RereadBudget(
            calls=self._reread.max_calls,
            deadline=min(deadline, time.monotonic() + self._reread.max_seconds),
        )
        max_passes = self._reread.max_passes if recovery_passes is None else recovery_passes
        # Each re-read uses smaller pages than the last: a record that slipped between two
        # pages is unlikely to slip again at other page boundaries.
        smaller = page_size
        for _ in range(max_passes):
            if dedup.kept >= total or budget.stopped is not None:
                break
            smaller = max(smaller // 2, 1)
            passes += 1
            self._page_through(
                endpoint,
                params,
                lambda page: dedup.add_all(page.records, rereading=True),
                smaller,
                total,
                first_skip=0,
                concurrency=concurrency,
                deadline=deadline,
                budget=budget,
            )

        after = self.stats.snapshot()
        superseded = dedup.superseded()
        return FetchResult(
            endpoint=endpoint,
            params=params,
            records=dedup.records(),
            total=total,
            identical_duplicates=dedup.identical,
            conflicting_duplicates=len(superseded),
            conflicts=[
                {"key": key, "kept": kept, "dropped": dropped} for key, dropped, kept in superseded
            ],
            superseded=[dropped for _, dropped, _ in superseded],
            recovered=dedup.kept - kept_after_first_pass,
            recovery_passes=passes,
            rereads=budget.used,
            reread_stopped=budget.stopped if dedup.kept < total else None,
            stats={k: after[k] - before[k] for k in after},
            seconds=time.perf_counter() - started,
        )

    def _page_through(
        self,
        endpoint: str,
        params: Mapping[str, str],
        add: Callable[[Page], None],
        page_size: int,
        total: int,
        *,
        first_skip: int,
        concurrency: int,
        deadline: float,
        budget: _RereadBudget | None = None,
        record_type: pa.StructType | None = None,
    ) -> None:
        """Fetch the pages from ``first_skip`` on and hand each to ``add``, in offset order."""
        offsets = list(range(first_skip, total, page_size))
        rereading = budget is not None

        def fetch(skip: int) -> Page:
            return self.get_page(
                endpoint,
                params,
                skip=skip,
                limit=page_size,
                deadline=deadline,
                record_type=record_type,
            )

        # A re-read goes in rounds of ``concurrency`` pages so its bounds are checked as it
        # goes; the first pass is bounded by the query's deadline alone.
        step = max(concurrency, 1) if rereading else len(offsets)
        for start in range(0, len(offsets), max(step, 1)):
            chunk = offsets[start : start + step]
            if budget is not None:
                chunk = budget.take(chunk)
                if not chunk:
                    return
            if concurrency <= 1 or len(chunk) == 1:
                for skip in chunk:
                    add(fetch(skip))
                continue
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="risk-api") as pool:
                # map() yields in offset order: "served last" is the last in offset order.
                for page in pool.map(fetch, chunk):
                    add(page)


@dataclass
class _RereadBudget:
    """What the re-reads of one query may still spend: calls and time."""

    calls: int
    deadline: float
    used: int = 0
    stopped: str | None = None

    def take(self, offsets: list[int]) -> list[int]:
        """The offsets of the next round that the budget allows; records why it stops."""
        if time.monotonic() >= self.deadline:
            self.stopped = self.stopped or "time limit"
            return []
        allowed = offsets[: max(self.calls - self.used, 0)]
        if len(allowed) < len(offsets):
            self.stopped = "call limit"
        self.used += len(allowed)
        return allowed


class _Deduplicator:
    """The served-last rule over everything a query served (``daily_profit.served``)."""

    def __init__(
        self,
        key_fields: tuple[str, ...],
        fallback_fields: tuple[str, ...] | None = None,
        compare_fields: frozenset[str] | None = None,
    ) -> None:
        self.key_fields = self._key_fields = key_fields
        self.fallback_fields = self._fallback_fields = fallback_fields
        # Always a tuple (itemgetter of one field returns the bare value).
        self._get_key = (
            itemgetter(*key_fields) if len(key_fields) > 1 else lambda r: (r[key_fields[0]],)
        )
        self._compare_fields = compare_fields
        self._served: ServedLast[Any] = ServedLast()
        self._items = 0

    @property
    def kept(self) -> int:
        """Distinct records kept so far (one per key)."""
        return len(self._served)

    @property
    def identical(self) -> int:
        return self._served.identical

    def _body(self, record: Any) -> bytes:
        """Canonical JSON of the compared fields: what makes two copies identical."""
        if isinstance(record, FlaggedRecord):
            return b"flagged:" + record.raw_text.encode("utf-8", "surrogatepass")
        if not isinstance(record, dict):
            return b"item:" + json.dumps(record, sort_keys=True, default=repr).encode()
        compared = (
            record
            if self._compare_fields is None
            else {k: v for k, v in record.items() if k in self._compare_fields}
        )
        return orjson.dumps(compared, option=orjson.OPT_SORT_KEYS)

    def _key(self, record: Any) -> tuple[Any, ...]:
        inner = record.record if isinstance(record, FlaggedRecord) else record
        if not isinstance(inner, dict):
            # Not an object: nothing tells two of them apart, so each one served is one item.
            self._items += 1
            return ("item", self._items)
        try:
            values = self._get_key(inner)  # a tuple, in C
        except KeyError:
            values = tuple(inner.get(f) for f in self._key_fields)
        if None not in values and _hashable(values):
            return values
        if self._fallback_fields is not None:
            fallback = tuple(inner.get(f) for f in self._fallback_fields)
            if None not in fallback and _hashable(fallback):
                return ("identity", *fallback)
        # Without its key a record cannot be matched: identical bodies are still repeats.
        return ("unkeyed", self._body(record))

    def add_all(self, records: list[Any], *, rereading: bool = False) -> None:
        """Add served records; on a re-read (recovery pass) identical repeats are expected."""
        # Speed (benchmarks/ingest_e2e.py): the canonical body of a record is computed only
        # when its key repeats, not for every record.
        served, key_of, body = self._served, self._key, self._body
        for record in records:
            if rereading and not isinstance(
                record.record if isinstance(record, FlaggedRecord) else record, dict
            ):
                # A re-read serves again positions already read: a non-object there cannot
                # be told from one already counted, nor recover anything.
                continue
            served.add(key_of(record), record, body, rereading=rereading)

    def records(self) -> list[Any]:
        return self._served.kept()

    def superseded(self) -> list[tuple[dict[str, Any], Any, Any]]:
        """(key by field, superseded copy, kept copy) of every conflicting copy."""
        out = []
        for key, dropped, kept in self._served.superseded():
            fields = self._key_fields
            values: tuple[Any, ...] = key  # type: ignore[assignment]
            if key and key[0] == "identity":
                fields, values = self._fallback_fields or (), key[1:]  # type: ignore[index]
            out.append((dict(zip(fields, values, strict=False)), dropped, kept))
        return out


@dataclass(frozen=True)
class _Outcome:
    """What one request returned or raised, replayed inside the breaker to count it."""

    value: Any = None
    error: Exception | None = None

    @classmethod
    def of(cls, attempt: Callable[..., Any], *args: Any) -> _Outcome:
        try:
            return cls(value=attempt(*args))
        except Exception as exc:
            return cls(error=exc)

    def replay(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


@dataclass(frozen=True)
class _ColumnPage:
    """A success page read column-wise: ``Data.data`` as one Arrow column per contract field."""

    total: int
    columns: pa.Table


# Members of the envelope the reader types itself; any other must be a plain value.
_ENVELOPE = ("Status", "Data")
_DATA = ("total", "data")


def _column_page(content: bytes, record_type: pa.StructType) -> _ColumnPage | None:
    """The page as columns, or None when it is not plain and must be read record by record.

    Plain: one JSON document whose ``Status`` is ok, with an integer ``Data.total`` and a
    ``Data.data`` array of objects holding exactly the contract's fields, each value of its
    JSON type or null, no NaN or infinity, and every field written in every record. Arrow's
    reader does not tell a null from an absent field, so when there are nulls the keys are
    counted: ``":`` not after a backslash only ever ends an object key (a quote inside a string
    is escaped), the records are flat and the envelope's other members are plain values.
    """
    schema = pa.schema(
        [
            ("Status", pa.string()),
            ("Data", pa.struct([("total", pa.int64()), ("data", pa.list_(record_type))])),
        ]
    )
    try:
        table = pa_json.read_json(
            pa.BufferReader(content),
            # One block for the whole body: a page is one line.
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(content) + 64),
            parse_options=pa_json.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="infer"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != 1 or table.column("Status")[0].as_py() != "ok":
        return None
    data_type = table.schema.field("Data").type
    extra = [table.schema.field(n).type for n in table.column_names if n not in _ENVELOPE]
    extra += [data_type.field(i).type for i in range(data_type.num_fields)][len(_DATA) :]
    if any(pa.types.is_nested(t) for t in extra):
        return None
    envelope = table.column("Data").combine_chunks()
    total, data = envelope.field("total"), envelope.field("data")
    if envelope.null_count or total.null_count or data.null_count:
        return None
    records = data.flatten()
    if records.type != record_type or records.null_count:
        return None
    columns = pa.Table.from_struct_array(records)
    nulls = False
    for column in columns.columns:
        nulls = nulls or column.null_count > 0
        if pa.types.is_floating(column.type):
            # NaN and infinity propagate into the sum (the reader lets them in).
            finite_sum = pc.sum(column).as_py()
            if finite_sum is not None and not math.isfinite(finite_sum):
                return None
    if nulls:
        # Every field in every record: as many compact keys as the envelope's members plus
        # fields x records (a key ending in a backslash only makes the count fall short).
        keys = content.count(b'":')
        if b"\\" in content:  # one scan for the key count unless a string escapes something
            keys -= content.count(b'\\":')
        members = table.num_columns + data_type.num_fields
        if keys != members + columns.num_rows * columns.num_columns:
            return None
    return _ColumnPage(total=total[0].as_py(), columns=columns)


def _distinct_columns(
    pages: list[Page],
    key_fields: tuple[str, ...],
    fallback_fields: tuple[str, ...] | None,
    total: int,
) -> pa.Table | None:
    """Every page's columns as one table when nothing needs the record-by-record rules.

    That is: every page was plain, each record has its whole natural key (or, for a metrics
    row without accountId, its whole identity: ``FALLBACK_KEYS``), no key was served twice
    (so there is nothing to settle by the served-last rule), and the API's total was reached
    (no re-read). None otherwise.
    """
    if any(page.columns is None for page in pages):
        return None
    table = pa.concat_tables([page.columns for page in pages]).combine_chunks()  # type: ignore[misc]
    if table.num_rows < total:
        return None
    frame = pl.from_arrow(table.select(list({*key_fields, *(fallback_fields or ())})))
    assert isinstance(frame, pl.DataFrame)
    keyed = frame.select(pl.all_horizontal(pl.col(key_fields).is_not_null()))[:, 0]
    groups = [(frame.filter(keyed), key_fields)]
    if not keyed.all():
        if fallback_fields is None:
            return None
        groups.append((frame.filter(~keyed), fallback_fields))
    for rows, fields in groups:
        keys = rows.select(fields)
        if keys.null_count().sum_horizontal().item():
            return None
        # A key part unique on its own makes the key unique (trades: the position).
        if any(keys[c].n_unique() == keys.height for c in reversed(fields)):
            continue
        if keys.is_duplicated().any():
            return None
    return table


def _hashable(values: tuple[Any, ...]) -> bool:
    try:
        hash(values)
    except TypeError:
        return False
    return True


def _non_finite_path(value: Any, path: str = "") -> tuple[str, float] | None:
    """The first place a lenient decode put a NaN or infinity, as ``field.sub[2]``."""
    if type(value) is float:
        return None if math.isfinite(value) else (path or "record", value)
    if isinstance(value, dict):
        for k, v in value.items():
            found = _non_finite_path(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_finite_path(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _lenient_decode(content: bytes) -> Any | None:
    """A body orjson refused, decoded by the standard library, which reads ``NaN``,
    ``Infinity`` and ``-Infinity`` literals; each record holding one is flagged. None when the
    body is not JSON even so."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return None
    data = body.get("Data") if isinstance(body, dict) else None
    records = data.get("data") if isinstance(data, dict) else None
    if not isinstance(records, list):
        return body
    for i, record in enumerate(records):
        found = _non_finite_path(record)
        if found is None:
            continue
        where, value = found
        literal = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        records[i] = FlaggedRecord(
            record=record,
            raw_text=json.dumps(record, ensure_ascii=False, separators=(",", ":")),
            problem=f"{where}: {literal} literal, not valid JSON",
        )
    return body


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
    "RereadSettings",
    "RetrySettings",
    "RiskApiClient",
    "RiskApiError",
    "dates_param",
]
