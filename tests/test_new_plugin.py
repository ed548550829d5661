"""``evalgen new-plugin``: names are validated, nothing is overwritten, the family is real.

The installed, out-of-tree end-to-end test of the package is in test_out_of_tree.py; here the
package is imported from where it was written, through an entry point from `install_plugin`.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from evalgen.cli import main
from evalgen.new_plugin import render

NAME = "templated"


def _new_plugin(*args: str):
    return CliRunner().invoke(main, ["new-plugin", *args])


@pytest.mark.parametrize("name", ["My-Family", "1family", "fam ily", "class", "Family", "a" * 41, "baselines"])
def test_a_bad_or_taken_name_is_one_error_line_and_writes_nothing(name, tmp_path):
    result = _new_plugin(name, "--dir", str(tmp_path / "pkg"))
    assert result.exit_code != 0
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "pkg").exists()


def test_a_non_empty_folder_is_left_alone(tmp_path):
    target = tmp_path / "pkg"
    target.mkdir()
    (target / "pyproject.toml").write_text("mine")
    result = _new_plugin(NAME, "--dir", str(target))
    assert result.exit_code != 0 and "not empty" in result.output and result.output.count("\n") == 1
    assert [p.name for p in target.iterdir()] == ["pyproject.toml"]
    assert (target / "pyproject.toml").read_text() == "mine"


def test_a_file_in_the_way_is_left_alone(tmp_path):
    (tmp_path / "pkg").write_text("mine")
    result = _new_plugin(NAME, "--dir", str(tmp_path / "pkg"))
    assert result.exit_code != 0 and (tmp_path / "pkg").read_text() == "mine"


def test_the_package_goes_to_evalgen_name_by_default_or_into_an_empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _new_plugin(NAME).exit_code == 0
    expected = {"pyproject.toml", "README.md", f"evalgen_{NAME}/__init__.py", f"evalgen_{NAME}/models.py",
                "tests/test_conformance.py"}
    written = {str(p.relative_to(tmp_path / f"evalgen-{NAME}")) for p in (tmp_path / f"evalgen-{NAME}").rglob("*")
               if p.is_file()}
    assert written == expected
    (tmp_path / "empty").mkdir()
    assert _new_plugin(NAME, "--dir", "empty").exit_code == 0
    assert (tmp_path / "empty" / "pyproject.toml").is_file()


def test_the_rendered_files_are_complete():
    files = render(NAME)
    for path, text in files.items():
        assert "${" not in text, path
        if path.endswith(".py"):
            compile(text, path, "exec")
    assert f'[project.entry-points.evalgen]\n{NAME} = "evalgen_{NAME}"' in files["pyproject.toml"]
    assert f'plugin_checks("{NAME}")' in files["tests/test_conformance.py"]


@pytest.fixture
def templated(tmp_path, install_plugin, monkeypatch):
    """The generated package, importable and registered through an ``evalgen`` entry point."""
    assert _new_plugin(NAME, "--dir", str(tmp_path / "pkg")).exit_code == 0
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    install_plugin(NAME, f"evalgen_{NAME}")
    yield importlib.import_module(f"evalgen_{NAME}.models")
    for module in [m for m in sys.modules if m.split(".")[0] == f"evalgen_{NAME}"]:
        del sys.modules[module]  # the next test writes the package afresh


def test_the_categorical_mixture_is_normalized_and_samples_from_the_generator(templated):
    torch.manual_seed(0)
    model = templated.CategoricalMixture((1, 2, 2), levels=3, components=4)
    states = torch.cartesian_prod(*[torch.arange(3.0)] * 4).reshape(81, 1, 2, 2)
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(states), 0)
    assert math.isclose(float(total), 0.0, abs_tol=1e-5)
    draws = [model.sample(500, torch.Generator().manual_seed(1)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1]) and draws[0].shape == (500, 1, 2, 2)
    assert set(draws[0].unique().tolist()) <= {0.0, 1.0, 2.0}


def test_the_gaussian_mixture_is_normalized_and_samples_from_the_generator(templated):
    torch.manual_seed(0)
    model = templated.GaussianMixture((1,), components=3)
    grid = torch.linspace(-15, 15, 30_001).unsqueeze(1)
    with torch.no_grad():
        mass = float(model.log_prob(grid).exp().sum() * (grid[1, 0] - grid[0, 0]))
    assert math.isclose(mass, 1.0, abs_tol=1e-3)
    draws = [model.sample(100, torch.Generator().manual_seed(1)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1]) and draws[0].shape == (100, 1)


@pytest.mark.parametrize(("dataset", "model"), [("tiny-binarized-digits", "mixture"), ("eight-gaussians", "gmm")])
def test_each_model_runs(dataset, model, templated, install_plugin, tmp_path):
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    result = CliRunner().invoke(main, ["run", "--plugin", NAME, "--dataset", dataset, "--budget", "unit",
                                       "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert f"{NAME}:{model}" in result.output
    if model == "gmm":  # eight Gaussians: ten components fit far better than the one of the baseline
        nats = {r["spec"]["plugin"]: r["metrics"]["test_nll"]["nats"]
                for r in map(json.loads, map(Path.read_text, (tmp_path / "runs").rglob("*.json")))
                if isinstance(r, dict) and "spec" in r}
        assert nats[NAME] < nats["baselines"] - 1.0, nats
