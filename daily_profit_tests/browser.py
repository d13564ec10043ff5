"""Headless Chromium for the UI tests: Debian's `chromium` package, driven by Playwright.

Never a browser build downloaded by Playwright (`playwright install`): the machines reach the
package registries only. Where `chromium` is missing the test setup installs it through apt
(the tests and CI run as root); when that is impossible the tests fail in CI (``CI=true``) and
skip elsewhere, saying why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock
from playwright.sync_api import Browser, Page, expect, sync_playwright

from daily_profit.config import PROJECT_ROOT

# Ignored by git (.gitignore): what a failed browser test saw, for the person who reads CI.
SCREENSHOT_DIR = PROJECT_ROOT / "test-output" / "browser"
# The machines are shared 2-core boxes: a page of the Dagster UI can take most of a minute.
TIMEOUT_MS = 120_000
APT_TIMEOUT_S = 900


class ChromiumUnavailable(RuntimeError):
    """Debian's chromium is not installed and apt could not install it."""


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", *args],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT_S,
        check=False,
    )


def ensure_chromium(lock_dir: Path) -> str:
    """The path of Debian's chromium, installed through apt when missing.

    ``lock_dir`` is shared by the test processes of one session (xdist workers): one of them
    installs, the others wait for it rather than fight over dpkg's lock."""
    with FileLock(str(lock_dir / "chromium-install.lock")):
        found = shutil.which("chromium")
        if found:
            return found
        if shutil.which("apt-get") is None:
            raise ChromiumUnavailable("chromium is not on PATH and there is no apt-get here")
        if os.geteuid() != 0:
            raise ChromiumUnavailable(
                "chromium is not on PATH; install it with `apt-get install -y chromium` "
                "(the test setup does so only when it runs as root)"
            )
        installed = _apt_get("install", "-y", "--no-install-recommends", "chromium")
        if installed.returncode != 0:
            # A machine that never ran `apt-get update` has no package lists yet.
            _apt_get("update")
            installed = _apt_get("install", "-y", "--no-install-recommends", "chromium")
        found = shutil.which("chromium")
        if installed.returncode != 0 or found is None:
            raise ChromiumUnavailable(
                f"`apt-get install -y chromium` failed (exit {installed.returncode}): "
                + (installed.stderr.strip() or installed.stdout.strip())[-800:]
            )
        return found


@contextmanager
def chromium_browser(executable: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def page_for_test(browser: Browser, test_id: str, failed: Callable[[], bool]) -> Iterator[Page]:
    """A fresh page (its own context); a screenshot of it lands in ``SCREENSHOT_DIR`` when
    ``failed()`` says the test failed."""
    # Assertions wait as long as actions do (Playwright's own default is 5 s).
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
        if failed():
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_id).strip("_")
            page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)
    finally:
        context.close()
