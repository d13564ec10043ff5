"""The sandbox server over real HTTP: the contract's envelope, auth, paging, filters, rate limit."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import polars as pl
import pytest

from daily_profit.sandbox.server import RateLimit, SandboxServer
from daily_profit.sandbox.simulation import SandboxData, SimulationConfig, simulate

KEY = "test-key"
ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}T00:00:00\.000Z$")
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(scope="module")
def data() -> SandboxData:
    return simulate(SimulationConfig(seed=5, n_accounts=80, n_days=40))


@pytest.fixture(scope="module")
def server(data: SandboxData) -> Iterator[SandboxServer]:
    with SandboxServer(data, api_key=KEY, rate_limit=None) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers={"apiKey": KEY}, timeout=30) as c:
        yield c


def _get(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return orjson.loads(response.content)


def _all(client: httpx.Client, path: str, page: int = 1000, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    skip = 0
    while True:
        batch = _get(client, path, limit=page, skip=skip, **params)["Data"]["data"]
        rows.extend(batch)
        if len(batch) < page:
            return rows
        skip += page


def _day(d: dt.date) -> str:
    return d.strftime("%Y%m%d")


def _iso(d: dt.date) -> str:
    return f"{d.isoformat()}T00:00:00.000Z"


def test_runner_binds_loopback_on_a_free_port(server: SandboxServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/")
    assert server.port > 0
    assert server.api_key == KEY


def test_start_and_stop_without_context_manager(data: SandboxData) -> None:
    running = SandboxServer(data, api_key=KEY).start()
    try:
        url = running.base_url
        assert httpx.get(url + "accounts", headers={"apiKey": KEY}).status_code == 200
    finally:
        running.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "accounts", headers={"apiKey": KEY}, timeout=2)


@pytest.mark.parametrize("headers", [{}, {"apiKey": "wrong"}, {"apikey": ""}])
def test_requests_without_the_key_get_401_with_the_error_envelope(
    server: SandboxServer, headers: dict[str, str]
) -> None:
    response = httpx.get(server.base_url + "v2/metrics/daily", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["Status"] == "error" and "apiKey" in body["Error"]
    assert set(body) == {"Status", "Error"}


def test_envelope_is_exactly_the_contracts(client: httpx.Client, data: SandboxData) -> None:
    body = _get(client, "v2/metrics/daily", limit=5, skip=2, **{"include-total": 1})
    assert list(body) == ["Status", "Data", "Time"]
    assert body["Status"] == "ok" and ISO_MS.match(body["Time"])
    assert list(body["Data"]) == ["total", "skip", "limit", "count", "data"]
    assert body["Data"]["total"] == data.metrics_daily.height
    assert (body["Data"]["skip"], body["Data"]["limit"], body["Data"]["count"]) == (2, 5, 5)
    without_total = _get(client, "v2/metrics/daily", limit=5)
    assert "total" not in without_total["Data"]


def test_records_match_the_simulation(client: httpx.Client, data: SandboxData) -> None:
    served = _get(client, "v2/metrics/daily", limit=3, skip=100)["Data"]["data"]
    expected = data.metrics_daily.slice(100, 3).to_dicts()
    for got, want in zip(served, expected, strict=True):
        assert list(got) == list(want)
        assert got["date"] == _iso(want["date"])
        ftd = want["firstTradeDate"]
        assert got["firstTradeDate"] == (None if ftd is None else _iso(ftd))
        for name in ("login", "accountId", "netProfit", "currentBalance", "numTrades"):
            assert got[name] == want[name]
    trade = _get(client, "v2/trades/closed", limit=1)["Data"]["data"][0]
    assert ISO_DAY.match(trade["tradeDate"])
    assert ISO_MS.match(trade["openTime"]) and ISO_MS.match(trade["closeTime"])
    assert isinstance(trade["position"], str) and isinstance(trade["lots"], float)
    regime = _get(client, "v2/regimes/daily", limit=1)["Data"]["data"][0]
    assert set(regime["instruments"]["XAUUSD"]) == {"eodPrice", "dailyReturn", "volatility90d"}


@pytest.mark.parametrize(
    ("path", "frame"),
    [
        ("accounts", "accounts"),
        ("v2/metrics/alltime", "accounts_alltime"),
        ("v2/metrics/daily", "metrics_daily"),
        ("v2/metrics/hourly", "metrics_hourly"),
        ("v2/trades/closed", "trades_closed"),
        ("v2/trades/open", "trades_open"),
        ("v2/regimes/daily", "regimes"),
    ],
)
def test_paging_covers_every_record_once_in_a_stable_order(
    client: httpx.Client, data: SandboxData, path: str, frame: str
) -> None:
    expected = getattr(data, frame).height
    page = 500 if path == "accounts" else 1000
    everything = _all(client, path, page=page)
    assert len(everything) == expected
    again = _all(client, path, page=page)
    assert again == everything
    small = _all(client, path, page=97)
    assert small == everything
    total = _get(client, path, limit=1, **{"include-total": 1})["Data"]["total"]
    assert total == expected
    beyond = _get(client, path, skip=expected + 5)["Data"]
    assert beyond["count"] == 0 and beyond["data"] == []


def test_records_are_sorted_by_natural_key(client: httpx.Client) -> None:
    daily = _all(client, "v2/metrics/daily")
    keys = [(r["date"], r["accountId"] is None, r["accountId"] or "") for r in daily]
    assert keys == sorted(keys)
    trades = _all(client, "v2/trades/closed")
    tkeys = [(r["tradeDate"], r["broker"], r["platform"], int(r["position"])) for r in trades]
    assert tkeys == sorted(tkeys)
    assert len(set(tkeys)) == len(tkeys)


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("v2/metrics/daily", {"limit": 1001}, "limit"),
        ("accounts", {"limit": 501}, "limit"),
        ("v2/metrics/daily", {"limit": 0}, "limit"),
        ("v2/metrics/daily", {"skip": -1}, "skip"),
        ("v2/metrics/daily", {"limit": "ten"}, "limit"),
        ("v2/metrics/daily", {"dates": "2025-01-02"}, "YYYYMMDD"),
        ("v2/metrics/daily", {"dates": "20250230"}, "valid date"),
        ("v2/trades/closed", {"trade-date": "yesterday"}, "trade-date"),
        ("v2/metrics/hourly", {"hours": "24"}, "hours"),
        ("v2/metrics/daily", {"phases": "x"}, "phases"),
        ("v2/metrics/daily", {"logins": "1,,2"}, "logins"),
        ("v2/metrics/daily", {"include-total": "yes"}, "include-total"),
        ("v2/metrics/daily", {"symbols": "EURUSD"}, "unknown parameter 'symbols'"),
        ("v2/trades/closed", {"close-time-from": "noon"}, "close-time-from"),
    ],
)
def test_bad_parameters_get_400_with_a_clear_message(
    client: httpx.Client, path: str, params: dict[str, Any], message: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["Status"] == "error" and message in body["Error"]


def test_unknown_paths_and_methods(client: httpx.Client) -> None:
    assert client.get("v2/metrics/weekly").status_code == 404
    assert client.get("v2/metrics/weekly").json()["Status"] == "error"
    assert client.post("v2/metrics/daily").status_code == 405


def test_metric_filters(client: httpx.Client, data: SandboxData) -> None:
    daily = data.metrics_daily
    days = sorted(daily["date"].unique().to_list())[3:6:2]
    got = _all(client, "v2/metrics/daily", dates=",".join(_day(d) for d in days))
    assert len(got) == daily.filter(pl.col("date").is_in(days)).height
    logins = daily["login"].unique().sort().to_list()[:3]
    got = _all(client, "v2/metrics/daily", logins=",".join(logins), dates=_day(days[1]))
    want = daily.filter(pl.col("login").is_in(logins) & (pl.col("date") == days[1]))
    assert len(got) == want.height > 0
    ids = data.accounts_alltime["accountId"].to_list()[:4]
    got = _all(client, "v2/metrics/daily", accountIds=",".join(ids))
    assert len(got) == daily.filter(pl.col("accountId").is_in(ids)).height
    for param, column, values in (
        ("types", "type", [3]),
        ("phases", "phase", [1, 2]),
        ("platforms", "mt_version", [4]),
    ):
        got = _all(client, "v2/metrics/daily", **{param: ",".join(map(str, values))})
        assert len(got) == daily.filter(pl.col(column).is_in(values)).height > 0
        assert {r[column] for r in got} <= set(values)
    hourly = data.metrics_hourly
    got = _all(client, "v2/metrics/hourly", hours="0,1", dates=_day(days[0]))
    want = hourly.filter(pl.col("hour").is_in([0, 1]) & (pl.col("date") == days[0]))
    assert len(got) == want.height
    got = _all(client, "v2/metrics/alltime", phases="4", platforms="5")
    want = data.accounts_alltime.filter((pl.col("phase") == 4) & (pl.col("mt_version") == 5))
    assert len(got) == want.height > 0
    trader = data.accounts_alltime["trader"][0]
    got = _all(client, "accounts", page=500, traders=trader)
    assert len(got) == (data.accounts_alltime["trader"] == trader).sum() >= 1
    got = _all(client, "v2/regimes/daily", dates=_day(days[0]))
    assert [r["date"] for r in got] == [_iso(days[0])]


def test_unknown_values_select_nothing(client: httpx.Client) -> None:
    body = _get(client, "v2/metrics/daily", logins="nobody", **{"include-total": 1})
    assert body["Data"]["total"] == 0 and body["Data"]["data"] == []
    body = _get(client, "v2/trades/closed", **{"trade-date": "20300101", "include-total": 1})
    assert body["Data"]["total"] == 0


def test_trade_filters(client: httpx.Client, data: SandboxData) -> None:
    trades = data.trades_closed
    start = data.config.start_date
    day = start + dt.timedelta(days=9)
    got = _all(client, "v2/trades/closed", **{"trade-date": _day(day)})
    assert len(got) == (trades["tradeDate"] == day).sum() > 0
    lo, hi = start + dt.timedelta(days=5), start + dt.timedelta(days=12)
    got = _all(
        client, "v2/trades/closed", **{"trade-date-from": _day(lo), "trade-date-to": _day(hi)}
    )
    assert len(got) == trades["tradeDate"].is_between(lo, hi).sum()
    got = _all(client, "v2/trades/closed", symbols="xauusd,BTCUSD")
    assert len(got) == trades["stdSymbol"].is_in(["XAUUSD", "BTCUSD"]).sum() > 0
    login = trades["login"][0]
    got = _all(client, "v2/trades/closed", logins=login, **{"trade-date-from": _day(lo)})
    want = trades.filter((pl.col("login") == login) & (pl.col("tradeDate") >= lo))
    assert len(got) == want.height
    # close-time bounds are inclusive; a YYYYMMDD upper bound covers its whole UTC day.
    got = _all(client, "v2/trades/closed", **{"close-time-from": _day(day), "close-time-to": _day(day)})  # fmt: skip
    assert len(got) == (trades["closeTime"].dt.date() == day).sum()
    first = trades.sort("closeTime")["closeTime"][10]
    stamp = first.strftime("%Y-%m-%dT%H:%M:%S.") + f"{first.microsecond // 1000:03d}Z"
    got = _all(client, "v2/trades/closed", **{"close-time-to": stamp})
    assert len(got) == (trades["closeTime"] <= first).sum()
    got = _all(client, "v2/trades/closed", **{"close-time-from": stamp})
    assert len(got) == (trades["closeTime"] >= first).sum()
    opened = data.trades_open
    got = _all(client, "v2/trades/open", **{"trade-date": _day(opened["tradeDate"][0])})
    assert len(got) == (opened["tradeDate"] == opened["tradeDate"][0]).sum() > 0
    assert "closeTime" not in got[0]


def test_rate_limit_answers_429_with_retry_after(data: SandboxData) -> None:
    with (
        SandboxServer(data, api_key=KEY, rate_limit=RateLimit(15, burst=20)) as limited,
        httpx.Client(base_url=limited.base_url, headers={"apiKey": KEY}) as c,
    ):
        statuses = []
        retry_after = set()
        for _ in range(40):
            response = c.get("v2/regimes/daily", params={"limit": 1})
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry_after.add(response.headers["Retry-After"])
                assert response.json()["Status"] == "error"
        assert statuses[:20] == [200] * 20  # the burst
        assert statuses.count(429) >= 10
        assert all(v.isdigit() and int(v) >= 1 for v in retry_after)
        assert limited.stats.rate_limited == statuses.count(429)
        time.sleep(1.2)
        assert c.get("v2/regimes/daily", params={"limit": 1}).status_code == 200
        # Invalid keys do not spend the allowance of the real one.
        assert httpx.get(limited.base_url + "accounts").status_code == 401


def test_stats_and_info(data: SandboxData) -> None:
    with (
        SandboxServer(data, api_key=KEY, rate_limit=None) as running,
        httpx.Client(base_url=running.base_url, headers={"apiKey": KEY}) as c,
    ):
        c.get("v2/metrics/daily", params={"limit": 10})
        c.get("v2/metrics/daily", params={"limit": 0})
        # The info probe needs no key: launchers use it to see what runs on a port.
        info = httpx.get(running.base_url + "_sandbox/info").json()
        assert info["endpoints"]["v2/metrics/daily"] == data.metrics_daily.height
        assert info["config"] == {
            "seed": 5,
            "n_accounts": 80,
            "n_days": 40,
            "start_date": "2025-01-01",
            "end_date": "2025-02-09",
        }
        assert info["stats"]["requests"] == 3
        assert running.stats.requests == 3
        assert running.stats.records_served == 10
        assert running.stats.by_status[400] == 1
        assert running.stats.by_path["v2/metrics/daily"] == 2
