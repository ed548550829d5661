"""`evalgen leaderboard`: records from several folders in, tables in four formats, a protocol and
plots out, byte-for-byte reproducible; bad or clashing records give one-line errors."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import html
import json
import math
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import toy_plugins
from click.testing import CliRunner
from toy_plugins import assert_one_line_error

from evalgen.cli import main, run_command
from evalgen.datasets.base import LoadContext
from evalgen.harness.runner import RunContext, run_sweep
from evalgen.harness.spec import RunSpec
from evalgen.leaderboard.formats import latex_escape
from evalgen.leaderboard.publish import MANIFEST
from evalgen.plugins import load_plugins
from evalgen.record_types import RunRecord
from evalgen.records import read_record, write_record
from evalgen.tables import comparison
from evalgen.types import Likelihood, LikelihoodKind

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BASELINE = "baselines--categorical--digits--unit"
#: A plugin option full of characters that Markdown, LaTeX and HTML treat specially.
ODD_OPTION = {"tag": "50%_a&b#{x}"}


def _derive(record: dict, plugin: str, model: str, likelihood: Likelihood, scale: float,
            config: dict | None = None) -> RunRecord:
    """A copy of a real record, renamed into another model with its NLLs scaled."""
    copy = json.loads(json.dumps(record))
    copy["spec"].update(plugin=plugin, model=model, config=config or {})
    copy["key"] = RunSpec(**copy["spec"]).key
    copy["model"].update(likelihood=likelihood.label, likelihood_kind=likelihood.kind.value)
    for field in ("nats", "bits_per_dim"):
        copy["metrics"]["test_nll"][field] *= scale
    return RunRecord.from_dict(copy)


def make_runs(root: Path) -> Path:
    """Run folders from three "machines": real unit-budget runs (on digits an exact baseline over 3
    seeds, a VAE bound over 2, a GAN and a diverged toy run; a baseline on 2-D data), an estimate
    and a variant derived from them, and an identical copy of one record."""
    plugins = load_plugins(extra=[("unit", toy_plugins.UnitBudget()), ("nanloss", toy_plugins.nan_loss)])

    def sweep(folder: str, specs: list[RunSpec]) -> None:
        ctx = RunContext(plugins, root / folder, torch.device("cpu"), LoadContext(root / "nodata", False))
        assert not run_sweep(specs, ctx, report=lambda line: None).failures

    sweep("machine-a", [RunSpec("baselines", "categorical", "digits", "unit", s) for s in range(3)]
          + [RunSpec("nanloss", "toy", "digits", "unit", 0),
             RunSpec("baselines", "gaussian", "eight-gaussians", "unit", 0)])
    sweep("machine-b", [RunSpec("vae", "vae", "digits", "unit", s) for s in range(2)]
          + [RunSpec("gan", "gan", "digits", "unit", 0)])
    vae = json.loads((root / "machine-b/records/vae--vae--digits--unit--seed0.json").read_text())
    baseline = json.loads((root / f"machine-a/records/{BASELINE}--seed0.json").read_text())
    machine_c = root / "deeper" / "machine-c"
    write_record(machine_c, _derive(vae, "ebm", "rbm", Likelihood(LikelihoodKind.ESTIMATE, "AIS, T=100, M=10"), 1.1))
    write_record(machine_c, _derive(baseline, "baselines", "categorical", Likelihood(), 0.99, ODD_OPTION))
    shutil.copy(root / f"machine-a/records/{BASELINE}--seed1.json", machine_c / "records")
    return root


def shared_runs(tmp_path_factory) -> Path:
    """`make_runs` once per session (the browser test uses them too); treat as read-only."""
    root = tmp_path_factory.getbasetemp() / "leaderboard-runs"
    if not (root / "complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        (make_runs(root) / "complete").touch()
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return shared_runs(tmp_path_factory)


def build(runs_dir: Path, out: Path):
    return CliRunner().invoke(main, ["leaderboard", str(runs_dir), "--out", str(out)])


@pytest.fixture(scope="module")
def board(runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("board")
    result = build(runs, out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def rows(board) -> dict[str, dict[str, str]]:
    with (board / "leaderboard.csv").open() as handle:
        return {f"{r['plugin']}:{r['model']}" + (f" [{r['variant']}]" if r["variant"] else ""): r
                for r in csv.DictReader(handle)}


def _markdown_row(board: Path, label: str) -> str:
    return next(line for line in (board / "leaderboard.md").read_text().splitlines()
                if line.startswith("| ") and f" | {label} | " in line)


def test_the_four_formats_protocol_and_images_are_written(board):
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "index.html", "protocol.md"):
        assert (board / name).stat().st_size > 0, name
    assert (board / "leaderboard.tex").read_text().count(r"\toprule") == 3  # two tables and the capabilities
    assert "<table class=\"sortable\"" in (board / "index.html").read_text()
    images = sorted(p.name for p in (board / "assets").iterdir())
    assert f"{BASELINE}--samples.png" in images and f"{BASELINE}--curve.png" in images
    assert "gan--gan--digits--unit--samples.png" in images
    assert "gan--gan--digits--unit--curve.png" in images  # no validation NLL, but traced FID and modes
    for name in images:
        assert (board / "assets" / name).read_bytes().startswith(PNG_MAGIC)
    html = (board / "index.html").read_text()
    assert f'src="assets/{BASELINE}--samples.png"' in html and f'src="assets/{BASELINE}--curve.png"' in html


def test_seeds_are_aggregated_as_mean_std_and_n(runs, rows, board):
    values = [json.loads((runs / f"machine-a/records/{BASELINE}--seed{s}.json").read_text())
              ["metrics"]["test_nll"]["bits_per_dim"] for s in range(3)]
    row = rows["baselines:categorical"]  # the identical copy of seed 1 is not counted twice
    assert row["seeds"] == "0 1 2" and row["bits_per_dim_n"] == "3"
    assert float(row["bits_per_dim_mean"]) == pytest.approx(np.mean(values))
    assert float(row["bits_per_dim_std"]) == pytest.approx(np.std(values, ddof=1))
    cell = f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} (n=3)"
    assert cell in _markdown_row(board, "baselines:categorical")
    assert rows["vae:vae"]["fid_n"] == "2" and rows["gan:gan"]["fid_n"] == "1"


def test_nll_cells_carry_the_kind_and_the_capability_matrix_says_it(board, rows):
    assert "| ≤ " in _markdown_row(board, "vae:vae")
    assert "| ≈ " in _markdown_row(board, "ebm:rbm")
    assert "n/a (implicit model)" in _markdown_row(board, "gan:gan")
    exact = _markdown_row(board, "baselines:categorical")
    assert "≤" not in exact and "≈" not in exact
    assert [rows[m]["likelihood_kind"] for m in ("baselines:categorical", "vae:vae", "ebm:rbm", "gan:gan")] == [
        "exact", "lower bound", "estimate", "none"]
    text = (board / "leaderboard.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| # | model"))
    for title in ("test NLL (bits/dim) ↓", "test NLL (nats) ↓", "IS ↑ [digits-classifier]",
                  "FID ↓ [digits-classifier]", "KID ↓ [digits-classifier]", "AUROC ↑", "params", "samples/s ↑"):
        assert title in header
    capabilities = text.split("## Capabilities")[1]
    assert "| vae:vae | yes | bounded (≤) |" in capabilities
    assert "| ebm:rbm | yes | estimated (≈) |" in capabilities
    assert "| gan:gan | yes | none |" in capabilities


def _unescaped(markdown: str) -> str:
    """A Markdown cell's text (cells are escaped: `evalgen.leaderboard.escape.markdown_text`)."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def test_ranks_order_rows_and_diverged_runs_are_shown(board, rows):
    text = (board / "leaderboard.md").read_text()
    table = text.split("## digits, budget unit")[1].split("#: overall rank")[0]
    order = [_unescaped(line.split(" | ")[1]) for line in table.splitlines()
             if line.startswith("| ") and "---" not in line][1:]
    ranked = [label for label in order if rows[label]["rank"]]
    assert [int(rows[label]["rank"]) for label in ranked] == sorted(int(rows[label]["rank"]) for label in ranked)
    assert [float(rows[label]["bits_per_dim_mean"]) for label in ranked] == sorted(
        float(rows[label]["bits_per_dim_mean"]) for label in ranked)
    assert order[len(ranked):] == ["gan:gan", "nanloss:toy"]  # no likelihood; then no metrics at all
    assert rows["gan:gan"]["fid_rank"] != "" and rows["nanloss:toy"]["fid_rank"] == ""
    assert rows["nanloss:toy"]["status"] == "1/1 diverged (seed 0 at step 7)"
    assert "| 1/1 diverged (seed 0 at step 7) |" in text
    assert "#: overall rank, by test NLL (bits/dim) ↓." in text


