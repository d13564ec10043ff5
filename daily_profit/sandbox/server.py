"""The sandbox Risk API: the contract's endpoints over HTTP on loopback, backed by a simulation.

``SandboxServer(data)`` serves a :class:`~daily_profit.sandbox.simulation.SandboxData` with
starlette under uvicorn in a background thread, on a free port of 127.0.0.1::

    with SandboxServer(simulate(), api_key="sandbox-key") as server:
        httpx.get(server.base_url + "v2/metrics/daily",
                  params={"dates": "20250102", "limit": 1000, "include-total": 1},
                  headers={"apiKey": server.api_key})

Contract behaviour (``contracts/risk-api.md``): ``apiKey`` header auth (401 otherwise), the
``{"Status", "Data": {"total", "skip", "limit", "count", "data"}, "Time"}`` envelope, offset
paging (``limit`` 1..1000, 1..500 for ``accounts``; ``skip`` >= 0; ``include-total=1`` fills
``total``, which is absent otherwise), every filter of the contract's table, dates as YYYYMMDD.
Any problem with a parameter, including an unknown one, is a 400 with a message saying which
and why. Records come in a stable order of their natural key: date-major for dated endpoints,
i.e. (date, accountId[, hour]) for metrics (rows with a null accountId last within their day),
(tradeDate, broker, platform, numeric position) for trades, accountId for alltime and accounts.

``close-time-from``/``close-time-to`` (closed trades) take YYYYMMDD (a UTC day) or an ISO 8601
timestamp; both bounds are inclusive, a YYYYMMDD ``close-time-to`` covers that whole UTC day.
``symbols`` matches ``stdSymbol``. ``platforms`` matches ``mt_version``.

Rate limit: a token bucket per API key (default 15 requests/s, bursts of 20); an empty bucket
answers 429 with ``Retry-After`` in whole seconds. ``rate_limit=None`` lifts it.

Faults: see :mod:`daily_profit.sandbox.faults` (server-wide ``FaultConfig`` and the per-request
``X-Sandbox-Faults`` header). ``server.stats`` counts requests, statuses, 429s of the bucket,
faults injected by kind and records served.

Speed: each endpoint's records are JSON-encoded once (polars, on first use or ``warm()``) into
one Arrow buffer plus offsets; a page is a join of byte slices. Date filters are binary searches
over the date-sorted rows, value filters (``logins``, ``accountIds``, ``traders``, ``symbols``)
are dictionary lookups of row-index arrays, and the selection of a filter set is cached across
the pages of one listing.

Clock (``clock_path``, see :mod:`daily_profit.sandbox.clock`): the dated endpoints serve only
records dated up to the clock's day, and ``total`` counts only those; the clock file is read
again whenever it changes, so advancing it makes the next day appear without a restart. The
undated endpoints (``accounts``, ``v2/metrics/alltime``) stay as of the last simulated day.

``GET /_sandbox/info`` (not part of the contract) is a probe: no key, no allowance. It answers
``{"Status": "ok", "config": {"seed", "n_accounts", "n_days", "start_date", "end_date"},
"clock_day", "endpoints": {path: records}, "faults", "rate_limit", "stats", "Time"}`` so that a
launcher can tell whether the sandbox on a port serves the configuration it wants
(``clock_day``: the last day served, null without a clock).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import math
import os
import random
import re
import socket
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from daily_profit.config import SANDBOX_API_KEY
from daily_profit.sandbox.clock import ClockReader, SandboxClockError, simulation_identity
from daily_profit.sandbox.faults import (
    EXTRA_FIELDS,
    FAULTS_HEADER,
    FaultConfig,
    FaultDecision,
    FaultInjector,
    FaultSpecError,
    conflicting_copy,
    damage_record,
    drop_field,
    huge_string,
    invisible_login,
    nan_record,
    non_object,
    outside_partition,
    retype_field,
)
from daily_profit.sandbox.simulation import SandboxData

MAX_LIMIT = 1000
MAX_ACCOUNTS_LIMIT = 500
INFO_PATH = "_sandbox/info"
_EPOCH = dt.date(1970, 1, 1)
_DATE_PARAM = re.compile(r"^\d{8}$")
_PAGING = ("limit", "skip", "include-total")


@dataclass(frozen=True)
class RateLimit:
    """Allowance per API key: ``rate`` requests per second, bursts of ``burst``."""

    rate: float = 15.0
    burst: int = 20


@dataclass(frozen=True)
class _Spec:
    path: str
    frame: str  # attribute of SandboxData
    max_limit: int
    date_column: str | None = None
    date_params: str | None = None  # "dates" or "trade-date"
    value_filters: tuple[tuple[str, str], ...] = ()  # (parameter, column): string lookups
    int_filters: tuple[tuple[str, str], ...] = ()  # (parameter, column)
    close_time: bool = False

    @property
    def params(self) -> set[str]:
        out = {*_PAGING, *(p for p, _ in self.value_filters), *(p for p, _ in self.int_filters)}
        if self.date_params == "dates":
            out.add("dates")
        elif self.date_params == "trade-date":
            out |= {"trade-date", "trade-date-from", "trade-date-to"}
        if self.close_time:
            out |= {"close-time-from", "close-time-to"}
        return out


_ACCOUNT_FILTERS = (("logins", "login"), ("accountIds", "accountId"))
_METRIC_INTS = (("types", "type"), ("phases", "phase"), ("platforms", "mt_version"))
SPECS: tuple[_Spec, ...] = (
    _Spec("accounts", "accounts", MAX_ACCOUNTS_LIMIT,
          value_filters=(("logins", "login"), ("traders", "trader"))),
    _Spec("v2/metrics/alltime", "accounts_alltime", MAX_LIMIT,
          value_filters=_ACCOUNT_FILTERS, int_filters=_METRIC_INTS),
    _Spec("v2/metrics/daily", "metrics_daily", MAX_LIMIT, "date", "dates",
          value_filters=_ACCOUNT_FILTERS, int_filters=_METRIC_INTS),
    _Spec("v2/metrics/hourly", "metrics_hourly", MAX_LIMIT, "date", "dates",
          value_filters=_ACCOUNT_FILTERS, int_filters=(*_METRIC_INTS, ("hours", "hour"))),
    _Spec("v2/trades/closed", "trades_closed", MAX_LIMIT, "tradeDate", "trade-date",
          value_filters=(("logins", "login"), ("symbols", "stdSymbol")), close_time=True),
    _Spec("v2/trades/open", "trades_open", MAX_LIMIT, "tradeDate", "trade-date",
          value_filters=(("logins", "login"), ("symbols", "stdSymbol"))),
    _Spec("v2/regimes/daily", "regimes", MAX_LIMIT, "date", "dates"),
)  # fmt: skip


class BadRequest(Exception):
    """A request the API refuses with HTTP 400."""


# --------------------------------------------------------------------------------------------
# Tables: serialised records and their indexes


def _encode(frame: pl.DataFrame) -> pa.Array:
    """One JSON object and a comma per row, dates and timestamps as the contract's ISO strings."""
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Date:
            exprs.append(pl.col(name).dt.strftime("%Y-%m-%dT00:00:00.000Z"))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(name).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))
        elif dtype.is_float():
            # JSON has no NaN: a NaN would break every client, so it must never get here.
            exprs.append(pl.col(name).fill_nan(None))
        else:
            exprs.append(pl.col(name))
    # Each record ends with a comma, so a run of consecutive rows is one slice of the buffer.
    encoded = frame.select(
        pl.concat_str([pl.struct(exprs).struct.json_encode(), pl.lit(",")]).alias("j")
    )["j"].rechunk()
    arr = encoded.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    return arr


