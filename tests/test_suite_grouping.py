"""The suite's xdist groups hold: under ``--dist loadgroup`` (how tox runs the suite) the tests of
one ``xdist_group`` run in one worker. The SLURM tests share one test cluster and the MNIST tests
one trained classifier through it; a pytest / pytest-xdist pair that drops the groups (pytest 9
with xdist 3.8 does) would split them, and this test fails first."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = '''
import os
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("i", range(8))
def test_probe(i):
    with open(os.environ["PROBE_LOG"], "a") as log:
        log.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
'''


def test_one_group_runs_in_one_worker(tmp_path):
    (tmp_path / "test_probe.py").write_text(PROBE)
    log = tmp_path / "workers.txt"
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
                             "-p", "no:cacheprovider", "-c", "/dev/null", "--rootdir", str(tmp_path),
                             str(tmp_path / "test_probe.py")],
                            cwd=tmp_path, env={**os.environ, "PROBE_LOG": str(log)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    workers = log.read_text().split()
    assert len(workers) == 8 and len(set(workers)) == 1, f"the group ran in workers {sorted(set(workers))}"
