"""MLflow round trip against a temporary SQLite store: log, register, alias, load, same numbers."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.models import Model

from daily_profit.modeling.evaluate import evaluate_result
from daily_profit.modeling.promotion import (
    FALLBACK_KIND,
    PromotionCriteria,
    backtest_method,
    compare_on_rows,
    decide_promotion,
    fallback_twin,
    promote_challenger,
    promote_fallback_twin,
    stored_backtest,
)
from daily_profit.modeling.synthetic import SYNTHETIC_CALENDAR, SyntheticData
from daily_profit.modeling.tracking import (
    CHALLENGER,
    CHAMPION,
    TAG_FALLBACK_OF,
    LoggedModel,
    TrackingTarget,
    load_backtest,
    load_drift_reference,
    load_pyfunc,
    load_version,
    log_backtest,
    log_fallback_twin,
    log_training_run,
    model_input,
)
from daily_profit.modeling.train import SearchBudget, TrainConfig, TrainResult, train_profit_model
from daily_profit.modeling.walk_forward import (
    SELECTED_BASELINE,
    WalkForwardConfig,
    WalkForwardResult,
)
from daily_profit_tests.modeling.conftest import mean_lost_in_noise


@pytest.fixture(scope="module")
def logged(
    mlflow_target: TrackingTarget, trained_synthetic: TrainResult, synthetic: SyntheticData
) -> LoggedModel:
    report = evaluate_result(
        trained_synthetic,
        history=synthetic.history,
        truth=synthetic.truth,
        calendar=SYNTHETIC_CALENDAR,
    )
    return log_training_run(
        mlflow_target, trained_synthetic, report, dagster_run_id="dagster-run-1"
    )


def test_loading_by_alias_reproduces_predictions_exactly(
    mlflow_target: TrackingTarget, trained_synthetic: TrainResult, logged: LoggedModel
) -> None:
    rows = trained_synthetic.split.test
    served = load_pyfunc(mlflow_target, CHALLENGER).predict(
        model_input(rows, trained_synthetic.bundle)
    )
    local = trained_synthetic.bundle.predict(rows).as_frame().to_pandas()
    for column in local.columns:
        assert np.array_equal(served[column].to_numpy(), local[column].to_numpy()), column
    assert (served["account_id"].to_numpy() == rows["account_id"].to_numpy()).all()
    loaded = load_version(mlflow_target, alias=CHALLENGER)
    assert loaded is not None and loaded.version == logged.version
    assert (
        loaded.bundle.predict(rows)
        .as_frame()
        .equals(trained_synthetic.bundle.predict(rows).as_frame())
    )
    assert loaded.test_window == (
        trained_synthetic.bundle.metadata["test_window"]["start"],
        trained_synthetic.bundle.metadata["test_window"]["end"],
    )
    assert "test_model_rmse" in loaded.test_metrics
    assert load_version(mlflow_target, alias=CHAMPION) is None


def test_every_version_carries_its_drift_reference(
    mlflow_target: TrackingTarget, trained_synthetic: TrainResult, logged: LoggedModel
) -> None:
    """The train days' feature distributions travel with the version and come back intact."""
    reference = trained_synthetic.bundle.drift_reference
    assert reference is not None
    # Every feature is compared day by day, but those with one value per day (calendar,
    # market regime), which are listed apart.
    compared = [f.name for f in reference.features]
    assert sorted([*compared, *reference.day_level]) == sorted(
        trained_synthetic.bundle.feature_columns
    )
    assert not set(compared) & set(reference.day_level)
    assert reference.rows == trained_synthetic.split.train.height
    # Importance shares: they sum to one and the features the model splits on carry weight.
    assert sum(f.importance for f in reference.features) == pytest.approx(1.0)
    assert max(f.importance for f in reference.features) > 1.0 / len(reference.features)

    loaded = load_version(mlflow_target, alias=CHALLENGER)
    assert loaded is not None and loaded.bundle.drift_reference == reference
    stored = load_drift_reference(mlflow_target, alias=CHALLENGER)
    assert stored is not None and stored.version == logged.version
    assert stored.reference == reference
    assert load_drift_reference(mlflow_target, alias="no_such_alias") is None
    tag = (
        mlflow_target.client()
        .get_model_version(mlflow_target.registered_model_name, logged.version)
        .tags["drift_reference"]
    )
    assert tag == f"{len(reference.features)} features of {reference.rows} train rows"


