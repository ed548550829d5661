"""Headless Chromium through the system chromedriver, for the tests that open evalgen's pages.

Skipped where Chromium is not installed, except under CI=true, where it must run (.ci/run
installs the Debian packages chromium and chromium-driver).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from collections.abc import Iterator

import pytest

BROWSERS = ("chromium", "chromium-browser")


def missing(reason: str) -> None:
    """Skip for ``reason``, or fail under CI, which must run the browser tests."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the browser test (.ci/run installs chromium chromium-driver)")
    pytest.skip(reason)


def chromium_binaries() -> tuple[str, str]:
    """The browser and driver binaries (skips, or fails under CI, when either is missing)."""
    if importlib.util.find_spec("selenium") is None:
        missing("selenium is not installed (pip install evalgen[test])")
    binary = next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        missing(f"chromium or chromedriver not found on PATH (browser: {binary}, driver: {driver})")
    return binary, driver


@contextlib.contextmanager
def headless_chromium(binary: str, driver_path: str, *arguments: str) -> Iterator[object]:
    """A selenium Chrome driver, offline (Selenium Manager never looks for downloads), quit after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", *arguments):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()
