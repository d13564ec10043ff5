"""What a person does in the Dagster UI, in headless Chromium on `dagster dev` over a temporary
instance with the sandbox: the asset graph, a raw asset's page, one day launched from the
materialise dialog, the run's success, the day's checks passed on the Checks tab, and the
metadata of the asset's latest materialisation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from daily_profit_tests.defs.dagster_dev import dagster_dev as running_dagster_dev
from daily_profit_tests.defs.dagster_dev import wait_for_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A raw asset with no upstream asset: its day lands on its own, every check of it can pass.
RAW_ASSET = "raw_regimes_daily"
DAY = "2025-01-03"
RUN_TIMEOUT_S = 600


@pytest.fixture
def dagster_dev(tmp_path):
    # A launch from the UI is the subject: the nightly automation stays off.
    with running_dagster_dev(tmp_path, automation_enabled="false") as started:
        yield started


def dismiss_welcome(page: Page) -> None:
    """The UI greets a fresh browser with a community dialog, at a moment of its choosing."""
    skip = page.get_by_role("button", name="Skip")
    page.add_locator_handler(skip, lambda: skip.click())


def open_asset_metadata(page: Page, base_url: str, asset_key: str, label: str) -> Locator:
    """Opens the asset's page and returns the row of its latest materialisation's metadata
    whose key is ``label``, once visible (the caller asserts on its value)."""
    page.goto(f"{base_url}/assets/{asset_key}")
    metadata = page.get_by_role("table").filter(has=page.get_by_role("cell", name="Key"))
    row = metadata.get_by_role("row").filter(has=page.get_by_role("cell", name=label, exact=True))
    expect(row).to_be_visible()
    return row


def test_a_day_launched_from_an_asset_page_succeeds_with_its_checks(dagster_dev, page: Page):
    port, env = dagster_dev
    base = f"http://127.0.0.1:{port}"
    dismiss_welcome(page)

    # The asset graph: the layers as groups, then the raw group's assets.
    page.goto(f"{base}/asset-groups")
    graph = page.locator("svg").filter(has_text="raw")
    for group in ("raw", "features", "model", "predictions", "monitoring"):
        expect(graph.get_by_text(group, exact=True).first).to_be_visible()
    page.goto(f"{base}/locations/daily_profit/asset-groups/raw/lineage")
    node = page.get_by_text(RAW_ASSET, exact=True).first
    expect(node).to_be_visible()

    # The asset's page, and one day launched from its materialise dialog.
    page.goto(f"{base}/assets/{RAW_ASSET}")
    expect(page.get_by_text("Never materialized")).to_be_visible()
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog").filter(has_text=f"Launch runs to materialize {RAW_ASSET}")
    partitions = dialog.get_by_role("textbox")
    partitions.fill(DAY)
    partitions.press("Enter")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch 1 run").click()
    expect(dialog).to_be_hidden()

    # The toast names the run; its page shows it through to success.
    run_link = page.locator("a[href*='/runs/']").first
    expect(run_link).to_be_visible()
    run_id = re.search(r"/runs/([0-9a-f-]{36})", run_link.get_attribute("href") or "")
    assert run_id, run_link.get_attribute("href")
    wait_for_run(port, env, run_id.group(1), timeout_s=RUN_TIMEOUT_S)
    page.goto(f"{base}/runs/{run_id.group(1)}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text(f"partition: {DAY}")).to_be_visible()

    # The Checks tab: every check of the day passed.
    page.goto(f"{base}/assets/{RAW_ASSET}?view=checks")
    checks = page.get_by_role("row").filter(has_text=re.compile(r"Passed|Failed|Not evaluated"))
    expect(checks.first).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="Failed")).to_have_count(0)
    for check in ("schema_valid", "day_published", "row_count_in_line"):
        expect(page.get_by_role("row").filter(has_text=check).first).to_contain_text("Passed")

    # The latest materialisation's metadata: the day's row count and a preview.
    rows_landed = open_asset_metadata(page, base, RAW_ASSET, "rows_landed")
    expect(rows_landed).to_contain_text(re.compile(r"\d"))
    open_asset_metadata(page, base, RAW_ASSET, "preview")
