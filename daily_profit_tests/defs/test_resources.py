"""Resources: what the Dagster UI shows of them carries no secret; the settings reach them at run time."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value

from daily_profit.config import get_settings
from daily_profit.defs.resources import RiskApiResource, WarehouseResource

WAREHOUSE_PASSWORD = "pw-7f3a9c51e2"
WAREHOUSE_URL = f"postgresql://desk:{WAREHOUSE_PASSWORD}@db.internal:5432/warehouse"
API_KEY = "key-0b1d5e8f42a7"
API_BASE_URL = "https://risk.internal/external/"
REDIS_PASSWORD = "redis-pw-91c2"


@pytest.fixture
def production_settings(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("DAILY_PROFIT_WAREHOUSE_URL", WAREHOUSE_URL)
    monkeypatch.setenv("DAILY_PROFIT_RISK_API_KEY", API_KEY)
    monkeypatch.setenv("DAILY_PROFIT_RISK_API_BASE_URL", API_BASE_URL)
    monkeypatch.setenv("DAILY_PROFIT_RATE_LIMIT_BACKEND", "redis")
    monkeypatch.setenv(
        "DAILY_PROFIT_RATE_LIMIT_REDIS_URL", f"redis://:{REDIS_PASSWORD}@cache:6379/0"
    )
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_code_location_shows_no_url_password_or_key(production_settings) -> None:
    import daily_profit.definitions

    defs = importlib.reload(daily_profit.definitions).defs
    repository = defs.get_repository_def()
    # Everything the UI can display about the code location, resources' configured values included.
    shown = serialize_value(RepositorySnap.from_def(repository))
    for secret in (WAREHOUSE_PASSWORD, API_KEY, REDIS_PASSWORD, "db.internal", API_BASE_URL):
        assert secret not in shown, secret
    snap = RepositorySnap.from_def(repository)
    assert snap.resources  # the resources are in the snapshot, with no value that could leak
    for resource in snap.resources:
        for value in resource.configured_values.values():
            text = serialize_value(value)
            assert WAREHOUSE_PASSWORD not in text and API_KEY not in text, resource.name


def test_the_settings_reach_the_resources_at_run_time(production_settings) -> None:
    assert WarehouseResource().resolved_url() == WAREHOUSE_URL
    assert RiskApiResource().resolved_base_url() == API_BASE_URL
    # An explicit URL (tests, one-off runs) still wins.
    assert WarehouseResource(url="sqlite:///x.sqlite").resolved_url() == "sqlite:///x.sqlite"
