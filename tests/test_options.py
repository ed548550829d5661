"""Options that plugins declare: checked before anything loads, resolved for the hooks, recorded,
listed, and the fallback for plugins that declare none."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from toy_plugins import assert_one_line_error

from evalgen.cli import main
from evalgen.errors import EvalgenError
from evalgen.options import (
    OptionWarning,
    declared_options,
    resolve_for_models,
    resolve_options,
    resolved_options,
)
from evalgen.planning import plan_specs
from evalgen.plugins import load_plugins
from evalgen.tables import variant_label
from evalgen.types import FamilyInfo, ModelSpec, Option

BUNDLED = ("autoregressive", "baselines", "ebm", "flows", "gan", "vae")
TINY = "tiny-binarized-digits"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def unit_budget(install_plugin):
    install_plugin("unitbudget", "toy_plugins:unit_budget")


def _records(out) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "records").glob("*.json")}


# --- rejected before anything loads ----------------------------------------------------------


def test_an_unknown_option_is_one_line_with_did_you_mean(tmp_path):
    out = tmp_path / "out"
    result = invoke("run", "--plugin", "flows", "-o", "lrr=1e-3", "--out", str(out))
    assert_one_line_error(result, "unknown option 'lrr' of flows:", "did you mean 'lr'?")
    assert not out.exists()  # nothing was loaded, trained or written
    named = invoke("run", "--plugin", "flows", "--model", "maf", "-o", "lrr=1e-3", "--out", str(out))
    assert_one_line_error(named, "unknown option 'lrr' of flows:maf; did you mean 'lr'?")


def test_an_unknown_option_without_a_close_match_lists_the_known_ones(tmp_path):
    result = invoke("run", "--plugin", "baselines", "-o", "zzz=1", "--out", str(tmp_path))
    assert_one_line_error(result, "unknown option 'zzz' of baselines:", "(known: lr)")


def test_a_value_of_the_wrong_type_names_the_expected_type(tmp_path):
    result = invoke("run", "--plugin", "flows", "--model", "maf", "-o", "lr=abc", "--out", str(tmp_path))
    assert_one_line_error(result, "option 'lr' of flows:maf expects a number (float), got 'abc'")
    result = invoke("run", "--plugin", "flows", "--model", "maf", "-o", "layers=2.5", "--out", str(tmp_path))
    assert_one_line_error(result, "option 'layers' of flows:maf expects an integer (int), got 2.5")


@pytest.mark.parametrize("args,fragment", [
    (("--plugin", "flows", "--model", "maf", "-o", "lr=-1"), "option 'lr' of flows:maf must be at least 0, got -1"),
    (("--plugin", "vae", "--model", "vae", "-o", "networks=cnn"),
     "option 'networks' of vae:vae must be 'mlp' or 'conv', got 'cnn'"),
    (("--plugin", "gan", "--model", "gan", "-o", "beta1=2"), "option 'beta1' of gan:gan must be 0 to 1, got 2"),
])
def test_a_value_out_of_range_or_choices_is_one_line(tmp_path, args, fragment):
    assert_one_line_error(invoke("run", *args, "--out", str(tmp_path)), fragment)


def test_evalgen_check_rejects_options_the_same_way():
    result = invoke("check", "flows", "--model", "maf", "--check", "family", "-o", "lrr=1e-3")
    assert_one_line_error(result, "unknown option 'lrr' of flows:maf; did you mean 'lr'?")


# --- canonical configs: the run's identity and its row label --------------------------------------


def test_an_option_given_at_its_default_is_the_same_run_as_none():
    plugins = load_plugins()
    plain = plan_specs(plugins, "flows", ["maf"], "digits", "quick", 1, {}, baseline=False)
    same = plan_specs(plugins, "flows", ["maf"], "digits", "quick", 1, {"lr": 5e-4, "layers": 5.0}, baseline=False)
    assert [s.key for s in same] == [s.key for s in plain] and same[0].config == {}
    assert variant_label(same[0]) == ""
    changed = plan_specs(plugins, "flows", ["maf"], "digits", "quick", 1, {"lr": 1, "layers": 5}, baseline=False)
    assert changed[0].config == {"lr": 1.0} and variant_label(changed[0]) == "lr=1.0"
    assert changed[0].key != plain[0].key


def test_a_default_given_on_the_command_line_reuses_the_record(tmp_path, unit_budget):
    out = str(tmp_path / "out")
    first = invoke("run", "--plugin", "baselines", "--dataset", TINY, "--budget", "unit", "--out", out)
    assert first.exit_code == 0, first.output
    again = invoke("run", "--plugin", "baselines", "--dataset", TINY, "--budget", "unit", "-o", "lr=0.05",
                   "--out", out)
    assert again.exit_code == 0, again.output
    assert f"reusing baselines--categorical--{TINY}--unit--seed0 " in again.output


def test_a_key_only_some_models_take_reaches_those_and_the_others_are_named():
    plugins = load_plugins()
    with pytest.warns(OptionWarning, match=r"flows:planar takes no option 'hidden'; it runs without it"):
        specs = plan_specs(plugins, "flows", [], "digits", "quick", 1, {"hidden": 64}, baseline=False)
    assert {s.model: s.config for s in specs} == {"planar": {}, "realnvp": {"hidden": 64}, "maf": {"hidden": 64}}


# --- resolved for the hooks, kept in the record ---------------------------------------------------

SPY_SOURCE = '''
import dataclasses

from evalgen import Option, hookimpl
from toy_plugins import ToyFamily

SEEN = []


class Spy(ToyFamily):
    @hookimpl
    def evalgen_family(self):
        info = ToyFamily.evalgen_family(self)
        model = dataclasses.replace(info.models[0], options=(Option("width", int, 3, "a width", minimum=1),))
        return dataclasses.replace(info, models=(model,), options=(
            Option("lr", float, 0.5, "SGD learning rate", minimum=0.0),
            Option("tag", str, None, "a label; default: none"),
            Option("width", int, 1, "replaced by the model's"),
        ))

    @hookimpl
    def evalgen_build_model(self, model_name, dataset, config):
        SEEN.append(("build", dict(config)))
        return ToyFamily.evalgen_build_model(self, model_name, dataset, config)

    @hookimpl
    def evalgen_configure_optimizers(self, model, config):
        SEEN.append(("optimizers", dict(config)))
        return ToyFamily.evalgen_configure_optimizers(self, model, config)

    @hookimpl
    def evalgen_train_step(self, model, batch, state):
        if state.step == 0:
            SEEN.append(("train_step", dict(state.config)))
        return ToyFamily.evalgen_train_step(self, model, batch, state)


spy = Spy("spy")
'''


def test_the_hooks_get_the_resolved_options_and_the_record_keeps_them(tmp_path, install_plugin, unit_budget):
    install_plugin("spy", "spy_family:spy", module_source=SPY_SOURCE)
    out = tmp_path / "out"
    result = invoke("run", "--plugin", "spy", "--dataset", TINY, "--budget", "unit", "--no-baseline",
                    "-o", "width=8", "-o", "lr=0.5", "--out", str(out))
    assert result.exit_code == 0, result.output
    import spy_family

    resolved = {"lr": 0.5, "tag": None, "width": 8}
    # The model, then its background model (the likelihood-ratio score's), get the same options.
    assert spy_family.SEEN == [("build", resolved), ("optimizers", resolved), ("train_step", resolved)] * 2
    (record,) = _records(out).values()
    assert record["spec"]["config"] == {"width": 8}  # lr=0.5 is the default
    assert record["model"]["options"] == resolved
    assert record["key"].startswith(f"spy--toy--{TINY}--unit--seed0--cfg")


def test_a_bundled_run_records_every_option_with_its_default(tmp_path, unit_budget):
    out = tmp_path / "out"
    result = invoke("run", "--plugin", "baselines", "--dataset", TINY, "--budget", "unit", "-o", "lr=0.1",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    (record,) = _records(out).values()
    assert record["model"]["options"] == {"lr": 0.1} and record["spec"]["config"] == {"lr": 0.1}
    assert "baselines:categorical [lr=0.1]" in (out / "table.md").read_text()


def test_an_undeclared_plugin_gets_the_values_unchecked_with_a_warning(tmp_path, install_plugin, unit_budget):
    install_plugin("toygood", "toy_plugins:good")
    out = tmp_path / "out"
    result = invoke("run", "--plugin", "toygood", "--dataset", TINY, "--budget", "unit", "--no-baseline",
                    "-o", "anything=7", "--out", str(out))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: plugin 'toygood' declares no options for model 'toy'; "
                        "-o values are passed to it unchecked"]
    (record,) = _records(out).values()
    assert record["spec"]["config"] == {"anything": 7} and record["model"]["options"] is None


def test_resolve_options_passes_undeclared_values_through():
    assert resolve_options("x:y", None, {"a": "1"}) == ({"a": "1"}, {"a": "1"})


def test_bool_options_take_true_false_and_0_1_and_ints_are_not_bools():
    gated = (Option("gated", bool, True, "gated"), Option("n", int, 1, "count"))
    assert resolve_options("a:b", gated, {"gated": "false"})[0] == {"gated": False}
    assert resolve_options("a:b", gated, {"gated": 1})[0] == {}
    with pytest.raises(EvalgenError, match="expects an integer"):
        resolve_options("a:b", gated, {"n": True})


# --- declarations -------------------------------------------------------------------------------


def test_a_model_option_replaces_the_family_option_of_the_same_name():
    family = FamilyInfo("f", "f", (ModelSpec("m", "m", options=(Option("lr", float, 0.1, "own"),)),),
                        options=(Option("lr", float, 1.0, "shared"), Option("depth", int, 2, "shared")))
    assert {o.name: o.default for o in declared_options(family, family.models[0])} == {"lr": 0.1, "depth": 2}
    assert resolved_options(family, "m") == {"lr": 0.1, "depth": 2}
    assert declared_options(FamilyInfo("g", "g", (ModelSpec("m", "m"),)), ModelSpec("m", "m")) is None


@pytest.mark.parametrize("kwargs,error", [
    ({"name": "x", "type": list, "default": None, "help": "h"}, TypeError),
    ({"name": "x", "type": int, "default": 0, "help": "h", "minimum": 1}, ValueError),
    ({"name": "x", "type": int, "default": "3", "help": "h"}, TypeError),
    ({"name": "x y", "type": int, "default": 3, "help": "h"}, ValueError),
    ({"name": "x", "type": str, "default": "a", "help": "two\nlines"}, ValueError),
    ({"name": "x", "type": str, "default": "c", "help": "h", "choices": ("a", "b")}, ValueError),
])
def test_a_malformed_declaration_fails_where_it_is_made(kwargs, error):
    with pytest.raises(error):
        Option(**kwargs)


def test_every_bundled_model_declares_its_options_and_their_defaults_pass():
    plugins = load_plugins()
    for name in BUNDLED:
        family = plugins.family(name)
        declared = {m.name: declared_options(family, m) for m in family.models}
        assert all(options for options in declared.values()), name
        resolve_for_models(name, declared, {})


# --- listing ------------------------------------------------------------------------------------


def _listed(output: str) -> dict[tuple[str, str], set[str]]:
    """(family, model) -> the option names ``evalgen plugins --options`` lists under it."""
    found: dict[tuple[str, str], set[str]] = {}
    family = model = ""
    for line in output.splitlines():
        if not line.startswith(" "):
            family = line.split(" ")[0].rstrip(":")
        elif re.match(r"^  \S", line):
            model = line.split()[0]
            found[(family, model)] = set()
        elif re.match(r"^    \S", line):
            found[(family, model)].add(line.split()[0])
    return found


def test_evalgen_plugins_options_lists_every_bundled_option():
    result = invoke("plugins", "--options")
    assert result.exit_code == 0, result.output
    listed = _listed(result.output)
    plugins = load_plugins()
    for name in BUNDLED:
        family = plugins.family(name)
        for model in family.models:
            expected = {o.name for o in declared_options(family, model)}
            assert listed[(name, model.name)] == expected, (name, model.name)
    assert re.search(r"^    lr +float +0\.0005 +at least 0 +Adam's learning rate$", result.output, re.M)


def test_evalgen_plugins_name_shows_one_family_with_its_options():
    result = invoke("plugins", "gan")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("gan ") and "flows" not in result.output
    assert re.search(r"^    optimizer +str +rmsprop +adam\|rmsprop +the optimizer", result.output, re.M)
    assert re.search(r"^    gp_weight +float +None", result.output, re.M)
    assert_one_line_error(invoke("plugins", "flow"), "unknown plugin 'flow'; did you mean 'flows'?")


def test_the_documented_options_example_is_checked(tmp_path, install_plugin, unit_budget):
    from test_docs import complete_example, python_blocks, sections

    (block,) = python_blocks(sections()["Options: what `-o key=value` may say"])
    install_plugin("myfamily", "doc_options", module_source=complete_example() + "\n\n" + block)
    result = invoke("run", "--plugin", "myfamily", "-o", "lrr=0.1", "--out", str(tmp_path))
    assert_one_line_error(result, "unknown option 'lrr' of myfamily:independent; did you mean 'lr'?")
    out = tmp_path / "out"
    result = invoke("run", "--plugin", "myfamily", "--dataset", TINY, "--budget", "unit", "--no-baseline",
                    "-o", "optimizer=sgd", "--out", str(out))
    assert result.exit_code == 0, result.output
    (record,) = _records(out).values()
    assert record["model"]["options"] == {"optimizer": "sgd", "lr": 0.05}


@pytest.mark.parametrize(("option", "fragment"), [
    ("lr=nan", "expects a number (float), got nan"),
    ("lr=inf", "expects a number (float), got inf"),
    ("hidden=1e400", "expects an integer (int), got inf"),
    ("hidden=-5", "must be at least 1, got -5"),
    ("networks=../../etc", "must be 'mlp' or 'conv', got '../../etc'"),
], ids=["nan", "inf", "overflowing int", "negative size", "path as a choice"])
def test_hostile_option_values_are_one_line_errors_before_anything_is_written(tmp_path, option, fragment):
    """NaN, infinities, an overflowing number, an out-of-range size and a path where a choice is
    expected: refused while planning, so the output folder is never created."""
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--plugin", "vae", "--model", "vae", "-o", option, "--out", str(out)])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: ") and fragment in lines[-1] and "Traceback" not in result.output
    assert not out.exists()
