"""The leaderboard page in a real browser: headless Chromium through the system chromedriver
(`browser`: skipped where it is not installed, except under CI=true, where it must run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import chromium_binaries, headless_chromium
from click.testing import CliRunner
from test_leaderboard import PNG_MAGIC, shared_runs

from evalgen.cli import main


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    """The browser and driver binaries (checked before any records are built)."""
    return chromium_binaries()


@pytest.fixture(scope="module")
def page(chromium, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html")
    result = CliRunner().invoke(main, ["leaderboard", str(shared_runs(tmp_path_factory)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out / "index.html"


@pytest.fixture
def browser(chromium):
    with headless_chromium(*chromium, "--window-size=1600,1200") as driver:
        yield driver


def _column(driver, table_id: str, index: int) -> list[str]:
    """The sort keys of one column, in the order the rows are shown."""
    script = "return Array.from(document.getElementById(arguments[0]).tBodies[0].rows, r => r.cells[arguments[1]]);"
    return [cell.get_attribute("data-sort") for cell in driver.execute_script(script, table_id, index)]


def test_the_page_renders_sorts_by_column_and_shows_its_images(page, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    assert browser.title == "Leaderboard"
    table_id = "table-digits--unit"
    table = browser.find_element(By.ID, table_id)
    headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert headers[:2] == ["#", "model"] and any(h.startswith("FID ↓") for h in headers)
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 6 and all(row.is_displayed() for row in rows)

    before = _column(browser, table_id, 1)
    table.find_elements(By.CSS_SELECTOR, "thead th")[1].click()
    after = _column(browser, table_id, 1)
    assert after != before and after == sorted(before)
    table.find_elements(By.CSS_SELECTOR, "thead th")[1].click()
    assert _column(browser, table_id, 1) == sorted(before, reverse=True)

    fid = headers.index(next(h for h in headers if h.startswith("FID ↓")))
    table.find_elements(By.CSS_SELECTOR, "thead th")[fid].click()
    values = _column(browser, table_id, fid)
    numbers = [float(v) for v in values if v]
    assert numbers == sorted(numbers) and values[len(numbers):] == [""] * (len(values) - len(numbers))
    assert table.find_elements(By.CSS_SELECTOR, "thead th")[fid].get_attribute("aria-sort") == "ascending"

    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);")
    assert browser.execute_script("return document.images.length;") > 0 and broken == []
    sources = browser.execute_script("return Array.from(document.images, i => i.getAttribute('src'));")
    assert "assets/digits--unit--dots--fid.png" in sources and "assets/digits--unit--nll-vs-fid.png" in sources

    shot = tmp_path / "leaderboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 10_000
