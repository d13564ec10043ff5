"""The code location: each layer declares its own definitions (``defs/<layer>/definitions.py``);
this merges them (imported as modules: a code location holds one Definitions at module scope)
and applies what spans the layers: the run order's automation conditions and
freshness, the warehouse tables' column schemas, the jobs and the resources."""

import warnings

import dagster as dg

# Partitioned asset checks are a preview feature in Dagster 1.13; the warning is known and noisy.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from daily_profit.config import get_settings  # noqa: E402
from daily_profit.defs.column_schemas import with_column_schema  # noqa: E402
from daily_profit.defs.desk import definitions as desk_layer  # noqa: E402
from daily_profit.defs.executor import configured_executor  # noqa: E402
from daily_profit.defs.features import definitions as feature_layer  # noqa: E402
from daily_profit.defs.jobs import jobs  # noqa: E402
from daily_profit.defs.model import definitions as model_layer  # noqa: E402
from daily_profit.defs.monitoring import definitions as monitoring_layer  # noqa: E402
from daily_profit.defs.operations import definitions as operations_layer  # noqa: E402
from daily_profit.defs.operations.automation import with_automation  # noqa: E402
from daily_profit.defs.raw import definitions as raw_layer  # noqa: E402
from daily_profit.defs.resources import build_resources  # noqa: E402

defs = (
    dg.Definitions.merge(
        raw_layer.defs,
        feature_layer.defs,
        model_layer.defs,
        monitoring_layer.defs,
        operations_layer.defs,
        desk_layer.defs,
        dg.Definitions(
            jobs=jobs,
            resources=build_resources(),
            # None: Dagster's multiprocess default; Celery workers when a broker is configured.
            executor=configured_executor(get_settings()),
        ),
    )
    .map_asset_specs(func=with_automation)
    .map_asset_specs(func=with_column_schema)
)
