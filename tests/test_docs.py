"""The plugin-author docs: every hook has a section with an example, and every example runs.

Family-hook examples are drop-ins for the complete example plugin (``my_family.py``): each is
installed as that module with the example appended, through a real entry point, and exercised
through the harness's checked hook calls (`CheckedHooks`) or the CLI. Registration-hook examples are
plugins on their own and are exercised through the CLI.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from evalgen import hookspecs
from evalgen.cli import main
from evalgen.datasets.base import LoadContext
from evalgen.harness.contract import CheckedHooks
from evalgen.plugins import Plugins, load_plugins
from evalgen.types import Batch, DataKind, DatasetInfo, Representation, TrainState

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
TEXT = DOCS.read_text()
#: 2x2 binary images: 16 states, few enough to enumerate.
TINY = DatasetInfo("tiny", DataKind.BINARY, (1, 2, 2), 2, None, Representation.LEVELS, num_train=64)


def declared_hooks() -> list[str]:
    """Every hook in evalgen/hookspecs.py (pluggy marks each spec with ``evalgen_spec``)."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return sorted(name for name, obj in vars(hookspecs).items() if callable(obj) and hasattr(obj, marker))


def sections(text: str | None = None) -> dict[str, list[str]]:
    """Heading -> the lines of its section (up to the next heading); fenced code is not a heading."""
    text = TEXT if text is None else text
    found: dict[str, list[str]] = {"": []}
    current, fenced = "", False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            current = line.lstrip("#").strip()
            found[current] = []
            continue
        found[current].append(line)
    return found


