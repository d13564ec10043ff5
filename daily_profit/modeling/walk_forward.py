"""Walk-forward backtest: the training method replayed over the history with rolling origins.

An origin is a day at whose close the model is retrained, as the weekly schedule would: it
learns from every row whose label was realised by then (``dataset.label_dates`` <= origin),
through the training method's own entry point (``train.train_profit_model``, with its own
train / calibration / test split inside those rows, the test segment the shortest the split
allows: the origin's next days are its test, see ``origin_train_config``), and then predicts
every feature day from
the origin up to the day before the next origin. Origins are ``step_days`` calendar days apart,
the first ``min_train_days`` after the first feature day, so the prediction days of the origins
partition the out-of-sample window [first origin, last feature day].

Every out-of-sample row is scored beside every named baseline (point in time from the daily
P&L history), the trailing-percentile interval, the headroom breach rule and the breach base
rate of the origin's training rows, and the sandbox's oracle when its truth is known. The
baseline the model has to beat is chosen per origin on the origin's training rows (held out
from the days it is judged on), so picking it cannot flatter it.

"Does it beat the baselines" is then answered on months of days, not on one test window:
per origin (``OriginResult``) and pooled (``WalkForwardResult``). No Dagster here.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from daily_profit.modeling.baselines import (
    MEAN_BASELINES,
    baseline_predictions,
    fit_breach_rule,
)
from daily_profit.modeling.bundle import ModelBundle, attach_baselines
from daily_profit.modeling.conformal import MIN_CELL_ROWS, REGIME_FLAGS, regime_columns
from daily_profit.modeling.conformal import conditional_coverage as coverage_table
from daily_profit.modeling.dataset import (
    BREACH,
    DATE,
    ID,
    TARGET,
    label_dates,
    usable_rows,
)
from daily_profit.modeling.evaluate import (
    TRUTH_MEAN,
    TRUTH_STD,
    EvaluationReport,
    brier,
    coverage,
    evaluate_predictions,
    interval_score,
    mse,
)
from daily_profit.modeling.recalibration import recent_known, served
from daily_profit.modeling.train import TrainConfig, predictions_frame, train_profit_model
from daily_profit.trading_calendar import TradingCalendar

ORIGIN = "origin"
SELECTED_BASELINE = "selected_baseline"  # the column of the held-out best baseline's prediction
SELECTED_BASELINE_NAME = "selected_baseline_name"  # and of its name
RULE_PROBABILITY = "rule_breach_probability"
BASE_RATE = "base_rate_breach_probability"
ORACLE_COLUMN = "oracle"
NOMINAL = 0.90


def origin_workers() -> int:
    """Origins trained at once by default: one per core this process may use, at most 4 (each
    holds one origin's training rows in memory). Two on a 2-core machine: 1.4x faster on the
    default sandbox (59 s against 83 s for 5 origins)."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


@dataclass(frozen=True)
class WalkForwardConfig:
    """Retrain every ``step_days`` calendar days, the first time ``min_train_days`` after the
    first feature day."""

    step_days: int = 14
    min_train_days: int = 56

    def __post_init__(self) -> None:
        if self.step_days < 1 or self.min_train_days < 1:
            raise ValueError("step_days and min_train_days must be >= 1")

    @classmethod
    def from_settings(cls, settings: Any | None = None) -> WalkForwardConfig:
        if settings is None:
            from daily_profit.config import get_settings

            settings = get_settings()
        return cls(
            step_days=settings.walk_forward_step_days,
            min_train_days=settings.walk_forward_min_train_days,
        )


@dataclass(frozen=True)
class Origin:
    """A retraining at the close of ``day``; its model predicts ``predict_start..predict_end``."""

    index: int
    day: dt.date
    predict_start: dt.date
    predict_end: dt.date


def plan_origins(days: Sequence[dt.date], config: WalkForwardConfig) -> list[Origin]:
    """Origins over the feature days ``days``: none when the history is too short."""
    if not days:
        return []
    first, last = min(days), max(days)
    origins: list[Origin] = []
    day = first + dt.timedelta(days=config.min_train_days)
    while day <= last:
        end = min(day + dt.timedelta(days=config.step_days - 1), last)
        origins.append(Origin(len(origins), day, day, end))
        day += dt.timedelta(days=config.step_days)
    return origins


def last_origins(
    origins: Sequence[Origin],
    frame: pl.DataFrame,
    calendar: TradingCalendar,
    min_trading_days: int,
) -> list[Origin]:
    """The last origins whose prediction days hold at least ``min_trading_days`` sessions with
    a usable label in ``frame`` (every origin when the history holds fewer)."""
    labelled = [d for d in usable_rows(frame)[DATE].unique().to_list() if calendar.is_session(d)]
    chosen: list[Origin] = []
    sessions = 0
    for origin in reversed(origins):
        if sessions >= min_trading_days:
            break
        chosen.append(origin)
        sessions += sum(origin.predict_start <= d <= origin.predict_end for d in labelled)
    return chosen[::-1]


def training_rows(frame: pl.DataFrame, origin: Origin) -> pl.DataFrame:
    """Rows whose label was realised by the origin's close: all a model trained then knows."""
    return frame.filter(label_dates(frame) <= origin.day)


def prediction_rows(frame: pl.DataFrame, origin: Origin) -> pl.DataFrame:
    """The origin's out-of-sample rows with a usable label, in (date, account) order."""
    rows = usable_rows(frame).filter(
        pl.col(DATE).is_between(origin.predict_start, origin.predict_end)
    )
    return rows.sort([DATE, ID])


# -- one origin --------------------------------------------------------------------------------


@dataclass
class OriginResult:
    origin: Origin
    report: EvaluationReport
    selected_baseline: str  # best mean baseline on the origin's training rows
    train_rows: int
    train_days: int
    fit_label_end: str
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat per-origin metrics (finite only), the keys MLflow logs with the origin as step."""
        out = {k.removeprefix("oos_"): v for k, v in self.report.flat("oos").items()}
        out.update(self.extra)
        out["rows"] = float(self.report.n_rows)
        out["train_rows"] = float(self.train_rows)
        return {k: v for k, v in out.items() if math.isfinite(v)}


def best_baseline_on(rows: pl.DataFrame, history: pl.DataFrame, calendar: TradingCalendar) -> str:
    """The mean baseline with the lowest MSE on ``rows`` (the origin's training rows)."""
    if rows.height == 0:
        return "zero"
    y = rows[TARGET].cast(pl.Float64).to_numpy()
    base = baseline_predictions(rows, history, calendar)
    return min(MEAN_BASELINES, key=lambda n: mse(y, base[n].to_numpy()))


def _smoothed_rate(y: np.ndarray) -> float:
    return (float(y.sum()) + 0.5) / (y.size + 1.0)


def _oracle(rows: pl.DataFrame, truth: pl.DataFrame | None) -> np.ndarray:
    if truth is None:
        return np.full(rows.height, np.nan)
    joined = rows.select(ID, DATE).join(
        truth.select(ID, DATE, TRUTH_MEAN), on=[ID, DATE], how="left", maintain_order="left"
    )
    return joined[TRUTH_MEAN].cast(pl.Float64).fill_null(np.nan).to_numpy()


# The share of an origin's days kept as the fit's own test segment: as small as the split allows
# (``SplitConfig.min_days_per_segment``). The days after the origin are what judges it; a test
# segment of 20% would only age the calibration days (they would end 20% of the window before
# the days predicted) and starve the fit of its most recent days. Measured on the seed sweep:
# pooled headroom share 0.149 -> 0.166, conditional coverage in band on 2 -> 6 of 12 firms.
ORIGIN_TEST_SHARE = 0.01


def origin_train_config(train_config: TrainConfig) -> TrainConfig:
    """``train_config`` with the shortest test segment (``ORIGIN_TEST_SHARE``) and no drift
    reference (an origin's model is never served)."""
    return replace(
        train_config,
        split=replace(train_config.split, test_share=ORIGIN_TEST_SHARE),
        drift_reference=False,
    )


def _recalibrated(
    predictions: pl.DataFrame,
    rows: pl.DataFrame,
    fitted: pl.DataFrame,
    bundle: ModelBundle,
    history: pl.DataFrame,
    calendar: TradingCalendar,
) -> pl.DataFrame:
    """The origin's predictions with each day's interval stretched by the outcomes known that
    day (``recalibration``): the last sessions before the origin and the origin's own earlier
    days, as the nightly predictions do."""
    known = attach_baselines(recent_known(fitted, rows), history, calendar)
    return served(bundle, predictions, known)


def run_origin(
    frame: pl.DataFrame,
    origin: Origin,
    history: pl.DataFrame,
    feature_columns: Sequence[str] | None,
    train_config: TrainConfig,
    truth: pl.DataFrame | None,
    calendar: TradingCalendar,
) -> tuple[OriginResult, pl.DataFrame] | None:
    """Train at the origin, predict its days; None when it has no out-of-sample row."""
    rows = prediction_rows(frame, origin)
    if rows.height == 0:
        return None
    started = time.perf_counter()
    train = training_rows(frame, origin)
    result = train_profit_model(
        train,
        feature_columns,
        origin_train_config(train_config),
        history=history,
        calendar=calendar,
    )
    fitted = usable_rows(train)
    predictions = _recalibrated(
        predictions_frame(attach_baselines(rows, history, calendar), result.bundle),
        rows,
        fitted,
        result.bundle,
        history,
        calendar,
    )
    base = baseline_predictions(rows, history, calendar)
    rule = fit_breach_rule(fitted, history, result.bundle.headroom_columns, calendar)
    rule_p = rule.predict(rows, base)
    report = evaluate_predictions(predictions, base, breach_rule_probability=rule_p, truth=truth)
    selected = best_baseline_on(fitted, history, calendar)
    base_rate = _smoothed_rate(fitted[BREACH].cast(pl.Float64).to_numpy())
    oos = pl.concat(
        [
            predictions,
            base.drop(ID, DATE),
            pl.DataFrame(
                {
                    ORIGIN: [origin.day] * rows.height,
                    SELECTED_BASELINE: base[selected],
                    SELECTED_BASELINE_NAME: [selected] * rows.height,
                    RULE_PROBABILITY: rule_p,
                    BASE_RATE: np.full(rows.height, base_rate),
                    ORACLE_COLUMN: _oracle(rows, truth),
                }
            ),
            rows.select([c for c in REGIME_FLAGS if c in rows.columns]),
        ],
        how="horizontal",
    )
    y = oos[TARGET].to_numpy()
    extra = {
        "selected_baseline_rmse": math.sqrt(mse(y, oos[SELECTED_BASELINE].to_numpy())),
        "base_rate_brier": brier(
            oos[BREACH].cast(pl.Float64).to_numpy(), oos[BASE_RATE].to_numpy()
        ),
        **{f"model_{k}": v for k, v in conditional_coverage(oos).summary().items()},
    }
    meta = result.bundle.metadata
    return (
        OriginResult(
            origin=origin,
            report=report,
            selected_baseline=selected,
            train_rows=fitted.height,
            train_days=fitted[DATE].n_unique(),
            fit_label_end=str(meta.get("fit_label_end", "")),
            seconds=time.perf_counter() - started,
            extra=extra,
        ),
        oos,
    )


# -- the whole history -------------------------------------------------------------------------


@dataclass
class WalkForwardResult:
    config: WalkForwardConfig
    origins: list[OriginResult]
    out_of_sample: pl.DataFrame  # every origin's rows, predictions and baselines
    pooled: EvaluationReport
    out_of_sample_days: int
    out_of_sample_trading_days: int
    seconds: float

    def per_origin_table(self) -> pl.DataFrame:
        """One row per origin: its days and the headline numbers of model and baselines."""
        return pl.DataFrame(
            [
                {
                    "origin": o.origin.day,
                    "predicts": f"{o.origin.predict_start}..{o.origin.predict_end}",
                    "rows": o.report.n_rows,
                    "model_rmse": o.report.get("model", "rmse"),
                    "best_baseline": o.selected_baseline,
                    "best_baseline_rmse": o.extra["selected_baseline_rmse"],
                    "oracle_rmse": o.report.get("oracle", "rmse"),
                    "coverage": o.report.get("model", "coverage"),
                    "interval_score": o.report.get("model", "interval_score"),
                    "trailing_pct_interval_score": o.report.get(
                        "trailing_percentiles", "interval_score"
                    ),
                    "breach_brier": o.report.get("model", "brier"),
                    "rule_brier": o.report.get("headroom_rule", "brier"),
                    "base_rate_brier": o.extra["base_rate_brier"],
                }
                for o in self.origins
            ]
        )


def run_walk_forward(
    frame: pl.DataFrame,
    feature_columns: Sequence[str] | None = None,
    train_config: TrainConfig | None = None,
    config: WalkForwardConfig | None = None,
    *,
    history: pl.DataFrame,
    truth: pl.DataFrame | None = None,
    calendar: TradingCalendar | None = None,
    progress: Callable[[OriginResult], None] | None = None,
    min_trading_days: int | None = None,
    workers: int = 1,
) -> WalkForwardResult:
    """Backtest the training method over ``frame`` (features joined with labels).

    ``history`` (account_id, date, net_profit): the daily P&L the baselines are computed from,
    point in time: the full raw daily history, not the labels. ``truth``: the sandbox's oracle
    over each session's span (account_id, date, expected_next_day_net_profit summed over the
    span, ``evaluate.truth_over_spans``), when known. ``calendar``: the trading calendar of the
    labels (default the configured one). ``min_trading_days``: only the last origins, as many
    as it takes to predict that many labelled sessions (``last_origins``); None: every origin.
    ``workers``: origins trained at once, in threads (XGBoost and polars release the GIL; each
    fit keeps the configured threads, one by default); results and ``progress`` in origin order.
    """
    started = time.perf_counter()
    config = config or WalkForwardConfig()
    train_config = train_config or TrainConfig()
    calendar = calendar or TradingCalendar.from_settings()
    days = frame[DATE].unique().sort().to_list()
    origins = plan_origins(days, config)
    if origins and min_trading_days is not None:
        origins = last_origins(origins, frame, calendar, min_trading_days)
    if not origins:
        raise ValueError(
            f"{len(days)} feature days ({days[0] if days else '-'}..{days[-1] if days else '-'})"
            f" are too few for a walk-forward: the first origin needs {config.min_train_days}"
            " days of history"
        )
    results: list[OriginResult] = []
    frames: list[pl.DataFrame] = []

    def one(origin: Origin) -> tuple[OriginResult, pl.DataFrame] | None:
        try:
            return run_origin(
                frame, origin, history, feature_columns, train_config, truth, calendar
            )
        except ValueError as exc:
            known = training_rows(frame, origin)[DATE]
            raise ValueError(
                f"walk-forward origin {origin.day}: the method cannot train on its "
                f"{known.n_unique()} feature days ({known.min()}..{known.max()}): {exc}; "
                "give the first origin more history (DAILY_PROFIT_WALK_FORWARD_MIN_TRAIN_DAYS)"
            ) from exc

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done in pool.map(one, origins):
            if done is None:
                continue
            results.append(done[0])
            frames.append(done[1])
            if progress is not None:
                progress(done[0])
    if not frames:
        raise ValueError("no out-of-sample row with a usable label after the first origin")
    oos = pl.concat(frames, how="vertical_relaxed")
    base_cols = [*MEAN_BASELINES, "baseline_p05", "baseline_p95", "typical_move"]
    pooled = evaluate_predictions(
        oos,
        oos.select(ID, DATE, *base_cols),
        breach_rule_probability=oos[RULE_PROBABILITY].to_numpy(),
        truth=truth,
    )
    oos_days = oos[DATE].unique().to_list()
    return WalkForwardResult(
        config=config,
        origins=results,
        out_of_sample=oos,
        pooled=pooled,
        out_of_sample_days=len(oos_days),
        out_of_sample_trading_days=sum(calendar.is_session(d) for d in oos_days),
        seconds=time.perf_counter() - started,
    )


# -- what the desk and the sweep read off the out-of-sample rows --------------------------------


@dataclass(frozen=True)
class ConditionalCoverage:
    """Coverage of the 90% interval overall and per cell; cells under ``min_rows`` rows are
    pooled into one cell of their grouping (but ``outcome:nonzero``, the headline cell)."""

    overall: float
    cells: dict[str, float]
    rows: dict[str, int]

    def summary(self) -> dict[str, float]:
        values = list(self.cells.values())
        return {
            "coverage_overall": self.overall,
            "coverage_nonzero": self.cells.get("outcome:nonzero", math.nan),
            "coverage_cell_min": min(values) if values else math.nan,
            "coverage_cell_max": max(values) if values else math.nan,
        }

    def in_band(self, low: float = 0.85, high: float = 0.95) -> bool:
        return all(low <= v <= high for v in self.cells.values())


def _predicted_scale(oos: pl.DataFrame) -> np.ndarray:
    """The predicted scale where the rows carry it, else the interval's width (its image)."""
    scale = oos["scale"] if "scale" in oos.columns else oos["p95"] - oos["p05"]
    return scale.cast(pl.Float64).to_numpy()


def conditional_coverage(oos: pl.DataFrame, min_rows: int = MIN_CELL_ROWS) -> ConditionalCoverage:
    """Coverage overall, on rows with a non-zero outcome (``outcome:nonzero``, the headline),
    and on those rows by weekday of D, D's regime and predicted-scale decile, cells pooled with
    their neighbours to at least ``min_rows`` rows: ``conformal.conditional_coverage``, the
    same table the model's own evaluation reports. Zero outcomes sit inside almost any interval;
    counted in the cells, they flattered them by 3-5 points (seed sweep)."""
    table = coverage_table(oos, _predicted_scale(oos), target=TARGET, min_rows=min_rows)
    cells: dict[str, float] = {}
    rows: dict[str, int] = {}
    for dimension, cell, n, covered in table.iter_rows():
        if dimension == "all":
            continue
        key = "outcome:nonzero" if dimension == "non_zero" else f"{dimension}:{cell}"
        cells[key], rows[key] = float(covered), int(n)
    overall = table.filter(pl.col("dimension") == "all")["coverage"]
    return ConditionalCoverage(
        overall=float(overall[0]) if oos.height else math.nan, cells=cells, rows=rows
    )


def pooling_rows(oos: pl.DataFrame) -> pl.DataFrame:
    """A firm's out-of-sample rows as the pooled cells read them: D, its regime, the outcome,
    the interval, and ``scale`` as its percentile rank among the firm's rows that moved (a
    firm's scale is in its own dollars: one firm's quiet accounts can be another's wild ones).
    Applied twice it gives the same rows (ranks rank as themselves)."""
    values = _predicted_scale(oos)
    moved = oos[TARGET].cast(pl.Float64).to_numpy() != 0
    share = np.zeros(values.size)
    if moved.any():
        share[moved] = pl.Series(values[moved]).rank("average").to_numpy() / moved.sum()
    return oos.select(DATE, *regime_columns(oos.columns), TARGET, "p05", "p95").with_columns(
        pl.Series("scale", share)
    )


def pooled_conditional_coverage(
    firms: Sequence[pl.DataFrame], min_rows: int = MIN_CELL_ROWS
) -> ConditionalCoverage:
    """The cells of several firms' out-of-sample rows pooled: a weekday's or regime's rows of
    every firm together, and each firm's own predicted-scale decile with the same decile of
    the others (``pooling_rows``). What the method does systematically to a kind of row, with
    the session-to-session spread of one firm averaged out."""
    rows = pl.concat([pooling_rows(firm) for firm in firms], how="diagonal_relaxed")
    return conditional_coverage(rows, min_rows)


# What the truth's intervals cover where the account moved: the most the 88-92% overall band
# leaves them when a quarter to a third of the spans are untraded (always inside).
ORACLE_MOVING_LEVEL = 0.88


def oracle_interval_coverage(
    oos: pl.DataFrame, truth: pl.DataFrame, moving_level: float = ORACLE_MOVING_LEVEL
) -> ConditionalCoverage:
    """The conditional coverage of intervals that know the simulated truth: each row's exact
    expected P&L plus or minus c times its exact standard deviation, c chosen in hindsight so
    that the rows that moved are covered at ``moving_level``. No model knows more about a row;
    what such intervals miss per weekday, regime and scale cell is the spread of whole sessions
    (every account of a firm trades the same next session), not a fault of the model.
    Rows without a positive truth standard deviation are left out."""
    rows = oos.join(
        truth.select(ID, DATE, TRUTH_MEAN, TRUTH_STD), on=[ID, DATE], how="inner"
    ).filter(pl.col(TRUTH_STD) > 0)
    y = rows[TARGET].cast(pl.Float64).to_numpy()
    mean = rows[TRUTH_MEAN].cast(pl.Float64).to_numpy()
    std = rows[TRUTH_STD].cast(pl.Float64).to_numpy()
    moved = y != 0
    c = float(np.quantile(np.abs(y - mean)[moved] / std[moved], moving_level))
    intervals = rows.with_columns(
        pl.Series("p05", mean - c * std), pl.Series("p95", mean + c * std), pl.Series("scale", std)
    )
    return conditional_coverage(intervals)


def block_bootstrap_rmse_ratio(
    oos: pl.DataFrame,
    column: str,
    *,
    block_days: int = 5,
    n_boot: int = 2000,
    level: float = 0.90,
    seed: int = 0,
) -> tuple[float, float, float]:
    """RMSE of the model over RMSE of ``column`` on the out-of-sample rows, with its interval
    from a moving-block bootstrap over days (rows of a day, and neighbouring days, move
    together: one regime hits every account at once)."""
    per_day = (
        oos.group_by(DATE)
        .agg(
            ((pl.col(TARGET) - pl.col("expected_net_profit")) ** 2).sum().alias("m"),
            ((pl.col(TARGET) - pl.col(column)) ** 2).sum().alias("b"),
            pl.len().alias("n"),
        )
        .sort(DATE)
    )
    m, b = per_day["m"].to_numpy(), per_day["b"].to_numpy()
    ratio = math.sqrt(m.sum() / b.sum()) if b.sum() > 0 else math.nan
    n_days = m.size
    block = max(1, min(block_days, n_days))
    starts = np.arange(n_days - block + 1)
    rng = np.random.default_rng(seed)
    n_blocks = math.ceil(n_days / block)
    picks = rng.choice(starts, size=(n_boot, n_blocks))
    idx = (picks[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, -1)[:, :n_days]
    with np.errstate(divide="ignore", invalid="ignore"):
        boots = np.sqrt(m[idx].sum(axis=1) / b[idx].sum(axis=1))
    tail = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(boots, [tail, 1.0 - tail])
    return ratio, float(lo), float(hi)


def firm_figures(result: WalkForwardResult) -> dict[str, float]:
    """What the seed sweep reports of one firm, from the walk-forward's out-of-sample rows."""
    oos = result.out_of_sample
    y = oos[TARGET].cast(pl.Float64).to_numpy()
    model = oos["expected_net_profit"].to_numpy()
    chosen = oos[SELECTED_BASELINE].to_numpy()
    ratio, lo, hi = block_bootstrap_rmse_ratio(oos, SELECTED_BASELINE)
    figures: dict[str, float] = {
        "rows": float(oos.height),
        "out_of_sample_days": float(result.out_of_sample_days),
        "out_of_sample_trading_days": float(result.out_of_sample_trading_days),
        "origins": float(len(result.origins)),
        "model_rmse": math.sqrt(mse(y, model)),
        "best_baseline_rmse": math.sqrt(mse(y, chosen)),
        "rmse_ratio": ratio,
        "rmse_ratio_lo": lo,
        "rmse_ratio_hi": hi,
    }
    oracle = oos[ORACLE_COLUMN].to_numpy()
    known = np.isfinite(oracle)
    if known.any():
        mse_best, mse_model = mse(y[known], chosen[known]), mse(y[known], model[known])
        mse_oracle = mse(y[known], oracle[known])
        figures |= {
            "best_baseline_mse": mse_best,
            "model_mse": mse_model,
            "oracle_mse": mse_oracle,
            "headroom_gain": mse_best - mse_model,
            "headroom": mse_best - mse_oracle,
            "headroom_share": (mse_best - mse_model) / (mse_best - mse_oracle)
            if mse_best > mse_oracle
            else math.nan,
        }
    cond = conditional_coverage(oos)
    figures |= cond.summary()
    figures["coverage_in_band"] = float(0.88 <= cond.overall <= 0.92)
    figures["conditional_coverage_in_band"] = float(cond.in_band())
    lo_b, hi_b = oos["baseline_p05"].to_numpy(), oos["baseline_p95"].to_numpy()
    figures["interval_score"] = interval_score(y, oos["p05"].to_numpy(), oos["p95"].to_numpy())
    figures["trailing_percentiles_interval_score"] = interval_score(y, lo_b, hi_b)
    figures["trailing_percentiles_coverage"] = coverage(y, lo_b, hi_b)
    yb = oos[BREACH].cast(pl.Float64).to_numpy()
    figures["breach_brier"] = brier(yb, oos["breach_probability"].to_numpy())
    figures["headroom_rule_brier"] = brier(yb, oos[RULE_PROBABILITY].to_numpy())
    figures["base_rate_brier"] = brier(yb, oos[BASE_RATE].to_numpy())
    figures["breach_rate"] = float(yb.mean())
    return figures
