"""Champion/challenger promotion: a pure decision, and one function that applies it in MLflow.

Challenger against champion, on the same rows (the challenger's test days, restricted to days
after both models' fitted windows, scored by both): the alias ``champion`` moves to the
challenger only when it

- has a lower RMSE of the expected net profit,
- has a lower interval (Winkler) score of the 90% interval,
- has a breach Brier score no worse than the champion's (up to ``brier_tolerance``),
- covers between 88% and 92% with its 90% interval.

The first version (no champion yet) is promoted only when it beats the best baselines on its own
test days: RMSE below the best mean baseline's, interval score below the trailing-percentile
baseline's, Brier no worse than the headroom rule's, and (``first_requires_coverage``) coverage
in the band too, because calibrated intervals are what the desk is promised.

Every decision carries its reasons and numbers, and ``apply_promotion`` records them as tags on
the challenger's model version and run, whatever the outcome.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from daily_profit.modeling.baselines import (
    BREACH_BASELINE,
    INTERVAL_BASELINE,
    baseline_predictions,
    fit_breach_rule,
)
from daily_profit.modeling.bundle import ModelBundle
from daily_profit.modeling.dataset import BREACH, DATE, DEFAULT_USABLE_STATUSES, usable_rows
from daily_profit.modeling.evaluate import MODEL, EvaluationReport, evaluate_predictions
from daily_profit.modeling.train import predictions_frame
from daily_profit.trading_calendar import TradingCalendar

if TYPE_CHECKING:
    # MLflow is imported only by the two functions that talk to it: the decision stays pure.
    from daily_profit.modeling.tracking import TrackingTarget


@dataclass(frozen=True)
class PromotionCriteria:
    coverage_low: float = 0.88
    coverage_high: float = 0.92
    brier_tolerance: float = 0.0  # absolute slack for "no worse"
    first_requires_coverage: bool = True


@dataclass
class PromotionDecision:
    promote: bool
    kind: str  # "vs_champion" or "vs_baselines"
    reasons: list[str]
    numbers: dict[str, float]
    window: dict[str, str] = field(default_factory=dict)
    n_rows: int = 0

    def as_tags(self, prefix: str = "promotion.") -> dict[str, str]:
        """Flat string tags for MLflow (model version and run)."""
        tags = {
            f"{prefix}decision": "promoted" if self.promote else "kept",
            f"{prefix}kind": self.kind,
            f"{prefix}reasons": "; ".join(self.reasons),
            f"{prefix}rows": str(self.n_rows),
            f"{prefix}window": f"{self.window.get('start', '')}..{self.window.get('end', '')}",
        }
        for key, value in self.numbers.items():
            tags[f"{prefix}{key}"] = repr(float(value))
        return tags

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(reasons: list[str], ok: bool, text: str) -> bool:
    reasons.append(("PASS " if ok else "FAIL ") + text)
    return ok


def _lt(a: float, b: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and a < b


def _le(a: float, b: float, tol: float = 0.0) -> bool:
    if math.isnan(a) or math.isnan(b):
        return False
    return a <= b + tol


def decide_promotion(
    challenger: EvaluationReport,
    champion: EvaluationReport | None = None,
    criteria: PromotionCriteria | None = None,
) -> PromotionDecision:
    """Promote or keep, from evaluation reports on the same rows (champion None: first version)."""
    criteria = criteria or PromotionCriteria()
    reasons: list[str] = []
    c_rmse = challenger.get(MODEL, "rmse")
    c_is = challenger.get(MODEL, "interval_score")
    c_brier = challenger.get(MODEL, "brier")
    c_cov = challenger.get(MODEL, "coverage")
    numbers = {
        "challenger_rmse": c_rmse,
        "challenger_interval_score": c_is,
        "challenger_brier": c_brier,
        "challenger_coverage": c_cov,
    }
    coverage_ok = criteria.coverage_low <= c_cov <= criteria.coverage_high
    band = f"[{criteria.coverage_low:.2f}, {criteria.coverage_high:.2f}]"

    if champion is None:
        best = challenger.best_mean_baseline
        b_rmse = challenger.get(best, "rmse")
        b_is = challenger.get(INTERVAL_BASELINE, "interval_score")
        b_brier = challenger.get(BREACH_BASELINE, "brier")
        numbers.update(
            {
                f"baseline_{best}_rmse": b_rmse,
                "baseline_interval_score": b_is,
                "baseline_brier": b_brier,
            }
        )
        oks = [
            _check(
                reasons,
                _lt(c_rmse, b_rmse),
                f"RMSE {c_rmse:.4f} < best baseline ({best}) {b_rmse:.4f}",
            ),
            _check(
                reasons,
                _lt(c_is, b_is),
                f"interval score {c_is:.4f} < trailing percentiles {b_is:.4f}",
            ),
        ]
        if math.isnan(b_brier):
            reasons.append("SKIP breach Brier: no rule baseline on these rows")
        else:
            oks.append(
                _check(
                    reasons,
                    _le(c_brier, b_brier, criteria.brier_tolerance),
                    f"breach Brier {c_brier:.6f} <= headroom rule {b_brier:.6f}",
                )
            )
        if criteria.first_requires_coverage:
            oks.append(_check(reasons, coverage_ok, f"coverage {c_cov:.4f} in {band}"))
        kind = "vs_baselines"
    else:
        h_rmse = champion.get(MODEL, "rmse")
        h_is = champion.get(MODEL, "interval_score")
        h_brier = champion.get(MODEL, "brier")
        numbers.update(
            {
                "champion_rmse": h_rmse,
                "champion_interval_score": h_is,
                "champion_brier": h_brier,
                "champion_coverage": champion.get(MODEL, "coverage"),
            }
        )
        oks = [
            _check(reasons, _lt(c_rmse, h_rmse), f"RMSE {c_rmse:.4f} < champion {h_rmse:.4f}"),
            _check(reasons, _lt(c_is, h_is), f"interval score {c_is:.4f} < champion {h_is:.4f}"),
            _check(
                reasons,
                _le(c_brier, h_brier, criteria.brier_tolerance),
                f"breach Brier {c_brier:.6f} <= champion {h_brier:.6f}",
            ),
            _check(reasons, coverage_ok, f"coverage {c_cov:.4f} in {band}"),
        ]
        kind = "vs_champion"
    return PromotionDecision(
        promote=all(oks),
        kind=kind,
        reasons=reasons,
        numbers=numbers,
        window=dict(challenger.window),
        n_rows=challenger.n_rows,
    )


def last_fitted_day(*bundles: ModelBundle) -> pl.Date:
    """The last calibration day of the given models: later feature days are out of sample."""
    ends = [b.metadata["calibration_window"]["end"] for b in bundles]
    return max(pl.Series(ends).str.to_date())


def compare_on_rows(
    challenger: ModelBundle,
    champion: ModelBundle | None,
    rows: pl.DataFrame,
    history: pl.DataFrame,
    truth: pl.DataFrame | None = None,
    usable_statuses: tuple[str, ...] = DEFAULT_USABLE_STATUSES,
    calendar: TradingCalendar | None = None,
) -> tuple[EvaluationReport, EvaluationReport | None]:
    """Evaluate both models (and the baselines) on the same usable out-of-sample rows.

    ``rows``: feature + label rows (account_id, date, features, labels). The comparison uses the
    feature days after both models' calibration days (in practice the challenger's test days).
    Earlier rows, when given (e.g. the challenger's whole window), fit the breach rule baseline
    and lengthen the P&L history; without them the rule baseline is left out.
    ``history``: the full raw daily P&L (account_id, date, net_profit) the baselines are
    computed from, point in time, on the span target of ``calendar`` (default the configured
    trading calendar); see ``baselines.baseline_predictions``.
    """
    rows = usable_rows(rows, usable_statuses).sort([DATE, "account_id"])
    bundles = [challenger] + ([champion] if champion is not None else [])
    cutoff = last_fitted_day(*bundles)
    compared = rows.filter(pl.col(DATE) > cutoff)
    earlier = rows.filter(pl.col(DATE) <= cutoff)
    if compared.is_empty():
        raise ValueError(f"no usable rows after {cutoff} (both models' fitted windows)")
    base = baseline_predictions(compared, history, calendar)
    rule_p = None
    if not earlier.is_empty() and earlier[BREACH].cast(pl.Float64).sum() > 0:
        rule = fit_breach_rule(earlier, history, challenger.headroom_columns, calendar)
        rule_p = rule.predict(compared, base)
    reports = [
        evaluate_predictions(predictions_frame(compared, b), base, rule_p, truth=truth)
        for b in bundles
    ]
    for report in reports:
        report.extras["compared_after"] = str(cutoff)
    return reports[0], (reports[1] if len(reports) > 1 else None)


def apply_promotion(
    target: TrackingTarget,
    challenger_version: str,
    challenger_run_id: str,
    decision: PromotionDecision,
) -> None:
    """Record the decision on the challenger's version and run; move ``champion`` if promoted."""
    from daily_profit.modeling.tracking import CHAMPION, set_tags

    set_tags(target, challenger_version, challenger_run_id, decision.as_tags())
    if decision.promote:
        target.client().set_registered_model_alias(
            target.registered_model_name, CHAMPION, challenger_version
        )


def promote_challenger(
    target: TrackingTarget,
    rows: pl.DataFrame,
    *,
    history: pl.DataFrame,
    truth: pl.DataFrame | None = None,
    criteria: PromotionCriteria | None = None,
    calendar: TradingCalendar | None = None,
) -> PromotionDecision:
    """Load ``challenger`` and ``champion`` by alias, compare on ``rows``, decide, apply."""
    from daily_profit.modeling.tracking import CHALLENGER, CHAMPION, load_version

    challenger = load_version(target, alias=CHALLENGER)
    if challenger is None:
        raise LookupError(f"{target.registered_model_name} has no {CHALLENGER!r} alias")
    champion = load_version(target, alias=CHAMPION)
    if champion is not None and champion.version == challenger.version:
        return PromotionDecision(
            promote=False,
            kind="already_champion",
            reasons=[f"version {challenger.version} is already the champion"],
            numbers={},
        )
    c_report, h_report = compare_on_rows(
        challenger.bundle,
        champion.bundle if champion is not None else None,
        rows,
        history=history,
        truth=truth,
        calendar=calendar,
    )
    decision = decide_promotion(c_report, h_report, criteria)
    decision.numbers["challenger_version"] = float(challenger.version)
    if champion is not None:
        decision.numbers["champion_version"] = float(champion.version)
    apply_promotion(target, challenger.version, challenger.run_id, decision)
    return decision
