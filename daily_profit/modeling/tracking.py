"""MLflow: one run per training, the whole bundle as one registered model, aliases, loading.

Called by the lead's small Dagster resource (one explicit run per materialisation; the legacy
dagster-mlflow resource reuses runs across materialisations). Works fully offline: the embedded
default is a SQLite tracking store ``sqlite:///<data_dir>/mlflow.sqlite`` with the experiment's
artifact location set to ``<data_dir>/mlflow-artifacts`` (``TrackingTarget.embedded``).

What a training run records:

- tags: ``dagster_run_id``, ``feature_set_version``, data window (train/calibration/test start
  and end), model family;
- params: the chosen hyperparameters of each booster, rounds, split and search budget;
- metrics: ``test_{predictor}_{metric}`` for the model and every baseline (and the oracle with
  ground truth), plus search scores;
- artifacts: ``data/description.json`` (rows, accounts, date ranges of each split, label
  statistics), ``search/trials.json``, ``evaluation/metrics.json``, ``plots/*.png``;
- the model: an MLflow pyfunc ``PythonModel`` wrapping the bundle folder (four boosters,
  conformal offsets, breach calibrator, feature list, the training features' drift reference
  ``drift_reference.json``), with a signature and an input example whose identities are
  masked; registered as a new version of ``registered_model_name`` with
  the alias ``challenger``.

Loading needs the ``daily_profit`` package importable (the pyfunc class lives here); loading by
alias and predicting gives exactly the bundle's numbers (boosters in UBJSON, offsets as JSON
floats).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
import polars as pl
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from daily_profit.config import Settings
from daily_profit.modeling.bundle import (
    DRIFT_REFERENCE_FILE,
    PREDICTION_COLUMNS,
    RULE_INPUT,
    STACK_BASELINES,
    ModelBundle,
    baseline_column,
)
from daily_profit.modeling.dataset import DATE, ID
from daily_profit.modeling.evaluate import EvaluationReport
from daily_profit.modeling.plots import write_plots
from daily_profit.monitoring.drift import DriftReference
from daily_profit.privacy import mask_identities

if TYPE_CHECKING:
    from daily_profit.modeling.train import TrainResult

DEFAULT_REGISTERED_MODEL = "daily_profit_next_day_pnl"
DEFAULT_EXPERIMENT = "daily_profit_next_day_pnl"
CHAMPION = "champion"
CHALLENGER = "challenger"
DEFAULT_UI_URL = "http://127.0.0.1:5000"
MODEL_NAME_IN_RUN = "model"
BUNDLE_ARTIFACT = "bundle"

# Tag keys, written once here and read back by ``load_by_alias`` and promotion.
TAG_DAGSTER_RUN = "dagster_run_id"
TAG_FEATURE_SET = "feature_set_version"
TAG_PREFIX_WINDOW = "window."
TAG_DRIFT_REFERENCE = "drift_reference"
TAG_FALLBACK_OF = "fallback_twin_of"  # the version whose fallback twin a version is


@dataclass(frozen=True)
class TrackingTarget:
    """Where runs and models go."""

    tracking_uri: str
    experiment_name: str = DEFAULT_EXPERIMENT
    artifact_location: str | None = None  # for a new experiment; None: the server's default
    registered_model_name: str = DEFAULT_REGISTERED_MODEL
    ui_url: str | None = None  # base URL of the MLflow UI for run links

    @classmethod
    def embedded(
        cls,
        data_dir: Path,
        experiment_name: str = DEFAULT_EXPERIMENT,
        registered_model_name: str = DEFAULT_REGISTERED_MODEL,
    ) -> TrackingTarget:
        """The offline default: SQLite store and artifact folder under ``data_dir``."""
        data_dir = Path(data_dir).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        artifacts = data_dir / "mlflow-artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        return cls(
            tracking_uri=f"sqlite:///{data_dir / 'mlflow.sqlite'}",
            experiment_name=experiment_name,
            artifact_location=artifacts.as_uri(),
            registered_model_name=registered_model_name,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        experiment_name: str = DEFAULT_EXPERIMENT,
        registered_model_name: str = DEFAULT_REGISTERED_MODEL,
        ui_url: str | None = None,
    ) -> TrackingTarget:
        """The configured store: ``DAILY_PROFIT_MLFLOW_TRACKING_URI`` or the embedded default."""
        if settings.mlflow_tracking_uri is None:
            target = cls.embedded(settings.data_dir, experiment_name, registered_model_name)
            return cls(**{**target.__dict__, "ui_url": ui_url})
        return cls.for_uri(
            settings.resolved_mlflow_tracking_uri,
            experiment_name=experiment_name,
            registered_model_name=registered_model_name,
            ui_url=ui_url,
        )

    @classmethod
    def for_uri(
        cls,
        tracking_uri: str,
        experiment_name: str = DEFAULT_EXPERIMENT,
        registered_model_name: str = DEFAULT_REGISTERED_MODEL,
        ui_url: str | None = None,
    ) -> TrackingTarget:
        """A given store. A local SQLite store keeps its artifacts beside its file: left to
        MLflow, a new experiment's artifacts would go to ``./mlruns`` under whatever folder the
        process runs in (the project root, for tests)."""
        return cls(
            tracking_uri=tracking_uri,
            experiment_name=experiment_name,
            artifact_location=_artifacts_beside(tracking_uri),
            registered_model_name=registered_model_name,
            ui_url=ui_url,
        )

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def activate(self) -> None:
        """Point MLflow's fluent API (used by ``log_model``) at this store."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def experiment_id(self) -> str:
        """The experiment's id, creating it (with its artifact location) when missing."""
        client = self.client()
        found = client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            return found.experiment_id
        return client.create_experiment(
            self.experiment_name, artifact_location=self.artifact_location
        )

    def run_url(self, experiment_id: str, run_id: str) -> str:
        base = self.ui_url
        if base is None:
            scheme = urlparse(self.tracking_uri).scheme
            base = self.tracking_uri if scheme in ("http", "https") else DEFAULT_UI_URL
        return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def _artifacts_beside(tracking_uri: str) -> str | None:
    """``<folder of the SQLite file>/mlflow-artifacts`` for a local SQLite store, else None
    (a tracking server decides where its artifacts go)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or ":memory:" in tracking_uri:
        return None
    folder = Path(tracking_uri[len(prefix) :]).resolve().parent / "mlflow-artifacts"
    return folder.as_uri()


# -- the MLflow model ---------------------------------------------------------------------------


class ProfitModelPyfunc(PythonModel):
    """MLflow's face of a ``ModelBundle``: predict takes feature columns, returns predictions.

    Input: a pandas frame with the bundle's feature columns (doubles; strings for categorical
    features), the ``baseline_<name>`` columns the mean stacks and the breach rule's
    ``baseline_typical_move`` (``bundle.attach_baselines``),
    optionally ``date`` (the feature day: the weekday picks the conformal cell; without it the
    scale band's offsets apply) and ``account_id``, which is passed through. Output: expected_net_profit,
    p05, p50, p95, breach_probability (plus account_id when given).
    """

    def __init__(self) -> None:
        self.bundle: ModelBundle | None = None

    def load_context(self, context: PythonModelContext) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts[BUNDLE_ARTIFACT]))

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        assert self.bundle is not None, "load_context was not called"
        out = self.bundle.predict(model_input).as_frame().to_pandas()
        if ID in model_input.columns:
            out.insert(0, ID, model_input[ID].to_numpy())
        return out


def model_signature(bundle: ModelBundle) -> ModelSignature:
    inputs = [ColSpec("string", ID, required=False), ColSpec("datetime", DATE, required=False)]
    for c in bundle.feature_columns:
        inputs.append(ColSpec("string" if c in bundle.categories else "double", c))
    needed = bundle.stack.needed_baselines()
    for b in STACK_BASELINES:
        inputs.append(ColSpec("double", baseline_column(b), required=b in needed))
    inputs.append(
        ColSpec("double", baseline_column(RULE_INPUT), required=bundle.calibrator.uses_rule)
    )
    outputs = [ColSpec("string", ID, required=False)]
    outputs += [ColSpec("double", c) for c in PREDICTION_COLUMNS]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def model_input(frame: pl.DataFrame, bundle: ModelBundle) -> pd.DataFrame:
    """The pyfunc's input for ``frame``: account_id and date (if any), the features as doubles
    and the stacked baselines (and the breach rule's typical move) the frame carries."""
    cols = [pl.col(ID).cast(pl.String)] if ID in frame.columns else []
    if DATE in frame.columns:
        cols.append(pl.col(DATE))
    for c in bundle.feature_columns:
        dtype = pl.String if c in bundle.categories else pl.Float64
        cols.append(pl.col(c).cast(dtype))
    for b in (*STACK_BASELINES, RULE_INPUT):
        if baseline_column(b) in frame.columns:
            cols.append(pl.col(baseline_column(b)).cast(pl.Float64))
    return frame.select(cols).to_pandas()


def input_example(frame: pl.DataFrame, bundle: ModelBundle, rows: int = 5) -> pd.DataFrame:
    """A few real rows with identities masked (privacy: no trader identity leaves the warehouse)."""
    head = frame.head(rows)
    return model_input(mask_identities(head.select(ID)).hstack(head.drop(ID)), bundle)


def _pip_requirements() -> list[str]:
    # Explicit, so logging never shells out to infer requirements (slow, and offline-hostile).
    import matplotlib
    import sklearn
    import xgboost

    return [
        f"mlflow=={mlflow.__version__}",
        f"xgboost-cpu=={xgboost.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"polars=={pl.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"matplotlib=={matplotlib.__version__}",
    ]


# -- logging a training run --------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    run_url: str
    model_uri: str  # models:/m-<id> (the logged model)
    registered_model_name: str
    version: str
    experiment_id: str

    @property
    def registry_uri(self) -> str:
        return f"models:/{self.registered_model_name}/{self.version}"


@contextmanager
def open_run(
    target: TrackingTarget,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """One explicit MLflow run in the target experiment, ended (FINISHED or FAILED) on exit."""
    target.activate()
    experiment_id = target.experiment_id()
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, tags=dict(tags or {})
    ) as run:
        yield run


def window_tags(bundle: ModelBundle) -> dict[str, str]:
    tags = {}
    for segment in ("train", "calibration", "test"):
        window = bundle.metadata.get(f"{segment}_window", {})
        for key in ("start", "end", "days"):
            if key in window:
                tags[f"{TAG_PREFIX_WINDOW}{segment}_{key}"] = str(window[key])
    tags[f"{TAG_PREFIX_WINDOW}fit_label_end"] = str(bundle.metadata.get("fit_label_end", ""))
    return tags


def _flat_params(bundle: ModelBundle, extra: Mapping[str, Any]) -> dict[str, str]:
    params: dict[str, str] = {}
    for model, values in bundle.metadata.get("params", {}).items():
        for key, value in values.items():
            params[f"{model}.{key}"] = str(value)
    params["n_features"] = str(len(bundle.feature_columns))
    params["headroom_columns"] = ",".join(bundle.headroom_columns)
    params["breach_calibration"] = bundle.calibrator.method
    for term, weight in bundle.stack.weights.items():
        params[f"stack.{term}"] = repr(weight)
    params["stack.fallback"] = str(bundle.stack.fallback)
    params["stack.kept"] = str(bundle.stack.evidence.get("kept", "stack"))
    params["conformal_level_non_zero"] = repr(bundle.conformal.level)
    for group, log_factor in bundle.conformal.factors.items():
        params[f"conformal_factor.{group.replace('=', ':')}"] = repr(
            round(float(np.exp(log_factor)), 4)
        )
    params["conformal_lower_offset"] = repr(bundle.offsets.lower)
    params["conformal_median_offset"] = repr(bundle.offsets.median)
    params["conformal_upper_offset"] = repr(bundle.offsets.upper)
    params["conformal_n_calibration"] = str(bundle.offsets.n_calibration)
    params.update({k: str(v) for k, v in extra.items()})
    return params


def log_training(
    result: TrainResult,
    report: EvaluationReport,
    *,
    extra_params: Mapping[str, Any] | None = None,
) -> None:
    """Log params, metrics, data description, search report and plots into the active run.

    ``result`` is a ``train.TrainResult``; ``report`` its evaluation (``evaluate_result``).
    """
    bundle: ModelBundle = result.bundle
    mlflow.set_tags(
        {
            **window_tags(bundle),
            TAG_FEATURE_SET: ",".join(bundle.metadata.get("feature_set_versions", [])),
            "model_family": "xgboost scale+mean+quantile+breach bundle",
            "best_mean_baseline": report.best_mean_baseline,
        }
    )
    mlflow.log_params(
        _flat_params(
            bundle,
            {
                "seed": bundle.metadata.get("seed"),
                "search.trials_run": len(result.search.trials),
                "search.stopped_by": result.search.stopped_by,
                "search.n_folds": result.search.n_folds,
                **(extra_params or {}),
            },
        )
    )
    metrics = report.flat("test")
    best = {t.index: t for t in result.search.trials}
    metrics["cv_mean_mse"] = best[result.search.best_mean].mse
    metrics["cv_pinball"] = best[result.search.best_quantile].pinball
    metrics["cv_breach_log_loss"] = best[result.search.best_breach].breach_log_loss
    metrics["train_seconds"] = result.seconds
    metrics["search_seconds"] = result.search.seconds
    coverage = result.conditional_coverage()
    metrics.update(coverage_metrics(coverage))
    for key, value in bundle.metadata.get("scale_diagnostics", {}).items():
        metrics[f"scale_{key}"] = float(value)
    mlflow.log_metrics(metrics)
    mlflow.log_table(coverage.to_pandas(), "evaluation/conditional_coverage.json")
    mlflow.log_dict(bundle.stack.as_dict(), "model/stack.json")
    mlflow.log_dict(result.description, "data/description.json")
    mlflow.log_dict(result.search.as_dict(), "search/trials.json")
    mlflow.log_dict(
        {"metrics": report.metrics, "window": report.window, "extras": report.extras},
        "evaluation/metrics.json",
    )
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_plots(bundle, result.test_predictions, report, Path(tmp)):
            mlflow.log_artifact(str(path), artifact_path="plots")


def coverage_metrics(table: pl.DataFrame, prefix: str = "test_coverage") -> dict[str, float]:
    """``{prefix}_{dimension}_{cell}`` per row of a conditional coverage table (MLflow metric
    names allow letters, digits and ``_-./ ``: a pooled cell's ``+`` becomes ``-``)."""
    out: dict[str, float] = {}
    for row in table.iter_rows(named=True):
        cell = str(row["cell"]).replace("+", "-")
        name = prefix if row["dimension"] == "all" else f"{prefix}_{row['dimension']}_{cell}"
        if row["coverage"] == row["coverage"]:
            out[name] = float(row["coverage"])
    return out


def log_bundle(
    target: TrackingTarget,
    bundle: ModelBundle,
    example_rows: pl.DataFrame,
    *,
    alias: str | None = CHALLENGER,
) -> LoggedModel:
    """Log the bundle as one pyfunc model in the active run, register it, set ``alias``."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_bundle needs an active run (use open_run)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = bundle.save(Path(tmp) / BUNDLE_ARTIFACT)
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME_IN_RUN,
            python_model=ProfitModelPyfunc(),
            artifacts={BUNDLE_ARTIFACT: str(folder)},
            signature=model_signature(bundle),
            input_example=input_example(example_rows, bundle),
            registered_model_name=target.registered_model_name,
            pip_requirements=_pip_requirements(),
        )
    version = str(info.registered_model_version)
    client = target.client()
    if alias:
        client.set_registered_model_alias(target.registered_model_name, alias, version)
    for key, value in window_tags(bundle).items():
        client.set_model_version_tag(target.registered_model_name, version, key, value)
    reference = bundle.drift_reference
    client.set_model_version_tag(
        target.registered_model_name,
        version,
        TAG_DRIFT_REFERENCE,
        f"{len(reference.features)} features of {reference.rows} train rows"
        if reference
        else "none",
    )
    return LoggedModel(
        run_id=run.info.run_id,
        run_url=target.run_url(run.info.experiment_id, run.info.run_id),
        model_uri=info.model_uri,
        registered_model_name=target.registered_model_name,
        version=version,
        experiment_id=run.info.experiment_id,
    )


def log_training_run(
    target: TrackingTarget,
    result: TrainResult,
    report: EvaluationReport,
    *,
    dagster_run_id: str | None = None,
    run_name: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> LoggedModel:
    """Everything above in one run: open, tag, log, register, alias ``challenger``."""
    tags = dict(extra_tags or {})
    if dagster_run_id:
        tags[TAG_DAGSTER_RUN] = dagster_run_id
    with open_run(target, run_name=run_name, tags=tags):
        log_training(result, report, extra_params=extra_params)
        # The split's rows carry the baselines the stack needs, as a caller's rows must.
        return log_bundle(target, result.bundle, result.split.test)


def log_fallback_twin(
    target: TrackingTarget,
    twin: ModelBundle,
    source: LoggedModel,
    example_rows: pl.DataFrame,
    *,
    run_name: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> LoggedModel:
    """Register ``twin`` (``promotion.fallback_twin`` of the ``source`` version) as a version of
    its own, in its own run linked to the source's, without an alias: the ``challenger`` alias
    stays on the source, whose shadow predictions go on beside it."""
    tags = {
        **dict(extra_tags or {}),
        TAG_FALLBACK_OF: source.version,
        "fallback_twin_of_run": source.run_id,
    }
    with open_run(target, run_name=run_name, tags=tags):
        mlflow.set_tags(
            {
                **window_tags(twin),
                TAG_FEATURE_SET: ",".join(twin.metadata.get("feature_set_versions", [])),
                "model_family": f"fallback twin of version {source.version}: the "
                f"{twin.stack.fallback} baseline with its intervals and breach probabilities",
            }
        )
        mlflow.log_params(_flat_params(twin, {"fallback_twin_of": source.version}))
        mlflow.log_dict(twin.stack.as_dict(), "model/stack.json")
        logged = log_bundle(target, twin, example_rows, alias=None)
    target.client().set_model_version_tag(
        target.registered_model_name, logged.version, TAG_FALLBACK_OF, source.version
    )
    return logged


# -- loading -----------------------------------------------------------------------------------


@dataclass
class LoadedVersion:
    """A registered version with what promotion needs to know about it."""

    name: str
    version: str
    alias: str | None
    run_id: str
    bundle: ModelBundle
    test_metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def test_window(self) -> tuple[str, str]:
        return self.tags[f"{TAG_PREFIX_WINDOW}test_start"], self.tags[
            f"{TAG_PREFIX_WINDOW}test_end"
        ]

    @property
    def calibration_end(self) -> str:
        return self.tags[f"{TAG_PREFIX_WINDOW}calibration_end"]


def aliased_version(target: TrackingTarget, alias: str) -> str | None:
    """The version number an alias points at (None when unset), from the registry alone: the
    model is not loaded."""
    try:
        mv = target.client().get_model_version_by_alias(target.registered_model_name, alias)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return str(mv.version)


def load_version(
    target: TrackingTarget, *, alias: str | None = None, version: str | None = None
) -> LoadedVersion | None:
    """A version by alias (``champion``/``challenger``) or number; None when the alias is unset."""
    client = target.client()
    name = target.registered_model_name
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, str(version))
        )
    except mlflow.exceptions.MlflowException:
        return None
    target.activate()
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
    wrapper = pyfunc.unwrap_python_model()
    assert isinstance(wrapper, ProfitModelPyfunc) and wrapper.bundle is not None
    run = client.get_run(mv.run_id)
    return LoadedVersion(
        name=name,
        version=str(mv.version),
        alias=alias,
        run_id=mv.run_id,
        bundle=wrapper.bundle,
        test_metrics={k: v for k, v in run.data.metrics.items() if k.startswith("test_")},
        tags={**run.data.tags, **(mv.tags or {})},
    )


@dataclass(frozen=True)
class VersionReference:
    """A registered version's training-feature reference, for drift monitoring."""

    version: str
    run_id: str
    reference: DriftReference


def load_drift_reference(
    target: TrackingTarget, *, alias: str = CHAMPION
) -> VersionReference | None:
    """The drift reference stored in the bundle of ``alias``'s version; None when the alias is
    unset. Downloads that one file, not the boosters. Raises when the version has none (a bundle
    older than drift monitoring): retrain, do not guess a reference."""
    client = target.client()
    name = target.registered_model_name
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None
    target.activate()
    uri = f"models:/{name}/{mv.version}/artifacts/{BUNDLE_ARTIFACT}/{DRIFT_REFERENCE_FILE}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
            data = json.loads(Path(path).read_text())
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        raise LookupError(
            f"model version {mv.version} ({alias}) has no {DRIFT_REFERENCE_FILE} in its bundle: "
            "it predates drift monitoring; retrain to get one"
        ) from exc
    return VersionReference(
        version=str(mv.version), run_id=mv.run_id, reference=DriftReference.from_json(data)
    )


# The challenger's backtest (``promotion.stored_backtest``), kept on its run for the next
# challenger to meet.
BACKTEST_ARTIFACT = "promotion/walk_forward_predictions.parquet"


def log_backtest(target: TrackingTarget, run_id: str, rows: pl.DataFrame) -> None:
    """Keep ``rows`` (no identity: account keys) as the run's ``BACKTEST_ARTIFACT``."""
    folder, name = BACKTEST_ARTIFACT.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        rows.write_parquet(path)
        target.client().log_artifact(run_id, str(path), artifact_path=folder)


def load_backtest(target: TrackingTarget, run_id: str) -> pl.DataFrame | None:
    """The backtest a run kept; None when it kept none (a version older than the backtest)."""
    target.activate()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=BACKTEST_ARTIFACT, dst_path=tmp
            )
            return pl.read_parquet(path)
    except (mlflow.exceptions.MlflowException, OSError):
        return None


def load_pyfunc(target: TrackingTarget, alias: str = CHAMPION) -> mlflow.pyfunc.PyFuncModel:
    """The plain MLflow pyfunc model of an alias (what ``mlflow models serve`` would run)."""
    target.activate()
    return mlflow.pyfunc.load_model(f"models:/{target.registered_model_name}@{alias}")


def set_tags(target: TrackingTarget, version: str, run_id: str, tags: Mapping[str, Any]) -> None:
    """Tag both the model version and its run (promotion records its decision this way)."""
    client = target.client()
    for key, value in tags.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        client.set_model_version_tag(target.registered_model_name, version, key, text)
        client.set_tag(run_id, key, text)
