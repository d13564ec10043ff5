"""Run the sandbox API alone: ``python -m daily_profit.sandbox --accounts 300 --days 120``.

Prints the base URL and the API key, then serves until interrupted (Ctrl+C). The key is the
settings' (``DAILY_PROFIT_RISK_API_KEY``, default ``sandbox-key``) unless ``--api-key`` is given;
only the public sandbox key is ever printed. ``--write-dir DIR`` (alias ``--out``) also writes
the plans CSV export (``plans.csv``) and the ground truth (``ground_truth.parquet``) there.
``--faults`` takes the ``X-Sandbox-Faults`` header syntax (server-wide faults), for example
``--faults "429=0.05, 5xx=0.05, shift=0.05"``. ``--no-rate-limit`` lifts the 15 requests/s
allowance. ``--stop`` stops the detached sandbox that the main job or a Dagster run started on
the configured port (``DAILY_PROFIT_SANDBOX_PORT``, default 8765, or ``--port``).
``--clock-file PATH`` serves only the days up to that clock's day (the launcher passes the data
folder's). ``--advance N`` moves the configured sandbox's clock N days forward and
``--set-day YYYY-MM-DD`` sets it (see :mod:`daily_profit.sandbox.clock`); both exit at once.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import threading
import time
from pathlib import Path

from daily_profit.config import SANDBOX_API_KEY, get_settings
from daily_profit.sandbox.faults import FaultConfig, FaultSpecError
from daily_profit.sandbox.server import RateLimit, SandboxServer
from daily_profit.sandbox.simulation import SimulationConfig, simulate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m daily_profit.sandbox",
        description="Serve the simulated prop firm as the Risk API on 127.0.0.1.",
    )
    parser.add_argument("--accounts", type=int, default=300, help="number of accounts")
    parser.add_argument("--days", type=int, default=120, help="number of calendar days")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--start-date",
        type=dt.date.fromisoformat,
        default=dt.date(2025, 1, 1),
        help="first day, YYYY-MM-DD",
    )
    firm = SimulationConfig()
    parser.add_argument(
        "--skilled-share",
        type=float,
        default=firm.skilled_share,
        help="share of skilled traders, 0..1 (default: the tuned population, "
        f"{100 * firm.expected_skilled_share():.0f}%% in expectation)",
    )
    parser.add_argument(
        "--martingale-share",
        type=float,
        default=firm.martingale_share,
        help=f"share of traders who size up after a losing day (default {firm.martingale_share})",
    )
    parser.add_argument(
        "--weekend-activity",
        type=float,
        default=firm.weekend_activity,
        help="how likely crypto traders trade at weekends relative to weekdays "
        f"(default {firm.weekend_activity})",
    )
    parser.add_argument(
        "--regime-vol",
        type=_three_floats,
        default=firm.regime_vol,
        help="volatility multipliers of the COMPRESSED,BALANCED,DISPERSED regimes "
        f"(default {','.join(str(v) for v in firm.regime_vol)})",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--api-key", default=None, help="default: the settings' key (DAILY_PROFIT_RISK_API_KEY)"
    )
    parser.add_argument("--faults", default="", help="server-wide faults, header syntax")
    parser.add_argument("--no-rate-limit", action="store_true", help="lift the 15 req/s limit")
    parser.add_argument(
        "--stop",
        action="store_true",
        help="stop the detached sandbox on --port (default: the configured sandbox port)",
    )
    parser.add_argument(
        "--clock-file",
        type=Path,
        help="serve only the days up to this sandbox clock's day (default: every day)",
    )
    clock = parser.add_mutually_exclusive_group()
    clock.add_argument(
        "--advance",
        type=int,
        metavar="N",
        help="move the configured sandbox's clock N days forward, then exit",
    )
    clock.add_argument(
        "--set-day",
        type=dt.date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="set the configured sandbox's clock to this simulated day, then exit",
    )
    parser.add_argument(
        "--write-dir",
        "--out",
        dest="write_dir",
        type=Path,
        help="write plans.csv and ground_truth.parquet here",
    )
    return parser


def _three_floats(text: str) -> tuple[float, float, float]:
    values = tuple(float(v) for v in text.split(","))
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"three comma-separated numbers expected, got {text!r}")
    return values  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.stop:
        from daily_profit.sandbox.launcher import stop_sandbox

        port = args.port or get_settings().sandbox_port
        pid = stop_sandbox(port)
        print(
            f"stopped the sandbox on port {port} (pid {pid})"
            if pid is not None
            else f"no sandbox started by daily-profit answers on port {port}"
        )
        return 0
    if args.advance is not None or args.set_day is not None:
        return _move_clock(args.advance, args.set_day, args.port)
    try:
        faults = FaultConfig(seed=args.seed).with_header(args.faults)
    except FaultSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        config = SimulationConfig(
            seed=args.seed,
            n_accounts=args.accounts,
            n_days=args.days,
            start_date=args.start_date,
            skilled_share=args.skilled_share,
            martingale_share=args.martingale_share,
            weekend_activity=args.weekend_activity,
            regime_vol=args.regime_vol,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = simulate(config)
    print(
        f"simulated {args.accounts} accounts x {args.days} days in "
        f"{time.perf_counter() - started:.1f}s: {data.trades_closed.height} closed trades",
        flush=True,
    )
    if args.write_dir:
        print(f"plans: {data.write_plans_csv(args.write_dir / 'plans.csv')}")
        print(f"ground truth: {data.write_ground_truth(args.write_dir / 'ground_truth.parquet')}")
    api_key = args.api_key or get_settings().risk_api_key.get_secret_value()
    server = SandboxServer(
        data,
        api_key=api_key,
        faults=faults,
        rate_limit=None if args.no_rate_limit else RateLimit(),
        host=args.host,
        port=args.port,
        warm=True,
        clock_path=args.clock_file,
    )
    with server:
        print(f"base URL: {server.base_url}")
        # A key from the environment may be a real secret: only the public one is shown.
        shown = api_key if api_key == SANDBOX_API_KEY else "(from DAILY_PROFIT_RISK_API_KEY)"
        print(f"apiKey: {shown}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


def _move_clock(advance: int | None, day: dt.date | None, port: int) -> int:
    from daily_profit.sandbox.clock import (
        SandboxClockError,
        advance_sandbox_clock,
        clock_path,
        sandbox_current_day,
        set_sandbox_day,
    )
    from daily_profit.sandbox.launcher import sandbox_info

    settings = get_settings()
    try:
        before = sandbox_current_day(settings)
        if day is not None:
            after = set_sandbox_day(day, settings)
        else:
            after = advance_sandbox_clock(advance or 0, settings)
    except SandboxClockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"sandbox clock: {before} -> {after} (last simulated day {settings.sandbox_end_date}); "
        "reload the code location to see the partitions end there"
    )
    if port:
        settings = settings.model_copy(update={"sandbox_port": port})
    info = sandbox_info(settings)
    if info is not None and info.get("clock_day") != after.isoformat():
        print(
            f"warning: the sandbox on port {settings.sandbox_port} serves up to "
            f"{info.get('clock_day')}, not this clock ({clock_path(settings)}): it was started "
            "from another data folder or without a clock; restart it (./dp sandbox --stop)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
