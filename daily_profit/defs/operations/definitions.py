"""The operations layer's definitions: the nightly automation, the deadline and the alerts."""

import dagster as dg

from daily_profit.defs.operations.alerts import (
    alert_sensor,
    deadline_sensor,
    predictions_by_deadline,
)
from daily_profit.defs.operations.automation import automation_sensor

defs = dg.Definitions(
    asset_checks=[predictions_by_deadline],
    sensors=[automation_sensor(), alert_sensor(), deadline_sensor()],
)
