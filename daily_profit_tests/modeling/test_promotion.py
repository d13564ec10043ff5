"""Promotion by paired day-block tests: a clearly better challenger wins, noise does not, the
margin is respected, the first champion needs only non-inferiority to the best baseline."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from daily_profit.modeling.baselines import baseline_predictions
from daily_profit.modeling.bundle import attach_baselines
from daily_profit.modeling.dataset import TARGET, usable_rows
from daily_profit.modeling.promotion import (
    ACCOUNT_KEY,
    FALLBACK_KIND,
    FALLBACK_TWIN,
    ComparedRows,
    PairedTest,
    PromotionCriteria,
    PromotionDecision,
    backtest_method,
    compare_on_backtest,
    compare_on_rows,
    decide_fallback,
    decide_promotion,
    fallback_rows,
    fallback_twin,
    last_fitted_day,
    paired_block_test,
    stored_backtest,
)
from daily_profit.modeling.recalibration import STRETCH_BOUNDS, STRETCH_COLUMN
from daily_profit.modeling.synthetic import SYNTHETIC_CALENDAR
from daily_profit.modeling.train import predictions_frame
from daily_profit.modeling.walk_forward import (
    SELECTED_BASELINE,
    SELECTED_BASELINE_NAME,
    WalkForwardConfig,
    WalkForwardResult,
    best_baseline_on,
)
from daily_profit_tests.modeling.conftest import mean_lost_in_noise, small_config

N_DAYS, N_ACCOUNTS = 60, 80
CRITERIA = PromotionCriteria(draws=1000)


def _world(seed: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    """Rows of 60 days x 80 accounts: a learnable mean, a market shock per day, heavy tails."""
    rng = np.random.default_rng(seed)
    days = np.repeat(
        [dt.date(2025, 3, 1) + dt.timedelta(days=i) for i in range(N_DAYS)], N_ACCOUNTS
    )
    signal = rng.normal(0.0, 60.0, days.size)
    day_shock = np.repeat(rng.normal(0.0, 40.0, N_DAYS), N_ACCOUNTS)
    y = signal + day_shock + 100.0 * rng.standard_t(4, days.size)
    rows = pl.DataFrame(
        {
            "account_id": np.tile(np.arange(N_ACCOUNTS), N_DAYS).astype(str),
            "date": pl.Series(days.tolist(), dtype=pl.Date),
        }
    ).with_columns(
        pl.Series("net_profit_next_session", y),
        pl.Series("breached_next_session", rng.random(days.size) < 0.01),
    )
    return rows, signal


def _predictions(rows: pl.DataFrame, expected: np.ndarray, half_width: float) -> pl.DataFrame:
    return rows.with_columns(
        pl.Series("expected_net_profit", expected),
        pl.Series("p05", expected - half_width),
        pl.Series("p50", expected),
        pl.Series("p95", expected + half_width),
        pl.Series("breach_probability", np.full(rows.height, 0.01)),
    )


def _baselines(rows: pl.DataFrame, signal: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    noisy = signal + rng.normal(0.0, 30.0, signal.size)
    return pl.DataFrame(
        {
            "zero": np.zeros(rows.height),
            "yesterday": noisy + rng.normal(0.0, 150.0, signal.size),
            "trailing_5_sessions": noisy + rng.normal(0.0, 60.0, signal.size),
            "trailing_20_sessions": noisy,
            "account_mean": 0.5 * noisy,
            "baseline_p05": np.full(rows.height, -330.0),
            "baseline_p95": np.full(rows.height, 330.0),
        }
    )


def _compare(
    challenger: np.ndarray, champion: np.ndarray | None, seed: int = 0, width: float = 240.0
) -> ComparedRows:
    rows, signal = _world(seed)
    rng = np.random.default_rng(seed + 100)
    return ComparedRows(
        challenger=_predictions(rows, challenger, width),
        champion=_predictions(rows, champion, width) if champion is not None else None,
        baselines=_baselines(rows, signal, rng),
        breach_rule=np.full(rows.height, 0.01),
    )


def _signal(seed: int = 0) -> np.ndarray:
    return _world(seed)[1]


def _half_width_for_90(seed: int = 0) -> float:
    """The half-width around the signal that covers 90% of these outcomes."""
    rows, signal = _world(seed)
    return float(np.quantile(np.abs(rows["net_profit_next_session"].to_numpy() - signal), 0.9))


def test_a_clearly_better_challenger_is_promoted() -> None:
    signal = _signal()
    rng = np.random.default_rng(1)
    champion = signal + rng.normal(0.0, 60.0, signal.size)  # a champion that knows half of it
    compared = _compare(signal, champion, width=_half_width_for_90())
    decision = decide_promotion(compared, CRITERIA)
    assert decision.promote, decision.reasons
    assert decision.kind == "vs_champion"
    assert decision.tests[0].name == "mse_vs_champion" and decision.tests[0].p_value < 0.05
    assert decision.n_days == N_DAYS


def test_a_noise_level_challenger_is_not() -> None:
    signal = _signal()
    rng = np.random.default_rng(2)
    champion = signal + rng.normal(0.0, 30.0, signal.size)
    challenger = champion + rng.normal(0.0, 3.0, signal.size)  # the same model, reshuffled
    decision = decide_promotion(
        _compare(challenger, champion, width=_half_width_for_90()), CRITERIA
    )
    assert not decision.promote
    failed = [r for r in decision.reasons if r.startswith("FAIL")]
    assert failed and "mse_vs_champion" in failed[0]


def test_the_margin_is_respected() -> None:
    """A real but small gain passes a small margin and fails a margin larger than the gain."""
    signal = _signal()
    rng = np.random.default_rng(3)
    champion = signal + rng.normal(0.0, 40.0, signal.size)
    challenger = signal + rng.normal(0.0, 25.0, signal.size)
    compared = _compare(challenger, champion, width=_half_width_for_90())
    gain = -paired_block_test(
        "x",
        compared.challenger["date"].to_numpy(),
        (
            compared.challenger["net_profit_next_session"]
            - compared.challenger["expected_net_profit"]
        )
        .pow(2)
        .to_numpy(),
        (compared.champion["net_profit_next_session"] - compared.champion["expected_net_profit"])
        .pow(2)
        .to_numpy(),
        kind="superiority",
        margin=0.0,
        criteria=CRITERIA,
    ).estimate
    assert 0.005 < gain < 0.05
    small = decide_promotion(compared, replace(CRITERIA, mse_margin=0.001))
    large = decide_promotion(compared, replace(CRITERIA, mse_margin=2 * gain))
    assert small.promote, small.reasons
    assert not large.promote
    assert large.numbers["mse_vs_champion_margin"] == pytest.approx(2 * gain)


def test_a_challenger_worse_than_the_best_baseline_is_not_promoted() -> None:
    """Better than a poor champion is not enough: it must match the best baseline too."""
    signal = _signal()
    rng = np.random.default_rng(4)
    champion = signal + rng.normal(0.0, 400.0, signal.size)
    challenger = signal + rng.normal(0.0, 200.0, signal.size)
    decision = decide_promotion(
        _compare(challenger, champion, width=_half_width_for_90()), CRITERIA
    )
    assert not decision.promote
    assert any(r.startswith("FAIL mse_vs_") and "champion" not in r for r in decision.reasons)


def test_the_first_champion_needs_non_inferiority_to_the_best_baseline() -> None:
    compared = _compare(_signal(), None, width=_half_width_for_90())
    best = compared.baselines["trailing_20_sessions"].to_numpy()
    # A model with no edge that fell back to the best baseline is promoted: equal is enough.
    fallback = replace(
        compared,
        challenger=compared.challenger.with_columns(pl.Series("expected_net_profit", best)),
    )
    decision = decide_promotion(fallback, CRITERIA)
    assert decision.kind == "vs_baselines"
    assert decision.tests[0].estimate == 0.0 and decision.tests[0].passed, decision.reasons
    assert decision.promote, decision.reasons
    # Its interval score and Brier against the baselines are tested and reported, not required:
    # intervals twice too wide (worse than the trailing percentiles) leave the MSE test passed
    # and the decision to coverage alone.
    wide = replace(
        fallback,
        challenger=fallback.challenger.with_columns(
            pl.Series("p05", best - 3000.0), pl.Series("p95", best + 3000.0)
        ),
    )
    decision = decide_promotion(wide, CRITERIA)
    assert any(r.startswith("REPORT (fail) interval_score_vs_") for r in decision.reasons)
    assert any(r.startswith("REPORT (pass) brier_vs_") for r in decision.reasons)
    assert "interval_score_vs_trailing_percentiles_p_value" in decision.numbers
    assert not decision.promote and any(r.startswith("FAIL coverage") for r in decision.reasons)
    # One clearly worse than the best baseline is not.
    worse = replace(
        compared,
        challenger=compared.challenger.with_columns(
            pl.Series(
                "expected_net_profit", best + np.random.default_rng(5).normal(0, 150, best.size)
            )
        ),
    )
    assert not decide_promotion(worse, CRITERIA).tests[0].passed


def test_coverage_band_is_sized_by_the_days() -> None:
    signal = _signal()
    compared = _compare(signal, None, width=0.5 * _half_width_for_90())  # covers ~65%
    decision = decide_promotion(compared, CRITERIA)
    assert not decision.promote
    assert decision.numbers["coverage_low"] <= 0.88 and decision.numbers["coverage_high"] >= 0.92
    assert any(r.startswith("FAIL coverage") for r in decision.reasons)


def test_decision_tags_carry_decision_p_values_margin_and_days() -> None:
    signal = _signal()
    champion = signal + np.random.default_rng(1).normal(0.0, 60.0, signal.size)
    decision = decide_promotion(_compare(signal, champion, width=_half_width_for_90()), CRITERIA)
    tags = decision.as_tags()
    assert tags["promotion.decision"] == "promoted"
    assert tags["promotion.days"] == str(N_DAYS)
    assert float(tags["promotion.mse_vs_champion_p_value"]) < 0.05
    assert float(tags["promotion.mse_vs_champion_margin"]) == CRITERIA.mse_margin
    assert "promotion.mse_vs_champion_high" in tags
    assert isinstance(PromotionDecision(False, "x", [], {}).as_tags(), dict)


def test_identical_predictors_are_non_inferior_never_superior() -> None:
    dates = np.repeat(np.arange(30), 10)
    loss = np.random.default_rng(0).exponential(1.0, dates.size)
    kw = {"margin": 0.0, "criteria": CRITERIA}
    same_ni: PairedTest = paired_block_test("a", dates, loss, loss, kind="non_inferiority", **kw)
    same_sup = paired_block_test("a", dates, loss, loss, kind="superiority", **kw)
    assert same_ni.passed and not same_sup.passed


def test_the_intervals_judged_are_the_ones_the_desk_is_served(trained_synthetic, synthetic):
    # Each compared day's interval stretched about p50 by the outcomes known at its close, as
    # the nightly predictions stretch it: promotion judges what the desk reads. After the
    # model's calibration days the firm's moves turn three times as wide.
    bundle = trained_synthetic.bundle
    calibrated_to = dt.date.fromisoformat(bundle.metadata["calibration_window"]["end"][:10])
    wild = synthetic.frame.with_columns(
        pl.when(pl.col("date") > calibrated_to)
        .then(pl.col("net_profit_next_session") * 3.0)
        .otherwise(pl.col("net_profit_next_session"))
        .alias("net_profit_next_session")
    )
    compared = compare_on_rows(
        bundle, None, wild, history=synthetic.history, calendar=SYNTHETIC_CALENDAR
    )
    served = compared.challenger
    stretch = served[STRETCH_COLUMN].to_numpy()
    assert np.all((stretch >= STRETCH_BOUNDS[0]) & (stretch <= STRETCH_BOUNDS[1]))
    # A week in, the intervals have caught up with the wider moves.
    assert stretch.max() > 2.0
    rows = usable_rows(wild).sort(["date", "account_id"])
    after = rows.filter(pl.col("date") > pl.lit(compared.compared_after).str.to_date())
    raw = predictions_frame(attach_baselines(after, synthetic.history, SYNTHETIC_CALENDAR), bundle)
    assert served["date"].to_list() == raw["date"].to_list()
    for q in ("p05", "p95"):
        expected = raw["p50"].to_numpy() + stretch * (raw[q].to_numpy() - raw["p50"].to_numpy())
        np.testing.assert_allclose(served[q].to_numpy(), expected)
    np.testing.assert_allclose(served["p50"].to_numpy(), raw["p50"].to_numpy())
    assert decide_promotion(compared, CRITERIA).numbers["interval_stretch_mean"] == pytest.approx(
        float(stretch.mean())
    )


# -- on the walk-forward days ------------------------------------------------------------------

BACKTEST_ORIGINS = WalkForwardConfig(step_days=10, min_train_days=20)


@pytest.fixture(scope="module")
def backtest(synthetic, trained_synthetic) -> WalkForwardResult:
    """The synthetic firm's method replayed over its last origins (60 days: origins on days 20,
    30, 40 and 50; 25 sessions take the last three)."""
    result = backtest_method(
        synthetic.frame,
        trained_synthetic.bundle,
        small_config(),
        history=synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
        walk_forward=BACKTEST_ORIGINS,
        min_trading_days=25,
        workers=2,
    )
    assert result is not None
    return result


def test_the_backtest_predicts_at_least_the_sessions_asked_for_each_out_of_sample(
    backtest: WalkForwardResult, trained_synthetic, synthetic
) -> None:
    days = synthetic.frame["date"].unique().sort().to_list()
    assert [o.origin.day for o in backtest.origins] == [days[30], days[40], days[50]]
    assert backtest.out_of_sample_trading_days >= 25
    oos = backtest.out_of_sample
    assert (oos["date"] >= oos["origin"]).all()
    # Too short a history for one origin: no backtest (promotion then judges on the
    # challenger's test days and says so).
    short = synthetic.frame.filter(pl.col("date") < days[15])
    assert (
        backtest_method(
            short,
            trained_synthetic.bundle,
            small_config(),
            history=synthetic.history,
            calendar=SYNTHETIC_CALENDAR,
            walk_forward=BACKTEST_ORIGINS,
            min_trading_days=25,
        )
        is None
    )


def test_the_champions_record_is_its_stored_backtest_then_its_own_predictions(
    backtest: WalkForwardResult, trained_synthetic, synthetic
) -> None:
    champion = trained_synthetic.bundle
    cutoff = last_fitted_day(champion)
    # The champion's stored backtest, told apart from the challenger's: half its expected P&L.
    stored = stored_backtest(backtest.out_of_sample).with_columns(
        pl.col("expected_net_profit") * 0.5
    )
    assert "account_id" not in stored.columns
    assert stored[ACCOUNT_KEY].str.starts_with("h:").all()
    compared, evidence = compare_on_backtest(
        backtest.out_of_sample,
        champion,
        stored,
        synthetic.frame,
        synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
    )
    ch, champ = compared.challenger, compared.champion
    assert champ is not None
    assert ch.select("account_id", "date").equals(champ.select("account_id", "date"))
    np.testing.assert_array_equal(ch[TARGET].to_numpy(), champ[TARGET].to_numpy())
    early = pl.col("date") <= cutoff
    np.testing.assert_allclose(
        champ.filter(early)["expected_net_profit"].to_numpy(),
        0.5 * ch.filter(early)["expected_net_profit"].to_numpy(),
    )
    # After its last fitted day, what the champion itself predicts, as served.
    own = compare_on_rows(
        champion, None, synthetic.frame, synthetic.history, calendar=SYNTHETIC_CALENDAR
    ).challenger
    later = champ.filter(~early).join(
        own.select("account_id", "date", pl.col("expected_net_profit").alias("own")),
        on=["account_id", "date"],
    )
    assert later.height == champ.filter(~early).height > 0
    np.testing.assert_allclose(later["expected_net_profit"].to_numpy(), later["own"].to_numpy())
    early_days = champ.filter(early)["date"].n_unique()
    later_days = champ.filter(~early)["date"].n_unique()
    assert early_days > 0
    assert f"{early_days} of its stored walk-forward" in evidence
    assert f"{later_days} of its own predictions" in evidence
    assert decide_promotion(compared, CRITERIA).kind == "vs_champion"

    # A champion that kept no backtest is met only where it predicted out of sample itself.
    alone, evidence = compare_on_backtest(
        backtest.out_of_sample,
        champion,
        None,
        synthetic.frame,
        synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
    )
    assert alone.challenger["date"].min() > cutoff
    assert alone.challenger.height == later.height
    assert "0 of its stored walk-forward" in evidence


def test_on_the_walk_forward_the_baseline_to_match_is_the_one_chosen_before_the_days() -> None:
    """The desk's alternative to the model is the baseline it would have picked at each origin
    (on its training days), not the one that turned out best on the judged days: that one is
    reported beside it, in hindsight."""
    signal = _signal()
    rng = np.random.default_rng(7)
    compared = _compare(
        signal + rng.normal(0.0, 45.0, signal.size), None, width=_half_width_for_90()
    )
    chosen_before = compared.baselines["trailing_5_sessions"]  # noisier than trailing_20
    walked = replace(
        compared,
        baselines=compared.baselines.with_columns(
            chosen_before.alias(SELECTED_BASELINE),
            pl.lit("trailing_5_sessions").alias(SELECTED_BASELINE_NAME),
        ),
    )
    decision = decide_promotion(walked, CRITERIA)
    required, hindsight = decision.tests[0], decision.tests[1]
    assert required.name == "mse_vs_trailing_5_sessions" and required.passed
    assert hindsight.name == "mse_vs_trailing_20_sessions_in_hindsight" and not hindsight.passed
    assert decision.reasons[1].startswith("REPORT (fail) mse_vs_trailing_20_sessions_in_hindsight")
    assert decision.promote, decision.reasons
    # Without the walk-forward's choice, the best on the days themselves is the one to match.
    assert not decide_promotion(compared, CRITERIA).promote


def test_a_first_version_that_cannot_show_it_matches_the_baseline_falls_back_to_its_twin(
    backtest: WalkForwardResult, synthetic
) -> None:
    """A firm with no champion yet, whose version's mean does not match the best baseline on
    the walk-forward days, still gets a champion as good as that baseline: the version's
    fallback twin (each origin's chosen baseline as the mean, the version's intervals and
    breach probabilities), promoted when those intervals cover in the band, and only then."""
    oos = backtest.out_of_sample
    lost = mean_lost_in_noise(oos)

    def first(rows: pl.DataFrame) -> PromotionDecision:
        compared, _ = compare_on_backtest(
            rows, None, None, synthetic.frame, synthetic.history, calendar=SYNTHETIC_CALENDAR
        )
        return decide_promotion(compared, CRITERIA)

    version = first(lost)
    assert not version.promote
    assert version.reasons[0].startswith("FAIL mse_vs_")
    twin_rows = fallback_rows(lost)
    np.testing.assert_array_equal(
        twin_rows["expected_net_profit"].to_numpy(), oos[SELECTED_BASELINE].to_numpy()
    )
    assert twin_rows.drop("expected_net_profit").equals(lost.drop("expected_net_profit"))

    fallback = decide_fallback(
        lost, synthetic.frame, synthetic.history, CRITERIA, SYNTHETIC_CALENDAR, 25
    )
    assert fallback.kind == FALLBACK_KIND
    required = fallback.tests[0]
    assert required.estimate == 0.0 and required.passed, fallback.reasons
    assert fallback.numbers["coverage"] == version.numbers["coverage"]
    assert fallback.promote, fallback.reasons
    assert "fallback twin" in fallback.evidence and "walk-forward" in fallback.evidence

    # Intervals that do not cover: the twin is not a champion either.
    narrow = lost.with_columns(pl.col("p50").alias("p05"), (pl.col("p50") + 1e-6).alias("p95"))
    refused = decide_fallback(
        narrow, synthetic.frame, synthetic.history, CRITERIA, SYNTHETIC_CALENDAR
    )
    assert not refused.promote
    assert refused.reasons[-1].startswith("FAIL coverage")


def test_the_fallback_twin_serves_exactly_the_baseline_with_the_versions_intervals(
    trained_synthetic, synthetic
) -> None:
    bundle = trained_synthetic.bundle
    twin = fallback_twin(bundle, synthetic.frame, synthetic.history, SYNTHETIC_CALENDAR)
    name = best_baseline_on(usable_rows(synthetic.frame), synthetic.history, SYNTHETIC_CALENDAR)
    assert twin.stack.fallback == name == twin.metadata[FALLBACK_TWIN]
    assert FALLBACK_TWIN not in bundle.metadata  # the version itself is untouched
    rows = trained_synthetic.split.test
    own, served = bundle.predict(rows), twin.predict(rows)
    np.testing.assert_array_equal(served.quantiles, own.quantiles)
    np.testing.assert_array_equal(served.breach_probability, own.breach_probability)
    expected = baseline_predictions(rows, synthetic.history, SYNTHETIC_CALENDAR)[name]
    np.testing.assert_allclose(served.expected, expected.to_numpy(), rtol=1e-12, atol=1e-9)
