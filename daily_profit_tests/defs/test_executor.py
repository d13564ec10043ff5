"""Where steps execute: in the run's processes by default, on Celery workers with a broker;
API steps on their own queue; the broker's URL (a secret) never in run config."""

import dagster as dg
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG
from pydantic import SecretStr

from daily_profit.config import Settings
from daily_profit.defs.executor import (
    BACKEND_ENV,
    BROKER_ENV,
    RISK_API_QUEUE,
    celery_app,
    celery_executor_config,
    configured_executor,
    worker_argv,
)
from daily_profit.defs.raw.assets import raw_assets

BROKER = "amqp://desk:s3cret@mq.internal:5672//"


def test_no_broker_keeps_dagsters_default_executor():
    assert configured_executor(Settings()) is None


def test_steps_run_in_the_runs_own_process_when_the_settings_say_so():
    assert configured_executor(Settings(step_execution="in_process")) is dg.in_process_executor
    # A broker still sends the steps to the workers.
    with_broker = Settings(step_execution="in_process", celery_broker_url=SecretStr(BROKER))
    assert configured_executor(with_broker).name == "celery_executor"


def test_the_celery_executor_names_the_broker_variable_not_its_value():
    settings = Settings(celery_broker_url=SecretStr(BROKER))
    executor = configured_executor(settings)
    assert executor is not None and executor.name == "celery_executor"
    config = celery_executor_config(settings)
    assert config == {"broker": {"env": BROKER_ENV}, "backend": "rpc://"}
    with_redis = Settings(
        celery_broker_url=SecretStr("redis://:pw@redis:6379/0"),
        celery_result_backend_url=SecretStr("redis://:pw@redis:6379/1"),
    )
    assert celery_executor_config(with_redis)["backend"] == {"env": BACKEND_ENV}


def test_api_steps_go_to_their_own_queue():
    tags = {a.key.to_user_string(): a.op.tags for a in raw_assets}
    assert tags["raw_metrics_daily"][DAGSTER_CELERY_QUEUE_TAG] == RISK_API_QUEUE
    assert tags["raw_metrics_alltime"][DAGSTER_CELERY_QUEUE_TAG] == RISK_API_QUEUE
    assert DAGSTER_CELERY_QUEUE_TAG not in tags["raw_plans"]  # a CSV export, no API call


def test_a_worker_serves_dagster_celerys_step_task_one_at_a_time():
    app = celery_app(Settings(celery_broker_url=SecretStr(BROKER)))
    assert "execute_plan" in app.tasks
    assert app.conf.broker_url == BROKER
    assert app.conf.worker_prefetch_multiplier == 1 and app.conf.task_acks_late
    argv = worker_argv(["dagster", RISK_API_QUEUE], 1, "w1@host")
    assert argv[argv.index("--queues") + 1] == "dagster,risk_api"
    assert argv[argv.index("--prefetch-multiplier") + 1] == "1"
    assert argv[argv.index("--concurrency") + 1] == "1"
