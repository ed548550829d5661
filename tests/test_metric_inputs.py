"""`MetricInputs` says which model is scored and under which run: a plugin's metric sees the family,
the variant, the budget, the seed, the device, the dataset loader and the likelihood details."""

import json

from click.testing import CliRunner

from evalgen.cli import main

WHICH_MODEL = '''
from evalgen import DataKind, MetricSpec, hookimpl


def which(inputs):
    return {"plugin": inputs.plugin, "model": inputs.model, "budget": inputs.budget.name, "seed": inputs.seed,
            "device": inputs.device.type, "loads": inputs.load_dataset("digits").name}


@hookimpl
def evalgen_register_metrics(register):
    register(MetricSpec("which-model", "the model scored", needs=frozenset({"samples"}),
                        data_kinds=frozenset(DataKind), higher_is_better={}, compute=which))
'''


def test_a_metric_sees_the_family_and_the_model_it_scores(tmp_path, install_plugin):
    install_plugin("whichmodel", "which_model", module_source=WHICH_MODEL)
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    result = CliRunner().invoke(main, ["run", "--plugin", "baselines", "--model", "categorical", "--budget", "unit",
                                       "--no-baseline", "--seeds", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    records = sorted((json.loads(p.read_text()) for p in (tmp_path / "records").glob("*.json")),
                     key=lambda r: r["spec"]["seed"])
    assert [r["metrics"]["which-model"] for r in records] == [
        {"plugin": "baselines", "model": "categorical", "budget": "unit", "seed": seed, "device": "cpu",
         "loads": "digits"} for seed in (0, 1)]
