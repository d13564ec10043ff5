"""The walk-forward backtest: origins that never see the future, days that partition the window,
and figures that compare the model with every baseline on the same out-of-sample rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from daily_profit.modeling import train as train_module
from daily_profit.modeling.dataset import DATE, ID, TARGET, label_dates, usable_rows
from daily_profit.modeling.recalibration import STRETCH_BOUNDS, STRETCH_COLUMN
from daily_profit.modeling.synthetic import SyntheticData, make_synthetic
from daily_profit.modeling.train import SearchBudget, TrainConfig
from daily_profit.modeling.walk_forward import (
    SELECTED_BASELINE,
    WalkForwardConfig,
    block_bootstrap_rmse_ratio,
    conditional_coverage,
    firm_figures,
    last_origins,
    oracle_interval_coverage,
    plan_origins,
    pooled_conditional_coverage,
    prediction_rows,
    run_walk_forward,
    training_rows,
)
from daily_profit.trading_calendar import TradingCalendar

QUICK = TrainConfig(seed=0, budget=SearchBudget(n_trials=1, n_folds=2))


@pytest.fixture(scope="module")
def small() -> SyntheticData:
    return make_synthetic(n_accounts=60, n_days=45, seed=5, regimes=False)


def test_prediction_days_partition_the_out_of_sample_window() -> None:
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(100)]
    origins = plan_origins(days, WalkForwardConfig(step_days=14, min_train_days=40))
    assert [o.day for o in origins] == [days[40] + dt.timedelta(days=14 * k) for k in range(5)]
    covered = [
        o.predict_start + dt.timedelta(days=i)
        for o in origins
        for i in range((o.predict_end - o.predict_start).days + 1)
    ]
    # Every day from the first origin to the last day, each exactly once.
    assert covered == days[40:]
    assert origins[-1].predict_end == days[-1]
    assert all(o.predict_start == o.day for o in origins)
    assert plan_origins(days[:30], WalkForwardConfig(min_train_days=40)) == []


def test_the_last_origins_cover_the_sessions_asked_for_or_all_the_history_has() -> None:
    # 100 feature days from a Wednesday, every row labelled but the last 3 days' (not realised
    # yet). Weekdays are sessions: promotion asks for N labelled sessions, not N calendar days.
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(100)]
    frame = pl.DataFrame(
        {
            ID: ["a"] * 100,
            DATE: days,
            TARGET: [1.0] * 97 + [None] * 3,
        }
    )
    calendar = TradingCalendar()
    origins = plan_origins(days, WalkForwardConfig(step_days=14, min_train_days=40))

    def sessions(chosen: list) -> int:
        usable = set(usable_rows(frame)[DATE].to_list())
        return sum(
            1
            for o in chosen
            for d in usable
            if o.predict_start <= d <= o.predict_end and calendar.is_session(d)
        )

    chosen = last_origins(origins, frame, calendar, 20)
    # The last origin (a Monday) predicts 1 labelled session, the two before 10 each: the last
    # three hold 21 sessions, the last two only 11.
    assert chosen == origins[-3:]
    assert sessions(chosen) >= 20 > sessions(chosen[1:])
    # More than the history holds: every origin, and no more.
    assert last_origins(origins, frame, calendar, 1000) == origins
    assert last_origins(origins, frame, calendar, 0) == []


def test_no_training_row_after_its_origin(small: SyntheticData) -> None:
    frame = small.frame
    days = frame[DATE].unique().sort().to_list()
    for origin in plan_origins(days, WalkForwardConfig(step_days=7, min_train_days=20)):
        train = training_rows(frame, origin)
        assert train.height > 0
        # Every label the model learns from was realised by the origin's close, so every
        # feature day is before it, and nothing on or after it is left out by mistake.
        assert (label_dates(train) <= origin.day).all()
        assert train[DATE].max() < origin.day
        left_out = frame.filter(~pl.col(DATE).is_in(train[DATE].unique().to_list()))
        assert (label_dates(left_out) > origin.day).all()
        rows = prediction_rows(frame, origin)
        assert rows[DATE].min() >= origin.day and rows[DATE].max() <= origin.predict_end


def test_walk_forward_trains_only_on_the_past_and_scores_every_out_of_sample_row(
    small: SyntheticData, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dt.date] = []
    calibration_gaps: list[int] = []
    real = train_module.train_profit_model

    def spy(frame: pl.DataFrame, *args: object, **kwargs: object) -> object:
        seen.append(label_dates(frame).max())
        result = real(frame, *args, **kwargs)
        # Sessions between the last calibration day and the origin's last feature day.
        days = frame[DATE].unique().sort().to_list()
        end = dt.date.fromisoformat(result.bundle.metadata["calibration_window"]["end"])
        calibration_gaps.append(len([d for d in days if d > end]))
        return result

    monkeypatch.setattr("daily_profit.modeling.walk_forward.train_profit_model", spy)
    config = WalkForwardConfig(step_days=10, min_train_days=25)
    result = run_walk_forward(
        small.frame,
        small.feature_columns,
        QUICK,
        config,
        history=small.history,
        truth=small.truth,
    )
    origins = [o.origin for o in result.origins]
    assert len(seen) == len(origins) and all(s <= o.day for s, o in zip(seen, origins, strict=True))
    # Each origin calibrates on its most recent days: after its calibration days come only the
    # split's gaps and the shortest test segment (3 days), not a fifth of its history.
    min_test = QUICK.split.min_days_per_segment
    assert all(g <= min_test + 2 * QUICK.split.gap_days for g in calibration_gaps)
    oos = result.out_of_sample
    # Every day's interval is recalibrated on the outcomes known that day, within bounds, and
    # the stretch widens or narrows the interval about its median only.
    stretch = oos[STRETCH_COLUMN].to_numpy()
    assert ((stretch >= STRETCH_BOUNDS[0]) & (stretch <= STRETCH_BOUNDS[1])).all()
    assert oos.group_by(DATE).agg(pl.col(STRETCH_COLUMN).n_unique())[STRETCH_COLUMN].max() == 1
    assert (oos["p05"] <= oos["p50"]).all() and (oos["p50"] <= oos["p95"]).all()
    first = origins[0].day
    expected = usable_rows(small.frame).filter(pl.col(DATE) >= first)
    assert oos.height == expected.height
    assert oos.select(ID, DATE).sort([DATE, ID]).equals(expected.select(ID, DATE).sort([DATE, ID]))
    assert result.out_of_sample_days == expected[DATE].n_unique()
    # Synthetic days run Monday to Sunday: five in seven are sessions.
    assert 0 < result.out_of_sample_trading_days < result.out_of_sample_days
    # The baseline to beat is chosen on each origin's training rows, never on the days it is
    # judged on, and every origin reports model, baselines and oracle on the same rows.
    for done in result.origins:
        assert done.selected_baseline in oos.columns
        metrics = done.metrics()
        for name in ("model_rmse", "zero_rmse", "account_mean_rmse", "oracle_rmse"):
            assert np.isfinite(metrics[name])
        assert 0.0 <= metrics["model_coverage"] <= 1.0
    table = result.per_origin_table()
    assert table.height == len(origins) and table["rows"].sum() == oos.height
    figures = firm_figures(result)
    assert figures["rows"] == oos.height
    assert figures["rmse_ratio_lo"] <= figures["rmse_ratio"] <= figures["rmse_ratio_hi"]
    assert np.isfinite(figures["headroom_share"])


def test_conditional_coverage_cells_judge_the_rows_that_moved_and_pool_small_ones() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    day = np.array([dt.date(2025, 1, 6) + dt.timedelta(days=int(i)) for i in rng.integers(0, 5, n)])
    friday = np.array([d.weekday() == 4 for d in day])
    # Fridays move 1.5x as wide as their interval allows: 73% covered where they moved.
    moves = rng.normal(0, 1, n) * np.where(friday, 1.5, 1.0)
    y = np.where(rng.random(n) < 0.3, 0.0, moves)
    frame = pl.DataFrame(
        {
            DATE: day.tolist(),
            TARGET: y,
            "p05": np.full(n, -1.645),
            "p95": np.full(n, 1.645),
            "scale": rng.random(n),
        }
    )
    cov = conditional_coverage(frame, min_rows=300)
    inside = np.abs(y) <= 1.645
    moved = y != 0
    assert cov.overall == pytest.approx(inside.mean())
    assert cov.cells["outcome:nonzero"] == pytest.approx(inside[moved].mean())
    # The cells read the rows that moved only: Friday's untraded rows (always inside) do not
    # lift it back into the band.
    assert cov.cells["weekday:Fri"] == pytest.approx(inside[moved & friday].mean())
    assert cov.cells["weekday:Fri"] < 0.80 < inside[friday].mean()
    assert not cov.in_band()
    assert cov.rows["weekday:Fri"] == int((moved & friday).sum())
    # Deciles of ~280 moving rows are too small to judge alone: pooled with a neighbour.
    deciles = [k for k in cov.cells if k.startswith("scale_decile:")]
    assert deciles == [
        "scale_decile:0+1",
        "scale_decile:2+3",
        "scale_decile:4+5",
        "scale_decile:6+7",
        "scale_decile:8+9",
    ]
    assert sum(cov.rows[k] for k in deciles) == int(moved.sum())
    assert all(n_rows >= 300 for n_rows in cov.rows.values())


def test_pooled_cells_hold_each_firms_own_scale_decile_together() -> None:
    rng = np.random.default_rng(2)

    def firm(dollars: float, n: int = 6000) -> tuple[pl.DataFrame, np.ndarray]:
        # Each firm's widest tenth of accounts moves 1.6x beyond its interval (its top scale
        # decile is under-covered); the firm's scale is in its own dollars.
        scale = np.exp(rng.normal(0, 1, n)) * dollars
        wild = scale >= np.quantile(scale, 0.9)
        y = np.where(rng.random(n) < 0.2, 0.0, rng.normal(0, 1, n) * np.where(wild, 1.6, 1.0))
        days = [dt.date(2025, 1, 6) + dt.timedelta(days=int(i)) for i in rng.integers(0, 5, n)]
        frame = pl.DataFrame(
            {
                DATE: days,
                TARGET: y * scale,
                "p05": -1.645 * scale,
                "p95": 1.645 * scale,
                "scale": scale,
            }
        )
        return frame, (np.abs(y) <= 1.645) & (y != 0) & wild

    quiet, quiet_wild_inside = firm(10.0)
    loud, loud_wild_inside = firm(1000.0)
    pooled = pooled_conditional_coverage([quiet, loud])
    both = pl.concat([quiet, loud])
    moved = both[TARGET].to_numpy() != 0
    inside = (both[TARGET] >= both["p05"]) & (both[TARGET] <= both["p95"])
    assert pooled.cells["outcome:nonzero"] == pytest.approx(inside.to_numpy()[moved].mean())
    # The top decile is both firms' wild accounts (not the loud firm's alone): under-covered.
    top = pooled.cells["scale_decile:9"]
    wild_moved = sum(
        int(
            (
                (f[TARGET].to_numpy() != 0) & (f["scale"].to_numpy() >= f["scale"].quantile(0.9))
            ).sum()
        )
        for f in (quiet, loud)
    )
    expected = (quiet_wild_inside.sum() + loud_wild_inside.sum()) / wild_moved
    assert top == pytest.approx(expected, abs=0.01)
    assert top < 0.80
    # Ranked on raw dollars, the quiet firm's wild accounts would sit in the low deciles.
    assert conditional_coverage(both).cells["scale_decile:9"] > top
    assert all(v > 0.85 for k, v in pooled.cells.items() if k.startswith("weekday:"))


def test_block_bootstrap_interval_contains_the_ratio_and_separates_a_clear_winner() -> None:
    rng = np.random.default_rng(1)
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(60)]
    y = rng.normal(0, 1, 60 * 50)
    frame = pl.DataFrame(
        {
            DATE: [d for d in days for _ in range(50)],
            TARGET: y,
            "expected_net_profit": y * 0.5,  # much better than the baseline
            SELECTED_BASELINE: np.zeros_like(y),
        }
    )
    ratio, lo, hi = block_bootstrap_rmse_ratio(frame, SELECTED_BASELINE)
    assert lo <= ratio <= hi < 1.0


def test_an_origin_with_too_little_history_for_the_method_says_which_and_what_to_change(
    small: SyntheticData,
) -> None:
    with pytest.raises(
        ValueError, match=r"walk-forward origin .* \(DAILY_PROFIT_WALK_FORWARD_MIN_TRAIN_DAYS\)"
    ):
        run_walk_forward(
            small.frame,
            small.feature_columns,
            QUICK,
            WalkForwardConfig(step_days=7, min_train_days=3),
            history=small.history,
        )


def test_oracle_intervals_cover_the_moving_rows_at_their_level_whatever_the_model() -> None:
    rng = np.random.default_rng(3)
    n = 6000
    days = [dt.date(2025, 1, 6) + dt.timedelta(days=int(i)) for i in rng.integers(0, 5, n)]
    mean = rng.normal(0, 50, n)
    std = np.exp(rng.normal(4, 1, n))
    y = np.where(rng.random(n) < 0.3, 0.0, mean + std * rng.standard_t(4, n))
    ids = [f"a{i}" for i in range(n)]
    oos = pl.DataFrame(
        {
            "account_id": ids,
            DATE: days,
            TARGET: y,
            # A model's intervals the oracle must ignore.
            "p05": np.full(n, -1.0),
            "p95": np.full(n, 1.0),
            "scale": np.ones(n),
        }
    )
    truth = pl.DataFrame(
        {
            "account_id": ids,
            DATE: days,
            "expected_next_day_net_profit": mean,
            "next_day_std": std,
        }
    )
    cov = oracle_interval_coverage(oos, truth, moving_level=0.88)
    assert cov.cells["outcome:nonzero"] == pytest.approx(0.88, abs=0.002)
    # Every row's deviation is the same t(4) draw in units of its std: each cell at the level.
    assert all(abs(v - 0.88) < 0.04 for k, v in cov.cells.items() if k.startswith("scale_decile:"))
    # The model's own +-1 intervals (the untraded rows only, 30%) play no part.
    assert cov.overall > 0.8
