"""Champion/challenger promotion by evidence: paired tests on day blocks, with margins.

The evidence is the walk-forward of the challenger's method (``backtest_method``): its
hyperparameters fixed, retrained at each of the last origins of the history on what was known
then, predicting until the next origin, over at least ``promotion_walk_forward_days`` (60)
labelled sessions where the history allows; the decision says how many it had. Every baseline
predicts the same rows, point in time, and the headroom breach rule is fitted at each origin.
The baseline the challenger must match there is the one each origin chose on its own training
rows (the desk's alternative, picked before the days it is judged on); the baseline that turned
out best on the judged days themselves is tested and reported beside it (``_in_hindsight``).
The champion meets the challenger on the same account-days with its record
(``compare_on_backtest``): its own method's backtest, kept in its MLflow run when it was
trained, up to its last fitted day, and its own out-of-sample predictions after that day, so
a champion that has aged is judged as the desk has been served by it. Without a walk-forward
(a history shorter than one origin, or the setting at 0) the tests run on the challenger's
test days after both models' fitted windows (``compare_on_rows``). Each model's 90% interval
is stretched day by day by the outcomes known at that day's close, as the nightly predictions
serve it (``recalibration``). Per-row losses (squared error of
the expected net profit, interval score of the 90% interval, Brier of the breach probability)
are summed per day, and a moving-block bootstrap over days (``paired_block_test``) gives the
relative loss difference with its interval and a one-sided p-value. Days are the unit: accounts
on the same day share the market, so rows of a day are not independent evidence, and blocks of
consecutive days keep the days' own correlation.

The alias ``champion`` moves to the challenger only when it

- beats the champion's MSE by at least ``mse_margin`` (superiority: the upper end of the
  interval of MSE_challenger / MSE_champion - 1 is below -margin, p < alpha);
- is non-inferior to the best mean baseline on the same rows (MSE at most
  ``noninferiority_margin`` above it, p < alpha): a challenger never has to be trusted over a
  baseline it does not match;
- is non-inferior to the champion on interval score and breach Brier;
- covers within the band 90% +- max(``coverage_min_halfwidth``, z x the day-clustered standard
  error of its coverage): the band is as wide as the days' own noise, no narrower.

The first version (no champion yet) is promoted on non-inferiority to the best mean baseline
(MSE) with coverage in the band. When the challenger's mean cannot show that (a firm whose data
hold little edge: on 45 walk-forward sessions a mean 1% better than the baseline can still have
an interval reaching +4%), its **fallback twin** is judged instead (``fallback_twin``,
``decide_fallback``): the challenger's intervals and breach probabilities with exactly the best
baseline as the expected profit, the baseline each walk-forward origin chose on its own training
rows, as the served twin's was chosen on all the challenger's labelled rows. Its expected profit
is that baseline's, so it is non-inferior to it by construction; what is tested is that its
intervals cover in the band on the walk-forward days. So a firm whose data hold no edge still
gets a champion that is as good as its best baseline, and calibrated intervals. Its interval
score against the trailing percentiles and its breach Brier against the headroom rule are
tested the same way and reported (``REPORT`` lines, tags), not required: on the few weeks a
first model is judged on, a non-inferiority test of those noisy losses fails for want of days
far more often than for a worse model (on the default sandbox, 18 days: interval score -1.9%
[-11%, +7%], Brier +1.3% [-2.5%, +6.7%]), and without a champion the desk gets no
predictions at all. From then on every challenger must be non-inferior to the champion on both.

Every decision carries its tests (estimate, interval, p-value, margin, days) and
``apply_promotion`` records them as tags on the challenger's model version and run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from daily_profit.modeling.baselines import (
    MEAN_BASELINES,
    baseline_predictions,
    fit_breach_rule,
)
from daily_profit.modeling.bundle import MeanStack, ModelBundle, attach_baselines
from daily_profit.modeling.dataset import (
    BREACH,
    DATE,
    DEFAULT_USABLE_STATUSES,
    ID,
    TARGET,
    usable_rows,
)
from daily_profit.modeling.evaluate import ALPHA
from daily_profit.modeling.recalibration import STRETCH_COLUMN, recent_known, served
from daily_profit.modeling.train import MethodParams, TrainConfig, predictions_frame
from daily_profit.modeling.walk_forward import (
    RULE_PROBABILITY,
    SELECTED_BASELINE,
    SELECTED_BASELINE_NAME,
    WalkForwardConfig,
    WalkForwardResult,
    best_baseline_on,
    plan_origins,
    run_walk_forward,
)
from daily_profit.trading_calendar import TradingCalendar

if TYPE_CHECKING:
    # MLflow is imported only by the functions that talk to it: the decision stays pure.
    from collections.abc import Mapping

    from daily_profit.config import Settings
    from daily_profit.modeling.tracking import LoggedModel, TrackingTarget

SUPERIORITY = "superiority"
FALLBACK_KIND = "fallback_vs_baselines"  # the first champion's fallback twin (``decide_fallback``)
FALLBACK_TWIN = "fallback_twin"  # bundle metadata: the baseline a fallback twin serves
NON_INFERIORITY = "non_inferiority"


@dataclass(frozen=True)
class PromotionCriteria:
    """Margins are shares of the reference's loss (0.01: 1% of the champion's MSE)."""

    mse_margin: float = 0.005
    noninferiority_margin: float = 0.02
    interval_margin: float = 0.02
    brier_margin: float = 0.05
    alpha: float = 0.05  # one-sided level of every test; intervals are (1 - 2 alpha)
    coverage_level: float = 1 - ALPHA
    coverage_z: float = 1.96
    coverage_min_halfwidth: float = 0.02
    block_days: int = 5
    draws: int = 2000
    seed: int = 0
    first_requires_coverage: bool = True

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> PromotionCriteria:
        from daily_profit.config import get_settings

        s = settings or get_settings()
        return cls(
            mse_margin=s.promotion_mse_margin,
            noninferiority_margin=s.promotion_noninferiority_margin,
            alpha=s.promotion_alpha,
            block_days=s.promotion_block_days,
        )


@dataclass(frozen=True)
class PairedTest:
    """Relative loss difference of ``a`` against ``b`` (L_a / L_b - 1; below 0: a is better)."""

    name: str
    kind: str  # SUPERIORITY (a beats b by the margin) or NON_INFERIORITY (a no worse + margin)
    estimate: float
    low: float
    high: float
    p_value: float
    margin: float
    passed: bool
    n_days: int
    n_rows: int

    def describe(self) -> str:
        bound = f"< -{self.margin:.4f}" if self.kind == SUPERIORITY else f"<= +{self.margin:.4f}"
        return (
            f"{self.name}: {self.estimate:+.4f} [{self.low:+.4f}, {self.high:+.4f}] "
            f"{self.kind} {bound}, p={self.p_value:.4f}, {self.n_days} days"
        )


def _moving_blocks(n_days: int, block: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, n_days) day indices of a moving-block bootstrap (blocks of consecutive days)."""
    block = max(1, min(block, n_days))
    n_blocks = math.ceil(n_days / block)
    starts = rng.integers(0, n_days - block + 1, size=(draws, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(draws, -1)
    return idx[:, :n_days]


def paired_block_test(
    name: str,
    dates: np.ndarray,
    loss_a: np.ndarray,
    loss_b: np.ndarray,
    *,
    kind: str,
    margin: float,
    criteria: PromotionCriteria,
) -> PairedTest:
    """Paired moving-block bootstrap over days of L_a / L_b - 1 (L: mean loss per row).

    Superiority: H0 ``ratio >= -margin``, p = (1 + #{draws >= -margin}) / (draws + 1).
    Non-inferiority: H0 ``ratio > margin``, p = (1 + #{draws > margin}) / (draws + 1); two
    identical predictors are non-inferior at any margin >= 0 and never superior. Passes when
    p < alpha; the interval is the (alpha, 1 - alpha) percentile interval.
    """
    frame = pl.DataFrame({"d": dates, "a": loss_a, "b": loss_b})
    per_day = frame.group_by("d").agg(pl.col("a").sum(), pl.col("b").sum()).sort("d")
    a, b = per_day["a"].to_numpy(), per_day["b"].to_numpy()
    n_days = a.size
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = float(a.sum() / b.sum() - 1.0) if b.sum() > 0 else math.nan
        idx = _moving_blocks(
            n_days, criteria.block_days, criteria.draws, np.random.default_rng(criteria.seed)
        )
        draws = a[idx].sum(axis=1) / b[idx].sum(axis=1) - 1.0
    if np.allclose(a, b):
        draws = np.zeros(criteria.draws)
        estimate = 0.0
    draws = np.where(np.isfinite(draws), draws, np.inf)
    beyond = draws >= -margin if kind == SUPERIORITY else draws > margin
    exceed = int(np.sum(beyond))
    p_value = (1 + exceed) / (criteria.draws + 1)
    low, high = (float(v) for v in np.quantile(draws, [criteria.alpha, 1 - criteria.alpha]))
    return PairedTest(
        name=name,
        kind=kind,
        estimate=estimate,
        low=low,
        high=high,
        p_value=float(p_value),
        margin=margin,
        passed=bool(p_value < criteria.alpha and math.isfinite(estimate)),
        n_days=n_days,
        n_rows=int(loss_a.size),
    )


def coverage_band(
    dates: np.ndarray, inside: np.ndarray, criteria: PromotionCriteria
) -> tuple[float, float, float, float]:
    """Coverage, its day-clustered standard error, and the band's low and high ends."""
    frame = pl.DataFrame({"d": dates, "hit": inside.astype(np.float64)})
    per_day = frame.group_by("d").agg(pl.col("hit").sum().alias("h"), pl.len().alias("n"))
    h, n = per_day["h"].to_numpy(), per_day["n"].to_numpy().astype(np.float64)
    cov = float(h.sum() / n.sum())
    days = h.size
    se = (
        math.sqrt(days / (days - 1) * float(np.sum((h - cov * n) ** 2))) / float(n.sum())
        if days > 1
        else math.inf
    )
    half = max(criteria.coverage_min_halfwidth, criteria.coverage_z * se)
    return cov, se, criteria.coverage_level - half, criteria.coverage_level + half


@dataclass
class PromotionDecision:
    promote: bool
    kind: str  # "vs_champion", "vs_baselines", FALLBACK_KIND or "already_champion"
    reasons: list[str]
    numbers: dict[str, float]
    window: dict[str, str] = field(default_factory=dict)
    n_rows: int = 0
    n_days: int = 0
    tests: list[PairedTest] = field(default_factory=list)
    # Which days the tests ran on and where each side's predictions came from.
    evidence: str = ""

    def as_tags(self, prefix: str = "promotion.") -> dict[str, str]:
        """Flat string tags for MLflow (model version and run)."""
        tags = {
            f"{prefix}decision": "promoted" if self.promote else "kept",
            f"{prefix}kind": self.kind,
            f"{prefix}reasons": "; ".join(self.reasons),
            f"{prefix}rows": str(self.n_rows),
            f"{prefix}days": str(self.n_days),
            f"{prefix}window": f"{self.window.get('start', '')}..{self.window.get('end', '')}",
            f"{prefix}evidence": self.evidence,
        }
        for key, value in self.numbers.items():
            tags[f"{prefix}{key}"] = repr(float(value))
        return tags

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ComparedRows:
    """Everything a decision looks at, on the same rows in the same order."""

    challenger: pl.DataFrame  # predictions_frame of the challenger
    champion: pl.DataFrame | None
    baselines: pl.DataFrame  # baselines.baseline_predictions of the rows
    breach_rule: np.ndarray | None  # the headroom rule's probabilities, when it could be fitted
    compared_after: str = ""


def _losses(predictions: pl.DataFrame) -> dict[str, np.ndarray]:
    y = predictions[TARGET].cast(pl.Float64).to_numpy()
    lo, hi = predictions["p05"].to_numpy(), predictions["p95"].to_numpy()
    out = {
        "mse": (y - predictions["expected_net_profit"].to_numpy()) ** 2,
        "interval_score": _interval_score_rows(y, lo, hi),
    }
    if BREACH in predictions.columns:
        yb = predictions[BREACH].cast(pl.Float64).to_numpy()
        out["brier"] = (predictions["breach_probability"].to_numpy() - yb) ** 2
    return out


def _interval_score_rows(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (hi - lo) + (2.0 / ALPHA) * (np.maximum(lo - y, 0.0) + np.maximum(y - hi, 0.0))


def _record(numbers: dict[str, float], test: PairedTest) -> None:
    key = test.name.replace(" ", "_")
    numbers.update(
        {
            f"{key}_estimate": test.estimate,
            f"{key}_low": test.low,
            f"{key}_high": test.high,
            f"{key}_p_value": test.p_value,
            f"{key}_margin": test.margin,
        }
    )


def decide_promotion(
    compared: ComparedRows, criteria: PromotionCriteria | None = None
) -> PromotionDecision:
    """Promote or keep, from the challenger's, champion's and baselines' rows."""
    criteria = criteria or PromotionCriteria()
    ch = compared.challenger
    dates = ch[DATE].to_numpy()
    y = ch[TARGET].cast(pl.Float64).to_numpy()
    c_loss = _losses(ch)
    base = compared.baselines
    base_mse = {b: (y - base[b].to_numpy()) ** 2 for b in MEAN_BASELINES}
    best = min(MEAN_BASELINES, key=lambda b: float(base_mse[b].mean()))

    def test(name: str, a: np.ndarray, b: np.ndarray, kind: str, margin: float) -> PairedTest:
        return paired_block_test(name, dates, a, b, kind=kind, margin=margin, criteria=criteria)

    reported: set[str] = set()
    margin = criteria.noninferiority_margin
    if SELECTED_BASELINE in base.columns:
        # The walk-forward's baseline to beat was chosen at each origin on its training rows,
        # as a desk would have had to choose it: the required test. The baseline that turned
        # out best on these very days is reported beside it (a choice made in hindsight).
        names = base[SELECTED_BASELINE_NAME].unique().sort().to_list()
        label = names[0] if len(names) == 1 else "held_out_best_baseline"
        held = (y - base[SELECTED_BASELINE].to_numpy()) ** 2
        tests = [test(f"mse_vs_{label}", c_loss["mse"], held, NON_INFERIORITY, margin)]
        hindsight = test(
            f"mse_vs_{best}_in_hindsight", c_loss["mse"], base_mse[best], NON_INFERIORITY, margin
        )
        tests.append(hindsight)
        reported.add(hindsight.name)
    else:
        tests = [test(f"mse_vs_{best}", c_loss["mse"], base_mse[best], NON_INFERIORITY, margin)]
    if compared.champion is None:
        kind = "vs_baselines"
        lo, hi = base["baseline_p05"].to_numpy(), base["baseline_p95"].to_numpy()
        tests.append(
            test(
                "interval_score_vs_trailing_percentiles",
                c_loss["interval_score"],
                _interval_score_rows(y, lo, hi),
                NON_INFERIORITY,
                criteria.interval_margin,
            )
        )
        if "brier" in c_loss and compared.breach_rule is not None:
            yb = ch[BREACH].cast(pl.Float64).to_numpy()
            tests.append(
                test(
                    "brier_vs_headroom_rule",
                    c_loss["brier"],
                    (compared.breach_rule - yb) ** 2,
                    NON_INFERIORITY,
                    criteria.brier_margin,
                )
            )
    else:
        kind = "vs_champion"
        h_loss = _losses(compared.champion)
        tests.insert(
            0,
            test("mse_vs_champion", c_loss["mse"], h_loss["mse"], SUPERIORITY, criteria.mse_margin),
        )
        tests.append(
            test(
                "interval_score_vs_champion",
                c_loss["interval_score"],
                h_loss["interval_score"],
                NON_INFERIORITY,
                criteria.interval_margin,
            )
        )
        if "brier" in c_loss:
            tests.append(
                test(
                    "brier_vs_champion",
                    c_loss["brier"],
                    h_loss["brier"],
                    NON_INFERIORITY,
                    criteria.brier_margin,
                )
            )

    # Reported, not required (the first champion's interval and Brier tests; see the module).
    if compared.champion is None:
        reported |= {t.name for t in tests if not t.name.startswith("mse_vs_")}

    def verdict(t: PairedTest) -> str:
        if t.name in reported:
            return f"REPORT ({'pass' if t.passed else 'fail'}) "
        return "PASS " if t.passed else "FAIL "

    reasons = [verdict(t) + t.describe() for t in tests]
    numbers: dict[str, float] = {"best_baseline_is_" + best: 1.0}
    for t in tests:
        _record(numbers, t)
    inside = (y >= ch["p05"].to_numpy()) & (y <= ch["p95"].to_numpy())
    cov, se, band_lo, band_hi = coverage_band(dates, inside, criteria)
    numbers.update(
        {"coverage": cov, "coverage_se_days": se, "coverage_low": band_lo, "coverage_high": band_hi}
    )
    if STRETCH_COLUMN in ch.columns:
        numbers["interval_stretch_mean"] = float(ch[STRETCH_COLUMN].mean())
    oks = [t.passed for t in tests if t.name not in reported]
    if compared.champion is not None or criteria.first_requires_coverage:
        ok = band_lo <= cov <= band_hi
        oks.append(ok)
        reasons.append(
            ("PASS " if ok else "FAIL ")
            + f"coverage {cov:.4f} in [{band_lo:.4f}, {band_hi:.4f}] (day-clustered SE {se:.4f})"
        )
    days = ch[DATE]
    return PromotionDecision(
        promote=all(oks),
        kind=kind,
        reasons=reasons,
        numbers=numbers,
        window={"start": str(days.min()), "end": str(days.max())},
        n_rows=ch.height,
        n_days=days.n_unique(),
        tests=tests,
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
    usable_statuses: tuple[str, ...] = DEFAULT_USABLE_STATUSES,
    calendar: TradingCalendar | None = None,
) -> ComparedRows:
    """Both models' (and the baselines') predictions of the same usable out-of-sample rows,
    each model's intervals stretched day by day as the nightly predictions stretch them.

    ``rows``: feature + label rows (account_id, date, features, labels). The comparison uses the
    feature days after both models' calibration days (in practice the challenger's test days).
    Earlier rows, when given (e.g. the challenger's whole window), fit the breach rule baseline;
    without them the rule baseline is left out. ``history``: the full raw daily P&L
    (account_id, date, net_profit) the baselines are computed from, point in time, on the span
    target of ``calendar`` (default the configured trading calendar); see
    ``baselines.baseline_predictions``.
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
    with_base = attach_baselines(compared, history, calendar, base=base)
    # The intervals judged are the ones the desk is served: each day's stretched by the
    # outcomes known at its close (``recalibration``), from the last sessions before the
    # compared days and the compared days' own earlier ones.
    known = attach_baselines(recent_known(earlier, compared), history, calendar)
    return ComparedRows(
        challenger=served(challenger, predictions_frame(with_base, challenger), known),
        champion=(
            served(champion, predictions_frame(with_base, champion), known)
            if champion is not None
            else None
        ),
        baselines=base,
        breach_rule=rule_p,
        compared_after=str(cutoff),
    )


ACCOUNT_KEY = "account_key"  # the account's keyed hash (``privacy.mask_value``): no identity
PREDICTION_COLUMNS = ("expected_net_profit", "p05", "p95", "breach_probability")


def keyed(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``account_key`` (the keyed hash of ``account_id``), hashed once per account."""
    from daily_profit.privacy import mask_value

    ids = frame.select(pl.col(ID).unique())
    keys = ids.with_columns(
        pl.Series(ACCOUNT_KEY, [mask_value(str(v)) for v in ids[ID].to_list()], dtype=pl.String)
    )
    return frame.join(keys, on=ID, how="left", maintain_order="left")


def stored_backtest(out_of_sample: pl.DataFrame) -> pl.DataFrame:
    """What a run keeps of its backtest for the next challenger to meet
    (``tracking.log_backtest``): per account key and day, the served predictions."""
    return keyed(out_of_sample).select(ACCOUNT_KEY, DATE, *PREDICTION_COLUMNS)


def compare_on_backtest(
    backtest: pl.DataFrame,
    champion: ModelBundle | None,
    champion_backtest: pl.DataFrame | None,
    rows: pl.DataFrame,
    history: pl.DataFrame,
    usable_statuses: tuple[str, ...] = DEFAULT_USABLE_STATUSES,
    calendar: TradingCalendar | None = None,
    sessions_asked: int | None = None,
) -> tuple[ComparedRows, str]:
    """The challenger's walk-forward rows against the baselines and the champion's record on
    the same account-days, and a sentence on where each side's predictions came from.

    ``backtest``: the out-of-sample rows of ``walk_forward.run_walk_forward`` of the
    challenger's method (served predictions, every baseline, the headroom rule fitted at each
    origin). The champion's record is what the desk had from it or would have had: its own
    method's backtest stored at its training (``champion_backtest``, for the days up to its
    last fitted day) and, after that day, the champion's own predictions, out of sample and
    aging as the served model ages. A retrained challenger of the same method then beats the
    champion by being fresher, a new method by being better; days with no champion record are
    left out of the comparison with the champion.
    """
    ch = backtest.sort([DATE, ID])
    rule = ch[RULE_PROBABILITY].to_numpy() if RULE_PROBABILITY in ch.columns else None
    baseline_columns = [
        *MEAN_BASELINES,
        "baseline_p05",
        "baseline_p95",
        *[c for c in (SELECTED_BASELINE, SELECTED_BASELINE_NAME) if c in ch.columns],
    ]
    baselines = ch.select(ID, DATE, *baseline_columns)
    days = ch[DATE].n_unique()
    walked = f"the challenger's walk-forward: {days} sessions"
    if sessions_asked is not None and days < sessions_asked:
        walked += f" ({sessions_asked} asked: all the history allows)"
    if champion is None:
        return (
            ComparedRows(challenger=ch, champion=None, baselines=baselines, breach_rule=rule),
            walked,
        )
    cutoff = last_fitted_day(champion)
    usable = usable_rows(rows, usable_statuses).sort([DATE, ID])
    later = usable.filter(pl.col(DATE) > cutoff).join(ch.select(ID, DATE), on=[ID, DATE])
    parts = []
    if not later.is_empty():
        known = attach_baselines(
            recent_known(usable.filter(pl.col(DATE) <= cutoff), later), history, calendar
        )
        own = served(
            champion, predictions_frame(attach_baselines(later, history, calendar), champion), known
        )
        parts.append(own.select(ID, DATE, *PREDICTION_COLUMNS))
    stored_days = 0
    if champion_backtest is not None:
        early = keyed(ch.filter(pl.col(DATE) <= cutoff).select(ID, DATE)).join(
            champion_backtest.filter(pl.col(DATE) <= cutoff), on=[ACCOUNT_KEY, DATE]
        )
        stored_days = early[DATE].n_unique()
        parts.append(early.select(ID, DATE, *PREDICTION_COLUMNS))
    record = pl.concat(parts, how="vertical_relaxed") if parts else None
    if record is None or record.is_empty():
        raise ValueError(
            f"the champion has no prediction of the challenger's walk-forward days (its "
            f"backtest is not stored and no day is after its last fitted day {cutoff})"
        )
    matched = ch.join(record, on=[ID, DATE], how="inner", suffix="_champion").sort([DATE, ID])
    champion_rows = matched.select(
        ID,
        DATE,
        TARGET,
        *([BREACH] if BREACH in matched.columns else []),
        *[pl.col(f"{c}_champion").alias(c) for c in PREDICTION_COLUMNS],
    )
    keep = matched.select(ID, DATE)
    ch = ch.join(keep, on=[ID, DATE], how="semi", maintain_order="left")
    if rule is not None:
        rule = ch[RULE_PROBABILITY].to_numpy()
    own_days = matched.filter(pl.col(DATE) > cutoff)[DATE].n_unique()
    evidence = (
        f"{walked}; against the champion on "
        f"{matched[DATE].n_unique()} of them ({stored_days} of its stored walk-forward up to "
        f"{cutoff}, {own_days} of its own predictions after)"
    )
    return (
        ComparedRows(
            challenger=ch,
            champion=champion_rows,
            baselines=ch.select(ID, DATE, *baseline_columns),
            breach_rule=rule,
            compared_after=str(cutoff),
        ),
        evidence,
    )


def backtest_method(
    frame: pl.DataFrame,
    challenger: ModelBundle,
    train_config: TrainConfig,
    *,
    history: pl.DataFrame,
    calendar: TradingCalendar,
    walk_forward: WalkForwardConfig,
    min_trading_days: int,
    workers: int = 1,
) -> WalkForwardResult | None:
    """The challenger's method replayed over the last walk-forward origins of ``frame``: its
    hyperparameters fixed (``TrainConfig.fixed_params``), retrained at each origin on what was
    known then, predicting until the next, over at least ``min_trading_days`` labelled sessions
    where the history allows (``walk_forward.last_origins``). None when the history is too short
    for one origin."""
    days = frame[DATE].unique().sort().to_list()
    if not plan_origins(days, walk_forward):
        return None
    fixed = replace(train_config, fixed_params=MethodParams.of(challenger.metadata))
    return run_walk_forward(
        frame,
        challenger.feature_columns,
        fixed,
        walk_forward,
        history=history,
        calendar=calendar,
        min_trading_days=min_trading_days,
        workers=workers,
    )


def fallback_twin(
    challenger: ModelBundle,
    rows: pl.DataFrame,
    history: pl.DataFrame,
    calendar: TradingCalendar,
    usable_statuses: tuple[str, ...] = DEFAULT_USABLE_STATUSES,
) -> ModelBundle:
    """The challenger with exactly the mean baseline best on its labelled ``rows`` as the
    expected profit (chosen as each walk-forward origin chose its baseline,
    ``walk_forward.best_baseline_on``); its boosters, conformal intervals and breach probabilities
    unchanged (the intervals and the breach model do not use the mean)."""
    name = best_baseline_on(usable_rows(rows, usable_statuses), history, calendar)
    evidence = {"kept": "fallback", "twin_of": challenger.stack.as_dict()}
    return replace(
        challenger,
        stack=MeanStack.baseline(name, evidence),
        metadata={**challenger.metadata, FALLBACK_TWIN: name},
    )


def fallback_rows(out_of_sample: pl.DataFrame) -> pl.DataFrame:
    """The walk-forward of the challenger's fallback twin: the challenger's out-of-sample rows
    with the expected profit of the baseline each origin chose on its own training rows."""
    if SELECTED_BASELINE not in out_of_sample.columns:
        raise ValueError(
            f"the walk-forward rows lack {SELECTED_BASELINE!r}: a fallback twin needs the "
            "baseline each origin chose (walk_forward.run_walk_forward)"
        )
    return out_of_sample.with_columns(pl.col(SELECTED_BASELINE).alias("expected_net_profit"))


def decide_fallback(
    out_of_sample: pl.DataFrame,
    rows: pl.DataFrame,
    history: pl.DataFrame,
    criteria: PromotionCriteria,
    calendar: TradingCalendar | None = None,
    sessions_asked: int | None = None,
) -> PromotionDecision:
    """The first-champion decision for the challenger's fallback twin on the challenger's
    walk-forward days (``fallback_rows``): the same tests as the challenger's."""
    compared, walked = compare_on_backtest(
        fallback_rows(out_of_sample),
        None,
        None,
        rows,
        history,
        calendar=calendar,
        sessions_asked=sessions_asked,
    )
    decision = decide_promotion(compared, criteria)
    decision.kind = FALLBACK_KIND
    decision.evidence = (
        f"{walked}; the challenger's intervals and breach probabilities with, as the expected "
        "profit, the baseline each origin chose on its training rows (the fallback twin)"
    )
    return decision


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
    criteria: PromotionCriteria | None = None,
    calendar: TradingCalendar | None = None,
    backtest: pl.DataFrame | None = None,
    sessions_asked: int | None = None,
) -> PromotionDecision:
    """Load ``challenger`` and ``champion`` by alias, compare, decide, apply.

    With ``backtest`` (the out-of-sample rows of the challenger's method over the last
    walk-forward origins, meant to cover ``sessions_asked`` sessions) the tests run on those
    days (``compare_on_backtest``); without it,
    on the days of ``rows`` after both models' fitted windows (``compare_on_rows``).
    """
    from daily_profit.modeling.tracking import CHALLENGER, CHAMPION, load_backtest, load_version

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
    if backtest is not None and not backtest.is_empty():
        compared, evidence = compare_on_backtest(
            backtest,
            champion.bundle if champion is not None else None,
            load_backtest(target, champion.run_id) if champion is not None else None,
            rows,
            history,
            calendar=calendar,
            sessions_asked=sessions_asked,
        )
    else:
        compared = compare_on_rows(
            challenger.bundle,
            champion.bundle if champion is not None else None,
            rows,
            history=history,
            calendar=calendar,
        )
        evidence = f"the challenger's test days after {compared.compared_after}: no walk-forward"
    decision = decide_promotion(compared, criteria or PromotionCriteria.from_settings())
    decision.evidence = evidence
    decision.numbers["challenger_version"] = float(challenger.version)
    if champion is not None:
        decision.numbers["champion_version"] = float(champion.version)
    apply_promotion(target, challenger.version, challenger.run_id, decision)
    return decision


@dataclass(frozen=True)
class FallbackOutcome:
    """What became of a kept first version's fallback twin."""

    decision: PromotionDecision
    version: LoggedModel | None = None  # the twin's registered version; None: not qualified
    baseline: str | None = None  # the baseline it serves as the expected profit


def promote_fallback_twin(
    target: TrackingTarget,
    version: LoggedModel,
    bundle: ModelBundle,
    example_rows: pl.DataFrame,
    out_of_sample: pl.DataFrame,
    rows: pl.DataFrame,
    *,
    history: pl.DataFrame,
    criteria: PromotionCriteria,
    calendar: TradingCalendar,
    sessions_asked: int | None = None,
    run_name: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> FallbackOutcome:
    """After the first version (``version``, ``bundle``) was kept with no champion yet: judge
    its fallback twin on the version's walk-forward rows (``out_of_sample``) and, when it
    qualifies, register it (``tracking.log_fallback_twin``), keep its backtest for the next
    challenger, record the decision on it and make it the champion. Nothing is registered for
    a twin that does not qualify."""
    from daily_profit.modeling.tracking import log_backtest, log_fallback_twin

    decision = decide_fallback(out_of_sample, rows, history, criteria, calendar, sessions_asked)
    if not decision.promote:
        return FallbackOutcome(decision)
    twin = fallback_twin(bundle, rows, history, calendar)
    logged = log_fallback_twin(
        target, twin, version, example_rows, run_name=run_name, extra_tags=extra_tags
    )
    log_backtest(target, logged.run_id, stored_backtest(fallback_rows(out_of_sample)))
    decision.numbers["challenger_version"] = float(logged.version)
    decision.numbers["fallback_twin_of_version"] = float(version.version)
    apply_promotion(target, logged.version, logged.run_id, decision)
    return FallbackOutcome(decision, logged, twin.stack.fallback)
