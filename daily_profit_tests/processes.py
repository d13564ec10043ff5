"""What a test session leaves running: its children, and the detached sandboxes it started.

Read from /proc (Linux, as CI): a sandbox started by ``ensure_sandbox`` runs in a session of its
own and may have been spawned by a process that is gone (a Dagster run of `dagster dev`), so it
is found by what it writes into: its ``--write-dir`` lies under the session's temporary folder.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def _argv(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def _pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


# Python's own helper, started with the first spawned process and living until the interpreter
# exits (it then stops by itself): not something a test left behind.
_INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def live_children(parent: int) -> list[int]:
    """Running children of ``parent`` (zombies, exited but not yet reaped, and Python's own
    multiprocessing helpers excluded)."""
    out = []
    for pid in _pids():
        stat = _stat(pid)
        if stat is None or stat[1] != parent or stat[0] == "Z":
            continue
        if any(helper in " ".join(_argv(pid)) for helper in _INTERPRETER_HELPERS):
            continue
        out.append(pid)
    return out


def sandboxes_writing_under(folder: Path) -> list[int]:
    """Detached sandboxes (``python -m daily_profit.sandbox --write-dir ...``) whose write
    folder lies under ``folder``."""
    folder = folder.resolve()
    found = []
    for pid in _pids():
        argv = _argv(pid)
        if "daily_profit.sandbox" not in argv or "--write-dir" not in argv:
            continue
        write_dir = Path(argv[argv.index("--write-dir") + 1]).resolve()
        stat = _stat(pid)
        if stat is not None and stat[0] != "Z" and write_dir.is_relative_to(folder):
            found.append(pid)
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes (zombies excluded) of the process group ``pgid``."""
    found = []
    for pid in _pids():
        try:
            fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(pid)
    return found


def stop_group(pgid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM to a process group started with ``start_new_session=True`` (a server and the
    workers it forked), SIGKILL to what is still there after ``timeout_s``."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not group_members(pgid):
                return
            time.sleep(0.2)


def describe(pid: int) -> str:
    return f"pid {pid}: {' '.join(_argv(pid))[:200]}"


def terminate(pids: list[int], timeout_s: float = 10.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all((_stat(pid) or ("Z", 0))[0] == "Z" for pid in pids):
            return
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
