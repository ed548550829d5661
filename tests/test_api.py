"""The Python API (issue 19): the README's examples run as written, and each call returns typed
records that match what the commands write."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import evalgen
from evalgen.errors import EvalgenError
from evalgen.record_types import RunRecord

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[1] / "README.md"


def _section_blocks(heading: str) -> list[str]:
    text = README.read_text()
    section = text.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = _section_blocks("Python API")
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md (Python API)", "exec"), {})
    printed = capsys.readouterr().out
    assert "lower bound (IWAE, K=100)" in printed and "samples:digits-test" not in printed
    records = sorted(p.name for p in (tmp_path / "notebook-runs" / "records").glob("*.json"))
    assert records == ["samples--digits-test--digits--smoke--seed0.json",
                       "vae--vae--digits--smoke--seed0--eval-K100.json", "vae--vae--digits--smoke--seed0.json"]


def test_results_are_the_written_records_typed(tmp_path):
    scored = evalgen.score(torch.zeros(300, 1, 8, 8), dataset="digits", budget="smoke", out=tmp_path)
    assert isinstance(scored.record, RunRecord) and scored.record.origin.samples.file == "(in memory)"
    written = json.loads((tmp_path / "records" / f"{scored.record.key}.json").read_text())
    assert written == scored.record.to_dict()
    frame = scored.to_frame()
    assert list(frame["origin"]) == ["external samples"] and frame["fid"].iloc[0] == written["metrics"][
        "sample_quality"]["fid"]
    with pytest.raises(EvalgenError, match="unknown dataset 'digitz'"):
        evalgen.score(torch.zeros(300, 1, 8, 8), dataset="digitz", out=tmp_path)


def test_a_module_built_elsewhere_is_evaluated_with_its_familys_hooks(tmp_path):
    from evalgen.plugins import load_plugins

    plugins = load_plugins()
    info = evalgen.load_dataset("digits").info()
    module = plugins.hooks("baselines").build_model(model_name="categorical", dataset=info, config={})
    result = evalgen.evaluate(module, plugin="baselines", model="categorical", dataset="digits", out=tmp_path)
    record = result.record
    assert record.key == "baselines--categorical--digits--none--seed0" and record.origin.kind == "no training"
    assert record.training.steps == 0 and record.metric("test_nll") is not None
    with pytest.raises(EvalgenError, match="needs plugin=, model= and dataset="):
        evalgen.evaluate(module, plugin="baselines")
