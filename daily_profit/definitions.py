"""The code location: every asset, check, job and resource of daily-profit, in one Definitions."""

import warnings

import dagster as dg

# Partitioned asset checks are a preview feature in Dagster 1.13; the warning is known and noisy.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from daily_profit.config import get_settings  # noqa: E402
from daily_profit.defs.column_schemas import with_column_schemas  # noqa: E402
from daily_profit.defs.executor import configured_executor  # noqa: E402
from daily_profit.defs.features.assets import feature_assets, guard_checks  # noqa: E402
from daily_profit.defs.features.checks import feature_checks  # noqa: E402
from daily_profit.defs.jobs import jobs  # noqa: E402
from daily_profit.defs.model.assets import model_assets, prediction_checks  # noqa: E402
from daily_profit.defs.monitoring.assets import monitoring_assets  # noqa: E402
from daily_profit.defs.monitoring.retrain import retrain_schedules, retrain_sensors  # noqa: E402
from daily_profit.defs.operations.alerts import (  # noqa: E402
    alert_sensor,
    deadline_sensor,
    predictions_by_deadline,
)
from daily_profit.defs.operations.automation import (  # noqa: E402
    automation_sensor,
    with_automation,
)
from daily_profit.defs.raw.assets import raw_assets  # noqa: E402
from daily_profit.defs.raw.checks import raw_checks  # noqa: E402
from daily_profit.defs.resources import build_resources  # noqa: E402

defs = dg.Definitions(
    assets=with_column_schemas(
        with_automation([*raw_assets, *feature_assets, *model_assets, *monitoring_assets])
    ),
    asset_checks=[
        *raw_checks,
        *feature_checks,
        *guard_checks,
        *prediction_checks,
        predictions_by_deadline,
    ],
    jobs=jobs,
    schedules=[*retrain_schedules],
    sensors=[automation_sensor(), alert_sensor(), deadline_sensor(), *retrain_sensors],
    resources=build_resources(),
    # None: Dagster's multiprocess default; Celery workers when a broker is configured.
    executor=configured_executor(get_settings()),
)
