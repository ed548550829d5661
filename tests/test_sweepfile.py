"""The sweep file: everything is checked before anything runs, with "did you mean"."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalgen.cli import main
from evalgen.errors import EvalgenError
from evalgen.plugins import load_plugins
from evalgen.sweeps.sweepfile import plan_sweep, read_sweep_file

FULL = """
out = "runs"
device = "cpu"
budgets = ["smoke"]
seeds = 2
executor = "local"
jobs = 2

[[runs]]
plugin = "flows"
models = ["realnvp", "maf"]
datasets = ["digits", "eight-gaussians"]

[[runs]]
plugin = "gan"
models = ["wgan"]
datasets = ["digits"]
seeds = [7]
options = { n_critic = 3 }

[slurm]
partition = "gpu"
time_minutes = 30
gpus_per_job = 1
array_parallelism = 4
sbatch = { account = "lab" }
"""


def _write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _plan(tmp_path, text):
    return plan_sweep(read_sweep_file(_write(tmp_path, text)), load_plugins())


def test_a_full_sweep_file_plans_every_run_once(tmp_path):
    sweep = read_sweep_file(_write(tmp_path, FULL))
    assert sweep.out == tmp_path / "runs" and sweep.device == "cpu"
    assert sweep.execution.jobs == 2 and sweep.execution.slurm.partition == "gpu"
    assert sweep.execution.slurm.sbatch == {"account": "lab"}
    specs = plan_sweep(sweep, load_plugins())
    keys = [s.key for s in specs]
    assert len(keys) == len(set(keys))
    flows = [s for s in specs if s.plugin == "flows"]
    assert {(s.model, s.dataset, s.seed) for s in flows} == {
        (m, d, seed) for m in ("realnvp", "maf") for d in ("digits", "eight-gaussians") for seed in (0, 1)}
    # the digits baseline is shared by the flows and gan entries: it runs once per seed
    baselines = [(s.dataset, s.seed) for s in specs if s.plugin == "baselines"]
    assert sorted(baselines) == sorted({*baselines}) and ("digits", 7) in baselines and ("digits", 0) in baselines
    gan = [s for s in specs if s.plugin == "gan"]
    assert [(s.seed, s.config) for s in gan] == [(7, {"n_critic": 3})]


@pytest.mark.parametrize(("text", "message"), [
    ("budget = ['smoke']\n[[runs]]\nplugin = 'flows'", "unknown key 'budget'; did you mean 'budgets'?"),
    ("[[runs]]\nplugin = 'flow'", "unknown plugin 'flow'; did you mean 'flows'?"),
    ("[[runs]]\nplugin = 'flows'\nbudgets = ['quik']", "did you mean 'quick'?"),
    ("[[runs]]\nplugin = 'flows'\nmodels = ['realnvq']", "did you mean 'realnvp'?"),
    ("[[runs]]\nplugin = 'flows'\ndatasets = ['digitz']", "did you mean 'digits'?"),
    ("[[runs]]\nplugin = 'flows'\noptions = { hiden = 3 }", "hiden"),
    ("[[runs]]\nplugin = 'flows'\nmodel = ['maf']", "unknown key 'model'; did you mean 'models'?"),
    ("[[runs]]\nplugin = 'ebm'\nmodels = ['rbm']\ndatasets = ['digits']", "cannot be trained on dataset 'digits'"),
    ("seeds = 0\n[[runs]]\nplugin = 'flows'", "'seeds' should be at least 1"),
    ("seeds = [1, 1]\n[[runs]]\nplugin = 'flows'", "distinct seeds"),
    ("seeds = true\n[[runs]]\nplugin = 'flows'", "'seeds' should be list"),
    ("jobs = 0\n[[runs]]\nplugin = 'flows'", "'jobs' should be an integer >= 1"),
    ("executor = 'slurn'\n[[runs]]\nplugin = 'flows'", "did you mean 'slurm'?"),
    ("[[runs]]\nmodels = ['maf']", "needs 'plugin'"),
    ("budgets = ['smoke']", "no [[runs]] entries"),
    ("plugin = 'flows'", "unknown key 'plugin'"),
    ("[[runs]]\nplugin = 'flows'\n[slurm]\npartiton = 'x'", "did you mean 'partition'?"),
    ("[[runs]]\nplugin = 'flows'\n[slurm]\ntime_minutes = 0", "'time_minutes' should be an integer >= 1"),
    ("[[runs]]\nplugin = 'flows'\n[slurm]\nsbatch = { array = '0-3' }", "'array' is set by evalgen"),
    ("[[runs]]\nplugin = 'flows'\n[slurm]\nsbatch = { account = \"a\\nb\" }", "one line of text"),
    ("[[runs]]\nplugin = 'flows'\n[slurm]\nsbatch = { '--qos' = 'x' }", "long option name"),
    ("[[runs]\nplugin = 'flows'", "is not valid TOML"),
    ("out = '../elsewhere'\n[[runs]]\nplugin = 'flows'", "leaves the sweep file's folder"),
    ("out = '/etc/evalgen'\n[[runs]]\nplugin = 'flows'", "choose one with --out"),
])
def test_bad_sweep_files_fail_in_one_line_before_anything_runs(tmp_path, text, message):
    with pytest.raises(EvalgenError) as caught:
        _plan(tmp_path, text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_dry_run_prints_the_planned_runs(tmp_path):
    path = _write(tmp_path, "budgets = ['smoke']\n[[runs]]\nplugin = 'flows'\nmodels = ['maf']\nseeds = 2\n")
    result = CliRunner().invoke(main, ["sweep", str(path), "--dry-run", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "4 run(s) into evalgen-runs, on this machine, 2 at once" in result.output
    assert "flows:maf on digits, budget smoke, seed 1" in result.output
    assert "baselines:categorical on digits, budget smoke, seed 0" in result.output
    assert not (tmp_path / "evalgen-runs").exists()


def test_cli_bad_input_is_one_line_and_a_non_zero_exit(tmp_path):
    path = _write(tmp_path, "[[runs]]\nplugin = 'flows'\n")
    for args, message in ([[str(tmp_path / "missing.toml")], "cannot read the sweep file"],
                          [[str(path), "--executor", "local", "--detach"], "--detach needs --executor slurm"],
                          [[str(path), "--sbatch", "noequals"], "should look like key=value"]):
        result = CliRunner().invoke(main, ["sweep", *args, "--dry-run"])
        assert result.exit_code != 0 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_the_readme_sweep_file_plans(tmp_path):
    """The README's complete sweep file is valid: every key, name and option in it exists."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```toml\n# cpu-quick.toml\n", 1)[1].split("```", 1)[0]
    specs = _plan(tmp_path, block)
    assert {s.plugin for s in specs} == {"flows", "vae", "baselines"}
    assert {s.seed for s in specs} == {0, 1, 2}


def test_a_huge_or_binary_sweep_file_is_one_line(tmp_path):
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * (1 << 20) + "\n")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00runs")
    for path, message in ((huge, "is larger than 1 MiB"), (binary, "is not UTF-8 text")):
        with pytest.raises(EvalgenError) as caught:
            read_sweep_file(path)
        assert message in str(caught.value) and "\n" not in str(caught.value)
