"""The default main job (`./dp main`: 300 accounts x 120 days, the built-in sandbox), wall time.

    uv run python benchmarks/main_job.py            # the whole default main job, both ways
    uv run python benchmarks/main_job.py --quick    # the first 30 days
    uv run python benchmarks/main_job.py --study    # + the range runs on Dagster's default storage

Each variant runs `daily-profit main` in its own process, as a user does, on a fresh data folder
and a fresh Dagster instance (a temporary DAGSTER_HOME), against one sandbox on a free port that
the first variant starts (its start-up is in that variant's time; the sandbox is stopped at the
end). Figures (JSON lines, benchmarks/_common.py):

- ``main_job_default_sandbox``: seconds, the main job as shipped: the raw layer as one range run
  of ``raw_daily`` (per-day audit, publication and check results inside it) and the local
  instance's event log of ``daily_profit/instance_storage.py`` (the root dagster.yaml).
  ``baseline``: the same driver as before this change, in the same run: one ``raw_daily`` run
  per day (``--raw-runs per-day``) on Dagster's default SQLite storage. Floor: <= 240 s.
- ``main_job_range_runs_default_storage`` (``--study``): range runs on Dagster's default storage,
  to tell the two changes apart.

params: days, exit status, load averages (1/5/15 min) before and after, CPU seconds of the job.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import log, report
from daily_profit.config import PROJECT_ROOT
from daily_profit.sandbox.launcher import stop_sandbox

FLOOR_S = 240.0
STORAGES = ("run_storage", "event_log_storage", "schedule_storage")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dagster_home(folder: Path, *, fast_event_log: bool) -> Path:
    """A fresh instance: the root dagster.yaml with its storage folders under ``folder``, or
    Dagster's default SQLite storage there (what `./dp main` used before)."""
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    for key in STORAGES:
        config.pop(key)
    if fast_event_log:
        root = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
        for key in STORAGES:
            config[key] = root[key]
            config[key]["config"]["base_dir"] = str(folder / "storage" / key)
    else:
        config["storage"] = {"sqlite": {"base_dir": str(folder / "storage")}}
    config["local_artifact_storage"]["config"]["base_dir"] = str(home)
    config["compute_logs"]["config"]["base_dir"] = str(home / "compute_logs")
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _run_main(name: str, folder: Path, port: int, days: int | None, *, raw_runs: str, fast: bool):
    env = {
        **os.environ,
        "DAILY_PROFIT_DATA_DIR": str(folder / "data"),
        "DAILY_PROFIT_SANDBOX_PORT": str(port),
        "DAGSTER_HOME": str(_dagster_home(folder, fast_event_log=fast)),
    }
    args = [sys.executable, "-m", "daily_profit.cli", "main", "--raw-runs", raw_runs]
    if days is not None:
        args += ["--days", str(days)]
    load_before = os.getloadavg()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    log(f"{name}: {' '.join(args[2:])}")
    started = time.perf_counter()
    with (folder / "out.txt").open("w") as out:
        status = subprocess.call(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT
        )
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    log(f"  {seconds:.1f} s, exit {status}, output in {folder / 'out.txt'}")
    return seconds, {
        "exit_status": status,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "job_cpu_s": round(cpu, 1),
        "raw_runs": raw_runs,
        "event_log": "daily_profit.instance_storage" if fast else "dagster default sqlite",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first 30 days only")
    parser.add_argument("--study", action="store_true", help="+ range runs on default storage")
    args = parser.parse_args()
    days = 30 if args.quick else None
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench_main_job_") as tmp:
        root = Path(tmp)
        try:
            ours, ours_params = _run_main(
                "main job (range runs, instance event log)",
                root / "ours",
                port,
                days,
                raw_runs="range",
                fast=True,
            )
            base, base_params = _run_main(
                "baseline (one run per raw day, default storage)",
                root / "baseline",
                port,
                days,
                raw_runs="per-day",
                fast=False,
            )
            study = None
            if args.study:
                study = _run_main(
                    "range runs on default storage",
                    root / "study",
                    port,
                    days,
                    raw_runs="range",
                    fast=False,
                )
        finally:
            stop_sandbox(port)
    common = {"days": days or 120, "accounts": 300, "floor_s": FLOOR_S}
    report(
        "main_job_default_sandbox",
        ours,
        "s",
        baseline=base,
        params={**common, **ours_params, "baseline": base_params},
    )
    if study is not None:
        report(
            "main_job_range_runs_default_storage",
            study[0],
            "s",
            baseline=base,
            params={**common, **study[1]},
        )
    failed = ours_params["exit_status"] != 0 or (days is None and ours > FLOOR_S)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
