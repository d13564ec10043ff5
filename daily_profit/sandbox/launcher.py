"""Start the built-in sandbox once per machine and share it between processes.

Dagster runs each materialisation in its own process, and the UI launches runs at any time, so
the sandbox cannot live inside one of them. The first process that needs it starts it detached on
a fixed loopback port; every later one finds it answering there. The same seed and size give the
same data, so whichever process started it, every run sees one simulated firm. Starting it also
sets its clock (``sandbox_clock_start_offset_days`` before the last simulated day, see
:mod:`daily_profit.sandbox.clock`) in the data folder, where the started sandbox reads it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from daily_profit.config import Settings
from daily_profit.sandbox.clock import clock_path, configured_simulation, start_sandbox_clock
from daily_profit.sandbox.simulation import SimulationConfig

SANDBOX_HOST = "127.0.0.1"


def configured_simulation_config(settings: Settings) -> SimulationConfig:
    """The simulated firm the settings describe: size, seed and firm parameters."""
    return SimulationConfig(
        seed=settings.sandbox_seed,
        n_accounts=settings.sandbox_accounts,
        n_days=settings.sandbox_days,
        start_date=settings.start_date,
        skilled_share=settings.sandbox_skilled_share,
        martingale_share=settings.sandbox_martingale_share,
        weekend_activity=settings.sandbox_weekend_activity,
        regime_vol=tuple(settings.sandbox_regime_vol),
    )


def sandbox_base_url(settings: Settings) -> str:
    return f"http://{SANDBOX_HOST}:{settings.sandbox_port}/"


def sandbox_info(settings: Settings) -> dict | None:
    """The running sandbox's description, or None when nothing answers on its port."""
    try:
        response = httpx.get(sandbox_base_url(settings) + "_sandbox/info", timeout=2.0)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def ensure_sandbox(settings: Settings, *, timeout_s: float = 300.0) -> str:
    """Base URL of a sandbox serving this configuration, starting one if none is running."""
    info = sandbox_info(settings)
    if info is None:
        start_sandbox_clock(settings)
        _spawn(settings)
        deadline = time.monotonic() + timeout_s
        while (info := sandbox_info(settings)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the sandbox did not answer on {sandbox_base_url(settings)} within "
                    f"{timeout_s:.0f}s; see {_log_path(settings)}"
                )
            time.sleep(0.25)
    expected = configured_simulation(settings)
    config = info.get("config", {})
    mismatched = {k: (config.get(k), v) for k, v in expected.items() if config.get(k) != v}
    firm = info.get("firm", {})
    mismatched |= {
        k: (firm.get(k), v)
        for k, v in configured_simulation_config(settings).firm_parameters().items()
        if firm.get(k) != v
    }
    if mismatched:
        raise RuntimeError(
            f"a sandbox with another configuration already runs on {sandbox_base_url(settings)}: "
            + ", ".join(
                f"{k} is {got!r}, configured {want!r}" for k, (got, want) in mismatched.items()
            )
            + ". Stop it (./dp sandbox --stop) or set DAILY_PROFIT_SANDBOX_PORT."
        )
    _ensure_exports(settings)
    return sandbox_base_url(settings)


def _ensure_exports(settings: Settings) -> None:
    """The plans export and ground truth in this data folder, even when the running sandbox
    was started from another checkout (it wrote them into its own). Same seed, same files."""
    plans = settings.data_dir / "plans.csv"
    truth = settings.data_dir / "ground_truth.parquet"
    if plans.exists() and truth.exists():
        return
    from daily_profit.sandbox.simulation import simulate

    data = simulate(configured_simulation_config(settings))
    data.write_plans_csv(plans)
    data.write_ground_truth(truth)


def _log_path(settings: Settings) -> Path:
    return settings.data_dir / "sandbox.log"


def _spawn(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-m",
        "daily_profit.sandbox",
        "--host",
        SANDBOX_HOST,
        "--port",
        str(settings.sandbox_port),
        "--seed",
        str(settings.sandbox_seed),
        "--accounts",
        str(settings.sandbox_accounts),
        "--days",
        str(settings.sandbox_days),
        "--start-date",
        settings.start_date.isoformat(),
        "--write-dir",
        str(settings.data_dir),
        "--clock-file",
        str(clock_path(settings)),
        *configured_simulation_config(settings).firm_arguments(),
    ]
    # The key reaches the sandbox through the environment (DAILY_PROFIT_RISK_API_KEY), never argv.
    log = _log_path(settings).open("ab")
    # A new session: the sandbox outlives the run that started it and ignores its Ctrl-C.
    subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ},
    )


def _is_detached_sandbox(pid: int) -> bool:
    """Whether ``pid`` is a sandbox process (``python -m daily_profit.sandbox``), not, say, a
    test that serves the sandbox in one of its threads on that port."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"-m" in argv and b"daily_profit.sandbox" in argv


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_sandbox(port: int, *, timeout_s: float = 10.0) -> int | None:
    """Stop the detached sandbox serving on ``port`` (SIGTERM, then SIGKILL after
    ``timeout_s``). Returns its pid, or None when no detached sandbox answers there."""
    try:
        response = httpx.get(f"http://{SANDBOX_HOST}:{port}/_sandbox/info", timeout=2.0)
    except httpx.TransportError:
        return None
    pid = response.json().get("pid") if response.status_code == 200 else None
    if not isinstance(pid, int) or not _is_detached_sandbox(pid):
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    return pid
