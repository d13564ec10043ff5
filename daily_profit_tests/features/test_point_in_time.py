"""Point in time, proven: nothing dated after D, and nothing time-varying in the account master,
reaches a staging row or a feature of D.

The property test takes the small simulated firm, picks a cut-off day D and rewrites
everything dated after D at random: values scaled and shuffled, rows dropped, moved to other
later days or duplicated, identities (login, account, symbol, side, status, phase, plan)
swapped, regimes and their instruments rewritten. Staging and features for every day up to D
must come out identical, to the bit.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from daily_profit.features.pipeline import build_features, build_staging
from daily_profit.features.staging import MASTER_STATIC_COLUMNS
from daily_profit_tests.features.conftest import Firm

# Raw source -> its date column.
DATED = {
    "metrics_daily": "date",
    "metrics_hourly": "date",
    "trades_closed": "trade_date",
    "trades_open": "trade_date",
    "regimes_daily": "date",
}
# Columns shuffled among the later rows (identities and categories), beyond numeric noise.
SHUFFLED = {
    "metrics_daily": ("account_id", "login", "status", "phase", "plan_id", "num_trades"),
    "metrics_hourly": ("account_id", "hour", "num_trades"),
    "trades_closed": ("login", "std_symbol", "side", "stop_loss"),
    "trades_open": ("login", "std_symbol", "side"),
    "regimes_daily": ("volatility_regime", "sentiment_score"),
}


def _perturb_later(
    frame: pl.DataFrame,
    source: str,
    cutoff: dt.date,
    rng: np.random.Generator,
    mode: int,
    gone: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """``frame`` with every row dated after ``cutoff`` rewritten (rows up to it untouched)."""
    date_column = DATED[source]
    early = frame.filter(pl.col(date_column) <= cutoff)
    late = frame.filter(pl.col(date_column) > cutoff)
    if late.height == 0:
        return frame
    n = late.height
    changes: list[pl.Series] = []
    for name, dtype in late.schema.items():
        if name == date_column:
            continue
        column = late[name]
        if dtype == pl.Float64:
            factor = rng.uniform(-3.0, 3.0, n)
            changes.append((column * pl.Series(factor)).alias(name))
        elif name == "instruments_json":
            # The ``gone`` symbols vanish from every later day: which symbols are priced
            # after D must not matter to D.
            changes.append(
                pl.Series(
                    name, [_rewrite_instruments(t, gone, rng) for t in column], dtype=pl.String
                )
            )
    late = late.with_columns(changes)
    shuffled = [
        late[c].gather(pl.Series(rng.permutation(n))).alias(c)
        for c in SHUFFLED[source]
        if c in late.columns
    ]
    if shuffled:
        late = late.with_columns(shuffled)
    if mode == 1:  # drop about half of the later rows
        late = late.filter(pl.Series(rng.random(n) < 0.5))
    elif mode == 2:  # move rows to other later days (possibly past the range end)
        shift = pl.Series(rng.integers(1, 6, n)).cast(pl.Int64)
        late = late.with_columns((pl.col(date_column) + pl.duration(days=shift)).alias(date_column))
    elif mode == 3:  # duplicate the later rows
        late = pl.concat([late, late])
    return pl.concat([early, late.select(frame.columns)])


def _rewrite_instruments(
    text: str | None, gone: frozenset[str], rng: np.random.Generator
) -> str | None:
    """New prices for every symbol, the ``gone`` ones and a few more dropped, one new added."""
    if text is None:
        return None
    items = {
        sym: {k: float(v) * float(rng.uniform(-5, 5)) for k, v in item.items()}
        for sym, item in orjson.loads(text).items()
        if sym not in gone and rng.random() < 0.8
    }
    items["NEWSYM"] = {"eodPrice": 1.0, "dailyReturn": 0.5, "volatility90d": 0.9}
    return orjson.dumps(items, option=orjson.OPT_SORT_KEYS).decode()


def _unpriced_early(regimes: pl.DataFrame, symbol: str, until: dt.date) -> pl.DataFrame:
    """The regimes with ``symbol`` missing from the instruments up to ``until``: a symbol the
    feed starts pricing mid-range, so which symbols are priced varies over time."""

    def drop(text: str) -> str:
        items = orjson.loads(text)
        items.pop(symbol, None)
        return orjson.dumps(items, option=orjson.OPT_SORT_KEYS).decode()

    early = pl.col("date") <= until
    return regimes.with_columns(
        pl.when(early)
        .then(pl.col("instruments_json").map_elements(drop, return_dtype=pl.String))
        .otherwise(pl.col("instruments_json"))
        .alias("instruments_json")
    )


def _build(raw: dict[str, pl.DataFrame], start: dt.date, end: dt.date) -> tuple[pl.DataFrame, ...]:
    staging = build_staging(
        raw["metrics_daily"], raw["plans"], raw["metrics_alltime"], start=start, end=end
    )
    features = build_features(
        staging,
        raw["metrics_daily"],
        raw["metrics_hourly"],
        raw["trades_closed"],
        raw["trades_open"],
        raw["regimes_daily"],
        start=start,
        end=end,
    )
    return staging, features


@pytest.fixture(scope="module")
def pit_firm(small_firm) -> Firm:
    """The small firm, with BTCUSD priced only from its 20th day on."""
    regimes = _unpriced_early(
        small_firm.raw["regimes_daily"], "BTCUSD", small_firm.start + dt.timedelta(days=20)
    )
    return Firm(
        raw={**small_firm.raw, "regimes_daily": regimes},
        start=small_firm.start,
        end=small_firm.end,
    )


@pytest.fixture(scope="module")
def baseline(pit_firm) -> tuple[pl.DataFrame, pl.DataFrame]:
    return _build(pit_firm.raw, pit_firm.start, pit_firm.end)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cutoff_offset=st.integers(min_value=0, max_value=40),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    modes=st.fixed_dictionaries({source: st.integers(0, 3) for source in DATED}),
    gone=st.frozensets(st.sampled_from(["BTCUSD", "EURUSD", "NDX100", "XAUUSD"])),
)
def test_data_after_d_never_changes_staging_or_features_of_d(
    pit_firm,
    baseline,
    cutoff_offset: int,
    seed: int,
    modes: dict[str, int],
    gone: frozenset[str],
) -> None:
    cutoff = min(pit_firm.start + dt.timedelta(days=cutoff_offset), pit_firm.end)
    rng = np.random.default_rng(seed)
    raw = dict(pit_firm.raw)
    for source in sorted(DATED):
        raw[source] = _perturb_later(raw[source], source, cutoff, rng, modes[source], gone)
    staging, features = _build(raw, pit_firm.start, pit_firm.end)
    base_staging, base_features = baseline
    upto = pl.col("date") <= cutoff
    assert base_features.filter(upto).height > 0
    assert_frame_equal(staging.filter(upto), base_staging.filter(upto))
    assert_frame_equal(features.filter(upto), base_features.filter(upto))


def test_a_symbol_priced_only_after_d_does_not_change_d(pit_firm, baseline) -> None:
    """BTCUSD is unpriced up to day 20 and traded before: dropping its later prices is no news
    to the days before."""
    cutoff = pit_firm.start + dt.timedelta(days=10)
    regimes = _perturb_later(
        pit_firm.raw["regimes_daily"],
        "regimes_daily",
        cutoff,
        np.random.default_rng(0),
        0,
        frozenset({"BTCUSD"}),
    )
    _, features = _build({**pit_firm.raw, "regimes_daily": regimes}, pit_firm.start, pit_firm.end)
    upto = pl.col("date") <= cutoff
    assert_frame_equal(features.filter(upto), baseline[1].filter(upto))


def test_time_varying_master_fields_never_reach_a_feature(pit_firm, baseline) -> None:
    """Every alltime column except the id and the static attributes is rewritten: no change."""
    master = pit_firm.raw["metrics_alltime"]
    rng = np.random.default_rng(3)
    keep = {"account_id", *MASTER_STATIC_COLUMNS}
    rewritten = master.with_columns(
        [
            (pl.col(c) * pl.Series(rng.uniform(-5, 5, master.height))).cast(dtype)
            if dtype in (pl.Float64, pl.Int64)
            else pl.col(c).shuffle(seed=7)
            for c, dtype in master.schema.items()
            if c not in keep
        ]
    )
    raw = {**pit_firm.raw, "metrics_alltime": rewritten}
    staging, features = _build(raw, pit_firm.start, pit_firm.end)
    assert_frame_equal(staging, baseline[0])
    assert_frame_equal(features, baseline[1])


def test_master_static_attributes_reach_only_their_own_features(pit_firm, baseline) -> None:
    """Changing the master's platform/broker/country changes those features and nothing else."""
    master = pit_firm.raw["metrics_alltime"].with_columns(
        pl.col("platform") + 100, pl.col("broker") + 100, pl.lit("ZZ").alias("country")
    )
    raw = {**pit_firm.raw, "metrics_alltime": master}
    _, features = _build(raw, pit_firm.start, pit_firm.end)
    base = baseline[1]
    static = {"acct_platform", "acct_broker", "acct_country"}
    others = [c for c in base.columns if c not in static]
    assert_frame_equal(features.select(others), base.select(others))
    assert (features["acct_platform"] == base["acct_platform"] + 100).all()
    assert (features["acct_country"] == "ZZ").all()
