"""The model and the nightly predictions.

``profit_model`` trains on a window of feature days, logs everything to MLflow, registers a
version as ``challenger`` and, in a blocking check, promotes it to ``champion`` only with
evidence. ``daily_predictions`` scores each day's live funded accounts with the champion (and
the challenger, in shadow) and keeps every model version's rows side by side.
"""

import datetime as dt
import math
import time
from collections.abc import Iterator

import dagster as dg
import polars as pl

from daily_profit.config import get_settings
from daily_profit.defs.asset_keys import (
    ACCOUNT_FEATURES_DAILY,
    DAILY_PREDICTIONS,
    LABELS_NEXT_SESSION,
    MODEL_PERFORMANCE,
    PREDICTION_OUTCOMES,
    PROFIT_MODEL,
    RAW_METRICS_DAILY,
)
from daily_profit.defs.metadata import json_value, preview, targeted
from daily_profit.defs.partitions import daily_partitions, days_in_window, partition_day
from daily_profit.defs.resources import MlflowResource, WarehouseResource
from daily_profit.features.labels import LABEL_SCHEMA
from daily_profit.modeling import outcomes as outcomes_core
from daily_profit.modeling.bundle import attach_baselines
from daily_profit.modeling.dataset import LABEL_DATE, label_dates, usable_rows
from daily_profit.modeling.evaluate import EvaluationReport, evaluate_result, truth_over_spans
from daily_profit.modeling.promotion import (
    PromotionCriteria,
    PromotionDecision,
    backtest_method,
    promote_challenger,
    promote_fallback_twin,
    stored_backtest,
)
from daily_profit.modeling.recalibration import (
    MAX_RECENT_SESSIONS,
    day_stretch,
    model_stretches,
    recent_windows,
)
from daily_profit.modeling.scoring import score_accounts
from daily_profit.modeling.tracking import (
    CHALLENGER,
    CHAMPION,
    TAG_DAGSTER_RUN,
    aliased_version,
    load_version,
    log_backtest,
    log_training_run,
)
from daily_profit.modeling.train import SearchBudget, TrainConfig, train_profit_model
from daily_profit.modeling.walk_forward import WalkForwardConfig, origin_workers
from daily_profit.monitoring.performance import (
    DECAY_WINDOW,
    WINDOWS,
    DecayRules,
    DecayVerdict,
    WindowPerformance,
    decay_verdict,
    rolling_performance,
    window_start,
)
from daily_profit.trading_calendar import TradingCalendar, trading_calendar
from daily_profit.warehouse.derived import PREDICTION_SCHEMA, latest_predictions
from daily_profit.warehouse.io import Warehouse

MODEL_GROUP = "model"
PREDICTIONS_GROUP = "predictions"
MONITORING_GROUP = "monitoring"
CHAMPION_PROMOTION = "champion_promotion"
CHAMPION_REGISTERED = "champion_registered"
LABEL_COLUMNS = [c for c in LABEL_SCHEMA.names() if c not in ("date", "account_id")]
LITTLE_HISTORY_DAYS = 5


class ProfitModelConfig(dg.Config):
    """Training settings a person can change in the launchpad."""

    window_days: int | None = None  # the last N feature days; None: every day with labels
    n_trials: int = 6
    max_search_seconds: float = 120.0
    seed: int = 0


def training_frame(store: Warehouse, start: dt.date, end: dt.date) -> pl.DataFrame:
    """Feature rows joined with their labels, for the feature days [start, end]: the sessions
    (labels exist only for them)."""
    features = store.read_partitions("account_features_daily", start, end)
    labels = store.read_partitions("labels_next_session", start, end)
    return features.join(labels, on=["date", "account_id"], how="inner")


def _loaded_days(store: Warehouse, table: str) -> list[dt.date]:
    settings = get_settings()
    counts = store.partition_row_counts(table, settings.start_date, dt.date.today())
    return sorted(day for day, rows in counts.items() if rows)


def daily_pnl_history(store: Warehouse, end: dt.date) -> pl.DataFrame:
    """Every account's daily net P&L as the raw daily metrics record it, up to ``end``: the
    full history the baselines are computed from (point in time, by
    ``baselines.baseline_predictions``), not the labels (funded in-window sessions only)."""
    return store.read_partitions(
        "raw_metrics_daily",
        get_settings().start_date,
        end,
        columns=["date", "account_id", "net_profit"],
    )


