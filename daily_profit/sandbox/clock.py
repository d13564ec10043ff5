"""The sandbox's clock: the last simulated day it serves, which a test or an operator advances.

The simulation holds every day from the start; the clock decides how many of them have
"happened". It is one small JSON file in the data folder (``sandbox_clock.json``), so that
every process agrees on it without asking the server: the sandbox reads it on each request
(serving only records dated up to its day) and the code location reads it when it loads (the
daily partitions end on its day). Writes replace the file atomically, so a reader never sees
half a clock.

The file names the simulation it belongs to (seed, size, start); a clock written for another
simulation is not this sandbox's and is ignored. No file: the clock stands at the last
simulated day, every day served.

* ``start_sandbox_clock(settings)`` - the launcher, when it starts a sandbox: the clock stands
  ``sandbox_clock_start_offset_days`` before the last simulated day.
* ``advance_sandbox_clock(days=1)`` / ``set_sandbox_day(day)`` - move it (``./dp sandbox
  --advance N``, ``--set-day YYYY-MM-DD``).
* ``sandbox_current_day(settings)`` - where it stands.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from daily_profit.config import Settings, get_settings

CLOCK_FILE = "sandbox_clock.json"


class SandboxClockError(ValueError):
    """The clock cannot move there, or its file cannot be read."""


def clock_path(settings: Settings) -> Path:
    return settings.data_dir / CLOCK_FILE


def simulation_identity(
    *, seed: int, n_accounts: int, n_days: int, start_date: dt.date
) -> dict[str, Any]:
    """What tells one simulation from another; the same for the launcher and the clock."""
    return {
        "seed": seed,
        "n_accounts": n_accounts,
        "n_days": n_days,
        "start_date": start_date.isoformat(),
    }


def configured_simulation(settings: Settings) -> dict[str, Any]:
    return simulation_identity(
        seed=settings.sandbox_seed,
        n_accounts=settings.sandbox_accounts,
        n_days=settings.sandbox_days,
        start_date=settings.start_date,
    )


def _simulated_days(simulation: dict[str, Any]) -> tuple[dt.date, dt.date]:
    first = dt.date.fromisoformat(simulation["start_date"])
    return first, first + dt.timedelta(days=int(simulation["n_days"]) - 1)


def read_clock_day(path: Path, simulation: dict[str, Any]) -> dt.date | None:
    """The day the clock at ``path`` stands on for ``simulation``; None when there is no clock
    file or it belongs to another simulation."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        content = json.loads(raw)
        belongs_to, day_text = content["simulation"], content["day"]
        day = dt.date.fromisoformat(day_text)
    except (ValueError, KeyError, TypeError) as exc:
        raise SandboxClockError(
            f"the sandbox clock file {path} is unreadable ({type(exc).__name__}: {exc}); "
            "set it again with ./dp sandbox --set-day YYYY-MM-DD"
        ) from None
    if belongs_to != simulation:
        return None
    first, last = _simulated_days(simulation)
    if not first <= day <= last:
        raise SandboxClockError(
            f"the sandbox clock file {path}: field 'day' is {day}, outside the simulated days "
            f"{first} to {last}"
        )
    return day


def sandbox_current_day(settings: Settings | None = None) -> dt.date:
    """The last day the configured sandbox serves: its clock's day, else its last simulated day."""
    settings = settings or get_settings()
    day = read_clock_day(clock_path(settings), configured_simulation(settings))
    return settings.sandbox_end_date if day is None else day


def set_sandbox_day(day: dt.date, settings: Settings | None = None) -> dt.date:
    """Move the configured sandbox's clock to ``day`` (any simulated day, back or forth)."""
    settings = settings or get_settings()
    first, last = settings.start_date, settings.sandbox_end_date
    if not first <= day <= last:
        raise SandboxClockError(
            f"the sandbox clock cannot stand on {day}: the simulation covers {first} to {last} "
            f"(DAILY_PROFIT_START_DATE, DAILY_PROFIT_SANDBOX_DAYS={settings.sandbox_days})"
        )
    path = clock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"day": day.isoformat(), "simulation": configured_simulation(settings)}
    # Replaced, never rewritten in place: the server reads it on every request.
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(content, indent=1) + "\n")
    os.replace(partial, path)
    return day


def advance_sandbox_clock(days: int = 1, settings: Settings | None = None) -> dt.date:
    """Move the configured sandbox's clock ``days`` forward; returns its new day."""
    settings = settings or get_settings()
    if days < 1:
        raise SandboxClockError(f"the sandbox clock advances by at least 1 day, got {days}")
    current = sandbox_current_day(settings)
    last = settings.sandbox_end_date
    target = current + dt.timedelta(days=days)
    if target > last:
        raise SandboxClockError(
            f"the sandbox clock cannot advance {days} day(s) from {current}: its last simulated "
            f"day is {last} ({(last - current).days} day(s) left); simulate more days with "
            "DAILY_PROFIT_SANDBOX_DAYS"
        )
    return set_sandbox_day(target, settings)


def start_sandbox_clock(settings: Settings) -> dt.date:
    """The clock of a sandbox being started: ``sandbox_clock_start_offset_days`` before its
    last simulated day (0: every day served, as without a clock)."""
    offset = settings.sandbox_clock_start_offset_days
    if offset >= settings.sandbox_days:
        raise SandboxClockError(
            f"DAILY_PROFIT_SANDBOX_CLOCK_START_OFFSET_DAYS is {offset}: it must hold back fewer "
            f"days than the {settings.sandbox_days} simulated (DAILY_PROFIT_SANDBOX_DAYS)"
        )
    return set_sandbox_day(settings.sandbox_end_date - dt.timedelta(days=offset), settings)


class ClockReader:
    """The clock's day as the server sees it, re-read only when the file changes."""

    def __init__(self, path: Path, simulation: dict[str, Any]) -> None:
        self.path = path
        self.simulation = simulation
        self._stamp: tuple[int, int, int] | None = None
        self._day: dt.date | None = None

    def day(self) -> dt.date | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._stamp = self._day = None
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._day = read_clock_day(self.path, self.simulation)
            self._stamp = stamp
        return self._day
