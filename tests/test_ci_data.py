"""Under CI the data-backed tests cannot silently skip: no ../shared/data is one line and a
failed suite (locally they skip, saying why)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent


def _pytest(tmp_path: Path, ci: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": ci, "EVALGEN_TEST_DATA": str(tmp_path / "no-data-here")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
                           str(TESTS_DIR / "test_layers.py"), "-k", "contract_is_kept"],
                          cwd=TESTS_DIR.parent, env=env, capture_output=True, text=True, timeout=300)


def test_ci_without_the_data_fails_in_one_line(tmp_path):
    result = _pytest(tmp_path, "true")
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "test data is missing" in line]
    assert len(lines) == 1 and "no-data-here" in lines[0], result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_without_ci_the_data_tests_skip_and_the_rest_run(tmp_path):
    result = _pytest(tmp_path, "false")
    assert result.returncode == 0, result.stdout + result.stderr