def _sandbox_truth(calendar: TradingCalendar) -> pl.DataFrame | None:
    """The sandbox's ground truth over each session's target span, when the data came from
    it: the oracle to compare with."""
    settings = get_settings()
    path = settings.data_dir / "ground_truth.parquet"
    if not settings.uses_sandbox or not path.exists():
        return None
    truth = pl.read_parquet(path)
    truth = truth.rename({"accountId": "account_id"}) if "accountId" in truth.columns else truth
    return truth_over_spans(truth, calendar)


REPORT_METRICS = ("rmse", "mse_skill", "r2", "interval_score", "coverage", "brier", "auc")


def coverage_markdown(table: pl.DataFrame) -> str:
    """The conditional coverage table (cells of >= 300 rows) as the desk reads it."""
    lines = ["| slice | cell | rows | coverage |", "|---|---|---|---|"]
    for row in table.iter_rows(named=True):
        lines.append(
            f"| {row['dimension']} | {row['cell']} | {row['rows']} | {row['coverage']:.3f} |"
        )
    return "\n".join(lines)


def promotion_metadata(decision: PromotionDecision, criteria: PromotionCriteria) -> dict:
    """The decision, each paired test's estimate, interval, p-value and margin, and the days
    it had, for the check's metadata."""
    meta: dict[str, object] = {
        "decision": "promoted" if decision.promote else "kept",
        "kind": decision.kind,
        "days_compared": decision.n_days,
        "rows_compared": decision.n_rows,
        "window": f"{decision.window.get('start', '')}..{decision.window.get('end', '')}",
        "alpha": criteria.alpha,
        "mse_margin": criteria.mse_margin,
        "noninferiority_margin": criteria.noninferiority_margin,
        "block_days": criteria.block_days,
        "evidence": decision.evidence,
        "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
        "numbers": json_value({k: float(v) for k, v in decision.numbers.items()}),
    }
    for test in decision.tests:
        meta[f"{test.name}_p_value"] = test.p_value
        meta[f"{test.name}_interval"] = f"[{test.low:+.4f}, {test.high:+.4f}]"
        meta[f"{test.name}_estimate"] = test.estimate
    return meta


