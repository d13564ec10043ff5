"""Where a run's steps execute: a process per step (the default), all in the run's own process
(``DAILY_PROFIT_STEP_EXECUTION=in_process``), or on Celery workers through dagster-celery when a
broker is configured (``DAILY_PROFIT_CELERY_BROKER_URL``).

The run worker and every Celery worker build the same Celery app from the same settings: the
executor's config names the environment variables, never their values (run config is shown in
the UI and the broker URL may carry a password). Steps that call the Risk API go to their own
queue, ``risk_api``; dagster-celery does not enforce instance pools, so the API stays bounded by
the key's shared allowance (``daily_profit/api/limits.py``, backend ``redis`` or ``postgres``
once workers run on several hosts), whatever the number of workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from daily_profit.config import Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery

# dagster-celery's own queue (every step without a queue tag goes there).
DEFAULT_QUEUE = "dagster"
# Steps that call the Risk API: tagged onto them with dagster-celery's queue tag.
RISK_API_QUEUE = "risk_api"
# The backend dagster-celery defaults to: results over the broker's own AMQP (RabbitMQ).
RPC_BACKEND = "rpc://"
BROKER_ENV = "DAILY_PROFIT_CELERY_BROKER_URL"
BACKEND_ENV = "DAILY_PROFIT_CELERY_RESULT_BACKEND_URL"


def risk_api_queue_tags() -> dict[str, str]:
    """Op tags of an asset that calls the Risk API (ignored by the in-process executors)."""
    from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

    return {DAGSTER_CELERY_QUEUE_TAG: RISK_API_QUEUE}


def celery_executor_config(settings: Settings) -> dict[str, object]:
    """The Celery executor's config: the variables to read in the run worker, not their values
    (run config is shown in the UI)."""
    backend = (
        {"env": BACKEND_ENV} if settings.celery_result_backend_url is not None else RPC_BACKEND
    )
    return {"broker": {"env": BROKER_ENV}, "backend": backend}


def configured_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The Celery executor when a broker is configured; otherwise the steps run in the run's
    own process (``step_execution=in_process``) or, None, Dagster's multiprocess default."""
    if settings.celery_broker_url is None:
        return dg.in_process_executor if settings.step_execution == "in_process" else None
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_executor_config(settings), name="celery_executor")


def celery_app(settings: Settings | None = None) -> Celery:
    """The Celery app a worker serves: dagster-celery's step task, configured as the executor
    configures it in the run worker (broker, backend, prefetch 1, the queues)."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    settings = settings or get_settings()
    if settings.celery_broker_url is None:
        raise ValueError(f"no Celery broker configured: set {BROKER_ENV}")
    backend = settings.celery_result_backend_url
    args = CeleryExecutor.for_cli(
        broker=settings.celery_broker_url.get_secret_value(),
        backend=backend.get_secret_value() if backend is not None else RPC_BACKEND,
    ).app_args()
    app = make_app(args)
    # A step is acknowledged when it ends: with prefetch 1 a worker process then holds only the
    # step it runs, and idle workers take the waiting ones. A step whose worker died is
    # delivered again; every asset replaces its partitions, so a rerun is safe.
    app.conf.task_acks_late = True
    create_task(app)
    return app


def worker_argv(queues: list[str], concurrency: int, name: str | None) -> list[str]:
    """`celery worker` arguments: ``concurrency`` steps at once (a process each), and no more
    reserved from the broker than that (prefetch 1), so idle workers take the waiting steps."""
    argv = [
        "worker",
        "--loglevel=INFO",
        "--queues",
        ",".join(queues),
        "--concurrency",
        str(concurrency),
        "--prefetch-multiplier",
        "1",
    ]
    if name:
        argv += ["--hostname", name]
    return argv