def python_blocks(lines: list[str]) -> list[str]:
    """The ```python blocks among ``lines``, dedented."""
    blocks, current = [], None
    for line in lines:
        fence = line.strip()
        if current is None and fence == "```python":
            current = []
        elif current is not None and fence == "```":
            blocks.append(textwrap.dedent("\n".join(current)) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def hook_sections() -> dict[str, list[str]]:
    """Hook name -> the lines of its ``### `evalgen_...``` section."""
    found = {}
    for heading, lines in sections().items():
        match = re.fullmatch(r"`(evalgen_\w+)`", heading)
        if match:
            found[match.group(1)] = lines
    return found


def complete_example() -> str:
    return python_blocks(sections()["A complete plugin"])[0]


def example(hook: str) -> str:
    """The python block of ``hook``'s section."""
    return python_blocks(hook_sections()[hook])[0]


def all_tiny_states() -> torch.Tensor:
    """(16, 1, 2, 2): every binary 2x2 image."""
    bits = [[(i >> d) & 1 for d in range(4)] for i in range(16)]
    return torch.tensor(bits, dtype=torch.float32).reshape(16, 1, 2, 2)


# --- (a) every hook is documented -----------------------------------------------------------


def test_every_hook_has_a_section_with_an_explanation_and_a_runnable_example():
    documented = hook_sections()
    missing = [hook for hook in declared_hooks() if hook not in documented]
    assert not missing, f"docs/plugins.md has no '### `hook`' section for: {', '.join(missing)}"
    for hook in declared_hooks():
        explanation = "\n".join(documented[hook]).split("```")[0].strip()
        assert explanation, f"{hook}: the section should say when the hook runs and what it returns"
        blocks = python_blocks(documented[hook])
        assert blocks, f"{hook}: the section has no ```python example"
        assert re.search(rf"@hookimpl(\(.*\))?\ndef {hook}\(", blocks[0]), \
            f"{hook}: the example does not implement the hook"


def test_no_section_documents_a_hook_that_does_not_exist():
    stale = sorted(set(hook_sections()) - set(declared_hooks()))
    assert not stale, f"docs/plugins.md documents hooks that evalgen/hookspecs.py lacks: {stale}"


def test_every_python_block_compiles():
    blocks = python_blocks(TEXT.splitlines())
    assert len(blocks) >= len(declared_hooks()) + 3
    for i, block in enumerate(blocks):
        compile(block, f"docs/plugins.md python block {i}", "exec")


# --- (b) every example runs -----------------------------------------------------------------


def test_the_documented_example_plugin_runs(tmp_path, install_plugin):
    install_plugin("myfamily", "my_family", module_source=complete_example())
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    result = CliRunner().invoke(main, ["run", "--plugin", "myfamily", "--budget", "unit",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "myfamily:independent" in result.output


def _family_with(hook: str, install_plugin) -> tuple[Plugins, CheckedHooks]:
    """Install my_family.py with ``hook``'s example appended; its model bound with contract checks."""
    install_plugin("myfamily", f"doc_{hook}", module_source=complete_example() + "\n\n" + example(hook))
    plugins = load_plugins()
    assert not [f for f in plugins.failures if f.name == "myfamily"], plugins.failures
    family = plugins.family("myfamily")
    return plugins, CheckedHooks(plugins.hooks("myfamily"), family.models[0])


def _built(bound: CheckedHooks, info: DatasetInfo = TINY) -> torch.nn.Module:
    torch.manual_seed(0)
    return bound.build(info, {})


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    return model


def _state(bound: CheckedHooks, model: torch.nn.Module, step: int = 0) -> TrainState:
    return TrainState(step=step, optimizers=bound.optimizers(model, {}), generator=torch.Generator().manual_seed(0),
                      device=torch.device("cpu"), dataset=TINY)


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def exercise_register_datasets(install_plugin, tmp_path: Path) -> None:
    install_plugin("bars", "doc_bars", module_source=example("evalgen_register_datasets"))
    assert "bars" in _invoke("datasets")
    dataset = load_plugins().datasets.get("bars").load(LoadContext(tmp_path, allow_download=False))
    assert dataset.shape == (1, 4, 4) and dataset.kind is DataKind.BINARY
    assert set(dataset.train.x.unique().tolist()) == {0.0, 1.0}
    assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (800, 200, 200)


def exercise_register_budgets(install_plugin, tmp_path: Path) -> None:
    install_plugin("tinybudget", "doc_tiny_budget", module_source=example("evalgen_register_budgets"))
    assert re.search(r"^tiny .*\n.*training: ≤ 20 GFLOP, ≤ 200 steps", _invoke("budgets"), re.M)


def exercise_register_metrics(install_plugin, tmp_path: Path) -> None:
    """The three registration examples together: a run on `bars` under `tiny`, scored by `mean-gap`."""
    install_plugin("meangap", "doc_mean_gap", module_source=example("evalgen_register_metrics"))
    install_plugin("bars", "doc_bars_m", module_source=example("evalgen_register_datasets"))
    install_plugin("tinybudget", "doc_tiny_budget_m", module_source=example("evalgen_register_budgets"))
    install_plugin("myfamily", "doc_family_m", module_source=complete_example())
    _invoke("run", "--plugin", "myfamily", "--dataset", "bars", "--budget", "tiny", "--no-baseline",
            "--out", str(tmp_path / "runs"))
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("*.json")]
    gaps = [r["metrics"]["mean-gap"]["max_mean_gap"] for r in records if "metrics" in r]
    assert len(gaps) == 1 and 0 <= gaps[0] < 0.2, records
    _metric_column_is_everywhere(tmp_path, f"{gaps[0]:.3f}")


def _metric_column_is_everywhere(tmp_path: Path, cell: str) -> None:
    """The plugin's metric is a column, with its direction (lower is better), in table.md and in
    every leaderboard format."""
    header = "max_mean_gap ↓"
    table = (tmp_path / "runs" / "table.md").read_text()
    assert header in table and cell in table
    _invoke("leaderboard", str(tmp_path / "runs"), "--out", str(tmp_path / "board"))
    board = tmp_path / "board"
    assert header in (board / "leaderboard.md").read_text() and cell in (board / "leaderboard.md").read_text()
    csv_header = (board / "leaderboard.csv").read_text().splitlines()[0].split(",")
    assert {"mean_gap_max_mean_gap_mean", "mean_gap_max_mean_gap_rank"} <= set(csv_header)
    assert re.search(r"max\\_mean\\_gap \$\\downarrow\$", (board / "leaderboard.tex").read_text())
    assert re.search(r'data-better="lower">max_mean_gap ↓</th>', (board / "index.html").read_text())


def exercise_register_outlier_scores(install_plugin, tmp_path: Path) -> None:
    """A run on digits: the plugin's score is recorded for every outlier set and is a column of table.md."""
    install_plugin("toolikely", "doc_too_likely", module_source=example("evalgen_register_outlier_scores"))
    install_plugin("myfamily", "doc_family_o", module_source=complete_example())
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    assert "too_likely" in load_plugins().outlier_scores
    _invoke("run", "--plugin", "myfamily", "--dataset", "digits", "--budget", "unit", "--no-baseline",
            "--out", str(tmp_path / "runs"))
    [path] = (tmp_path / "runs" / "records").glob("*.json")
    outliers = json.loads(path.read_text())["metrics"]["outliers"]
    mine, typicality = outliers["scores"]["too_likely"], outliers["scores"]["typicality"]
    assert mine["label"] == "(Ĥ + log p(x)) / D" and set(mine["sets"]) == set(typicality["sets"])
    headline = mine["sets"][outliers["headline"]]
    assert 0 <= headline["auroc"] <= 1 and headline["intervals"]["auroc"]["low"] <= headline["auroc"]
    assert "AUROC too likely" in (tmp_path / "runs" / "table.md").read_text()


def exercise_family(install_plugin, tmp_path: Path) -> None:
    plugins, _ = _family_with("evalgen_family", install_plugin)
    assert plugins.family("myfamily").default_dataset == "tiny-binarized-digits"
    assert re.search(r"^  independent +likelihood: exact .*data: binary,discrete", _invoke("plugins"), re.M)


def exercise_build_model(install_plugin, tmp_path: Path) -> None:
    _, bound = _family_with("evalgen_build_model", install_plugin)
    first, again = _built(bound), _built(bound)
    assert first.logits.shape == (4, 2)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    with pytest.raises(Exception, match="no model 'other'"):
        bound.hooks.build_model(model_name="other", dataset=TINY, config={})


def exercise_configure_optimizers(install_plugin, tmp_path: Path) -> None:
    _, bound = _family_with("evalgen_configure_optimizers", install_plugin)
    optimizers = bound.optimizers(_built(bound), {"lr": 0.1})
    assert list(optimizers) == ["model"] and optimizers["model"].param_groups[0]["lr"] == 0.1


def exercise_train_step(install_plugin, tmp_path: Path) -> None:
    _, bound = _family_with("evalgen_train_step", install_plugin)
    model = _built(bound)
    state = _state(bound, model)
    x = (torch.rand(64, 1, 2, 2, generator=torch.Generator().manual_seed(2)) < 0.9).float()
    trace = []
    for step in range(30):
        state.step = step
        trace.append(bound.train_step(model, Batch(x), state))
    assert set(trace[0]) == {"nll", "grad_norm/model"}
    assert trace[-1]["nll"] < trace[0]["nll"] - 0.5


def exercise_sample(install_plugin, tmp_path: Path) -> None:
    _, bound = _family_with("evalgen_sample", install_plugin)
    model = _perturbed(_built(bound))
    draw = [bound.sample(model, 50, torch.Generator().manual_seed(3), TINY) for _ in range(2)]
    assert torch.equal(draw[0], draw[1])  # the contract (shape, dtype, levels) is checked by CheckedHooks


def exercise_log_prob(install_plugin, tmp_path: Path) -> None:
    _, bound = _family_with("evalgen_log_prob", install_plugin)
    model = _perturbed(_built(bound))
    with torch.no_grad():
        log_p = bound.log_prob(model, all_tiny_states(), 1)
    assert math.isclose(float(torch.logsumexp(log_p, 0)), 0.0, abs_tol=1e-5)  # a normalized log-pmf


def exercise_describe_likelihood(install_plugin, tmp_path: Path) -> None:
    _, bound = _family_with("evalgen_describe_likelihood", install_plugin)
    assert bound.describe_likelihood(TINY, {}).label == "exact"
    ais = bound.hooks.describe_likelihood(model_name="rbm", dataset=TINY, config={"ais_steps": 500})
    assert ais.with_samples(100).label == "estimate (AIS, T=500, M=100)"


def exercise_likelihood_details(install_plugin, tmp_path: Path) -> None:
    _, bound = _family_with("evalgen_likelihood_details", install_plugin)
    details = bound.likelihood_details(_built(bound))
    json.dumps(details, allow_nan=False)
    assert details["dims"] == 4 and math.isclose(details["model_entropy_nats"], 4 * math.log(2), rel_tol=1e-6)


def exercise_outlier_score(install_plugin, tmp_path: Path) -> None:
    _, bound = _family_with("evalgen_outlier_score", install_plugin)
    assert bound.spec.outlier_score == "share of rare values"
    model = _built(bound)
    with torch.no_grad():
        model.logits[:, 0] = 10.0  # value 0 almost everywhere: 1s are rare
    scores = bound.outlier_score(model, all_tiny_states())
    assert scores.shape == (16,) and float(scores[0]) == 0.0 and float(scores[-1]) == 1.0


def exercise_weights_sha256(install_plugin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Published weights evaluated with no training: the record says so and names their SHA-256."""
    plugins, bound = _family_with("evalgen_weights_sha256", install_plugin)
    digits = plugins.datasets.get("digits").load(LoadContext(tmp_path, allow_download=False))
    published = _perturbed(_built(bound, digits.info()))
    weights = tmp_path / "weights.pt"
    torch.save(published.state_dict(), weights)
    monkeypatch.setenv("MY_FAMILY_WEIGHTS", str(weights))
    _invoke("run", "--plugin", "myfamily", "--dataset", "digits", "--budget", "none", "--no-baseline",
            "--out", str(tmp_path / "runs"))
    [path] = (tmp_path / "runs" / "records").glob("*.json")
    record = json.loads(path.read_text())
    assert record["provenance"]["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert record["origin"]["kind"] == record["training"]["stopped_by"] == "no training"
    assert record["training"]["steps"] == 0
    saved = torch.load(tmp_path / "runs" / "checkpoints" / path.name.replace(".json", ".pt"), weights_only=True)
    assert torch.equal(saved["state_dict"]["logits"], published.logits.detach())  # evaluated as published


EXERCISES: dict[str, Callable[..., None]] = {
    "evalgen_register_datasets": exercise_register_datasets,
    "evalgen_register_budgets": exercise_register_budgets,
    "evalgen_register_metrics": exercise_register_metrics,
    "evalgen_register_outlier_scores": exercise_register_outlier_scores,
    "evalgen_family": exercise_family,
    "evalgen_build_model": exercise_build_model,
    "evalgen_configure_optimizers": exercise_configure_optimizers,
    "evalgen_train_step": exercise_train_step,
    "evalgen_sample": exercise_sample,
    "evalgen_log_prob": exercise_log_prob,
    "evalgen_describe_likelihood": exercise_describe_likelihood,
    "evalgen_likelihood_details": exercise_likelihood_details,
    "evalgen_outlier_score": exercise_outlier_score,
    "evalgen_weights_sha256": exercise_weights_sha256,
}


def test_every_hook_example_has_an_exercise():
    assert sorted(EXERCISES) == declared_hooks(), "add or remove an exercise in tests/test_docs.py"


@pytest.mark.parametrize("hook", declared_hooks())
def test_the_hook_example_runs(hook, install_plugin, tmp_path, monkeypatch):
    if hook not in EXERCISES:
        pytest.fail(f"no exercise for the example of {hook}: add one to EXERCISES in tests/test_docs.py")
    exercise = EXERCISES[hook]
    if "monkeypatch" in inspect.signature(exercise).parameters:
        exercise(install_plugin, tmp_path, monkeypatch=monkeypatch)
    else:
        exercise(install_plugin, tmp_path)


def test_the_cross_cutting_example_wraps_the_family_train_step(install_plugin):
    source = python_blocks(sections()["Cross-cutting plugins"])[0]
    install_plugin("steptimer", "doc_step_timer", module_source=source)
    _, bound = _family_with("evalgen_train_step", install_plugin)
    model = _built(bound)
    losses = bound.train_step(model, Batch(torch.ones(8, 1, 2, 2)), _state(bound, model))
    assert set(losses) == {"nll", "grad_norm/model", "seconds/step"} and losses["seconds/step"] >= 0


def test_the_documented_family_passes_the_conformance_example(install_plugin):
    """The complete plugin with every family-hook example in it, checked by the docs' pytest file."""
    kit = pytest.importorskip("evalgen.testing", reason="the conformance kit (evalgen.testing) is not there yet")
    if not hasattr(kit, "plugin_checks"):
        pytest.skip("the conformance kit (evalgen.testing) has no plugin_checks yet")
    family_hooks = [h for h in declared_hooks() if not h.startswith("evalgen_register_")]
    install_plugin("myfamily", "doc_all_hooks",
                   module_source="\n\n".join([complete_example(), *map(example, family_hooks)]))
    source = next(b for b in python_blocks(sections()["Testing your plugin: the conformance kit"])
                  if "plugin_checks(" in b)
    namespace: dict = {}
    exec(compile(source, "tests/test_conformance.py (docs)", "exec"), namespace)
    checks = next(m for m in namespace["test_conformance"].pytestmark if m.name == "parametrize").args[1]
    assert len(checks) > 5
    for check in checks:
        try:
            namespace["test_conformance"](check)
        except pytest.skip.Exception:
            pass


def test_the_density_example_conforms_and_its_test_nll_is_reproduced_from_the_docs(install_plugin, tmp_path):
    """The flow of "A density model": every conformance check passes (log_prob finite at the edges
    of [0, 1)^D, normalized on it), and the docs' own scoring code, from the checkpoint,
    `evalgen.load_dataset` and `evalgen.split_inputs`, gives the test NLL of the run's record."""
    from evalgen.testing import check_plugin

    plugin, scoring = python_blocks(sections()["A density model: a flow on dequantized data"])
    install_plugin("myflow", "my_flow", module_source=plugin)
    report = check_plugin("myflow")
    assert report.ok, "\n" + str(report)
    passed = {(r.data, r.check) for r in report.results if r.status == "passed"}
    assert {(kind, check) for kind in ("binary", "discrete") for check in ("log_prob", "normalization")} <= passed
    install_plugin("unitbudget", "toy_plugins:unit_budget")
    runs = tmp_path / "runs"
    _invoke("run", "--plugin", "myflow", "--dataset", "digits", "--budget", "unit", "--no-baseline", "--out", str(runs))
    (record,) = [json.loads(p.read_text()) for p in (runs / "records").glob("*.json")]
    namespace: dict = {}
    source = scoring.replace('"runs/', f'"{runs}/').replace("--quick--", "--unit--")
    exec(compile(source, "docs/plugins.md (scoring a density)", "exec"), namespace)
    assert float(namespace["nll"].mean()) == pytest.approx(record["metrics"]["test_nll"]["nats"], rel=1e-7)


def test_the_known_failures_example_declares_checks_the_kit_knows(install_plugin):
    from evalgen.testing import plugin_checks

    block = next(b for b in python_blocks(sections()["Testing your plugin: the conformance kit"])
                 if "known_failures" in b)
    install_plugin("myfamily", "doc_known_failures", module_source=complete_example() + "\n\n" + block)
    declared = [check for check in plugin_checks("myfamily") if check.known]
    assert {str(c) for c in declared} == {f"myfamily:independent:{kind}:one_step" for kind in ("binary", "discrete")}
    assert all("issue 12" in c.known for c in declared)
