"""Closed trades from the Risk API to the warehouse, end to end, through the raw assets' code path.

    uv run python benchmarks/ingest_e2e.py            # 20,000 accounts x 60 days: ~1.04M trades
    uv run python benchmarks/ingest_e2e.py --quick    # 6,000 accounts x 14 days, < 1 minute
    uv run python benchmarks/ingest_e2e.py --accounts 6000 --days 365   # ~1.0M, small days

The sandbox Risk API runs in its own process (``python -m daily_profit.sandbox``, started here
on a free port, same size and seed, killed at the end), so the client never shares a GIL with
the server. It serialises every endpoint before it listens (``warm=True`` in its ``__main__``),
and a short HTTP warm-up (one page per day, untimed) warms its selection cache and the
connections. Every day is then landed with ``ingest_api_source(client, warehouse,
TRADES_CLOSED, day, run_id=...)``, exactly what the ``raw_trades_closed`` asset calls: paging
through ``fetch_all`` (its thread pool, 4 pages at a time), de-duplication, ``parse_records``,
account-id resolution, ``Warehouse.replace_partitions`` (binary COPY on PostgreSQL, one
transaction per day with its checksum and load record).

Figures (one JSON line each, benchmarks/_common.py):

- ``ingest_e2e_postgres``: records landed per wall second, every day of the sandbox, allowance
  lifted (``--no-rate-limit``: the platform's own ceiling), into a brand-new migrated PostgreSQL
  database (admin URL from DAILY_PROFIT_BENCH_PG_ADMIN_URL, default
  postgresql://postgres@127.0.0.1:5432/postgres), dropped at the end. Floor: >= 80,000
  records/s (the replaced system claimed 15,000). With ``--baseline-rev REV`` the same
  benchmark first runs on the code of that commit (``git archive`` into a temp folder, same
  sizes, same interpreter and packages), and its figure is the ``baseline``: floor ratio >= 2
  against the record-by-record client this path replaced (``--baseline-rev 6bfdcbf``).
- ``ingest_e2e_sqlite``: the same into a migrated SQLite file in a temp folder.
- ``ingest_rate_limited``: the same path under the contract's allowance: a second sandbox WITH
  its default limit (15 requests/s, bursts of 20), the client with ``SharedAllowance`` at 15/s,
  into PostgreSQL, for ~60 s (``--quick``: ~15 s) of days taken in order. ``baseline`` is the
  allowance's record rate (15 requests/s x 1,000 records a page = 15,000 records/s), so
  ``ratio`` is the share of the allowance turned into records. Floor: ratio >= 0.9, with the
  server's 429 count (``/_sandbox/info`` stats) in params.

Several days are ingested at once (``--day-workers``, default 2 threads, each with its own
client), as parallel Dagster runs of different partitions would; params say how many.
The load averages of the machine (1/5/15 min) before and after each figure are in params.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import log, report, scratch_postgres_database
from daily_profit.api.client import MAX_PAGE_SIZE, RiskApiClient
from daily_profit.api.limits import CONTRACT_REQUESTS_PER_SECOND, SharedAllowance
from daily_profit.config import SANDBOX_API_KEY
from daily_profit.ingestion.ingest import ingest_api_source
from daily_profit.ingestion.sources import TRADES_CLOSED
from daily_profit.warehouse import migrate
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.records import parse_records

ENDPOINT = TRADES_CLOSED.endpoint
PAGE = MAX_PAGE_SIZE[ENDPOINT]
FLOOR_RECORDS_PER_S = 80_000
FLOOR_RATIO_TO_BASELINE = 2.0
FLOOR_ALLOWANCE_SHARE = 0.9
ALLOWANCE_RECORDS_PER_S = CONTRACT_REQUESTS_PER_SECOND * PAGE  # 15,000
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- the sandbox, in its own process ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Sandbox:
    process: subprocess.Popen[bytes]
    base_url: str
    info: dict[str, Any]
    startup_seconds: float

    @property
    def days(self) -> list[dt.date]:
        cfg = self.info["config"]
        first = dt.date.fromisoformat(cfg["start_date"])
        last = dt.date.fromisoformat(cfg["end_date"])
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.base_url + "_sandbox/info", timeout=10.0).json()["stats"]


@contextlib.contextmanager
def sandbox_process(
    accounts: int,
    days: int,
    seed: int,
    *,
    rate_limited: bool,
    log_dir: Path,
    start_date: dt.date | None = None,
    write_dir: Path | None = None,
    latency_seconds: float = 0.0,
) -> Iterator[Sandbox]:
    """``python -m daily_profit.sandbox`` on a free port; yields once /_sandbox/info answers.

    ``start_date``: its first simulated day (default the sandbox's); ``write_dir``: where it
    writes its plans export (``plans.csv``), for a platform reading the sandbox as a real API;
    ``latency_seconds``: every response is held that long (its ``slow`` fault), as a distant API."""
    port = _free_port()
    args = [
        sys.executable, "-m", "daily_profit.sandbox", "--accounts", str(accounts),
        "--days", str(days), "--seed", str(seed), "--port", str(port),
        "--api-key", SANDBOX_API_KEY,
    ]  # fmt: skip
    if not rate_limited:
        args.append("--no-rate-limit")
    if start_date is not None:
        args += ["--start-date", start_date.isoformat()]
    if write_dir is not None:
        args += ["--write-dir", str(write_dir)]
    if latency_seconds:
        args += ["--faults", f"slow=1,slow_seconds={latency_seconds}"]
    log_path = log_dir / f"sandbox_{port}.log"
    started = time.perf_counter()
    with log_path.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    base_url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 600
        info = None
        while info is None:
            if process.poll() is not None:
                raise RuntimeError(f"the sandbox exited: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not answer within 600s: {log_path}")
            try:
                r = httpx.get(base_url + "_sandbox/info", timeout=2.0)
                info = r.json() if r.status_code == 200 else None
            except httpx.TransportError:
                time.sleep(0.25)
        cfg = info["config"]
        if (cfg["n_accounts"], cfg["n_days"], cfg["seed"]) != (accounts, days, seed):
            raise RuntimeError(f"another sandbox answers on port {port}: {cfg}")
        yield Sandbox(process, base_url, info, time.perf_counter() - started)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http_warm_up(sandbox: Sandbox, days: list[dt.date]) -> None:
    """One small page per day (untimed): selection cache, connections, code paths."""
    with RiskApiClient(sandbox.base_url, SANDBOX_API_KEY) as client:
        for day in days:
            client.get_page(ENDPOINT, TRADES_CLOSED.params_for(day), limit=1)


# --- ingestion -------------------------------------------------------------------------------


@dataclass
class RunResult:
    days: int = 0
    landed: int = 0
    quarantined: int = 0
    api_total: int = 0
    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    incomplete_days: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu_client: float = 0.0  # CPU seconds of the ingesting workers (all their threads)
    cpu_sandbox: float = 0.0
    cpu_postgres: float = 0.0  # the PostgreSQL backends serving this database

    def cpu_params(self) -> dict[str, Any]:
        total = self.cpu_client + self.cpu_sandbox + self.cpu_postgres
        return {
            "cpu_seconds": {
                "client": round(self.cpu_client, 2),
                "sandbox": round(self.cpu_sandbox, 2),
                "postgres": round(self.cpu_postgres, 2),
            },
            "records_per_cpu_second": round(self.landed / total) if total else None,
            "client_cpu_us_per_record": round(1e6 * self.cpu_client / self.landed, 1)
            if self.landed
            else None,
        }


_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def postgres_backends_cpu(url: str) -> float:
    """CPU seconds of the backends connected to the database of ``url`` (this one excluded)."""
    import sqlalchemy as sa

    from daily_profit.warehouse.io import normalise_url

    engine = sa.create_engine(normalise_url(url), hide_parameters=True)
    try:
        with engine.connect() as conn:
            pids = conn.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).scalars()
            return sum(proc_cpu_seconds(pid) for pid in pids)
    finally:
        engine.dispose()


# One client and one warehouse per worker (thread or process), as each Dagster run has.
_WORKER = threading.local()
_OPENED: list[tuple[RiskApiClient, Warehouse]] = []  # to close them (thread mode)


def _init_worker(
    base_url: str, warehouse_url: str, limiter_path: Path | None, barrier: Any
) -> None:
    limiter = (
        SharedAllowance.on_file(limiter_path, CONTRACT_REQUESTS_PER_SECOND)
        if limiter_path
        else None
    )
    _WORKER.client = RiskApiClient(base_url, SANDBOX_API_KEY, limiter=limiter, max_connections=8)
    _WORKER.warehouse = Warehouse(warehouse_url)
    _WORKER.barrier = barrier
    _OPENED.append((_WORKER.client, _WORKER.warehouse))


def _ready_worker(warm_day: dt.date | None) -> None:
    """Untimed: every worker started (the barrier), connected, and its code paths warm."""
    _WORKER.barrier.wait(timeout=300)
    with _WORKER.warehouse.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    if warm_day is not None:
        page = _WORKER.client.get_page(ENDPOINT, TRADES_CLOSED.params_for(warm_day), limit=200)
        parse_records(TRADES_CLOSED.source, page.records, partition=warm_day)


def _ingest_day(day: dt.date, run_id: str) -> dict[str, Any]:
    cpu = time.process_time()
    rep = ingest_api_source(_WORKER.client, _WORKER.warehouse, TRADES_CLOSED, day, run_id=run_id)
    return {
        # The whole process's CPU: exact in process mode (one day at a time per process).
        "cpu": time.process_time() - cpu,
        "landed": rep.landed,
        "quarantined": rep.quarantined,
        "api_total": rep.api_total,
        "calls": rep.calls,
        "retries": rep.retries,
        "rate_limited": rep.rate_limited,
        "complete": rep.complete,
    }


def ingest_days(
    base_url: str,
    warehouse_url: str,
    days: list[dt.date],
    *,
    day_workers: int,
    mode: str,
    run_id: str,
    limiter_path: Path | None = None,
    deadline_seconds: float | None = None,
    warm: bool = True,
    server_pid: int | None = None,
) -> RunResult:
    """Land ``days`` with ``ingest_api_source``, ``day_workers`` days at a time.

    ``mode`` "process": each worker is its own process (spawned), like parallel Dagster runs;
    "thread": threads of this process. Workers are started and warmed before the clock starts.
    With ``deadline_seconds``, no new day is started once that much time has passed; the
    days started finish and count.
    """
    if mode == "process":
        ctx = multiprocessing.get_context("spawn")
        barrier: Any = ctx.Barrier(day_workers)
        pool: Executor = ProcessPoolExecutor(
            day_workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(base_url, warehouse_url, limiter_path, barrier),
        )
    else:
        barrier = threading.Barrier(day_workers)
        pool = ThreadPoolExecutor(
            day_workers,
            thread_name_prefix="day",
            initializer=_init_worker,
            initargs=(base_url, warehouse_url, limiter_path, barrier),
        )
    result = RunResult()
    with pool:
        warm_day = days[0] if warm else None
        for f in [pool.submit(_ready_worker, warm_day) for _ in range(day_workers)]:
            f.result()
        todo = list(reversed(days))
        is_pg = warehouse_url.startswith("postgres")
        cpu_pg = postgres_backends_cpu(warehouse_url) if is_pg else 0.0
        cpu_sandbox = proc_cpu_seconds(server_pid) if server_pid else 0.0
        cpu_self = time.process_time()
        started = time.perf_counter()
        pending: dict[Future[dict[str, Any]], dt.date] = {}
        for _ in range(min(day_workers, len(todo))):
            day = todo.pop()
            pending[pool.submit(_ingest_day, day, run_id)] = day
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                day = pending.pop(f)
                rep = f.result()
                result.days += 1
                for name in ("landed", "quarantined", "api_total", "calls", "retries"):
                    setattr(result, name, getattr(result, name) + rep[name])
                result.rate_limited += rep["rate_limited"]
                result.cpu_client += rep["cpu"] if mode == "process" else 0.0
                if not rep["complete"]:
                    result.incomplete_days.append(day.isoformat())
                late = (
                    deadline_seconds is not None
                    and time.perf_counter() - started > deadline_seconds
                )
                if todo and not late:
                    day = todo.pop()
                    pending[pool.submit(_ingest_day, day, run_id)] = day
        result.seconds = time.perf_counter() - started
        if mode == "thread":
            result.cpu_client = time.process_time() - cpu_self
        if server_pid:
            result.cpu_sandbox = proc_cpu_seconds(server_pid) - cpu_sandbox
        if is_pg:
            result.cpu_postgres = postgres_backends_cpu(warehouse_url) - cpu_pg
    while _OPENED:
        client, warehouse = _OPENED.pop()
        client.close()
        warehouse.dispose()
    return result


def count_rows(warehouse: Warehouse) -> int:
    with warehouse.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM raw_trades_closed").scalar_one())


def _params(res: RunResult, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        **extra,
        "days": res.days,
        "records_landed": res.landed,
        "records_quarantined": res.quarantined,
        "api_total": res.api_total,
        "seconds": round(res.seconds, 2),
        "requests": res.calls,
        "records_per_request": round(res.landed / res.calls, 1) if res.calls else None,
        "client_retries": res.retries,
        "client_429s": res.rate_limited,
        "incomplete_days": res.incomplete_days[:10],
        **res.cpu_params(),
    }


def baseline_figure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """``ingest_e2e_postgres`` measured on the code of ``args.baseline_rev`` (same sizes)."""
    tree = tmp / "baseline_tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "archive", "--format=tar", args.baseline_rev],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    command = [
        sys.executable, "benchmarks/ingest_e2e.py", "--only", "postgres",
        "--accounts", str(args.accounts), "--days", str(args.days), "--seed", str(args.seed),
        "--day-workers", str(args.day_workers), "--mode", args.mode,
    ]  # fmt: skip
    if args.latency_ms:
        command += ["--latency-ms", str(args.latency_ms)]
    log(f"baseline: {args.baseline_rev} in {tree}")
    # The script puts its own tree first on sys.path (and the sandbox runs from it).
    done = subprocess.run(command, cwd=tree, stdout=subprocess.PIPE, text=True)
    for line in done.stdout.splitlines():
        figure = json.loads(line)
        if figure["name"] == "ingest_e2e_postgres":
            return figure
    raise RuntimeError(f"the baseline run printed no ingest_e2e_postgres: {done.stdout[-2000:]}")


def run_unlimited(
    args: argparse.Namespace, tmp: Path, baseline: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    lines = []
    size = {"accounts": args.accounts, "days_simulated": args.days, "seed": args.seed}
    with sandbox_process(
        args.accounts,
        args.days,
        args.seed,
        rate_limited=False,
        log_dir=tmp,
        latency_seconds=args.latency_ms / 1000,
    ) as sandbox:
        days = sandbox.days
        trades = sandbox.info["endpoints"][ENDPOINT]
        log(
            f"sandbox (no rate limit) up in {sandbox.startup_seconds:.1f}s: {trades:,} closed "
            f"trades over {len(days)} days"
        )
        http_warm_up(sandbox, days)
        common = {
            **size,
            "closed_trades_served": trades,
            "sandbox": "separate process, --no-rate-limit, warmed",
            "api_latency_ms": args.latency_ms,
            "day_workers": args.day_workers,
            "day_concurrency": f"{args.mode}es, one RiskApiClient + Warehouse each "
            "(like parallel Dagster runs of different days)",
            "pages_in_flight_per_day": 4,
            "cpus": os.cpu_count(),
        }
        for target in args.targets:
            if target == "postgres":
                ctx = scratch_postgres_database(prefix="dp_bench_ingest")
            else:
                ctx = contextlib.nullcontext(
                    f"sqlite:///{tmp / f'wh_{uuid.uuid4().hex[:6]}.sqlite'}"
                )
            with ctx as url:
                migrate.upgrade(url)
                wh = Warehouse(url)
                try:
                    load_before = loadavg()
                    res = ingest_days(
                        sandbox.base_url,
                        url,
                        days,
                        day_workers=args.day_workers,
                        mode=args.mode,
                        run_id=f"bench-{target}",
                        server_pid=sandbox.process.pid,
                    )
                    load_after = loadavg()
                    rows = count_rows(wh)
                finally:
                    wh.dispose()
            if rows != res.landed:
                raise RuntimeError(f"{target}: {rows} rows in the table, {res.landed} landed")
            rate = res.landed / res.seconds
            log(f"  {target}: {res.landed:,} records in {res.seconds:.1f}s = {rate:,.0f}/s")
            against = baseline if target == "postgres" else None
            lines.append(
                report(
                    f"ingest_e2e_{target}",
                    rate,
                    "records/s",
                    baseline=against["value"] if against else None,
                    params=_params(
                        res,
                        common
                        | {
                            "warehouse": target,
                            "loadavg_before": load_before,
                            "loadavg_after": load_after,
                        }
                        | (
                            {
                                "baseline": f"the same benchmark at {args.baseline_rev}",
                                "baseline_params": against["params"],
                            }
                            if against
                            else {}
                        ),
                    ),
                )
            )
    return lines


def run_rate_limited(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    size = {"accounts": args.rl_accounts, "days_simulated": args.rl_days, "seed": args.seed}
    with sandbox_process(
        args.rl_accounts, args.rl_days, args.seed, rate_limited=True, log_dir=tmp
    ) as sandbox:
        days = sandbox.days
        log(f"sandbox (15 req/s, burst 20) up in {sandbox.startup_seconds:.1f}s")
        # No HTTP warm-up here: it would spend the allowance. The bucket refills meanwhile.
        limiter_path = tmp / "allowance.sqlite"
        with scratch_postgres_database(prefix="dp_bench_ingest_rl") as url:
            migrate.upgrade(url)
            wh = Warehouse(url)
            try:
                time.sleep(2.0)  # a full server bucket and an empty limiter log to start with
                before = sandbox.stats()
                load_before = loadavg()
                res = ingest_days(
                    sandbox.base_url,
                    url,
                    days,
                    day_workers=args.rl_day_workers,
                    mode=args.mode,
                    warm=False,
                    server_pid=sandbox.process.pid,
                    run_id="bench-rate-limited",
                    limiter_path=limiter_path,
                    deadline_seconds=args.rl_seconds,
                )
                load_after = loadavg()
                after = sandbox.stats()
            finally:
                wh.dispose()
    server_429 = after["rate_limited"] - before["rate_limited"]
    server_requests = after["requests"] - before["requests"]
    rate = res.landed / res.seconds
    log(
        f"  rate limited: {res.landed:,} records in {res.seconds:.1f}s = {rate:,.0f}/s, "
        f"{server_requests} requests ({server_requests / res.seconds:.2f}/s), {server_429} 429s"
    )
    return report(
        "ingest_rate_limited",
        rate,
        "records/s",
        baseline=float(ALLOWANCE_RECORDS_PER_S),
        params=_params(
            res,
            size
            | {
                "warehouse": "postgres",
                "sandbox": "separate process, default allowance 15 req/s burst 20",
                "limiter": f"SharedAllowance {CONTRACT_REQUESTS_PER_SECOND}/s (SQLite file)",
                "baseline": "allowance: 15 requests/s x 1000 records/page",
                "day_workers": args.rl_day_workers,
                "day_concurrency": f"{args.mode}es, one RiskApiClient + Warehouse each",
                "target_seconds": args.rl_seconds,
                "first_day": res.days and days[0].isoformat(),
                "server_requests": server_requests,
                "server_requests_per_s": round(server_requests / res.seconds, 2),
                "server_429s": server_429,
                "loadavg_before": load_before,
                "loadavg_after": load_after,
            },
        ),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small firm, < 1 minute")
    parser.add_argument("--accounts", type=int, help="sandbox accounts (unlimited runs)")
    parser.add_argument("--days", type=int, help="sandbox days (unlimited runs)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--day-workers", type=int, default=2, help="days ingested at once")
    parser.add_argument(
        "--mode", choices=["process", "thread"], default="process", help="day workers are"
    )
    parser.add_argument(
        "--rl-day-workers", type=int, default=4, help="4 = the production risk_api pool limit"
    )
    parser.add_argument("--rl-seconds", type=float, help="rate-limited run length (default 60)")
    parser.add_argument(
        "--only", choices=["postgres", "sqlite", "rate"], action="append", help="repeatable"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="every sandbox response held this long (a distant API; unlimited runs only)",
    )
    parser.add_argument(
        "--baseline-rev",
        help="commit whose ingest_e2e_postgres is measured first, as the baseline (git rev)",
    )
    args = parser.parse_args(argv)
    # Many accounts: weekdays of ~20,000 trades (full pages); weekends ~2,000.
    default_size = (6_000, 14) if args.quick else (20_000, 60)
    args.accounts = args.accounts or default_size[0]
    args.days = args.days or default_size[1]
    args.rl_accounts, args.rl_days = (12_000, 10) if args.quick else (20_000, 60)
    args.rl_seconds = args.rl_seconds or (15.0 if args.quick else 60.0)
    only = set(args.only or ["postgres", "sqlite", "rate"])
    args.targets = [t for t in ("postgres", "sqlite") if t in only]

    ok = True
    with tempfile.TemporaryDirectory(prefix="dp_ingest_e2e_") as tmp_name:
        tmp = Path(tmp_name)
        if args.targets:
            baseline = (
                baseline_figure(args, tmp)
                if args.baseline_rev and "postgres" in args.targets
                else None
            )
            for line in run_unlimited(args, tmp, baseline):
                if line["name"] == "ingest_e2e_postgres":
                    met = line["value"] >= FLOOR_RECORDS_PER_S
                    ok &= met
                    log(
                        f"floor: {line['value']:,.0f} records/s into PostgreSQL "
                        f"(>= {FLOOR_RECORDS_PER_S:,}): {'met' if met else 'NOT MET'}"
                    )
                    if line["ratio"] is not None:
                        met = line["ratio"] >= FLOOR_RATIO_TO_BASELINE
                        ok &= met
                        log(
                            f"floor: {line['ratio']:.2f}x {args.baseline_rev} "
                            f"(>= {FLOOR_RATIO_TO_BASELINE}x): {'met' if met else 'NOT MET'}"
                        )
        if "rate" in only:
            line = run_rate_limited(args, tmp)
            met = line["ratio"] >= FLOOR_ALLOWANCE_SHARE
            ok &= met
            log(
                f"floor: {line['ratio']:.3f} of the allowance (>= {FLOOR_ALLOWANCE_SHARE}), "
                f"{line['params']['server_429s']} 429s: {'met' if met else 'NOT MET'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
