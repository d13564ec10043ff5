"""Resources, built in one place from the settings (``daily_profit.config``).

Resource config is visible in the Dagster UI, so secrets are never part of it: the API key is read
from the settings at the moment a client is built.
"""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from daily_profit.api.client import RereadSettings, RetrySettings, RiskApiClient
from daily_profit.api.limits import SharedAllowance
from daily_profit.config import get_settings
from daily_profit.modeling.tracking import (
    DEFAULT_EXPERIMENT,
    DEFAULT_REGISTERED_MODEL,
    TrackingTarget,
)
from daily_profit.sandbox.launcher import ensure_sandbox
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.migrate import upgrade


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse (SQLite file by default, PostgreSQL in production)."""

    url: str

    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def get(self) -> Warehouse:
        if self._warehouse is None:
            # A run launched from the UI on a fresh warehouse must not need a separate migrate
            # step; at head this is one query.
            upgrade(self.url)
            self._warehouse = Warehouse(self.url)
        return self._warehouse


class RiskApiResource(dg.ConfigurableResource):
    """The Risk API: ``sandbox`` starts (or reuses) the built-in simulation on loopback."""

    base_url: str
    requests_per_second: int = 15
    concurrency: int = 4
    page_size: int | None = None
    sandbox_faults: str | None = None

    def resolved_base_url(self) -> str:
        settings = get_settings()
        return ensure_sandbox(settings) if self.base_url == "sandbox" else self.base_url

    def client(self) -> RiskApiClient:
        settings = get_settings()
        limiter = (
            SharedAllowance(
                settings.data_dir / "risk_api_allowance.sqlite", self.requests_per_second
            )
            if self.requests_per_second > 0
            else None
        )
        headers = {"X-Sandbox-Faults": self.sandbox_faults} if self.sandbox_faults else None
        return RiskApiClient(
            self.resolved_base_url(),
            settings.risk_api_key.get_secret_value(),
            limiter=limiter,
            retry=RetrySettings.from_settings(settings),
            reread=RereadSettings.from_settings(settings),
            extra_headers=headers,
            max_connections=max(self.concurrency, 1) * 2,
            page_size=self.page_size,
        )


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and registry: one explicit MLflow run per training materialisation.

    ``tracking_uri`` None means the configured store (by default a local SQLite store and
    artifact folder under the data folder, fully offline)."""

    tracking_uri: str | None = None
    experiment_name: str = DEFAULT_EXPERIMENT
    registered_model_name: str = DEFAULT_REGISTERED_MODEL

    def target(self) -> TrackingTarget:
        if self.tracking_uri is None:
            return TrackingTarget.from_settings(
                get_settings(),
                experiment_name=self.experiment_name,
                registered_model_name=self.registered_model_name,
            )
        return TrackingTarget(
            tracking_uri=self.tracking_uri,
            experiment_name=self.experiment_name,
            registered_model_name=self.registered_model_name,
        )


def build_resources() -> dict[str, dg.ConfigurableResource]:
    settings = get_settings()
    return {
        "warehouse": WarehouseResource(url=settings.resolved_warehouse_url),
        "risk_api": RiskApiResource(base_url=settings.risk_api_base_url),
        "mlflow": MlflowResource(),
    }