def test_continuous_data_ranks_by_nats_and_has_no_bits_or_images(board, rows):
    text = (board / "leaderboard.md").read_text()
    section = text.split("## eight-gaussians, budget unit")[1].split("## ")[0]
    header = next(line for line in section.splitlines() if line.startswith("| # | model"))
    assert "test NLL (nats) ↓" in header and "bits/dim" not in header and "FID" not in header
    assert "#: overall rank, by test NLL (nats) ↓." in section
    assert rows["baselines:gaussian"]["rank"] == "1" and rows["baselines:gaussian"]["bits_per_dim_mean"] == ""
    assert "eight-gaussians--unit--samples.png" not in " ".join(p.name for p in (board / "assets").iterdir())


def test_latex_is_escaped():
    assert latex_escape("50%_a&b#{x} ~^\\ ≤ 1 ± 2 [y]") == (
        r"50\%\_a\&b\#\{x\} \textasciitilde{}\textasciicircum{}\textbackslash{} $\leq$ 1 $\pm$ 2 {[}y{]}")


def test_the_tex_file_escapes_what_the_records_contain(board):
    tex = (board / "leaderboard.tex").read_text()
    assert r"baselines:categorical {[}tag=50\%\_a\&b\#\{x\}{]}" in tex
    assert r"$\leq$ " in tex and r"$\approx$ " in tex and r"\textsuperscript{1}" in tex
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    for line in body.strip().splitlines():  # every row has as many cells as the header
        assert line.endswith(r" \\") and line.count(" & ") == tex.split(r"\toprule")[1].split("\n")[1].count(" & ")


