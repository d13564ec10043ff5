"""The nightly tick carries a new day from raw to predictions, on a real instance.

The main job runs first, as a user runs it: the history backfill, then the nightly tick of its
last day, against the built-in sandbox whose clock holds the last simulated day back. On so few
days its model does not qualify as the first champion, and the nightly predictions wait for one:
an operator promotes it by hand and the weekly retraining runs (its promotion check passes once a
champion exists). Then the sandbox's clock advances one day and the nightly tick after the new
day runs on the same instance, in a fresh process (the code location reloads, so the daily
partitions end on the new day). What runs at a tick is what the automation conditions request,
as the daemon's sensor would request it; a `dagster dev` daemon would need a sensor interval and
a run process per layer (minutes on this 2-core host), so the conditions are evaluated in process
(daily_profit/operations/nightly.py), and test_daemon_tick.py shows the daemon's sensor landing a
raw day by itself.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.storage.tags import AUTOMATION_CONDITION_TAG

from daily_profit.config import PROJECT_ROOT, get_settings
from daily_profit.defs.asset_keys import ACCOUNT_FEATURES_DAILY, DAILY_PREDICTIONS
from daily_profit.modeling.tracking import CHALLENGER, CHAMPION, TrackingTarget, load_version
from daily_profit.operations.nightly import NIGHTLY_TICK_TAG, nightly_tick_time
from daily_profit.sandbox.clock import advance_sandbox_clock
from daily_profit.sandbox.launcher import stop_sandbox
from daily_profit.warehouse.io import Warehouse
from daily_profit_tests.defs.dagster_dev import free_port

START = dt.date(2025, 1, 1)
SANDBOX_DAYS = 36
NEW_DAY = START + dt.timedelta(days=SANDBOX_DAYS - 1)
# The main job's last day: the sandbox's clock stands one day before its last simulated day.
MAIN_LAST_DAY = NEW_DAY - dt.timedelta(days=1)


def _main_job() -> subprocess.CompletedProcess[str]:
    """`daily-profit main`, as a user runs it, on this test's settings."""
    return subprocess.run(
        [sys.executable, "-m", "daily_profit.cli", "main"],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=900,
    )


def _retrain_then_nightly_tick(
    day: dt.date,
) -> tuple[bool, list[tuple[tuple[str, ...], tuple[str, ...], bool]]]:
    """The weekly retraining (one search trial, to be quick), then the tick after ``day``, on
    the local instance: whether the retraining succeeded, and (assets, days, succeeded) per run
    of the tick."""
    from daily_profit.cli import QUIET_RUN_CONFIG, local_instance, quiet_console
    from daily_profit.definitions import defs
    from daily_profit.defs.jobs import train_job
    from daily_profit.operations.nightly import run_nightly_tick

    quiet_console()
    with local_instance() as instance:
        retrained = defs.resolve_job_def(train_job.name).execute_in_process(
            instance=instance,
            run_config={**QUIET_RUN_CONFIG, "ops": {"profit_model": {"config": {"n_trials": 1}}}},
            raise_on_error=False,
        )
        runs = run_nightly_tick(defs, instance, day, run_config=QUIET_RUN_CONFIG)
    summary = [
        (tuple(k.to_user_string() for k in r.assets), r.days, r.result.success) for r in runs
    ]
    return retrained.success, summary


def _in_a_fresh_process(function: Callable[..., Any], *args: Any) -> Any:
    """As a new process loads the code location: the definitions read the settings and the
    sandbox's clock when they are imported."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def _local_instance_home(tmp_path: Path) -> Path:
    """A Dagster home with the root dagster.yaml's storages (the main job's fast event log),
    their folders under ``tmp_path``."""
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    kept = {k: config[k] for k in ("run_storage", "event_log_storage", "schedule_storage")}
    for name, block in kept.items():
        block["config"]["base_dir"] = str(tmp_path / "storage" / name)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(kept))
    return home


@pytest.fixture
def sandbox_one_day_back(tmp_path, settings_env):
    home = _local_instance_home(tmp_path)
    port = free_port()
    settings_env(
        data_dir=tmp_path / "data",
        sandbox_port=port,
        sandbox_accounts=30,
        sandbox_days=SANDBOX_DAYS,
        sandbox_clock_start_offset_days=1,
        restatement_days=1,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        try:
            yield
        finally:
            stop_sandbox(port)


def _materialising_run(
    instance: dg.DagsterInstance, asset: dg.AssetKey, day: dt.date
) -> dg.DagsterRun:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[day.isoformat()]), limit=1
    ).records
    assert records, f"{asset.to_user_string()} {day} was never materialised"
    run = instance.get_run_by_id(records[0].run_id)
    assert run is not None
    return run


@pytest.mark.slow
def test_the_nightly_tick_carries_a_new_day_from_raw_to_predictions(sandbox_one_day_back):
    main = _main_job()
    assert main.returncode == 0, main.stdout + main.stderr
    settings = get_settings()
    target = TrackingTarget.from_settings(settings)
    assert load_version(target, alias=CHAMPION) is None  # kept back: too few test days

    # The main job's last day was requested by the automation conditions at its nightly tick,
    # the day before it by the history backfill.
    with dg.DagsterInstance.get() as instance:
        last = _materialising_run(instance, ACCOUNT_FEATURES_DAILY, MAIN_LAST_DAY)
        assert last.tags.get(AUTOMATION_CONDITION_TAG) == "true"
        assert last.tags[NIGHTLY_TICK_TAG] == nightly_tick_time(MAIN_LAST_DAY).isoformat()
        before = _materialising_run(
            instance, ACCOUNT_FEATURES_DAILY, MAIN_LAST_DAY - dt.timedelta(days=1)
        )
        assert AUTOMATION_CONDITION_TAG not in before.tags

    challenger = load_version(target, alias=CHALLENGER)
    assert challenger is not None
    target.client().set_registered_model_alias(
        target.registered_model_name, CHAMPION, challenger.version
    )
    assert advance_sandbox_clock(1) == NEW_DAY
    retrained, runs = _in_a_fresh_process(_retrain_then_nightly_tick, NEW_DAY)

    assert retrained
    assert all(ok for _, _, ok in runs), runs
    days_by_asset = {asset: days for assets, days, _ in runs for asset in assets}
    # The new day and the restatement window are re-ingested; the restated day's data did not
    # change, so staging recomputes only the new day.
    assert days_by_asset["raw_metrics_daily"] == (MAIN_LAST_DAY.isoformat(), NEW_DAY.isoformat())
    assert days_by_asset["stg_accounts_daily"] == (NEW_DAY.isoformat(),)
    for asset in ("account_features_daily", "daily_predictions", "feature_drift", "desk_report"):
        assert NEW_DAY.isoformat() in days_by_asset[asset], (asset, runs)

    champion = load_version(target, alias=CHAMPION)
    assert champion is not None
    store = Warehouse(settings.resolved_warehouse_url)
    try:
        predictions = store.read_partitions("daily_predictions", NEW_DAY, NEW_DAY)
    finally:
        store.dispose()
    champion_rows = predictions.filter(predictions["model_role"] == CHAMPION)
    assert champion_rows.height > 0
    assert set(champion_rows["model_version"]) == {champion.version}
    with dg.DagsterInstance.get() as instance:
        new = _materialising_run(instance, DAILY_PREDICTIONS, NEW_DAY)
        assert new.tags.get(AUTOMATION_CONDITION_TAG) == "true"
        assert new.tags[NIGHTLY_TICK_TAG] == nightly_tick_time(NEW_DAY).isoformat()
