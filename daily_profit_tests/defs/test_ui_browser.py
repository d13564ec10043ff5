"""What a person does in the Dagster UI, in headless Chromium on `dagster dev` over a temporary
instance with the sandbox: the asset graph, a raw asset's page, one day launched from the
materialise dialog, the run's success, the day's checks passed on the Checks tab, and the
metadata of the asset's latest materialisation; then the desk report's tables and plots in the
metadata of its latest materialisation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from daily_profit.defs.desk.assets import desk_assets
from daily_profit.defs.resources import WarehouseResource
from daily_profit_tests.defs.dagster_dev import dagster_dev as running_dagster_dev
from daily_profit_tests.defs.dagster_dev import wait_for_run
from daily_profit_tests.defs.desk_store import DAY as DESK_DAY
from daily_profit_tests.defs.desk_store import N_DAYS, build_desk_warehouse

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A raw asset with no upstream asset: its day lands on its own, every check of it can pass.
RAW_ASSET = "raw_regimes_daily"
DAY = "2025-01-03"
# Minutes on a loaded 2-core machine.
RUN_TIMEOUT_S = 900
# A few of the day's checks, by name: the audit's blocking ones and the row-count warning.
EXPECTED_CHECKS = ("schema_valid", "natural_key_unique", "day_published", "row_count_in_line")
# The Checks tab's list entries (a CSS module class: the list has no table semantics).
CHECK_ROW = "[class*='AssetChecks_checkRow__']"


@pytest.fixture
def dagster_dev(tmp_path):
    """`dagster dev` on a warehouse that holds what the desk report reads (landed days,
    features, labels and predictions of a simulated firm; no training), its partitions
    covering those days. A launch from the UI is the subject: the nightly automation stays off."""
    data = tmp_path / "data"
    data.mkdir()
    build_desk_warehouse(f"sqlite:///{data / 'warehouse.sqlite'}", tmp_path, n_accounts=60)
    with running_dagster_dev(
        tmp_path,
        automation_enabled="false",
        sandbox_days=str(N_DAYS),
        # The clicks are the subject: the run's steps (the asset and each of its checks) run in
        # its own process, not a process each.
        step_execution="in_process",
    ) as started:
        yield started


def materialise_desk_report(env: dict[str, str], settings_env) -> None:
    """The desk report of ``DESK_DAY`` recorded in the instance `dagster dev` shows, as a run
    launched there would record it (in this process: the UI launch is tested above)."""
    settings_env(
        data_dir=env["DAILY_PROFIT_DATA_DIR"],
        desk_simulations=2_000,
        desk_backtest_simulations=500,
        desk_backtest_days=8,
    )
    url = f"sqlite:///{env['DAILY_PROFIT_DATA_DIR']}/warehouse.sqlite"
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        result = dg.materialize(
            desk_assets,
            resources={"warehouse": WarehouseResource(url=url)},
            instance=instance,
            partition_key=DESK_DAY.isoformat(),
        )
    assert result.success


def skip_welcome(base_url: str) -> None:
    """A fresh instance greets the browser with a community dialog over whatever page it opens,
    at a moment of its own: told the greeting was seen, as its Skip button does."""
    answer = httpx.post(
        f"{base_url}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=60
    )
    answer.raise_for_status()


def open_asset_metadata(page: Page, base_url: str, asset_key: str, label: str) -> Locator:
    """Opens the asset's page and returns the row of its latest materialisation's metadata
    whose key is ``label``, once visible (the caller asserts on its value)."""
    page.goto(f"{base_url}/assets/{asset_key}")
    metadata = page.get_by_role("table").filter(
        has=page.get_by_role("cell", name="Key", exact=True)
    )
    row = metadata.get_by_role("row").filter(has=page.get_by_role("cell", name=label, exact=True))
    expect(row).to_be_visible()
    return row


@contextmanager
def rendered_markdown(page: Page, row: Locator) -> Iterator[Locator]:
    """Where a Markdown metadata value is rendered: inline in its row when short, else in the
    dialog its "[Show Markdown]" link opens (closed again on the way out)."""
    link = row.get_by_text("[Show Markdown]")
    if link.count() == 0:
        yield row
        return
    link.click()
    shown = page.get_by_role("dialog")
    yield shown
    shown.get_by_role("button", name="Close").click()
    expect(shown).to_be_hidden()


def test_a_day_launched_from_an_asset_page_succeeds_with_its_checks(
    dagster_dev, page: Page, settings_env
):
    port, env = dagster_dev
    base = f"http://127.0.0.1:{port}"
    skip_welcome(base)

    # The asset graph: every layer a group, then the raw group's assets.
    page.goto(f"{base}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for group in ("raw", "staging", "features", "model", "predictions", "monitoring"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    page.goto(f"{base}/locations/daily_profit/asset-groups/raw/lineage")
    expect(page.get_by_text(RAW_ASSET, exact=True).first).to_be_visible()

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

    # The Checks tab: each check of the asset listed with its latest result, all succeeded.
    page.goto(f"{base}/assets/{RAW_ASSET}?view=checks")
    heading = page.get_by_text(re.compile(r"^Checks \(\d+\)$"))
    expect(heading).to_be_visible()
    listed = int(re.search(r"\d+", heading.inner_text()).group())
    assert listed >= len(EXPECTED_CHECKS), heading.inner_text()
    rows = page.locator(CHECK_ROW)
    expect(rows).to_have_count(listed)
    for check in EXPECTED_CHECKS:
        expect(rows.filter(has_text=check)).to_contain_text("Succeeded")
    expect(rows.filter(has_text="Succeeded")).to_have_count(listed)

    # The latest materialisation's metadata: the day's row count and a preview.
    rows_landed = open_asset_metadata(page, base, RAW_ASSET, "rows_landed")
    expect(rows_landed).to_contain_text(re.compile(r"\d"))
    open_asset_metadata(page, base, RAW_ASSET, "preview")

    # The desk report: its ranking and firm tables rendered from the metadata's Markdown, and
    # its plots as images.
    materialise_desk_report(env, settings_env)
    for label in ("ranking", "firm"):
        with rendered_markdown(page, open_asset_metadata(page, base, "desk_report", label)) as md:
            expect(md.get_by_role("table")).to_be_visible()
            expect(md.get_by_role("row").nth(2)).to_be_visible()
    row = open_asset_metadata(page, base, "desk_report", "firm_plot")
    with rendered_markdown(page, row) as md:
        plot = md.locator("img")
        expect(plot).to_be_visible()
        assert (plot.get_attribute("src") or "").startswith("data:image/png;base64,")
