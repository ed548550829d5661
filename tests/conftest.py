"""Shared fixtures: offline mode, a private cache, the shared data, plugin installation."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("EVALGEN_TEST_DATA", TESTS_DIR.parents[1] / "shared" / "data"))


def data_missing(reason: str) -> None:
    """Skip a data-backed test for ``reason`` on a developer's machine; under CI, which must run
    them all, fail instead (a CI that lost the data must not pass without its data tests)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the data-backed tests", pytrace=False)
    pytest.skip(reason)


#: Tests that need the MNIST feature classifier (a minute of training on a cache miss) run in one
#: xdist worker (tox runs ``--dist loadgroup``), so it is trained once. The Fashion-MNIST one has a
#: single test, which may run anywhere: grouping it too would put both trainings in one worker.
CLASSIFIER_GROUPS = {"mnist_weights": "mnist-classifier"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which tags node ids with groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in CLASSIFIER_GROUPS.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group(CLASSIFIER_GROUPS[fixture]))


def pytest_configure(config: pytest.Config) -> None:
    """Under CI, no data is one line and a failed suite before any test runs."""
    if os.environ.get("CI") == "true" and not SHARED_DATA.is_dir() and not hasattr(config, "workerinput"):
        raise pytest.UsageError(f"CI=true but the test data is missing: {SHARED_DATA} is not a folder "
                                f"(set EVALGEN_TEST_DATA or check out ../shared/data)")


@pytest.fixture(autouse=True)
def _offline_and_private_cache(tmp_path_factory, monkeypatch):
    """Tests never download and never touch the user's cache or data directory."""
    private_environment(monkeypatch, tmp_path_factory)


def private_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The autouse fixture's environment, for fixtures of a wider scope (which run before it)."""
    monkeypatch.setenv("EVALGEN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("EVALGEN_DATA_DIR", raising=False)
    monkeypatch.delenv("EVALGEN_PLUGINS", raising=False)
    monkeypatch.delenv("EVALGEN_DEBUG", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)  # the printed table fits it (evalgen.terminal)


@pytest.fixture(scope="session")
def data_copy(tmp_path_factory) -> Path:
    """A private copy of ../shared/data (which is read-only)."""
    if not SHARED_DATA.is_dir():
        data_missing(f"shared data not found at {SHARED_DATA} (set EVALGEN_TEST_DATA)")
    target = tmp_path_factory.mktemp("data") / "data"
    shutil.copytree(SHARED_DATA, target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def _load(name: str, data_dir: Path):
    from evalgen.datasets.base import LoadContext
    from evalgen.plugins import load_plugins

    return load_plugins().datasets.get(name).load(LoadContext(data_dir, allow_download=False))


@pytest.fixture(scope="session")
def evalgen_cache(tmp_path_factory) -> Path:
    """The evalgen cache the autouse fixture gives every test (session fixtures run before it)."""
    return tmp_path_factory.getbasetemp() / "cache" / "evalgen"


@pytest.fixture(scope="session")
def mnist(data_copy):
    return _load("mnist", data_copy)


@pytest.fixture(scope="session")
def fashion(data_copy):
    return _load("fashion-mnist", data_copy)


@pytest.fixture(scope="session")
def mnist_weights(evalgen_cache, mnist):
    """The MNIST domain classifier, trained once per session into the tests' cache."""
    from evalgen.metrics.extractors import ensure_extractor

    return ensure_extractor("mnist-classifier", dataset=mnist, cache_dir=evalgen_cache)


@pytest.fixture(scope="session")
def fashion_weights(evalgen_cache, fashion):
    from evalgen.metrics.extractors import ensure_extractor

    return ensure_extractor("fashion-mnist-classifier", dataset=fashion, cache_dir=evalgen_cache)


@pytest.fixture
def install_plugin(tmp_path, monkeypatch):
    """Install a fake distribution whose ``evalgen`` entry point is ``name = target``.

    Returns the folder to put on PYTHONPATH for subprocesses.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(TESTS_DIR))

    def install(name: str, target: str, module_source: str | None = None) -> Path:
        if module_source is not None:
            module = target.split(":")[0]
            (site / f"{module}.py").write_text(textwrap.dedent(module_source))
        dist = site / f"fake_{name}-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-{name}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[evalgen]\n{name} = {target}\n")
        return site

    return install
