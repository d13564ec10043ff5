"""Each injected fault does what it says, through real HTTP, deterministically for a seed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import polars as pl
import pytest

from daily_profit.sandbox.faults import FAULTS_HEADER, FaultConfig, FaultSpecError
from daily_profit.sandbox.server import SandboxServer
from daily_profit.sandbox.simulation import SandboxData, SimulationConfig, simulate

KEY = "fault-key"
DAILY = "v2/metrics/daily"
CLOSED = "v2/trades/closed"


@pytest.fixture(scope="module")
def data() -> SandboxData:
    return simulate(SimulationConfig(seed=9, n_accounts=40, n_days=30))


@pytest.fixture(scope="module")
def server(data: SandboxData) -> Iterator[SandboxServer]:
    with SandboxServer(data, api_key=KEY, rate_limit=None) as running:
        yield running


@pytest.fixture
def client(server: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers={"apiKey": KEY}, timeout=30) as c:
        yield c


def _faulty(client: httpx.Client, path: str, faults: str, **params: Any) -> httpx.Response:
    return client.get(path, params=params, headers={FAULTS_HEADER: faults})


def _rows(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = orjson.loads(response.content)
    assert body["Status"] == "ok"
    return body["Data"]["data"]


def _daily_key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["login"], r["mt_version"], r["broker"], r["date"])


def test_header_parsing() -> None:
    base = FaultConfig(seed=5, server_error=0.2)
    cfg = base.with_header("429=1; storm_length=2, retry_after=3, 5xx_status=503, shift_by=-2")
    assert cfg.rate_limit_storm == 1.0 and cfg.storm_length == 2 and cfg.retry_after == 3
    assert cfg.server_error == 0.2 and cfg.server_error_status == 503 and cfg.shift_by == -2
    assert cfg.seed == 5
    assert base.with_header("off") == FaultConfig(seed=5)
    assert base.with_header(None) is base
    assert FaultConfig().with_header(cfg.to_header()) == cfg
    for bad in ("429", "nope=1", "429=2", "5xx_status=418", "malformed_kind=odd", "slow=x"):
        with pytest.raises(FaultSpecError):
            FaultConfig().with_header(bad)
    assert not FaultConfig().any and FaultConfig.chaos(seed=1).any


def test_a_bad_fault_header_is_a_400(client: httpx.Client) -> None:
    response = _faulty(client, DAILY, "storm=yes")
    assert response.status_code == 400 and FAULTS_HEADER in response.json()["Error"]


def test_429_storm_is_a_run_with_retry_after_then_success(
    client: httpx.Client, server: SandboxServer
) -> None:
    before = server.stats.faults["storm_429"]
    spec = "429=1, storm_length=2, retry_after=2, seed=1"
    responses = [_faulty(client, DAILY, spec, limit=3, skip=7) for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 200, 429]
    assert responses[0].headers["Retry-After"] == "2"
    assert responses[0].json() == {"Status": "error", "Error": "rate limit exceeded, retry later"}
    assert server.stats.faults["storm_429"] - before == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_burst_then_success(client: httpx.Client, status: int) -> None:
    spec = f"5xx=1, burst_length=3, 5xx_status={status}"
    codes = [_faulty(client, DAILY, spec, limit=2, skip=status).status_code for _ in range(4)]
    assert codes == [status, status, status, 200]


def test_5xx_codes_are_drawn_among_the_transient_ones(client: httpx.Client) -> None:
    codes = {
        _faulty(client, DAILY, f"5xx=1, burst_length=1, seed={seed}", limit=1).status_code
        for seed in range(30)
    }
    assert codes == {500, 502, 503, 504}


def test_http_200_with_a_failed_status(client: httpx.Client) -> None:
    first = _faulty(client, DAILY, "fail=1", limit=4, skip=1)
    assert first.status_code == 200
    body = first.json()
    assert body["Status"] == "fail" and body["Error"] and "Data" not in body
    assert len(_rows(_faulty(client, DAILY, "fail=1", limit=4, skip=1))) == 4


def test_slow_responses(client: httpx.Client) -> None:
    started = time.perf_counter()
    assert len(_rows(_faulty(client, DAILY, "slow=1, slow_seconds=0.3", limit=2))) == 2
    assert time.perf_counter() - started >= 0.3


def test_shifted_pages_skip_or_repeat_records_but_total_stays_true(
    client: httpx.Client, data: SandboxData
) -> None:
    truth = [_daily_key(r) for r in _rows(client.get(DAILY, params={"limit": 60}))]
    plain = [_daily_key(r) for r in _rows(client.get(DAILY, params={"limit": 20, "skip": 20}))]
    assert plain == truth[20:40]
    ahead = _faulty(client, DAILY, "shift=1, shift_by=3", limit=20, skip=20, **{"include-total": 1})
    body = orjson.loads(ahead.content)["Data"]
    assert body["total"] == data.metrics_daily.height and body["skip"] == 20
    assert [_daily_key(r) for r in body["data"]] == truth[23:43]  # 20..22 skipped
    behind = _rows(_faulty(client, DAILY, "shift=1, shift_by=-4", limit=20, skip=20))
    assert [_daily_key(r) for r in behind] == truth[16:36]  # 16..19 repeated
    # The last page of a shifted listing falls short.
    n = data.metrics_daily.height
    tail = _rows(_faulty(client, DAILY, "shift=1, shift_by=2", limit=10, skip=n - 10))
    assert len(tail) == 8


def test_conflicting_repeat_has_the_same_key_and_another_value(client: httpx.Client) -> None:
    rows = _rows(_faulty(client, DAILY, "conflict=1, seed=4", limit=15, skip=30))
    assert len(rows) == 16
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault(_daily_key(r), []).append(r)
    twins = [v for v in by_key.values() if len(v) == 2]
    assert len(twins) == 1
    a, b = twins[0]
    assert a["netProfit"] != b["netProfit"]
    assert {k: v for k, v in a.items() if k != "netProfit"} == {
        k: v for k, v in b.items() if k != "netProfit"
    }
    trades = _rows(_faulty(client, CLOSED, "conflict=1", limit=10))
    keys = [(t["broker"], t["platform"], t["position"], t["tradeDate"]) for t in trades]
    assert len(keys) == 11 and len(set(keys)) == 10


@pytest.mark.parametrize(
    ("path", "kind", "check"),
    [
        (DAILY, "missing", lambda r: "netProfit" not in r),
        (DAILY, "type", lambda r: r.get("netProfit") == "abc"),
        (DAILY, "value", lambda r: r.get("numTrades") == -1),
        (CLOSED, "missing", lambda r: "profit" not in r),
        (CLOSED, "type", lambda r: r.get("profit") == "abc"),
        (CLOSED, "value", lambda r: isinstance(r.get("lots"), float) and r["lots"] < 0),
        (CLOSED, "time", lambda r: r["closeTime"] < r["openTime"]),
        ("v2/regimes/daily", "value", lambda r: r.get("riskOnProb") == 1.7),
        ("v2/metrics/hourly", "value", lambda r: r.get("hour") == 27),
    ],
)
def test_malformed_records(client: httpx.Client, path: str, kind: str, check: Any) -> None:
    clean = _rows(client.get(path, params={"limit": 12}))
    rows = _rows(_faulty(client, path, f"malformed=1, malformed_kind={kind}", limit=12))
    assert len(rows) == 12
    damaged = [i for i, (a, b) in enumerate(zip(clean, rows, strict=True)) if a != b]
    assert len(damaged) == 1
    assert check(rows[damaged[0]])


def test_unknown_extra_fields(client: httpx.Client) -> None:
    clean = _rows(client.get(CLOSED, params={"limit": 5}))
    rows = _rows(_faulty(client, CLOSED, "extra=1", limit=5))
    for a, b in zip(clean, rows, strict=True):
        assert set(b) - set(a) == {"riskEngineVersion", "x_internal_flags"}
        assert {k: b[k] for k in a} == a


def test_faults_are_deterministic_for_a_seed(data: SandboxData) -> None:
    faults = FaultConfig.chaos(seed=21, level=0.3)
    faults = FaultConfig(**{**faults.__dict__, "slow": 0.0})

    def run() -> list[tuple[int, bytes]]:
        out = []
        with (
            SandboxServer(data, api_key=KEY, faults=faults, rate_limit=None) as s,
            httpx.Client(base_url=s.base_url, headers={"apiKey": KEY}) as c,
        ):
            for skip in (0, 10, 20, 30, 0, 10):
                r = c.get(DAILY, params={"limit": 10, "skip": skip})
                body = r.content.split(b',"Time"')[0]  # the timestamp differs
                out.append((r.status_code, body))
        return out

    first, second = run(), run()
    assert first == second
    assert {status for status, _ in first} != {200}


def test_off_header_disables_server_faults(data: SandboxData) -> None:
    with (
        SandboxServer(
            data, api_key=KEY, faults=FaultConfig(server_error=1.0), rate_limit=None
        ) as s,
        httpx.Client(base_url=s.base_url, headers={"apiKey": KEY}) as c,
    ):
        assert c.get(DAILY, params={"limit": 1}).status_code in {500, 502, 503, 504}
        assert c.get(DAILY, params={"limit": 1}, headers={FAULTS_HEADER: "off"}).status_code == 200


def _resilient_fetch(client: httpx.Client, path: str, params: dict[str, Any]) -> list[dict]:
    """What a careful client does: retry transient failures, dedupe, re-fetch what is missing."""

    def get(**extra: Any) -> dict[str, Any]:
        for _ in range(50):
            r = client.get(path, params={**params, **extra})
            if r.status_code in {429, 500, 502, 503, 504}:
                continue
            body = orjson.loads(r.content)
            if r.status_code == 200 and body["Status"] == "ok":
                return body["Data"]
        raise AssertionError("no success after 50 attempts")

    first = get(limit=50, skip=0, **{"include-total": 1})
    total = first["total"]
    kept = {_daily_key(r): r for r in first["data"]}
    skip = 50
    while skip < total:
        kept.update({_daily_key(r): r for r in get(limit=50, skip=skip)["data"]})
        skip += 50
    # Gaps: re-read with smaller pages until every record is in.
    page = 10
    for _ in range(20):
        if len(kept) == total:
            break
        for start in range(0, total, page):
            kept.update({_daily_key(r): r for r in get(limit=page, skip=start)["data"]})
        page = max(1, page // 2)
    return list(kept.values())


def test_a_careful_client_recovers_every_record_through_faults(data: SandboxData) -> None:
    faults = FaultConfig(
        seed=3, rate_limit_storm=0.15, server_error=0.15, fail_status=0.1, page_shift=0.4
    )
    days = data.metrics_daily["date"].unique().sort()[5:].to_list()
    params = {"dates": ",".join(d.strftime("%Y%m%d") for d in days)}
    with (
        SandboxServer(data, api_key=KEY, faults=faults, rate_limit=None) as s,
        httpx.Client(base_url=s.base_url, headers={"apiKey": KEY}) as c,
    ):
        got = _resilient_fetch(c, DAILY, params)
        injected = s.stats.faults
    want = data.metrics_daily.filter(data.metrics_daily["date"].is_in(days))
    assert len(got) == want.height
    assert {(r["login"], r["broker"], r["date"][:10]) for r in got} == set(
        zip(want["login"], want["broker"], want["date"].cast(pl.String), strict=True)
    )
    assert injected["page_shift"] > 0 and injected["storm_429"] > 0
    assert injected["server_error"] > 0


def test_a_skipped_record_can_be_recovered_by_logins(client: httpx.Client) -> None:
    page = _rows(_faulty(client, DAILY, "shift=1, shift_by=2", limit=10, skip=10))
    truth = _rows(client.get(DAILY, params={"limit": 20}))
    missing = truth[10]
    assert _daily_key(missing) not in {_daily_key(r) for r in page}
    # Another request (by login, with the same fault settings and a different window): a fault
    # belongs to a request, the record is still there.
    spec = "shift=0.5, shift_by=2, seed=11"
    query = {"logins": missing["login"], "dates": missing["date"][:10].replace("-", "")}
    found: list[dict[str, Any]] = []
    for _attempt in range(10):
        rows = _rows(_faulty(client, DAILY, spec, limit=5, **query))
        found = [r for r in rows if _daily_key(r) == _daily_key(missing)]
        if found:
            break
    assert found == [missing]


def test_new_fault_keys_parse_and_round_trip() -> None:
    cfg = FaultConfig().with_header(
        "nan=0.5, non_object=0.2, unicode=0.3, huge=0.1, huge_chars=64, outside=0.2, "
        "drop_field=1, drop_field_name=grossLoss, retype_field=0.5, inflate_total=1, inflate_by=3"
    )
    assert (cfg.nan, cfg.invisible_login, cfg.huge_chars, cfg.drop_field_name) == (
        0.5,
        0.3,
        64,
        "grossLoss",
    )
    assert FaultConfig().with_header(cfg.to_header()) == cfg
    for bad in ("nan=2", "huge_chars=0", "inflate_by=0"):
        with pytest.raises(FaultSpecError):
            FaultConfig().with_header(bad)


def test_a_nan_literal_breaks_strict_json_for_one_record_only(client: httpx.Client) -> None:
    import json

    response = _faulty(client, CLOSED, "nan=1, seed=2", limit=10)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)
    rows = json.loads(response.content)["Data"]["data"]
    assert len(rows) == 10
    odd = [r for r in rows if r["profit"] != r["profit"] or abs(r["profit"]) == float("inf")]
    assert len(odd) == 1


def test_a_non_object_takes_a_records_place(client: httpx.Client) -> None:
    for seed in range(4):
        rows = _rows(_faulty(client, CLOSED, f"non_object=1, seed={seed}", limit=10))
        assert len(rows) == 10
        assert sum(not isinstance(r, dict) for r in rows) == 1


def test_record_damage_to_logins_text_and_dates(client: httpx.Client) -> None:
    clean = _rows(client.get(DAILY, params={"limit": 10}))
    rows = _rows(_faulty(client, DAILY, "unicode=1, seed=3", limit=10))
    changed = [(a, b) for a, b in zip(clean, rows, strict=True) if a != b]
    assert len(changed) == 1
    before, after = changed[0]
    assert after["login"] != before["login"]
    assert "".join(c for c in after["login"] if c.isprintable()) == before["login"]
    rows = _rows(_faulty(client, CLOSED, "huge=1, huge_chars=1000", limit=10))
    assert sorted(len(r["comment"] or "") for r in rows)[-1] == 1000
    rows = _rows(_faulty(client, CLOSED, "outside=1", limit=10, **{"trade-date": "20250109"}))
    assert sorted(r["tradeDate"][:10] for r in rows)[-1] == "2025-01-10"
    assert sum(r["tradeDate"].startswith("2025-01-10") for r in rows) == 1


def test_listing_faults_hold_for_every_page_and_attempt(client: httpx.Client) -> None:
    query = {"dates": "20250109", **{"include-total": 1}}
    spec = "drop_field=1, retype_field=1, retype_field_name=netProfit, inflate_total=1"
    bodies = [
        orjson.loads(_faulty(client, DAILY, spec, limit=5, skip=skip, **query).content)["Data"]
        for skip in (0, 5, 0)
    ]
    truth = orjson.loads(client.get(DAILY, params={**query, "limit": 5}).content)["Data"]
    for body in bodies:
        assert body["total"] == truth["total"] + 5
        assert all("numTrades" not in r and isinstance(r["netProfit"], str) for r in body["data"])


def test_listing_faults_are_drawn_per_listing_deterministically(client: httpx.Client) -> None:
    def dropped(day: str) -> bool:
        rows = _rows(_faulty(client, DAILY, "drop_field=0.5, seed=4", limit=3, dates=day))
        again = _rows(_faulty(client, DAILY, "drop_field=0.5, seed=4", limit=3, skip=3, dates=day))
        assert ("numTrades" in rows[0]) == ("numTrades" in again[0])
        return "numTrades" not in rows[0]

    outcomes = [dropped(f"202501{d:02d}") for d in range(6, 20)]
    assert outcomes == [dropped(f"202501{d:02d}") for d in range(6, 20)]
    assert any(outcomes) and not all(outcomes)
