"""Resources, built in one place from the settings (``daily_profit.config``).

Resource config is visible in the Dagster UI (launchpad, run config), so nothing that may carry a
secret is part of it: the warehouse URL (which may embed a password), the API base URL, the API key
and the allowance's Redis or PostgreSQL URL are read from the settings at the moment a run uses
them. The URL fields below exist for tests and one-off runs; the code location leaves them unset.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from daily_profit.api.client import RereadSettings, RetrySettings, RiskApiClient
from daily_profit.api.limits import SharedAllowance
from daily_profit.config import SANDBOX_MARKER, get_settings
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

    url: str | None = Field(
        default=None,
        description="Unset: DAILY_PROFIT_WAREHOUSE_URL at run time (never shown in the UI).",
    )

    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def resolved_url(self) -> str:
        return self.url or get_settings().resolved_warehouse_url

    def get(self) -> Warehouse:
        if self._warehouse is None:
            url = self.resolved_url()
            # A run launched from the UI on a fresh warehouse must not need a separate migrate
            # step; at head this is one query.
            upgrade(url)
            self._warehouse = Warehouse(url)
        return self._warehouse


class RiskApiResource(dg.ConfigurableResource):
    """The Risk API: ``sandbox`` starts (or reuses) the built-in simulation on loopback."""

    base_url: str | None = Field(
        default=None,
        description="Unset: DAILY_PROFIT_RISK_API_BASE_URL at run time; 'sandbox' for the simulation.",
    )
    requests_per_second: int = 15
    concurrency: int = 4
    page_size: int | None = None
    sandbox_faults: str | None = None

    _allowance: SharedAllowance | None = PrivateAttr(default=None)

    def resolved_base_url(self) -> str:
        settings = get_settings()
        base_url = self.base_url or settings.risk_api_base_url
        return ensure_sandbox(settings) if base_url == SANDBOX_MARKER else base_url

    def allowance(self) -> SharedAllowance | None:
        """The key's allowance shared with every other user of the key (None: unlimited, tests).

        Built once per resource instance (one per step process) and reused by its clients, so
        a step holds one connection pool to Redis or PostgreSQL, not one per client."""
        if self.requests_per_second <= 0:
            return None
        if self._allowance is None:
            self._allowance = SharedAllowance.from_settings(
                get_settings(), self.requests_per_second
            )
        return self._allowance

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._allowance is not None:
            self._allowance.close()
            self._allowance = None

    def client(self) -> RiskApiClient:
        settings = get_settings()
        limiter = self.allowance()
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
        return TrackingTarget.for_uri(
            self.tracking_uri,
            experiment_name=self.experiment_name,
            registered_model_name=self.registered_model_name,
        )


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """The code location's resources: every URL and secret comes from the settings at run time."""
    return {
        "warehouse": WarehouseResource(),
        "risk_api": RiskApiResource(),
        "mlflow": MlflowResource(),
    }