@dataclass(frozen=True)
class _Selection:
    """Rows [lo, hi) of a table, or the listed rows (ascending) when ``rows`` is set."""

    lo: int
    hi: int
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return self.hi - self.lo if self.rows is None else int(self.rows.size)

    def take(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(len(self), stop)
        if stop <= start:
            return np.zeros(0, dtype=np.int64)
        if self.rows is None:
            return np.arange(self.lo + start, self.lo + stop, dtype=np.int64)
        return self.rows[start:stop]

    def materialise(self) -> np.ndarray:
        return self.take(0, len(self))


class _Table:
    def __init__(self, spec: _Spec, frame: pl.DataFrame) -> None:
        self.spec = spec
        self.frame = frame
        self.n = frame.height
        self._lock = threading.Lock()
        self._json: pa.Array | None = None
        self._data: memoryview | None = None
        self._offsets: np.ndarray | None = None
        self._value_index: dict[str, dict[str, np.ndarray]] = {}
        self._columns: dict[str, np.ndarray] = {}
        self.days: np.ndarray | None = None
        if spec.date_column is not None:
            days = frame[spec.date_column].cast(pl.Int32).to_numpy().astype(np.int64)
            if days.size and np.any(np.diff(days) < 0):
                raise ValueError(f"{spec.frame} must be sorted by {spec.date_column}")
            self.days = days

    def warm(self) -> None:
        self._records()
        for _, column in self.spec.value_filters:
            self._index(column)

    def _records(self) -> tuple[memoryview, np.ndarray]:
        if self._data is None:
            with self._lock:
                if self._data is None:
                    arr = _encode(self.frame)
                    buffers = arr.buffers()
                    offsets = np.frombuffer(buffers[1], dtype=np.int64)
                    self._offsets = offsets[arr.offset : arr.offset + len(arr) + 1]
                    self._json = arr  # keeps the buffers alive
                    self._data = memoryview(buffers[2])
        assert self._offsets is not None
        return self._data, self._offsets

    def records(self, rows: np.ndarray) -> list[memoryview]:
        """The JSON objects of ``rows``, without separators."""
        data, offsets = self._records()
        starts = offsets[rows].tolist()
        ends = (offsets[rows + 1] - 1).tolist()
        return [data[a:b] for a, b in zip(starts, ends, strict=True)]

    def joined(self, rows: np.ndarray) -> bytes | memoryview:
        """The JSON objects of ``rows`` joined by commas, as one buffer."""
        if rows.size == 0:
            return b""
        data, offsets = self._records()
        first, last = int(rows[0]), int(rows[-1])
        if last - first + 1 == rows.size:  # consecutive rows: one slice, no copy
            return data[offsets[first] : offsets[last + 1] - 1]
        joined = b"".join([data[offsets[i] : offsets[i + 1]] for i in rows.tolist()])
        return joined[:-1]

    def _index(self, column: str) -> dict[str, np.ndarray]:
        index = self._value_index.get(column)
        if index is None:
            with self._lock:
                index = self._value_index.get(column)
                if index is None:
                    grouped = (
                        self.frame.select(pl.col(column), pl.int_range(pl.len()).alias("_row"))
                        .drop_nulls(column)
                        .group_by(column)
                        .agg(pl.col("_row").sort())
                    )
                    index = {
                        str(k): np.asarray(v, dtype=np.int64)
                        for k, v in zip(
                            grouped[column].to_list(), grouped["_row"].to_list(), strict=True
                        )
                    }
                    self._value_index[column] = index
        return index

    def column(self, name: str) -> np.ndarray:
        values = self._columns.get(name)
        if values is None:
            series = self.frame[name]
            if isinstance(series.dtype, pl.Datetime):
                series = series.dt.epoch("ms")
            values = series.to_numpy()
            self._columns[name] = values
        return values

    def select(self, query: _Query, until: int | None = None) -> _Selection:
        """The rows ``query`` selects, dated up to the day ``until`` (days since the epoch)
        when it is set: later days have not happened yet on the sandbox's clock."""
        lo, hi = 0, self.n
        if self.days is not None:
            if query.date_from is not None:
                lo = int(np.searchsorted(self.days, query.date_from, "left"))
            if query.date_to is not None:
                hi = max(lo, int(np.searchsorted(self.days, query.date_to, "right")))
            if until is not None:
                hi = max(lo, min(hi, int(np.searchsorted(self.days, until, "right"))))
        rows: np.ndarray | None = None
        if query.dates is not None and self.days is not None:
            parts = [
                np.arange(
                    int(np.searchsorted(self.days, d, "left")),
                    int(np.searchsorted(self.days, d, "right")),
                    dtype=np.int64,
                )
                for d in sorted(set(query.dates))
            ]
            rows = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        for column, values in query.values:
            index = self._index(column)
            found = [index[v] for v in dict.fromkeys(values) if v in index]
            hits = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
            rows = hits if rows is None else np.intersect1d(rows, hits, assume_unique=True)
        if rows is not None:
            rows = rows[(rows >= lo) & (rows < hi)]
        if query.ints or query.close_from is not None or query.close_to is not None:
            if rows is None:
                rows = np.arange(lo, hi, dtype=np.int64)
            keep = np.ones(rows.size, dtype=bool)
            for column, ints in query.ints:
                keep &= np.isin(self.column(column)[rows], np.asarray(ints, dtype=np.int64))
            if query.close_from is not None:
                keep &= self.column("closeTime")[rows] >= query.close_from
            if query.close_to is not None:
                keep &= self.column("closeTime")[rows] < query.close_to
            rows = rows[keep]
        return _Selection(lo, hi, rows)


# --------------------------------------------------------------------------------------------
# Query parameters


@dataclass(frozen=True)
class _Query:
    limit: int
    skip: int
    include_total: bool
    dates: tuple[int, ...] | None = None
    date_from: int | None = None
    date_to: int | None = None
    values: tuple[tuple[str, tuple[str, ...]], ...] = ()
    ints: tuple[tuple[str, tuple[int, ...]], ...] = ()
    close_from: int | None = None
    close_to: int | None = None

    def filter_key(self) -> tuple[Any, ...]:
        return (
            self.dates,
            self.date_from,
            self.date_to,
            self.values,
            self.ints,
            self.close_from,
            self.close_to,
        )


def _parse_int(name: str, raw: str, low: int, high: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise BadRequest(f"'{name}' must be {bound}, got {value}")
    return value


def _parse_day(name: str, raw: str) -> int:
    if not _DATE_PARAM.match(raw):
        raise BadRequest(f"'{name}' must be a date as YYYYMMDD, got {raw!r}")
    try:
        day = dt.date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:
        raise BadRequest(f"'{name}' is not a valid date: {raw!r}") from None
    return day.toordinal() - _EPOCH.toordinal()


def _parse_list(name: str, raw: str) -> list[str]:
    items = [v.strip() for v in raw.split(",")]
    if not raw.strip() or any(not v for v in items):
        raise BadRequest(f"'{name}' must be a comma-separated list without empty items")
    return items


def _parse_time(name: str, raw: str, upper: bool) -> int:
    """Milliseconds since the epoch; an upper bound is returned exclusive."""
    if _DATE_PARAM.match(raw):
        day = _parse_day(name, raw)
        return (day + 1) * 86_400_000 if upper else day * 86_400_000
    try:
        stamp = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"'{name}' must be YYYYMMDD or an ISO 8601 timestamp, got {raw!r}"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    ms = int(stamp.timestamp() * 1000)
    return ms + 1 if upper else ms


def _parse_query(spec: _Spec, items: list[tuple[str, str]]) -> _Query:
    params: dict[str, str] = {}
    for name, value in items:
        if name not in spec.params:
            allowed = ", ".join(sorted(spec.params))
            raise BadRequest(f"unknown parameter '{name}' for {spec.path}; allowed: {allowed}")
        if name in params:
            raise BadRequest(f"parameter '{name}' given more than once")
        params[name] = value
    limit = _parse_int("limit", params.get("limit", str(spec.max_limit)), 1, spec.max_limit)
    skip = _parse_int("skip", params.get("skip", "0"), 0)
    total_raw = params.get("include-total", "0").lower()
    if total_raw not in {"0", "1", "true", "false"}:
        raise BadRequest(f"'include-total' must be 1 or 0, got {total_raw!r}")
    dates = None
    date_from = date_to = None
    if "dates" in params:
        dates = tuple(_parse_day("dates", d) for d in _parse_list("dates", params["dates"]))
    if "trade-date" in params:
        date_from = date_to = _parse_day("trade-date", params["trade-date"])
    if "trade-date-from" in params:
        d = _parse_day("trade-date-from", params["trade-date-from"])
        date_from = d if date_from is None else max(date_from, d)
    if "trade-date-to" in params:
        d = _parse_day("trade-date-to", params["trade-date-to"])
        date_to = d if date_to is None else min(date_to, d)
    values = []
    for name, column in spec.value_filters:
        if name in params:
            items_ = _parse_list(name, params[name])
            if name == "symbols":
                items_ = [v.upper() for v in items_]
            values.append((column, tuple(items_)))
    ints = []
    for name, column in spec.int_filters:
        if name in params:
            high = 23 if name == "hours" else None
            parsed = tuple(_parse_int(name, v, 0, high) for v in _parse_list(name, params[name]))
            ints.append((column, parsed))
    close_from = close_to = None
    if "close-time-from" in params:
        close_from = _parse_time("close-time-from", params["close-time-from"], upper=False)
    if "close-time-to" in params:
        close_to = _parse_time("close-time-to", params["close-time-to"], upper=True)
    return _Query(
        limit=limit,
        skip=skip,
        include_total=total_raw in {"1", "true"},
        dates=dates,
        date_from=date_from,
        date_to=date_to,
        values=tuple(values),
        ints=tuple(ints),
        close_from=close_from,
        close_to=close_to,
    )


# --------------------------------------------------------------------------------------------
# Rate limit and statistics


class _TokenBucket:
    def __init__(self, limit: RateLimit) -> None:
        self.rate = limit.rate
        self.capacity = float(limit.burst)
        self.tokens = float(limit.burst)
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class ServerStats:
    """What the server answered: for tests and the info endpoint."""

    requests: int = 0
    records_served: int = 0
    rate_limited: int = 0  # 429s of the token bucket (storms are counted in ``faults``)
    by_status: Counter[int] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "records_served": self.records_served,
            "rate_limited": self.rate_limited,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_path": dict(sorted(self.by_path.items())),
            "faults": dict(sorted(self.faults.items())),
        }

    def reset(self) -> None:
        self.requests = self.records_served = self.rate_limited = 0
        self.by_status.clear()
        self.by_path.clear()
        self.faults.clear()


# --------------------------------------------------------------------------------------------
# The application


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"Status": "error", "Error": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


class SandboxApp:
    """The starlette application; pure request handling, no threads or sockets."""

    def __init__(
        self,
        data: SandboxData,
        *,
        api_key: str = SANDBOX_API_KEY,
        faults: FaultConfig | None = None,
        rate_limit: RateLimit | None = RateLimit(),
        clock_path: Path | None = None,
    ) -> None:
        self.data = data
        self.api_key = api_key
        cfg = data.config
        self.clock = (
            None
            if clock_path is None
            else ClockReader(
                clock_path,
                simulation_identity(
                    seed=cfg.seed,
                    n_accounts=cfg.n_accounts,
                    n_days=cfg.n_days,
                    start_date=cfg.start_date,
                ),
            )
        )
        self.faults = faults or FaultConfig()
        self.rate_limit = rate_limit
        self.stats = ServerStats()
        self.injector = FaultInjector()
        self.tables = {spec.path: _Table(spec, getattr(data, spec.frame)) for spec in SPECS}
        self._buckets: dict[str, _TokenBucket] = {}
        self._selections: OrderedDict[tuple[Any, ...], _Selection] = OrderedDict()
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._dispatch,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
                )
            ]
        )

    def warm(self) -> None:
        """Serialise every endpoint now instead of on its first request."""
        for table in self.tables.values():
            table.warm()

    def _respond(self, path: str, response: Response) -> Response:
        self.stats.by_status[response.status_code] += 1
        self.stats.by_path[path] += 1
        return response

    async def _dispatch(self, request: Request) -> Response:
        self.stats.requests += 1
        path = request.path_params["path"].strip("/")
        if request.method != "GET":
            return self._respond(path, _error(405, f"method {request.method} not allowed"))
        if path == INFO_PATH:
            # A probe (launchers check what runs on a port): no key, no allowance, no secrets.
            return self._respond(path, self._info())
        table = self.tables.get(path)
        if table is None:
            return self._respond(path, _error(404, f"no such endpoint: /{path}"))
        key = request.headers.get("apiKey")
        if key is None or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return self._respond(path, _error(401, "missing or invalid apiKey header"))
        if self.rate_limit is not None:
            bucket = self._buckets.setdefault(key, _TokenBucket(self.rate_limit))
            wait = bucket.take()
            if wait > 0:
                self.stats.rate_limited += 1
                retry = str(max(1, math.ceil(wait)))
                return self._respond(
                    path,
                    _error(429, "rate limit exceeded for this apiKey", {"Retry-After": retry}),
                )
        try:
            query = _parse_query(table.spec, list(request.query_params.multi_items()))
            header = request.headers.get(FAULTS_HEADER)
            faults = self.faults.with_header(header)
        except (BadRequest, FaultSpecError) as exc:
            return self._respond(path, _error(400, str(exc)))
        items = sorted(request.query_params.multi_items())
        signature = f"{path}?{items}|{header or ''}"
        # The listing: the same query whatever page of it (per-listing faults).
        listing = f"{path}?{[i for i in items if i[0] not in _PAGING]}|{header or ''}"
        decision = self.injector.decide(faults, signature, listing)
        for kind in decision.kinds:
            self.stats.faults[kind] += 1
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if decision.status is not None:
            headers = {"Retry-After": str(decision.retry_after)} if decision.status == 429 else None
            message = {
                429: "rate limit exceeded, retry later",
                500: "internal server error",
                502: "bad gateway",
                503: "service unavailable",
                504: "gateway timeout",
            }[decision.status]
            return self._respond(path, _error(decision.status, message, headers))
        if decision.fail:
            body = orjson.dumps({"Status": "fail", "Error": "upstream risk engine timed out"})
            return self._respond(path, Response(body, media_type="application/json"))
        try:
            until = self._clock_day()
        except SandboxClockError as exc:
            return self._respond(path, _error(500, str(exc)))
        return self._respond(path, self._page(table, query, decision, until))

    def _clock_day(self) -> int | None:
        """The clock's day as days since the epoch (the tables' day values), None: no clock."""
        day = self.clock.day() if self.clock is not None else None
        return None if day is None else (day - _EPOCH).days

    def _selection(self, table: _Table, query: _Query, until: int | None) -> _Selection:
        key = (table.spec.path, query.filter_key(), until)
        found = self._selections.get(key)
        if found is not None:
            self._selections.move_to_end(key)
            return found
        selection = table.select(query, until)
        self._selections[key] = selection
        if len(self._selections) > 256:
            self._selections.popitem(last=False)
        return selection

    def _page(
        self, table: _Table, query: _Query, decision: FaultDecision, until: int | None
    ) -> Response:
        selection = self._selection(table, query, until)
        total = len(selection) + decision.inflate_total
        start = query.skip + decision.shift
        if decision.shift and start < 0:
            start = 0
        rows = selection.take(start, start + query.limit)
        count = int(rows.size)
        payload: bytes | memoryview
        if decision.damages_records:
            damaged = self._damage(table.spec.path, table.records(rows), decision)
            payload, count = b",".join(damaged), len(damaged)
        else:
            payload = table.joined(rows)
        self.stats.records_served += count
        head = b'{"Status":"ok","Data":{'
        if query.include_total:
            head += b'"total":%d,' % total
        head += b'"skip":%d,"limit":%d,"count":%d,"data":[' % (query.skip, query.limit, count)
        body = b"".join([head, payload, b']},"Time":"', _now().encode(), b'"}'])
        return Response(body, media_type="application/json")

    def _damage(self, endpoint: str, records: list[Any], decision: FaultDecision) -> list[Any]:
        rng = random.Random(decision.record_seed)
        out: list[Any] = [bytes(r) for r in records]
        if not out:
            return out
        if decision.drop_field or decision.retype_field:
            # A whole listing's schema changed: every record of every page.
            for i, raw in enumerate(out):
                record = orjson.loads(raw)
                if decision.drop_field:
                    drop_field(record, endpoint, decision.drop_field_name)
                if decision.retype_field:
                    retype_field(record, endpoint, decision.retype_field_name)
                out[i] = orjson.dumps(record)
        # Record-level damage, each to one record of the page (drawn in a fixed order).
        if decision.invisible_login:
            i = rng.randrange(len(out))
            record = orjson.loads(out[i])
            if invisible_login(record, rng):
                out[i] = orjson.dumps(record)
        if decision.huge_string:
            i = rng.randrange(len(out))
            record = orjson.loads(out[i])
            huge_string(record, endpoint, decision.huge_string)
            out[i] = orjson.dumps(record)
        if decision.outside_partition:
            i = rng.randrange(len(out))
            record = orjson.loads(out[i])
            if outside_partition(record, endpoint):
                out[i] = orjson.dumps(record)
        if decision.malformed:
            i = rng.randrange(len(out))
            record = orjson.loads(out[i])
            damage_record(record, endpoint, decision.malformed, rng)
            out[i] = orjson.dumps(record)
        if decision.conflict:
            i = rng.randrange(len(out))
            copy = conflicting_copy(orjson.loads(out[i]), endpoint, rng)
            out.insert(rng.randint(i + 1, len(out)), orjson.dumps(copy))
        if decision.extra_fields:
            out = [r[:-1] + EXTRA_FIELDS + b"}" for r in out]
        # Last: they make a record that is no longer an object or no longer JSON.
        if decision.nan:
            i = rng.randrange(len(out))
            out[i] = nan_record(orjson.loads(out[i]), endpoint, rng)
        if decision.non_object:
            i = rng.randrange(len(out))
            if out[i][:1] == b"{":
                out[i] = non_object(out[i], rng)
        return out

    def _info(self) -> Response:
        cfg = self.data.config
        body = {
            "Status": "ok",
            # The serving process, so that a launcher can stop the detached sandbox it started.
            "pid": os.getpid(),
            "config": {
                "seed": cfg.seed,
                "n_accounts": cfg.n_accounts,
                "n_days": cfg.n_days,
                "start_date": cfg.start_date.isoformat(),
                "end_date": cfg.end_date.isoformat(),
            },
            "firm": cfg.firm_parameters(),
            "clock_day": self._clock_info(),
            "endpoints": {path: table.n for path, table in self.tables.items()},
            "faults": self.faults.to_header(),
            "rate_limit": None
            if self.rate_limit is None
            else {"rate": self.rate_limit.rate, "burst": self.rate_limit.burst},
            "stats": self.stats.as_dict(),
            "Time": _now(),
        }
        return Response(orjson.dumps(body), media_type="application/json")

    def _clock_info(self) -> str | None:
        """The last day served, when a clock holds days back or may; an unreadable clock says
        why instead (the probe answers anyway)."""
        if self.clock is None:
            return None
        try:
            day = self.clock.day()
        except SandboxClockError as exc:
            return f"unreadable: {exc}"
        return (day or self.data.config.end_date).isoformat()


