"""`MetricInputs` says which model is scored: a plugin's metric sees the family and the variant."""

import json

from click.testing import CliRunner

from evalgen.cli import main

WHICH_MODEL = '''
from evalgen import DataKind, MetricSpec, hookimpl


def which(inputs):
    return {"plugin": inputs.plugin, "model": inputs.model}


@hookimpl
def evalgen_register_metrics(register):
    register(MetricSpec("which-model", "the model scored", needs=frozenset({"samples"}),
                        data_kinds=frozenset(DataKind), higher_is_better={}, compute=which))
'''


def test_a_metric_sees_the_family_and_the_model_it_scores(tmp_path, install_plugin):
    install_plugin("whichmodel", "which_model", module_source=WHICH_MODEL)
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    result = CliRunner().invoke(main, ["run", "--plugin", "baselines", "--model", "categorical", "--budget", "unit",
                                       "--no-baseline", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "records").glob("*.json")]
    assert record["metrics"]["which-model"] == {"plugin": "baselines", "model": "categorical"}