def test_protocol_has_a_command_per_row_and_the_commands_parse(board, rows):
    protocol = (board / "protocol.md").read_text()
    for label, row in rows.items():
        assert f"`{row['command']}`" in protocol.replace("\\|", "|"), label
        words = shlex.split(row["command"])
        assert words[:2] == ["evalgen", "run"]
        run_command.make_context("run", words[2:])  # every option exists and parses
    assert rows["vae:vae"]["command"] == ("evalgen run --plugin vae --model vae --dataset digits --budget unit "
                                          "--seeds 2 --no-baseline")
    assert "-o 'tag=50%_a&b#{x}'" in rows[f"baselines:categorical [tag={ODD_OPTION['tag']}]"]["command"]
    for fact in ("d064b2ec", "1,258 / 179 / 360", "| unit | cpu | — | 100 | — | 600 |", "cpu (", "evalgen: ",
                 "torch: ", "python: ", "git commit: ", "evalgen leaderboard "):
        assert fact in protocol, fact


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_rebuilding_gives_the_same_bytes_and_drops_stale_assets(runs, board, tmp_path):
    before = _files(board)
    stale = board / "assets" / "gone--samples.png"  # as if an earlier build had written it: in the manifest
    stale.write_bytes(PNG_MAGIC)
    manifest = json.loads((board / MANIFEST).read_text())
    manifest["files"][f"assets/{stale.name}"] = hashlib.sha256(PNG_MAGIC).hexdigest()
    (board / MANIFEST).write_text(json.dumps(manifest))
    assert build(runs, board).exit_code == 0
    assert not stale.exists()
    assert _files(board) == before
    elsewhere = tmp_path / "elsewhere"
    assert build(runs, elsewhere).exit_code == 0
    moved = _files(elsewhere)
    assert moved.keys() == before.keys()
    assert [name for name in before if before[name] != moved[name]] == [MANIFEST, "protocol.md"]
    changed = [line for line in moved["protocol.md"].decode().splitlines()
               if line not in before["protocol.md"].decode().splitlines()]
    assert len(changed) == 1 and changed[0].startswith("    evalgen leaderboard ")  # the runs folder, relative


