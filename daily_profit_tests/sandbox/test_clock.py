"""The sandbox clock: days held back are neither served nor partitions until the clock advances,
and then the next day appears in the API and at the end of the partitions."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator

import httpx
import polars as pl
import pytest

from daily_profit.config import Settings, get_settings
from daily_profit.defs.partitions import _daily_partitions
from daily_profit.sandbox.__main__ import main as sandbox_main
from daily_profit.sandbox.clock import (
    SandboxClockError,
    advance_sandbox_clock,
    clock_path,
    sandbox_current_day,
    set_sandbox_day,
    start_sandbox_clock,
)
from daily_profit.sandbox.launcher import ensure_sandbox, sandbox_info, stop_sandbox
from daily_profit.sandbox.server import SandboxServer
from daily_profit.sandbox.simulation import SandboxData, SimulationConfig, simulate

# Friday to Wednesday: the days held back and advanced to are weekdays, with data on every
# endpoint (trades and hourly metrics are quiet at weekends).
FIRST_DAY = dt.date(2025, 1, 3)
LAST_DAY = dt.date(2025, 1, 8)  # 6 simulated days
SIMULATION = SimulationConfig(seed=3, n_accounts=10, n_days=6, start_date=FIRST_DAY)

# endpoint, its frame, the frame's date column, the query parameter naming one day
DATED = [
    ("v2/metrics/daily", "metrics_daily", "date", "dates"),
    ("v2/metrics/hourly", "metrics_hourly", "date", "dates"),
    ("v2/trades/closed", "trades_closed", "tradeDate", "trade-date"),
    ("v2/trades/open", "trades_open", "tradeDate", "trade-date"),
    ("v2/regimes/daily", "regimes", "date", "dates"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def data() -> SandboxData:
    return simulate(SIMULATION)


@pytest.fixture
def settings(settings_env, tmp_path) -> Settings:
    settings_env(
        data_dir=tmp_path,
        risk_api_base_url="sandbox",
        start_date=FIRST_DAY.isoformat(),
        sandbox_seed=SIMULATION.seed,
        sandbox_accounts=SIMULATION.n_accounts,
        sandbox_days=SIMULATION.n_days,
        sandbox_port=_free_port(),
        sandbox_clock_start_offset_days=2,
    )
    return get_settings()


@pytest.fixture
def server(data: SandboxData, settings: Settings) -> Iterator[SandboxServer]:
    with SandboxServer(data, rate_limit=None, clock_path=clock_path(settings)) as server:
        yield server


def _listing(server: SandboxServer, path: str, **params: str) -> tuple[int, list[dict]]:
    response = httpx.get(
        server.base_url + path,
        params={**params, "limit": "1000", "include-total": "1"},
        headers={"apiKey": server.api_key},
    )
    response.raise_for_status()
    page = response.json()["Data"]
    assert page["count"] < 1000, "the test expects one page"
    return page["total"], page["data"]


def _records_on(data: SandboxData, frame: str, column: str, day: dt.date) -> int:
    return getattr(data, frame).filter(pl.col(column) == day).height


def _partition_days() -> list[str]:
    return _daily_partitions().get_partition_keys()


def _iso(day: dt.date) -> str:
    return day.isoformat()


def test_days_held_back_are_not_served_nor_partitions(data, settings, server) -> None:
    assert start_sandbox_clock(settings) == dt.date(2025, 1, 6)
    for path, frame, column, param in DATED:
        for day in (dt.date(2025, 1, 7), LAST_DAY):
            total, records = _listing(server, path, **{param: day.strftime("%Y%m%d")})
            assert (total, records) == (0, []), (path, day)
        # Unfiltered: every record up to the clock's day, and total agrees with what is served.
        total, records = _listing(server, path)
        expected = getattr(data, frame).filter(pl.col(column) <= dt.date(2025, 1, 6)).height
        assert total == len(records) == expected > 0, path
        assert max(r[column][:10] for r in records) == "2025-01-06", path
    keys = _partition_days()
    assert keys[0] == "2025-01-03"
    assert keys[-1] == "2025-01-06"
    info = httpx.get(server.base_url + "_sandbox/info").json()
    assert info["clock_day"] == "2025-01-06"


def test_advancing_serves_the_next_day_and_moves_the_partitions_end(data, settings, server) -> None:
    start_sandbox_clock(settings)
    # A listing read before the advance must not stay cached after it.
    assert _listing(server, "v2/metrics/daily", dates="20250107")[0] == 0
    assert advance_sandbox_clock(1) == dt.date(2025, 1, 7)
    assert sandbox_current_day(settings) == dt.date(2025, 1, 7)
    for path, frame, column, param in DATED:
        total, records = _listing(server, path, **{param: "20250107"})
        expected = _records_on(data, frame, column, dt.date(2025, 1, 7))
        assert total == len(records) == expected > 0, path
        assert {r[column][:10] for r in records} == {"2025-01-07"}, path
        assert _listing(server, path, **{param: "20250108"}) == (0, []), path
    assert _partition_days()[-1] == "2025-01-07"


def test_advancing_past_the_simulated_days_is_refused(settings) -> None:
    start_sandbox_clock(settings)
    with pytest.raises(
        SandboxClockError,
        match=r"cannot advance 3 day\(s\) from 2025-01-06.*"
        r"last simulated day is 2025-01-08",
    ):
        advance_sandbox_clock(3)
    assert sandbox_current_day(settings) == dt.date(2025, 1, 6)  # unchanged
    assert advance_sandbox_clock(2) == LAST_DAY
    with pytest.raises(SandboxClockError, match="0 day"):
        advance_sandbox_clock(1)
    with pytest.raises(SandboxClockError, match="cannot stand on 2025-01-02"):
        set_sandbox_day(dt.date(2025, 1, 2))
    with pytest.raises(SandboxClockError, match="at least 1 day"):
        advance_sandbox_clock(0)


def test_without_a_clock_every_simulated_day_is_served(data, settings, server) -> None:
    assert not clock_path(settings).exists()
    assert sandbox_current_day(settings) == LAST_DAY
    total, _ = _listing(server, "v2/metrics/daily", dates="20250108")
    assert total == _records_on(data, "metrics_daily", "date", LAST_DAY) > 0
    assert _partition_days()[-1] == "2025-01-08"


def test_a_clock_of_another_simulation_is_not_this_sandboxs(settings, settings_env) -> None:
    start_sandbox_clock(settings)
    settings_env(sandbox_days=5)  # another simulation: the clock file is not its clock
    assert sandbox_current_day() == dt.date(2025, 1, 7)


def test_holding_back_every_simulated_day_is_refused(settings, settings_env) -> None:
    settings_env(sandbox_clock_start_offset_days=6)
    with pytest.raises(SandboxClockError, match="fewer days than the 6 simulated"):
        start_sandbox_clock(get_settings())


def test_an_unreadable_clock_file_is_named(settings) -> None:
    clock_path(settings).write_text("{not json")
    with pytest.raises(SandboxClockError, match=r"sandbox_clock\.json is unreadable"):
        sandbox_current_day(settings)


def test_the_command_advances_the_clock(settings, capsys) -> None:
    start_sandbox_clock(settings)
    assert sandbox_main(["--advance", "1"]) == 0
    assert "2025-01-06 -> 2025-01-07" in capsys.readouterr().out
    assert sandbox_current_day(settings) == dt.date(2025, 1, 7)
    assert sandbox_main(["--advance", "2"]) == 2
    assert "last simulated day is 2025-01-08" in capsys.readouterr().err
    assert sandbox_main(["--set-day", "2025-01-04"]) == 0
    assert sandbox_current_day(settings) == dt.date(2025, 1, 4)


def test_a_started_sandbox_holds_days_back_until_advanced(settings) -> None:
    # The detached sandbox the launcher starts reads the data folder's clock.
    url = ensure_sandbox(settings)
    try:
        assert sandbox_info(settings)["clock_day"] == "2025-01-06"
        headers = {"apiKey": settings.risk_api_key.get_secret_value()}
        params = {"dates": "20250107", "limit": "1000", "include-total": "1"}
        held_back = httpx.get(url + "v2/metrics/daily", params=params, headers=headers)
        assert held_back.json()["Data"]["total"] == 0
        assert sandbox_main(["--advance", "1"]) == 0
        assert sandbox_info(settings)["clock_day"] == "2025-01-07"
        served = httpx.get(url + "v2/metrics/daily", params=params, headers=headers)
        assert served.json()["Data"]["total"] > 0
    finally:
        assert stop_sandbox(settings.sandbox_port) is not None
