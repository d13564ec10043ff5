"""The breach calibrator: a probability the desk can act on, stacked with the headroom rule."""

import numpy as np
import pytest

from daily_profit.modeling.breach import (
    BreachCalibrator,
    average_with_rule,
    fit_calibrator,
    logit,
    rule_score,
)


def _brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def _rows(n: int, seed: int, classifier_signal: float) -> tuple[np.ndarray, ...]:
    """Breaches driven by headroom in typical moves and by a habit only the classifier sees
    (how the trader sizes up after losses); the classifier's raw output carries
    ``classifier_signal`` of the true risk plus noise, and is twice as confident as it should be."""
    rng = np.random.default_rng(seed)
    headroom = rng.gamma(2.0, 400.0, n)
    typical = rng.gamma(4.0, 50.0, n)
    rule = rule_score(headroom, typical)
    habit = rng.normal(0.0, 1.0, n)
    risk = -3.0 + 1.5 * (rule + 1.5) + habit
    y = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(float)
    raw_logit = 2.0 * (classifier_signal * risk + (1 - classifier_signal) * rng.normal(-4, 1, n))
    raw = 1 / (1 + np.exp(-raw_logit))
    return raw, rule, y


def test_stacked_calibrator_leans_on_the_rule_when_the_classifier_knows_little() -> None:
    raw, rule, y = _rows(20_000, seed=1, classifier_signal=0.1)
    stacked = fit_calibrator(raw, y, rule=rule)
    platt = fit_calibrator(raw, y, method="platt")
    assert stacked.method == "stacked" and stacked.uses_rule
    assert stacked.rule_weight > 1.0
    test_raw, test_rule, test_y = _rows(20_000, seed=2, classifier_signal=0.1)
    assert _brier(stacked(test_raw, test_rule), test_y) < 0.97 * _brier(platt(test_raw), test_y)


def test_stacked_calibrator_keeps_a_classifier_that_knows_more_than_the_rule() -> None:
    raw, rule, y = _rows(20_000, seed=3, classifier_signal=1.0)
    stacked = fit_calibrator(raw, y, rule=rule)
    # The classifier holds all the rule knows and more: the rule adds next to nothing, and the
    # over-confident raw logit (2x the truth) is scaled back to about 1/2.
    assert abs(stacked.rule_weight) < 0.2
    assert 0.42 < stacked.a < 0.58
    p = stacked(raw, rule)
    assert abs(p.mean() - y.mean()) < 0.005


def test_a_stacked_calibrator_without_the_rows_rule_scores_says_so() -> None:
    raw, rule, y = _rows(2_000, seed=4, classifier_signal=0.5)
    stacked = fit_calibrator(raw, y, rule=rule)
    with pytest.raises(ValueError, match="rule score"):
        stacked(raw)
    with pytest.raises(ValueError, match="rule scores"):
        fit_calibrator(raw, y, method="stacked")


def test_without_rule_scores_auto_is_platt_and_round_trips() -> None:
    raw, _, y = _rows(2_000, seed=5, classifier_signal=0.5)
    platt = fit_calibrator(raw, y)
    assert platt.method == "platt" and not platt.uses_rule
    again = BreachCalibrator.from_dict(platt.as_dict())
    np.testing.assert_array_equal(again(raw), platt(raw))


def test_stacked_calibrator_round_trips_and_older_bundles_load() -> None:
    raw, rule, y = _rows(2_000, seed=6, classifier_signal=0.5)
    stacked = fit_calibrator(raw, y, rule=rule)
    again = BreachCalibrator.from_dict(stacked.as_dict())
    np.testing.assert_array_equal(again(raw, rule), stacked(raw, rule))
    older = {k: v for k, v in stacked.as_dict().items() if k != "rule_weight"}
    older["method"] = "platt"
    assert BreachCalibrator.from_dict(older).rule_weight == 0.0


def test_no_breach_seen_gives_the_smoothed_base_rate() -> None:
    raw = np.full(99, 0.2)
    calibrator = fit_calibrator(raw, np.zeros(99), rule=np.zeros(99))
    assert calibrator.method == "base_rate"
    assert calibrator(raw)[0] == pytest.approx(0.005)
    assert np.all(np.isfinite(logit(calibrator(raw))))


def test_averaging_with_the_rule_steadies_a_stack_fitted_on_few_breaches() -> None:
    # Calibration days hold ~25 breaches; the rule's own map learns from ten times the rows.
    stacked_brier, averaged_brier = [], []
    for seed in range(8):
        raw, rule, y = _rows(300, seed=100 + seed, classifier_signal=0.3)
        _, more_rule, more_y = _rows(3_000, seed=200 + seed, classifier_signal=0.3)
        stacked = fit_calibrator(raw, y, rule=rule)
        averaged = average_with_rule(
            stacked, np.concatenate([more_rule, rule]), np.concatenate([more_y, y])
        )
        assert averaged.rule_share == 0.5
        test_raw, test_rule, test_y = _rows(20_000, seed=300 + seed, classifier_signal=0.3)
        stacked_brier.append(_brier(stacked(test_raw, test_rule), test_y))
        averaged_brier.append(_brier(averaged(test_raw, test_rule), test_y))
        again = BreachCalibrator.from_dict(averaged.as_dict())
        np.testing.assert_array_equal(again(test_raw, test_rule), averaged(test_raw, test_rule))
    assert np.mean(averaged_brier) < 0.995 * np.mean(stacked_brier)
    assert sum(a < s for a, s in zip(averaged_brier, stacked_brier, strict=True)) >= 6
    # Nothing to average a calibrator with that does not stack the rule.
    platt = fit_calibrator(raw, y)
    assert average_with_rule(platt, rule, y) is platt
