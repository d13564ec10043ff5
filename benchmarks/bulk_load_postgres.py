"""Replace one day of raw_trades_closed on PostgreSQL: the warehouse write path vs the old upsert.

    uv run python benchmarks/bulk_load_postgres.py            # ~200,000 trades
    uv run python benchmarks/bulk_load_postgres.py --quick    # ~20,000 trades
    uv run python benchmarks/bulk_load_postgres.py --study    # + COPY format and month-vs-day

Measured in a brand-new database (created and dropped here; admin URL from
DAILY_PROFIT_BENCH_PG_ADMIN_URL, default postgresql://postgres@127.0.0.1:5432/postgres):

- ours: ``Warehouse.replace_partitions`` (ensure the day's partition, TRUNCATE it, COPY the
  day as CSV made by polars, checksum, quarantine and load record, one transaction), on the
  migrated schema, for a day that is new (first load) and for a day that exists (rerun);
- baseline, the replaced system's method in the same run: psycopg2
  ``execute_values(INSERT ... ON CONFLICT (natural key) DO UPDATE SET ...)``, 5,000 rows per
  page, into an equivalent plain table with the same columns and primary key, from the same
  frame (its conversion to Python rows included, as ours includes making the CSV).

Each figure is one JSON line (benchmarks/_common.py). Floors: replace >= 120,000 rows/s and
>= 8x the baseline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    log,
    median_time,
    report,
    scratch_postgres_database,
    timed,
)
from daily_profit.warehouse import migrate
from daily_profit.warehouse.io import Warehouse, partition_name
from daily_profit.warehouse.records import SOURCES

TABLE = "raw_trades_closed"
DAY = dt.date(2025, 6, 2)
PAGE_SIZE = 5_000
FLOOR_ROWS_PER_S = 120_000
FLOOR_RATIO = 8.0

_SYMBOLS = {
    # symbol: (price, contract size, USD per unit of price move per lot)
    "EURUSD": (1.0812, 100_000.0),
    "GBPUSD": (1.2731, 100_000.0),
    "USDJPY": (156.42, 100_000.0),
    "XAUUSD": (2351.35, 100.0),
    "XAGUSD": (30.412, 5_000.0),
    "NDX100": (18_950.5, 1.0),
    "US30": (38_880.0, 1.0),
    "BTCUSD": (67_250.0, 1.0),
}


def trades_frame(day: dt.date, n: int, seed: int = 7) -> pl.DataFrame:
    """A realistic day of closed trades with every column of raw_trades_closed."""
    rng = np.random.default_rng(seed)
    names = np.array(list(_SYMBOLS))
    which = rng.integers(0, len(names), n)
    price = np.array([p for p, _ in _SYMBOLS.values()])[which]
    contract = np.array([c for _, c in _SYMBOLS.values()])[which]
    lots = np.round(np.clip(rng.lognormal(-1.0, 1.0, n), 0.01, 50.0), 2)
    open_price = np.round(price * (1 + rng.normal(0, 0.004, n)), 5)
    close_price = np.round(open_price * (1 + rng.normal(0, 0.002, n)), 5)
    side_buy = rng.random(n) < 0.55
    direction = np.where(side_buy, 1.0, -1.0)
    day_start = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)
    duration_ms = rng.integers(1_000, 3 * 86_400_000, n)
    close_ms = day_start + rng.integers(0, 86_400_000, n)
    open_ms = close_ms - duration_ms
    qty = lots * contract
    profit = np.round(direction * (close_price - open_price) * qty / np.maximum(price, 1.0), 2)
    position = np.arange(n) + 50_000_000
    frame = pl.DataFrame(
        {
            "trade_date": pl.Series([day], dtype=pl.Date).new_from_index(0, n),
            "broker": rng.choice([3, 7, 11], n),
            "mngr": rng.integers(1, 20, n),
            "platform": rng.choice([4, 5], n, p=[0.2, 0.8]),
            "ticket": position + 1_000_000_000,
            "position": position,
            "login": rng.integers(100_000, 105_000, n),
            "std_symbol": names[which],
            "trd_symbol_base": names[which],
            "has_trd": rng.random(n) < 0.9,
            "side": np.where(side_buy, "Buy", "Sell"),
            "lots": lots,
            "contract_size": contract,
            "qty_in_base_crncy": np.round(qty, 2),
            "volume_usd": np.round(qty * np.minimum(price, 2.0), 2),
            "stop_loss": np.where(rng.random(n) < 0.6, np.round(open_price * 0.99, 5), np.nan),
            "take_profit": np.where(rng.random(n) < 0.5, np.round(open_price * 1.01, 5), np.nan),
            "open_time": open_ms,
            "open_price": open_price,
            "close_time": close_ms,
            "close_price": close_price,
            "duration": np.round(duration_ms / 3_600_000, 4),
            "profit": profit,
            "commission": -np.round(lots * 3.5, 2),
            "fee": np.where(rng.random(n) < 0.1, -0.5, 0.0),
            "swap": np.round(np.where(duration_ms > 86_400_000, -lots * 1.2, 0.0), 2),
            "has_comment": rng.random(n) < 0.05,
        }
    )
    frame = frame.with_columns(
        pl.col("ticket").cast(pl.String),
        pl.col("position").cast(pl.String),
        pl.col("login").cast(pl.String),
        pl.when(pl.col("has_trd")).then(pl.col("trd_symbol_base") + ".r").alias("trd_symbol"),
        pl.col("stop_loss").fill_nan(None),
        pl.col("take_profit").fill_nan(None),
        pl.col("open_time").cast(pl.Datetime("ms", "UTC")),
        pl.col("close_time").cast(pl.Datetime("ms", "UTC")),
        pl.when(pl.col("has_comment")).then(pl.lit("copy trade, signal #42")).alias("comment"),
    )
    return frame.select(SOURCES["trades_closed"].columns).cast(
        dict(SOURCES["trades_closed"].polars_schema)  # type: ignore[arg-type]
    )


# --- the replaced system ---------------------------------------------------------------------


def _psycopg2_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def baseline_setup(url: str) -> None:
    import psycopg2

    with psycopg2.connect(_psycopg2_dsn(url)) as conn, conn.cursor() as cur:
        # The same columns and natural-key primary key, as a plain table.
        cur.execute(f"CREATE TABLE baseline_trades_closed (LIKE {TABLE})")
        cur.execute(
            "ALTER TABLE baseline_trades_closed "
            "ADD PRIMARY KEY (trade_date, broker, platform, position)"
        )
    conn.close()


def baseline_upsert(url: str, frame: pl.DataFrame, run_id: str) -> None:
    """psycopg2 execute_values + INSERT ... ON CONFLICT DO UPDATE, 5,000 rows per page."""
    import psycopg2
    from psycopg2.extras import execute_values

    now = dt.datetime.now(dt.UTC)
    rows = frame.with_columns(
        pl.lit(run_id).alias("_run_id"), pl.lit(now).alias("_loaded_at")
    ).rows()
    columns = [*frame.columns, "_run_id", "_loaded_at"]
    key = ("trade_date", "broker", "platform", "position")
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c not in key)
    names = ", ".join(f'"{c}"' for c in columns)
    sql = (
        f"INSERT INTO baseline_trades_closed ({names}) "
        f"VALUES %s ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )
    conn = psycopg2.connect(_psycopg2_dsn(url))
    try:
        with conn.cursor() as cur:
            execute_values(cur, sql, rows, page_size=PAGE_SIZE)
        conn.commit()
    finally:
        conn.close()


# --- COPY format study -----------------------------------------------------------------------


def _copy_once(wh: Warehouse, frame: pl.DataFrame, fmt: str) -> None:
    """TRUNCATE the day's partition and COPY the frame in ``fmt``, in one transaction."""
    import psycopg

    from daily_profit.warehouse.io import (
        _PG_COPY_HEADER,
        _PG_COPY_TRAILER,
        _binary_rows,
        table_info,
    )

    info = table_info(TABLE)
    order = list(info.copy_order)
    frame = frame.sort(list(info.natural_key)).select(order)
    target = partition_name(TABLE, DAY)
    columns = ", ".join(f'"{c}"' for c in order)
    url = wh.url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT set_config('dp.run_id', 'study', true), "
            "set_config('dp.loaded_at', now()::text, true)"
        )
        cur.execute(f'TRUNCATE "{target}"')
        if fmt == "csv":
            with cur.copy(f'COPY "{target}" ({columns}) FROM STDIN (FORMAT csv)') as copy:
                for chunk in frame.iter_slices(20_000):
                    copy.write(
                        chunk.write_csv(
                            include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.3fZ"
                        ).encode()
                    )
        elif fmt == "binary_vectorised":
            with cur.copy(f'COPY "{target}" ({columns}) FROM STDIN (FORMAT binary)') as copy:
                copy.write(_PG_COPY_HEADER)
                for chunk in frame.iter_slices(20_000):
                    copy.write(_binary_rows(chunk, info.dense))
                copy.write(_PG_COPY_TRAILER)
        else:  # psycopg's own binary rows, fed one Python tuple at a time
            types = [str(frame.schema[c]) for c in order]
            pg_types = {"Date": "date", "Int64": "int8", "Float64": "float8", "String": "text"}
            copy_types = ["timestamptz" if t.startswith("Datetime") else pg_types[t] for t in types]
            with cur.copy(f'COPY "{target}" ({columns}) FROM STDIN (FORMAT binary)') as copy:
                copy.set_types(copy_types)
                for row in frame.iter_rows():
                    copy.write_row(row)


