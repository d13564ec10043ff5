"""Promotion: the decision both ways, the first version against baselines, and applying it."""

from __future__ import annotations

import pytest

from daily_profit.modeling.evaluate import EvaluationReport
from daily_profit.modeling.promotion import PromotionDecision, decide_promotion


def _report(
    rmse: float,
    interval_score: float,
    brier: float,
    coverage: float,
    *,
    baseline_rmse: float = 100.0,
    baseline_interval: float = 500.0,
    rule_brier: float = 0.010,
) -> EvaluationReport:
    return EvaluationReport(
        metrics={
            "model": {
                "rmse": rmse,
                "interval_score": interval_score,
                "brier": brier,
                "coverage": coverage,
            },
            "account_mean": {"rmse": baseline_rmse},
            "zero": {"rmse": baseline_rmse + 5},
            "trailing_percentiles": {"interval_score": baseline_interval},
            "headroom_rule": {"brier": rule_brier},
        },
        n_rows=2000,
        n_days=20,
        window={"start": "2025-04-01", "end": "2025-04-20"},
        best_mean_baseline="account_mean",
    )


CHAMPION = _report(95.0, 400.0, 0.009, 0.90)


def test_a_better_challenger_is_promoted() -> None:
    decision = decide_promotion(_report(94.0, 390.0, 0.009, 0.905), CHAMPION)
    assert decision.promote and decision.kind == "vs_champion"
    assert all(r.startswith("PASS") for r in decision.reasons)
    assert decision.numbers["champion_rmse"] == 95.0


@pytest.mark.parametrize(
    ("challenger", "failing"),
    [
        (_report(96.0, 390.0, 0.009, 0.90), "RMSE"),
        (_report(94.0, 410.0, 0.009, 0.90), "interval score"),
        (_report(94.0, 390.0, 0.0095, 0.90), "breach Brier"),
        (_report(94.0, 390.0, 0.009, 0.93), "coverage"),
        (_report(94.0, 390.0, 0.009, 0.87), "coverage"),
    ],
)
def test_a_worse_challenger_is_not(challenger: EvaluationReport, failing: str) -> None:
    decision = decide_promotion(challenger, CHAMPION)
    assert not decision.promote
    failed = [r for r in decision.reasons if r.startswith("FAIL")]
    assert len(failed) == 1 and failing in failed[0]


def test_first_version_must_beat_the_baselines() -> None:
    assert decide_promotion(_report(99.0, 450.0, 0.009, 0.90)).promote
    for worse in (
        _report(101.0, 450.0, 0.009, 0.90),  # RMSE above the best mean baseline
        _report(99.0, 510.0, 0.009, 0.90),  # interval score above trailing percentiles
        _report(99.0, 450.0, 0.011, 0.90),  # Brier above the headroom rule
    ):
        decision = decide_promotion(worse)
        assert not decision.promote and decision.kind == "vs_baselines"


def test_decision_tags_carry_reasons_and_numbers() -> None:
    tags = decide_promotion(_report(94.0, 390.0, 0.009, 0.905), CHAMPION).as_tags()
    assert tags["promotion.decision"] == "promoted"
    assert "RMSE" in tags["promotion.reasons"]
    assert float(tags["promotion.challenger_rmse"]) == 94.0
    assert tags["promotion.window"] == "2025-04-01..2025-04-20"
    assert isinstance(PromotionDecision(False, "x", [], {}).as_tags(), dict)
