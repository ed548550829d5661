"""A plugin package written by ``evalgen new-plugin``, installed by pip out of tree, works.

The package is installed with a real ``pip install`` (no network, no build isolation) into a
private folder, and evalgen finds it only through its ``evalgen`` entry point, in subprocesses
that put that folder on PYTHONPATH.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalgen.cli import main

NAME = "oot_mixtures"


def _skip_unless_pip_can_build_offline() -> None:
    """pip and a setuptools that builds wheels by itself (>= 70.1, or older with ``wheel``)."""
    # Looked up, not imported: importing setuptools here would patch distutils under torch's feet.
    missing = [name for name in ("pip", "setuptools") if importlib.util.find_spec(name) is None]
    if not missing:
        version = tuple(int(part) for part in re.findall(r"\d+", importlib.metadata.version("setuptools"))[:2])
        if version < (70, 1) and importlib.util.find_spec("wheel") is None:
            missing = ["setuptools>=70.1 (or wheel)"]
    if missing:
        pytest.skip(f"installing a package offline without build isolation needs {', '.join(missing)} "
                    "in the test environment (pip install 'evalgen[test]')")


def _pip_install(package: Path, site: Path) -> None:
    """``pip install`` the package into ``site``, offline, with the running environment's setuptools."""
    _skip_unless_pip_can_build_offline()
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
               "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--target", str(site), str(package)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"


def _evalgen(site: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m evalgen ARGS`` in a fresh interpreter that sees ``site``; run in ``site``'s parent,
    so that ``-m`` puts no source checkout of evalgen on the path."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "evalgen", *args], capture_output=True, text=True,
                          env=env, cwd=site.parent, timeout=300)


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_a_generated_plugin_installs_lists_runs_and_passes_the_checks(tmp_path):
    package, site = tmp_path / "pkg", tmp_path / "site"
    written = CliRunner().invoke(main, ["new-plugin", NAME, "--dir", str(package)])
    assert written.exit_code == 0, written.output
    _pip_install(package, site)
    assert (site / f"evalgen_{NAME}").is_dir()

    listing = _ok(_evalgen(site, "plugins"))
    assert re.search(rf"^{NAME} \(evalgen.{NAME} 0\.1\.0\): ", listing, re.M | re.I), listing
    assert re.search(r"^  mixture ", listing, re.M) and "FAILED" not in listing, listing

    table = _ok(_evalgen(site, "run", "--plugin", NAME, "--budget", "smoke", "--out", str(tmp_path / "runs")))
    assert f"{NAME}:mixture" in table, table

    # `evalgen check` is the conformance kit's command (evalgen.testing).
    checks = _ok(_evalgen(site, "check", NAME))
    assert "FAIL" not in checks, checks