# --------------------------------------------------------------------------------------------
# Thread runner


class SandboxServer:
    """The sandbox API served by uvicorn in a background thread on 127.0.0.1.

    Use as a context manager, or call ``start()`` and ``stop()``. ``port=0`` picks a free port;
    ``base_url`` ends with '/'.
    """

    def __init__(
        self,
        data: SandboxData,
        *,
        api_key: str = SANDBOX_API_KEY,
        faults: FaultConfig | None = None,
        rate_limit: RateLimit | None = RateLimit(),
        host: str = "127.0.0.1",
        port: int = 0,
        warm: bool = False,
        clock_path: Path | None = None,
    ) -> None:
        self.application = SandboxApp(
            data, api_key=api_key, faults=faults, rate_limit=rate_limit, clock_path=clock_path
        )
        self.host = host
        self.port = port
        self._warm = warm
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def api_key(self) -> str:
        return self.application.api_key

    @property
    def stats(self) -> ServerStats:
        return self.application.stats

    @property
    def data(self) -> SandboxData:
        return self.application.data

    @property
    def base_url(self) -> str:
        if self._socket is None:
            raise RuntimeError("the sandbox server is not running")
        return f"http://{self.host}:{self.port}/"

    def warm(self) -> None:
        self.application.warm()

    def start(self, timeout: float = 30.0) -> SandboxServer:
        if self._thread is not None:
            return self
        if self._warm:
            self.application.warm()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.application.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="sandbox-api", daemon=True
        )
        self._server, self._thread, self._socket = server, thread, sock
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
