"""The suite's xdist groups hold: under ``--dist loadgroup`` (how tox runs the suite) the tests of
one ``xdist_group`` run in one worker. The SLURM tests share one test cluster (a static marker) and
the MNIST tests one trained classifier (a marker the suite's conftest adds by fixture name); a
pytest / pytest-xdist pair that drops the groups (pytest 9 with xdist 3.8 does), or a conftest hook
that adds its marker after xdist has tagged the node ids, would split them, and this test fails."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import TESTS_DIR

TEST_BODY = """
    with open(os.environ["PROBE_LOG"], "a") as log:
        log.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
"""

STATIC_MARKER = {"conftest.py": "", "test_probe.py": '''
import os
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("i", range(8))
def test_probe(i):''' + TEST_BODY}

#: The suite's own grouping hook, with a stand-in for the fixture it groups by.
SUITE_HOOK = {"conftest.py": '''
import importlib.util
import os
import pytest

_spec = importlib.util.spec_from_file_location("suite_conftest", os.environ["SUITE_CONFTEST"])
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)
pytest_collection_modifyitems = _suite.pytest_collection_modifyitems


@pytest.fixture
def mnist_weights():
    return None
''', "test_probe.py": '''
import os
import pytest


@pytest.mark.parametrize("i", range(8))
def test_probe(i, mnist_weights):''' + TEST_BODY}


@pytest.mark.parametrize("files", [STATIC_MARKER, SUITE_HOOK], ids=["static-marker", "suite-conftest-hook"])
def test_one_group_runs_in_one_worker(tmp_path, files):
    for name, source in files.items():
        (tmp_path / name).write_text(source)
    log = tmp_path / "workers.txt"
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
                             "-p", "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(tmp_path),
                             str(tmp_path / "test_probe.py")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PROBE_LOG": str(log), "SUITE_CONFTEST": str(TESTS_DIR / "conftest.py")})
    assert result.returncode == 0, result.stdout + result.stderr
    workers = log.read_text().split()
    assert len(workers) == 8 and len(set(workers)) == 1, f"the group ran in workers {sorted(set(workers))}"