def format_study(wh: Warehouse, frame: pl.DataFrame, repeat: int) -> None:
    """The same TRUNCATE + COPY of one day in each format, interleaved (the host is shared)."""
    formats = ("csv", "binary_vectorised", "binary_write_row")
    times: dict[str, list[float]] = {f: [] for f in formats}
    for _ in range(repeat):
        for fmt in formats:
            times[fmt].append(timed(lambda fmt=fmt: _copy_once(wh, frame, fmt))[0])
    csv = frame.height / min(times["csv"])
    for fmt in formats:
        report(
            f"copy_format.{fmt}",
            frame.height / min(times[fmt]),
            "rows/s",
            baseline=csv,
            params={"rows": frame.height, "repeat": repeat, "statistic": "best", "baseline": "csv"},
        )


# --- month vs day ----------------------------------------------------------------------------


def granularity_study(rows: int, preload_days: int, repeat: int) -> None:
    """The write path with one partition per day vs per month, on tables holding other days.

    Three databases side by side (day, day with COPY FREEZE, month), each preloaded with
    the same days; then each measurement runs on every variant in turn, ``repeat`` times, so
    that load from other processes on the host hits all of them alike. Best times reported.
    """
    from contextlib import ExitStack

    variants = {"day": ("day", False), "day_freeze": ("day", True), "month": ("month", False)}
    days = [DAY + dt.timedelta(days=i) for i in range(preload_days)]
    new_days = [days[-1] + dt.timedelta(days=1 + i) for i in range(repeat)]
    mid = days[len(days) // 2]
    frames = {d: trades_frame(d, rows, seed=i) for i, d in enumerate(days + new_days)}
    with ExitStack() as stack:
        houses: dict[str, Warehouse] = {}
        for name, (granularity, freeze) in variants.items():
            url = stack.enter_context(scratch_postgres_database())
            migrate.upgrade(url)
            wh = Warehouse(url)
            stack.callback(wh.dispose)
            wh.granularity, wh.copy_freeze = granularity, freeze
            for d in days:
                wh.replace_partitions(TABLE, frames[d], dates=[d], run_id="preload")
            houses[name] = wh
        log(f"  granularity study: {len(days)} days x {rows} rows preloaded per variant")
        times: dict[tuple[str, str], list[float]] = {}
        for rep in range(repeat):
            for name, wh in houses.items():
                new = new_days[rep]
                ops = {
                    "load_new_day": lambda wh=wh, d=new: wh.replace_partitions(
                        TABLE, frames[d], dates=[d], run_id="new"
                    ),
                    "replace_existing_day": lambda wh=wh, rep=rep: wh.replace_partitions(
                        TABLE, frames[mid], dates=[mid], run_id=f"rerun{rep}"
                    ),
                    "read_7_days": lambda wh=wh: wh.read_partitions(TABLE, days[0], days[6]),
                }
                for op, fn in ops.items():
                    times.setdefault((name, op), []).append(timed(fn)[0])
        sizes = {}
        for name, wh in houses.items():
            with wh.engine.connect() as conn:
                sizes[name] = conn.exec_driver_sql(
                    "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                    f"WHERE inhparent = '{TABLE}'::regclass"
                ).scalar_one()
    for (name, op), ts in times.items():
        n = 7 * rows if op == "read_7_days" else rows
        report(
            f"granularity.{op}",
            n / min(ts),
            "rows/s",
            baseline=(n / min(times[("month", op)])) if name != "month" else None,
            params={
                "variant": name,
                "rows_per_day": rows,
                "days_in_table": len(days),
                "repeat": repeat,
                "statistic": "best",
                "baseline": "month",
            },
        )
    for name, size in sizes.items():
        report(
            "granularity.table_size_after_reruns",
            float(size) / 1e6,
            "MB",
            params={"variant": name, "reruns_of_one_day": repeat},
        )


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~20,000 trades instead of ~200,000")
    parser.add_argument("--rows", type=int, help="trades in the day (overrides --quick)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours per figure (median)")
    parser.add_argument("--study", action="store_true", help="also COPY format and month vs day")
    args = parser.parse_args(argv)
    rows = args.rows or (20_000 if args.quick else 200_000)
    frame = trades_frame(DAY, rows)
    params = {"rows": rows, "table": TABLE, "columns": frame.width, "repeat": args.repeat}
    log(f"bulk_load_postgres: {rows} trades, {frame.width} columns")

    with scratch_postgres_database() as url:
        migrate.upgrade(url)
        wh = Warehouse(url)
        try:
            baseline_setup(url)
            # Ours, a day that is new: the partition is created, then loaded.
            t_first, _ = timed(
                lambda: wh.replace_partitions(TABLE, frame, dates=[DAY], run_id="first")
            )
            # Ours, a rerun: the day exists and is replaced.
            t_replace = median_time(
                lambda: wh.replace_partitions(TABLE, frame, dates=[DAY], run_id="rerun"),
                args.repeat,
            )
            log(f"  ours: first {t_first:.2f}s, replace {t_replace:.2f}s")
            b_first, _ = timed(lambda: baseline_upsert(url, frame, "first"))
            b_replace, _ = timed(lambda: baseline_upsert(url, frame, "rerun"))
            log(f"  baseline: first {b_first:.2f}s, upsert over existing {b_replace:.2f}s")
            ours, base = rows / t_replace, rows / b_replace
            report(
                "bulk_load_postgres.replace_day",
                ours,
                "rows/s",
                baseline=base,
                params=params | {"day": "existing", "baseline": "execute_values upsert, 5000/page"},
            )
            report(
                "bulk_load_postgres.load_new_day",
                rows / t_first,
                "rows/s",
                baseline=rows / b_first,
                params=params | {"day": "new", "baseline": "execute_values upsert, 5000/page"},
            )
            if args.study:
                format_study(wh, frame, args.repeat)
        finally:
            wh.dispose()
    if args.study:
        granularity_study(rows=max(rows // 2, 10_000), preload_days=10, repeat=args.repeat)
    ok = ours >= FLOOR_ROWS_PER_S and ours >= FLOOR_RATIO * base
    log(
        f"floors: {ours:,.0f} rows/s (>= {FLOOR_ROWS_PER_S:,}) and {ours / base:.1f}x "
        f"(>= {FLOOR_RATIO:g}x): {'met' if ok else 'NOT MET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