def report_markdown(report: EvaluationReport) -> str:
    """Model, baselines and oracle side by side on the test days, as the desk reads them."""
    metrics = [m for m in REPORT_METRICS if any(m in v for v in report.metrics.values())]
    lines = [
        "| predictor | " + " | ".join(metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for predictor, values in report.metrics.items():
        cells = [
            f"{values[m]:.4g}" if m in values and values[m] == values[m] else "" for m in metrics
        ]
        lines.append(f"| {predictor} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dg.asset(
    group_name=MODEL_GROUP,
    deps=[ACCOUNT_FEATURES_DAILY, LABELS_NEXT_SESSION],
    check_specs=[
        dg.AssetCheckSpec(
            CHAMPION_PROMOTION,
            asset=PROFIT_MODEL,
            description="Compares the new version (challenger) with the champion on the "
            "walk-forward days of the challenger's method (its hyperparameters fixed, "
            "retrained every DAILY_PROFIT_WALK_FORWARD_STEP_DAYS over at least "
            "DAILY_PROFIT_PROMOTION_WALK_FORWARD_DAYS sessions where the history allows; "
            "`evidence` says how many and what the champion's record on them was) by paired "
            "day-block bootstrap tests: moves the champion "
            "alias only when the challenger's MSE beats the champion's by the margin "
            "(DAILY_PROFIT_PROMOTION_MSE_MARGIN, significantly), it is non-inferior to the best "
            "baseline and to the champion on interval score and breach Brier, and its coverage "
            "lies in 90% +- the day-clustered error. The first version becomes champion on "
            "non-inferiority to the best baselines; when its mean cannot show that, its "
            "fallback twin (exactly the best baseline as the expected profit, with its "
            "intervals and breach probabilities) is registered and becomes champion when those "
            "intervals cover in the band (`fallback_twin_version`; the version's own tests in "
            "`challenger_reasons`). The decision and every test are in its "
            "metadata; fails when no version qualifies as champion (`champion_registered`, "
            "which blocks the predictions, fails then too).",
        )
    ],
    kinds={"xgboost", "mlflow"},
    tags={"layer": "model"},
)
def profit_model(
    context: dg.AssetExecutionContext,
    config: ProfitModelConfig,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The P&L model of the next session: for each trading session D, the expected net profit
    from the day after D up to and including the next session (Friday: Saturday to Monday; a
    conditional mean, what adds up to the firm's exposure), conformal p05/p50/p95 quantiles
    calibrated so the 90% interval covers 90% of outcomes, and a calibrated breach probability.
    Trained on a time-ordered train / calibration / test split with gaps, tuned by time-series
    cross-validation. The expected profit is anchored on each account's edge as its history
    shows it (its mean P&L per session, trusted as far as its number of sessions allows) plus
    the share of its open positions' unrealised P&L that closes within the span; the stack of
    XGBoost and the naive baselines (yesterday, trailing 5 and 20 sessions, account mean, all
    from the full raw daily history, point in time) replaces the anchor only when it beats it
    day by day on held-out days, and the best baseline replaces it when the anchor does not beat
    that baseline, so it is never knowingly worse than a baseline; the intervals are calibrated per
    weekday, regime and scale band on accounts that traded. Evaluated against every baseline on
    the same test days, on all rows and on rows with a non-zero outcome (coverage by weekday,
    regime and scale decile in `conditional_coverage`), logged to MLflow and registered as the
    `challenger`; the check decides by paired tests whether it becomes `champion`."""
    store = warehouse.get()
    calendar = trading_calendar()
    days = _loaded_days(store, "labels_next_session")
    if not days:
        raise dg.Failure("no labelled feature days in the warehouse: materialise features first")
    frame = training_frame(store, days[0], days[-1])
    history = daily_pnl_history(store, days[-1])
    train_config = TrainConfig(
        seed=config.seed,
        window_days=config.window_days,
        budget=SearchBudget(n_trials=config.n_trials, max_seconds=config.max_search_seconds),
        dask_scheduler_address=get_settings().dask_scheduler_address,
    )
    result = train_profit_model(frame, config=train_config, history=history)
    truth = _sandbox_truth(calendar)
    report = evaluate_result(result, history, truth=truth, calendar=calendar)
    coverage = result.conditional_coverage()
    stack = result.bundle.stack
    target = mlflow.target()
    logged = log_training_run(
        target,
        result,
        report,
        dagster_run_id=context.run.run_id,
        run_name=f"profit_model {context.run.run_id[:8]}",
        extra_tags={"dagster_asset": PROFIT_MODEL.to_user_string()},
    )
    context.log.info(f"registered version {logged.version} as challenger: {logged.run_url}")
    yield dg.MaterializeResult(
        metadata={
            "model_version": logged.version,
            "mlflow_run": dg.MetadataValue.url(logged.run_url),
            "model_uri": logged.registry_uri,
            "data_description": json_value(result.description),
            "training_s": round(result.seconds, 1),
            "test_rows": report.n_rows,
            "test_days": report.n_days,
            "test_metrics": dg.MetadataValue.md(report_markdown(report)),
            "conditional_coverage": dg.MetadataValue.md(coverage_markdown(coverage)),
            "coverage_non_zero": float(
                coverage.filter(pl.col("dimension") == "non_zero")["coverage"][0]
            ),
            "mean_kept": str(stack.evidence.get("kept", "stack")),
            "mean_fallback": stack.fallback or "none",
            "stack_weights": json_value(stack.weights),
            "stack_evidence": json_value(stack.evidence),
            "scale_diagnostics": json_value(result.bundle.metadata["scale_diagnostics"]),
            **{
                f"test_model_{m}": report.get("model", m)
                for m in (
                    "rmse",
                    "interval_score",
                    "coverage",
                    "brier",
                    "rmse_nonzero",
                    "coverage_nonzero",
                    "rows_nonzero",
                )
                if report.get("model", m) == report.get("model", m)
            },
            "trading_calendar": calendar.description,
        }
    )

    settings = get_settings()
    backtest = None
    if settings.promotion_walk_forward_days > 0:
        backtest = backtest_method(
            frame,
            result.bundle,
            train_config,
            history=history,
            calendar=calendar,
            walk_forward=WalkForwardConfig.from_settings(settings),
            min_trading_days=settings.promotion_walk_forward_days,
            workers=origin_workers(),
        )
    if backtest is not None:
        log_backtest(target, logged.run_id, stored_backtest(backtest.out_of_sample))
        context.log.info(
            f"backtest of the challenger's method: {len(backtest.origins)} origins, "
            f"{backtest.out_of_sample_trading_days} trading days in {backtest.seconds:.0f} s"
        )
    criteria = PromotionCriteria.from_settings(settings)
    decision = promote_challenger(
        target,
        frame,
        history=history,
        criteria=criteria,
        calendar=calendar,
        backtest=backtest.out_of_sample if backtest is not None else None,
        sessions_asked=settings.promotion_walk_forward_days,
    )
    fallback_meta: dict[str, object] = {}
    if not decision.promote and decision.kind == "vs_baselines" and backtest is not None:
        # No champion yet and the challenger's mean could not show it matches the best
        # baseline: its fallback twin (that baseline as the mean, the challenger's intervals
        # and breach probabilities) is judged on the same days.
        fallback = promote_fallback_twin(
            target,
            logged,
            result.bundle,
            result.split.test,
            backtest.out_of_sample,
            frame,
            history=history,
            criteria=criteria,
            calendar=calendar,
            sessions_asked=settings.promotion_walk_forward_days,
            run_name=f"profit_model {context.run.run_id[:8]} fallback twin",
            extra_tags={
                "dagster_asset": PROFIT_MODEL.to_user_string(),
                TAG_DAGSTER_RUN: context.run.run_id,
            },
        )
        fallback_meta = {
            "challenger_decision": "kept",
            "challenger_reasons": dg.MetadataValue.md(
                "\n".join(f"- {r}" for r in decision.reasons)
            ),
        }
        if fallback.version is not None:
            context.log.info(
                f"version {logged.version} kept; its fallback twin, version "
                f"{fallback.version.version} ({fallback.baseline} baseline), promoted: "
                f"{fallback.version.run_url}"
            )
            fallback_meta |= {
                "fallback_twin_version": fallback.version.version,
                "fallback_twin_baseline": str(fallback.baseline),
                "fallback_twin_run": dg.MetadataValue.url(fallback.version.run_url),
            }
            decision = fallback.decision
        else:
            fallback_meta["fallback_twin"] = "not registered: " + "; ".join(
                r for r in fallback.decision.reasons if r.startswith("FAIL")
            )
    champion = load_version(target, alias=CHAMPION)
    yield dg.AssetCheckResult(
        check_name=CHAMPION_PROMOTION,
        passed=champion is not None,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            **promotion_metadata(decision, criteria),
            **fallback_meta,
            "challenger_version": logged.version,
            "champion_version": champion.version if champion else "none",
        },
    )


@dg.asset_check(
    asset=PROFIT_MODEL,
    name=CHAMPION_REGISTERED,
    blocking=True,
    description="A version of the model is the `champion` in MLflow's registry, read there "
    "when the check runs (the model itself is not loaded). Blocks the predictions when "
    "none is: runs after every training, and after promoting a version by hand in the MLflow "
    "UI, execute it from this tab: once it passes, the next nightly tick predicts the recent "
    "days still missing.",
)
def champion_registered(mlflow: MlflowResource) -> dg.AssetCheckResult:
    target = mlflow.target()
    version = aliased_version(target, CHAMPION)
    return dg.AssetCheckResult(
        passed=version is not None,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "registered_model": target.registered_model_name,
            "champion_version": version or "none",
        },
    )


@dg.asset(
    group_name=PREDICTIONS_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[ACCOUNT_FEATURES_DAILY, PROFIT_MODEL],
    kinds={"xgboost", "polars", "sql"},
    tags={"layer": "predictions"},
)
def daily_predictions(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MlflowResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation]:
    """The next session for every live funded account of session D: expected net profit over
    D's target span (the day after D up to and including the next session, `target_start`..
    `target_end`; Friday: Saturday to Monday) with its p05/p50/p95 interval, the probability of
    breaching a loss limit in the span, a 0-100 risk score and the three features that move
    the expected P&L most (exact TreeSHAP for the most at-risk accounts). Only sessions are
    predicted (trading calendar); other days hold no rows. Scored by the champion and, in
    shadow, the challenger; each model version keeps its own rows (a later model adds rows,
    never overwrites). Days inside a model's training window are marked in-sample."""
    started = time.perf_counter()
    days = days_in_window(context.partition_time_window)
    store = warehouse.get()
    target = mlflow.target()
    calendar = trading_calendar()
    # Earlier sessions with their realised outcomes, for the intervals' recent recalibration
    # (``recalibration``: a day reads only the outcomes known at its close, a week of them, or
    # further back for a firm whose week holds too few moving accounts).
    lookback = calendar.sessions_back(days[0], MAX_RECENT_SESSIONS + 1)[0]
    outcomes = usable_rows(store.read_partitions("labels_next_session", lookback, days[-1]))
    windows = recent_windows(outcomes.with_columns(label_dates(outcomes).alias(LABEL_DATE)), days)
    recent_start = min((w[0] for w in windows.values() if w), default=days[0])
    # The stacked mean needs each account's baselines of D, from its whole daily history.
    with_recent = attach_baselines(
        calendar.only_sessions(
            store.read_partitions("account_features_daily", recent_start, days[-1])
        ),
        daily_pnl_history(store, days[-1]),
    )
    features = with_recent.filter(pl.col("date") >= days[0])
    known_rows = with_recent.join(
        outcomes.filter(pl.col("date") >= recent_start), on=["date", "account_id"], how="inner"
    )
    models = [
        (role, version)
        for role in (CHAMPION, CHALLENGER)
        if (version := load_version(target, alias=role)) is not None
    ]
    if not models:
        raise dg.Failure("no champion or challenger model registered: materialise profit_model")
    seen: set[str] = set()
    history = store.read_partitions(
        "stg_accounts_daily", days[0], days[-1], columns=["date", "account_id", "account_age_days"]
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    scored = []
    stretch_by_role: dict[str, dict[str, float]] = {}
    for role, loaded in models:
        if loaded.version in seen:
            continue  # the champion is also the challenger right after a promotion
        seen.add(loaded.version)
        stretches = model_stretches(loaded.bundle, known_rows, days)
        stretch_by_role[role] = {
            d.isoformat(): round(v, 3) for d, v in stretches.items() if d in days[-5:]
        }
        out = calendar.with_spans(
            score_accounts(
                loaded.bundle,
                features,
                model_version=loaded.version,
                interval_stretch=day_stretch(features["date"], stretches),
            )
        )
        fitted_end = dt.date.fromisoformat(loaded.calibration_end)
        scored.append(
            out.with_columns(
                pl.lit(0, dtype=pl.Int64).alias("restatement"),
                pl.lit(role).alias("model_role"),
                (pl.col("date") <= fitted_end).alias("in_sample"),
                pl.lit(context.run.run_id).alias("scored_run_id"),
                pl.lit(now, dtype=pl.Datetime("ms", "UTC")).alias("scored_at"),
            )
            .join(
                history.rename({"account_age_days": "history_days"}),
                on=["date", "account_id"],
                how="left",
            )
            .select(PREDICTION_SCHEMA.names())
        )
    scored_now = pl.concat(scored).cast(dict(PREDICTION_SCHEMA))
    # Predictions are records: every row already written stays; a day's rescoring adds rows
    # only where they differ from the version's latest ones (a restatement of its inputs).
    existing = store.read_partitions("daily_predictions", days[0], days[-1]).select(
        scored_now.columns
    )
    new, restated_days = restatements(existing, scored_now)
    frame = pl.concat([existing, new]).cast(dict(PREDICTION_SCHEMA))
    written = store.replace_partitions(
        "daily_predictions", frame, dates=days, run_id=context.run.run_id
    )
    kept = existing
    # What the models say of these days now: the latest restatement of each version.
    current = latest_predictions(frame.filter(pl.col("model_version").is_in(list(seen))))
    champion_rows = current.filter(pl.col("model_role") == CHAMPION)
    top = champion_rows.sort("risk_score", descending=True).head(10)
    yield dg.MaterializeResult(
        metadata={
            "rows_written": new.height,
            "rows_kept_as_recorded": kept.height,
            "rows_unchanged_not_rewritten": scored_now.height - new.height,
            "days_restated": json_value([d.isoformat() for d in restated_days]),
            "accounts": current["account_id"].n_unique() if current.height else 0,
            "sessions": sum(calendar.is_session(d) for d in days),
            "target_spans": json_value(
                {
                    d.isoformat(): f"{s.isoformat()}..{e.isoformat()}"
                    for d, s, e in current.select("date", "target_start", "target_end")
                    .unique()
                    .sort("date")
                    .tail(5)
                    .iter_rows()
                }
            ),
            "models": json_value({role: v.version for role, v in models}),
            # How far the last sessions' outcomes widened (> 1) or narrowed each model's
            # calibrated interval on the latest days (``recalibration``).
            "interval_stretch": json_value(stretch_by_role),
            "in_sample_rows": int(current["in_sample"].sum()) if current.height else 0,
            "little_history_accounts": int(
                current.filter(pl.col("history_days") < LITTLE_HISTORY_DAYS)[
                    "account_id"
                ].n_unique()
            ),
            "write_s": round(written.seconds, 3),
            "duration_s": round(time.perf_counter() - started, 3),
            "most_at_risk": preview(top),
        }
    )
    yield from targeted(context, prediction_evaluations(current, features, days))


# What a prediction says: a rescoring equal on these is the same prediction, not a restatement.
PREDICTED = [
    "account_id",
    "expected_net_profit",
    "p05",
    "p50",
    "p95",
    "breach_probability",
    "risk_score",
]


def restatements(
    existing: pl.DataFrame, scored: pl.DataFrame
) -> tuple[pl.DataFrame, list[dt.date]]:
    """The rows of ``scored`` to add, and the days they restate.

    Per day and model version: nothing recorded yet -> the rows as restatement 0; the same
    predictions as the latest recorded -> nothing (a rerun changes nothing); different ones
    (the day's inputs were restated) -> the rows as the next restatement.
    """
    if scored.height == 0:
        return scored, []
    added: list[pl.DataFrame] = []
    restated: list[dt.date] = []
    groups = scored.partition_by("date", "model_version", as_dict=True)
    for (day, version), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        before = existing.filter((pl.col("date") == day) & (pl.col("model_version") == version))
        if before.height == 0:
            added.append(rows)
            continue
        latest = int(before["restatement"].max())
        previous = before.filter(pl.col("restatement") == latest).select(PREDICTED)
        if previous.sort("account_id").equals(rows.select(PREDICTED).sort("account_id")):
            continue
        added.append(rows.with_columns(pl.lit(latest + 1, dtype=pl.Int64).alias("restatement")))
        restated.append(day)
    new = pl.concat(added) if added else scored.clear()
    return new, sorted(set(restated))


def prediction_evaluations(
    predictions: pl.DataFrame, features: pl.DataFrame, days: list[dt.date]
) -> Iterator[dg.AssetCheckEvaluation]:
    """Per day: every eligible account scored once per model version, ordered and finite."""
    for day in days:
        eligible = features.filter(pl.col("date") == day)["account_id"].n_unique()
        todays = predictions.filter(pl.col("date") == day)
        per_version = todays.group_by("model_version").agg(
            pl.len().alias("rows"), pl.col("account_id").n_unique().alias("accounts")
        )
        once = all(r == a == eligible for _, r, a in per_version.iter_rows())
        numeric = ["expected_net_profit", "p05", "p50", "p95", "breach_probability", "risk_score"]
        bad_order = todays.filter(
            (pl.col("p05") > pl.col("p50")) | (pl.col("p50") > pl.col("p95"))
        ).height
        not_finite = (
            todays.select(
                pl.any_horizontal([~pl.col(c).is_finite() | pl.col(c).is_null() for c in numeric])
            )
            .to_series()
            .sum()
        )
        little = todays.filter(pl.col("history_days") < LITTLE_HISTORY_DAYS)[
            "account_id"
        ].n_unique()
        for name, passed, meta in [
            (
                "every_account_scored_once",
                once,
                {"eligible": eligible, "per_version": json_value(per_version.to_dicts())},
            ),
            ("quantiles_ordered", bad_order == 0, {"rows_out_of_order": bad_order}),
            ("values_finite", not_finite == 0, {"rows_not_finite": int(not_finite)}),
            (
                "little_history_reported",
                True,
                {"accounts_under_5_days": little, "threshold_days": LITTLE_HISTORY_DAYS},
            ),
        ]:
            yield dg.AssetCheckEvaluation(
                asset_key=DAILY_PREDICTIONS,
                check_name=name,
                passed=bool(passed),
                partition=day.isoformat(),
                severity=dg.AssetCheckSeverity.WARN,
                metadata=meta,
            )


PREDICTION_CHECKS = {
    "every_account_scored_once": "Every eligible account of the day scored exactly once per "
    "model version.",
    "quantiles_ordered": "p05 <= p50 <= p95 on every row.",
    "values_finite": "Expected P&L, quantiles, breach probability and risk score are finite.",
    "little_history_reported": "Counts accounts with under 5 days of history (their "
    "predictions lean on the model's priors); always passes, the count is the point.",
}


def _prediction_check(name: str, description: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=daily_predictions,
        name=name,
        partitions_def=daily_partitions,
        description=description,
    )
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        # Re-run for a day from the UI; in a range run the asset recorded each day already.
        days = days_in_window(context.partition_time_window)
        store = warehouse.get()
        predictions = latest_predictions(
            store.read_partitions("daily_predictions", days[0], days[-1])
        )
        features = trading_calendar().only_sessions(
            store.read_partitions(
                "account_features_daily", days[0], days[-1], columns=["date", "account_id"]
            )
        )
        results = [
            e for e in prediction_evaluations(predictions, features, days) if e.check_name == name
        ]
        failed = [e.partition for e in results if not e.passed]
        metadata = (
            dict(results[0].metadata) if len(results) == 1 else {"failed_days": json_value(failed)}
        )
        return dg.AssetCheckResult(
            passed=not failed, severity=dg.AssetCheckSeverity.WARN, metadata=metadata
        )

    return _check


prediction_checks = [_prediction_check(n, d) for n, d in PREDICTION_CHECKS.items()]


@dg.asset(
    group_name=MONITORING_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[DAILY_PREDICTIONS, LABELS_NEXT_SESSION],
    kinds={"polars", "sql"},
    tags={"layer": "monitoring"},
)
def prediction_outcomes(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """What each model version predicted for session D's target span (the day after D up to the
    next session) against what happened, per account: the error of the expected P&L, whether
    the outcome fell inside the 90% interval, and the realised breach, with new accounts (under
    5 days of history) marked. A prediction is scored only against the label of the span it was
    made for. A day fills in once its span has been ingested; rerun the last days as new data
    arrives. Metadata: per role, on all rows and on rows with a non-zero outcome."""
    days = days_in_window(context.partition_time_window)
    store = warehouse.get()
    outcomes = outcomes_core.prediction_outcomes(
        latest_predictions(store.read_partitions("daily_predictions", days[0], days[-1])),
        store.read_partitions("labels_next_session", days[0], days[-1]),
    )
    written = store.replace_partitions(
        "prediction_outcomes", outcomes, dates=days, run_id=context.run.run_id
    )
    overall = outcomes_core.performance_by_role(outcomes)
    return dg.MaterializeResult(
        metadata={
            "rows": written.total_rows,
            "days": len(days),
            **{k: v for k, v in overall.items() if v == v},
            "preview": preview(outcomes),
        }
    )


MODEL_NOT_DECAYED = "model_not_decayed"
# Metadata keys the retrain sensor reads back.
DECAYED = "decayed"
DECAY_REASONS = "decay_reasons"
PERFORMANCE_CHAMPION = "champion_version"
WINDOW_METRICS = (
    "rows",
    "days",
    "rmse",
    "mae",
    "coverage",
    "interval_score",
    "breach_brier",
    "best_baseline_rmse",
    "best_baseline_mae",
    "rmse_vs_best_baseline",
    "nonzero_rows",
    "nonzero_rmse",
    "nonzero_coverage",
    "nonzero_best_baseline_rmse",
)


def performance_metadata(
    version: str | None, windows: dict[int, WindowPerformance], verdict: DecayVerdict | None
) -> dict[str, object]:
    """Numeric metadata per window (``champion_7d_rmse``, ...) for the UI's plots, the best
    baseline of each window and the decay verdict."""
    meta: dict[str, object] = {PERFORMANCE_CHAMPION: version or "none"}
    for n, window in windows.items():
        for name in WINDOW_METRICS:
            value = window.metrics.get(name, math.nan)
            if value == value:  # NaN left out: the plots show gaps, not zeros
                meta[f"champion_{n}d_{name}"] = float(value)
        meta[f"window_{n}d"] = f"{window.start.isoformat()}..{window.end.isoformat()}"
        meta[f"best_baseline_{n}d"] = window.best_baseline or "none"
    if verdict is not None:
        meta[DECAYED] = int(verdict.decayed)
        meta["decay_judged"] = int(verdict.judged)
        meta[DECAY_REASONS] = dg.MetadataValue.md("\n".join(f"- {r}" for r in verdict.reasons))
    return meta


def decay_check(
    version: str | None, verdict: DecayVerdict | None, rules: DecayRules
) -> dg.AssetCheckResult:
    thresholds = {
        "rmse_margin": rules.rmse_margin,
        "coverage_min": rules.coverage_min,
        "coverage_max": rules.coverage_max,
        "min_days": rules.min_days,
    }
    if verdict is None:
        return dg.AssetCheckResult(
            check_name=MODEL_NOT_DECAYED,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description="not judged: no champion predictions with outcomes yet",
            metadata=thresholds,
        )
    return dg.AssetCheckResult(
        check_name=MODEL_NOT_DECAYED,
        passed=not verdict.decayed,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(verdict.reasons),
        metadata={PERFORMANCE_CHAMPION: version or "none", "judged": verdict.judged, **thresholds},
    )


@dg.asset(
    key=MODEL_PERFORMANCE,
    group_name=MONITORING_GROUP,
    partitions_def=daily_partitions,
    deps=[PREDICTION_OUTCOMES, RAW_METRICS_DAILY],
    check_specs=[
        dg.AssetCheckSpec(
            MODEL_NOT_DECAYED,
            asset=MODEL_PERFORMANCE,
            partitions_def=daily_partitions,
            description=f"The champion over the last {DECAY_WINDOW} sessions: its RMSE no worse "
            "than the best baseline's by more than DAILY_PROFIT_MODEL_DECAY_RMSE_MARGIN, and "
            "the coverage of its 90% interval within DAILY_PROFIT_MODEL_COVERAGE_MIN..MAX. "
            "Judged once the window holds DAILY_PROFIT_MODEL_DECAY_MIN_DAYS days of outcomes.",
        )
    ],
    kinds={"polars"},
    tags={"layer": "monitoring"},
)
def model_performance(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """How the models did on realised outcomes (each session's target span, to the next
    session). The day: RMSE, interval score, coverage of the 90% interval, direction accuracy,
    breach Brier and recall per model role, new accounts apart, on all rows and on rows with a
    non-zero outcome (`nonzero_`). Rolling windows of 7 and 28 trading sessions ending at the
    day: the champion's RMSE, MAE, coverage, interval score and breach Brier beside the best
    mean baseline on the same rows, computed from the full raw daily history point in time
    (`champion_28d_rmse_vs_best_baseline` below 1: the model wins), and whether it has decayed.
    One partition per day, so the UI plots each number over time (asset -> Plots)."""
    day = partition_day(context.partition_key)
    store = warehouse.get()
    calendar = TradingCalendar.from_settings()
    first = max(window_start(calendar, day, max(WINDOWS)), get_settings().start_date)
    outcomes = store.read_partitions("prediction_outcomes", first, day)
    todays = outcomes.filter(pl.col("date") == day)
    # The day per role, as before (NaN left out: the plots show gaps, not zeros).
    metadata: dict[str, object] = {
        k: float(v) for k, v in outcomes_core.performance_by_role(todays).items() if v == v
    } | {"rows": todays.height}
    rules = DecayRules.from_settings()
    version, windows = rolling_performance(outcomes, daily_pnl_history(store, day), day, calendar)
    verdict = decay_verdict(windows[DECAY_WINDOW], rules) if version else None
    metadata |= performance_metadata(version, windows, verdict)
    yield dg.MaterializeResult(metadata=metadata)
    yield decay_check(version, verdict, rules)


model_assets = [profit_model, daily_predictions, prediction_outcomes, model_performance]