def test_run_records_tags_metrics_data_and_plots(
    mlflow_target: TrackingTarget, trained_synthetic: TrainResult, logged: LoggedModel
) -> None:
    client = mlflow_target.client()
    run = client.get_run(logged.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster_run_id"] == "dagster-run-1"
    assert run.data.tags["feature_set_version"] == ",".join(
        trained_synthetic.bundle.metadata["feature_set_versions"]
    )
    assert "window.test_start" in run.data.tags
    for key in (
        "test_model_rmse",
        "test_zero_rmse",
        "test_account_mean_rmse",
        "test_trailing_percentiles_interval_score",
        "test_headroom_rule_brier",
        "test_oracle_mse",
        "test_model_coverage",
    ):
        assert key in run.data.metrics, key
    artifacts = {a.path for a in client.list_artifacts(logged.run_id, "plots")}
    assert {
        "plots/feature_importance.png",
        "plots/coverage_width_by_decile.png",
        "plots/residuals.png",
        "plots/model_vs_baselines.png",
    } <= artifacts
    description = mlflow.artifacts.load_dict(f"runs:/{logged.run_id}/data/description.json")
    assert description["test"]["rows"] > 0 and "start" in description["calibration"]
    # Artifacts land in the experiment's artifact folder under the data dir.
    assert (
        Path(mlflow_target.artifact_location.removeprefix("file://"))
        .joinpath(logged.run_id)
        .exists()
    )
    assert logged.run_url.endswith(f"/runs/{logged.run_id}")


def test_input_example_masks_identities(
    mlflow_target: TrackingTarget, trained_synthetic: TrainResult, logged: LoggedModel
) -> None:
    local = mlflow.artifacts.download_artifacts(
        f"models:/{mlflow_target.registered_model_name}/{logged.version}",
        tracking_uri=mlflow_target.tracking_uri,
    )
    example = Model.load(local).load_input_example(local)
    assert example is not None
    ids = list(example["account_id"])
    assert ids and all(i.startswith("h:") for i in ids)
    real = set(trained_synthetic.split.test["account_id"].to_list())
    assert not real & set(ids)
    assert all(json.dumps(i).isascii() for i in ids)


def test_promotion_through_mlflow(
    mlflow_target: TrackingTarget,
    trained_synthetic: TrainResult,
    synthetic: SyntheticData,
    logged: LoggedModel,
) -> None:
    """First version judged against baselines; a second judged against it; tags say why."""
    client = mlflow_target.client()
    rows = synthetic.frame
    first = promote_challenger(
        mlflow_target, rows, history=synthetic.history, calendar=SYNTHETIC_CALENDAR
    )
    assert first.kind == "vs_baselines"
    version = client.get_model_version(mlflow_target.registered_model_name, logged.version)
    assert version.tags["promotion.decision"] == ("promoted" if first.promote else "kept")
    if not first.promote:
        # Make it champion by hand so the second version has someone to beat.
        client.set_registered_model_alias(
            mlflow_target.registered_model_name, CHAMPION, logged.version
        )

    quick = TrainConfig(seed=1, budget=SearchBudget(n_trials=1, n_folds=2))
    second = train_profit_model(
        synthetic.frame,
        synthetic.feature_columns,
        quick,
        history=synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
    )
    report = evaluate_result(
        second, history=synthetic.history, truth=synthetic.truth, calendar=SYNTHETIC_CALENDAR
    )
    new = log_training_run(mlflow_target, second, report)
    decision = promote_challenger(
        mlflow_target, rows, history=synthetic.history, calendar=SYNTHETIC_CALENDAR
    )
    assert decision.kind == "vs_champion"
    # The pure decision on the same rows agrees with what was applied.
    compared = compare_on_rows(
        second.bundle,
        trained_synthetic.bundle,
        rows,
        synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
    )
    assert decide_promotion(compared).promote == decision.promote
    assert decision.n_days == compared.challenger["date"].n_unique()
    champion = client.get_model_version_by_alias(mlflow_target.registered_model_name, CHAMPION)
    assert str(champion.version) == (new.version if decision.promote else logged.version)
    tags = client.get_run(new.run_id).data.tags
    assert tags["promotion.decision"] == ("promoted" if decision.promote else "kept")
    assert float(tags["promotion.mse_vs_champion_p_value"]) > 0
    assert float(tags["promotion.mse_vs_champion_margin"]) >= 0
    assert tags["promotion.days"] == str(decision.n_days)


@pytest.fixture(scope="module")
def synthetic_backtest(
    trained_synthetic: TrainResult, synthetic: SyntheticData
) -> WalkForwardResult:
    """The synthetic firm's method replayed over its last walk-forward origins."""
    result = backtest_method(
        synthetic.frame,
        trained_synthetic.bundle,
        TrainConfig(seed=0, budget=SearchBudget(n_trials=2, n_folds=2)),
        history=synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
        walk_forward=WalkForwardConfig(step_days=10, min_train_days=20),
        min_trading_days=25,
        workers=2,
    )
    assert result is not None
    return result


def test_promotion_on_the_walk_forward_meets_the_champions_kept_backtest(
    tmp_path: Path,
    trained_synthetic: TrainResult,
    synthetic: SyntheticData,
    synthetic_backtest: WalkForwardResult,
) -> None:
    """Each version keeps its method's backtest in its run; the next challenger is judged on
    its own backtest's days against that record. A retrained copy of the champion (the same
    method, the same model) is never promoted: it is not better, only another draw."""
    target = TrackingTarget.embedded(tmp_path, registered_model_name="walk_forward_promotion")
    report = evaluate_result(
        trained_synthetic, history=synthetic.history, calendar=SYNTHETIC_CALENDAR
    )
    rows = synthetic_backtest.out_of_sample
    first = log_training_run(target, trained_synthetic, report)
    assert load_backtest(target, first.run_id) is None  # nothing kept yet
    log_backtest(target, first.run_id, stored_backtest(rows))
    kept = load_backtest(target, first.run_id)
    assert kept is not None and kept.height == rows.height
    assert "account_id" not in kept.columns
    decision = promote_challenger(
        target,
        synthetic.frame,
        history=synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
        backtest=rows,
    )
    assert decision.kind == "vs_baselines"
    assert decision.n_days == rows["date"].n_unique()
    assert decision.evidence.startswith("the challenger's walk-forward")
    client = target.client()
    if not decision.promote:
        client.set_registered_model_alias(target.registered_model_name, CHAMPION, first.version)

    again = log_training_run(target, trained_synthetic, report)
    log_backtest(target, again.run_id, stored_backtest(rows))
    decision = promote_challenger(
        target,
        synthetic.frame,
        history=synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
        backtest=rows,
    )
    assert decision.kind == "vs_champion" and not decision.promote
    assert "of its stored walk-forward" in decision.evidence
    assert decision.numbers["mse_vs_champion_estimate"] == 0.0
    tags = client.get_model_version(target.registered_model_name, again.version).tags
    assert tags["promotion.evidence"] == decision.evidence
    assert tags["promotion.decision"] == "kept"


def test_a_fallback_twin_is_a_version_of_its_own_beside_the_challenger(
    tmp_path: Path, trained_synthetic: TrainResult, synthetic: SyntheticData
) -> None:
    """The twin is registered in its own run, linked to its version's, without an alias: the
    challenger stays the version (its shadow predictions go on); the twin loads back exactly."""
    target = TrackingTarget.embedded(tmp_path, registered_model_name="fallback_twin")
    report = evaluate_result(
        trained_synthetic, history=synthetic.history, calendar=SYNTHETIC_CALENDAR
    )
    version = log_training_run(target, trained_synthetic, report)
    twin = fallback_twin(
        trained_synthetic.bundle, synthetic.frame, synthetic.history, SYNTHETIC_CALENDAR
    )
    logged = log_fallback_twin(target, twin, version, trained_synthetic.split.test)
    assert int(logged.version) == int(version.version) + 1
    assert logged.run_id != version.run_id
    challenger = load_version(target, alias=CHALLENGER)
    assert challenger is not None and challenger.version == version.version
    assert load_version(target, alias=CHAMPION) is None
    loaded = load_version(target, version=logged.version)
    assert loaded is not None and loaded.bundle.stack.fallback == twin.stack.fallback
    assert loaded.tags[TAG_FALLBACK_OF] == version.version
    rows = trained_synthetic.split.test
    assert loaded.bundle.predict(rows).as_frame().equals(twin.predict(rows).as_frame())
    run = target.client().get_run(logged.run_id)
    assert run.data.params["stack.fallback"] == twin.stack.fallback
    assert run.data.tags["fallback_twin_of_run"] == version.run_id


def test_a_kept_first_version_gets_its_fallback_twin_as_champion(
    tmp_path: Path,
    trained_synthetic: TrainResult,
    synthetic: SyntheticData,
    synthetic_backtest: WalkForwardResult,
) -> None:
    """No champion yet, and the version's mean loses to the baseline on its walk-forward days
    (here: noise added to it): the version is kept, its twin is registered with its backtest,
    the decision recorded on it, and it becomes the champion; the challenger stays the
    version."""
    target = TrackingTarget.embedded(tmp_path, registered_model_name="fallback_flow")
    report = evaluate_result(
        trained_synthetic, history=synthetic.history, calendar=SYNTHETIC_CALENDAR
    )
    oos = synthetic_backtest.out_of_sample
    lost = mean_lost_in_noise(oos)
    version = log_training_run(target, trained_synthetic, report)
    kept = promote_challenger(
        target,
        synthetic.frame,
        history=synthetic.history,
        calendar=SYNTHETIC_CALENDAR,
        backtest=lost,
    )
    assert kept.kind == "vs_baselines" and not kept.promote
    outcome = promote_fallback_twin(
        target,
        version,
        trained_synthetic.bundle,
        trained_synthetic.split.test,
        lost,
        synthetic.frame,
        history=synthetic.history,
        criteria=PromotionCriteria(),
        calendar=SYNTHETIC_CALENDAR,
    )
    assert outcome.decision.promote and outcome.version is not None, outcome.decision.reasons
    champion = load_version(target, alias=CHAMPION)
    assert champion is not None and champion.version == outcome.version.version
    assert champion.bundle.stack.fallback == outcome.baseline
    challenger = load_version(target, alias=CHALLENGER)
    assert challenger is not None and challenger.version == version.version
    tags = (
        target.client()
        .get_model_version(target.registered_model_name, outcome.version.version)
        .tags
    )
    assert tags["promotion.kind"] == FALLBACK_KIND and tags["promotion.decision"] == "promoted"
    assert "fallback twin" in tags["promotion.evidence"]
    stored = load_backtest(target, outcome.version.run_id)
    assert stored is not None and stored.height == oos.height
    np.testing.assert_allclose(
        np.sort(stored["expected_net_profit"].to_numpy()),
        np.sort(oos[SELECTED_BASELINE].to_numpy()),
    )


def test_a_given_sqlite_store_keeps_its_artifacts_beside_it_not_in_the_working_folder(
    tmp_path: Path,
) -> None:
    # Left to MLflow, a new experiment on a SQLite store puts its artifacts in ./mlruns of
    # whatever folder the process runs in (the project root, for the test suite).
    target = TrackingTarget.for_uri(f"sqlite:///{tmp_path / 'store' / 'mlflow.sqlite'}")
    (tmp_path / "store").mkdir()
    experiment = target.client().get_experiment(target.experiment_id())
    assert experiment.artifact_location == (tmp_path / "store" / "mlflow-artifacts").as_uri()
    # A tracking server decides where its artifacts go.
    assert TrackingTarget.for_uri("http://mlflow.internal:5000").artifact_location is None