def test_variants_are_separate_rows():
    committed = Path(__file__).resolve().parents[1] / "leaderboards/cpu-quick/runs/digits/records"
    base = read_record(committed / "baselines--categorical--digits--quick--seed0.json")
    records = [dataclasses.replace(base, spec=dataclasses.replace(base.spec, config=config))
               for config in ({}, {"lr": 0.1})]
    assert comparison(records)[0]["variant"].tolist() == ["", "lr=0.1"]


@pytest.fixture
def copy_of_runs(runs, tmp_path) -> Path:
    target = tmp_path / "runs"
    shutil.copytree(runs, target)
    return target


def _edit(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def test_two_different_records_under_one_key_are_an_error_naming_both(copy_of_runs, tmp_path):
    original = copy_of_runs / f"machine-a/records/{BASELINE}--seed0.json"
    clash = copy_of_runs / "machine-z/records" / original.name
    clash.parent.mkdir(parents=True)
    shutil.copy(original, clash)
    _edit(clash, lambda r: r["metrics"]["test_nll"].update(nats=1.0, bits_per_dim=1.0 / (64 * math.log(2))))
    result = build(copy_of_runs, tmp_path / "out")
    assert_one_line_error(result, f"duplicate run {BASELINE}--seed0", str(original), str(clash))
    assert not (tmp_path / "out").exists()


def _schema_5(record):
    record["schema"] = "evalgen.run-record/5"


def _evalgen_1(record):
    record["provenance"]["evalgen_version"] = "1.0.0"


def _no_seed(record):
    del record["spec"]["seed"]


def _other_budget(record):
    record["training"]["budget"]["max_steps"] = 5


@pytest.mark.parametrize("change,fragments", [
    (_schema_5, ["schema evalgen.run-record/5", "reads evalgen.run-record/4"]),
    (_evalgen_1, ["evalgen 1.0.0", "major version"]),
    (_no_seed, ["at spec: 'seed' is a required property"]),
    (_other_budget, ["budget 'unit' is defined differently"]),
])
def test_incompatible_or_invalid_records_are_one_line_errors(copy_of_runs, tmp_path, change, fragments):
    path = copy_of_runs / "machine-b/records/gan--gan--digits--unit--seed0.json"
    _edit(path, change)
    result = build(copy_of_runs, tmp_path / "out")
    assert_one_line_error(result, str(path.name), *fragments)
    assert not (tmp_path / "out").exists()


def test_every_problem_is_listed(copy_of_runs, tmp_path):
    for name in ("gan--gan--digits--unit--seed0.json", "vae--vae--digits--unit--seed0.json"):
        _edit(copy_of_runs / "machine-b/records" / name, _schema_5)
    result = build(copy_of_runs, tmp_path / "out")
    assert_one_line_error(result, "(and 1 more, listed above)")
    assert result.output.count("evalgen.run-record/5") == 2


def test_a_folder_without_records_is_one_line(tmp_path):
    assert_one_line_error(build(tmp_path, tmp_path / "out"), "no run records")
