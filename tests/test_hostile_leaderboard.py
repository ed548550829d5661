"""`evalgen leaderboard` against hostile run records and output folders.

Records come from other people's machines. Text from them must stay text in every format (no
script runs in the page or in the rendered Markdown, no LaTeX command, no split table row, no
spreadsheet formula); no file may be written outside --out; only files an earlier build wrote
(its manifest) are overwritten or removed; and a run's sample grid is published only if it is the
PNG `evalgen run` writes. Names the record schema refuses are tested both through the command
(refused, nothing written) and past the schema (the output code's own defences).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import time
import uuid
from pathlib import Path

import markdown
import pandas as pd
import pytest
import torch
from browser import chromium_binaries, headless_chromium
from click.testing import CliRunner
from PIL import Image
from test_leaderboard import BASELINE, PNG_MAGIC, shared_runs
from toy_plugins import assert_one_line_error

import evalgen.leaderboard.build as build_module
from evalgen.cli import main
from evalgen.harness.grids import grid_size, save_sample_grid
from evalgen.harness.spec import RunSpec
from evalgen.leaderboard.build import build_leaderboard
from evalgen.leaderboard.collect import Found
from evalgen.leaderboard.escape import markdown_code, markdown_text
from evalgen.leaderboard.plots import sample_grid_problem
from evalgen.leaderboard.publish import MANIFEST, asset_path
from evalgen.record_types import RunRecord
from evalgen.tables import variant_label

PWNED = "document.title='pwned'"
SCRIPT = f"<script>{PWNED}</script>"
ATTRIBUTE = f"\"><img src=x onerror=\"{PWNED}\">"
SVG = f"<svg onload=\"{PWNED}\">"
LATEX = r"\input{/etc/passwd}"
LINK = f"[click](javascript:{PWNED})"
#: Payloads that each format must show as text, one line each.
PAYLOADS = (SCRIPT, ATTRIBUTE, SVG, LATEX, LINK, "../../up", "a|b", "`tick|`", "*star* _under_", "\\|", "&lt;")
#: All of them in one field, with newlines (a blank line too) between some.
HOSTILE = " ".join(PAYLOADS[:4]) + "\nline two\n\n" + " ".join(PAYLOADS[4:])
FORMULA = "=HYPERLINK(\"http://example.invalid\",\"x\")"
SAFE_ASSET = re.compile(r"assets/[A-Za-z0-9]+(?:[._-]+[A-Za-z0-9]+)*\.png")
BUILT = ("index.html", "leaderboard.csv", "leaderboard.md", "leaderboard.tex", "protocol.md", MANIFEST)


# --- records ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return shared_runs(tmp_path_factory)


def copy_runs(source: Path, target: Path, *machines: str) -> Path:
    """A copy of run folders (all, or these machines), records and sample grids only."""
    ignore = shutil.ignore_patterns("checkpoints", ".locks", "complete")
    if not machines:
        shutil.copytree(source, target, ignore=ignore)
    for machine in machines:
        shutil.copytree(source / machine, target / machine, ignore=ignore)
    return target


def records(root: Path) -> list[tuple[Path, dict]]:
    return [(path, json.loads(path.read_text())) for path in sorted(root.glob("**/records/*.json"))]


def write(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def variant(record: dict, folder: Path, config: dict) -> Path:
    """A copy of ``record`` as another variant (plugin options), key and file name consistent."""
    copy = json.loads(json.dumps(record))
    copy["spec"]["config"] = config
    copy["key"] = RunSpec(**copy["spec"]).key
    copy["samples_grid"] = None
    return write(folder / "records" / f"{copy['key']}.json", copy)


def make_hostile(record: dict) -> None:
    """Hostile text in every free-text field that leaderboards show (the same in every record, so
    that records still agree on their datasets and budgets)."""
    for field in ("device_name", "platform", "torch_version", "python_version", "git_commit", "cuda_version"):
        record["provenance"][field] = f"{field} {HOSTILE}"
    record["dataset"]["source"] = f"source {HOSTILE}"
    record["training"]["budget"]["summary"] = f"summary {HOSTILE}"
    record["model"]["plugin_version"] = f"version {HOSTILE}"
    record["model"]["likelihood"] += f" {HOSTILE}"  # keeps its kind: it is read from the start
    quality = record["metrics"].get("sample_quality") or {}
    if "extractor" in quality:
        quality["extractor"] += f" {HOSTILE}"
    outliers = record["metrics"].get("outliers") or {}
    if "score" in outliers:
        outliers["score"] = f"score {HOSTILE}"


@pytest.fixture(scope="module")
def corpus(runs, tmp_path_factory) -> Path:
    """The shared runs with hostile text everywhere, plus variants with hostile options and a
    row whose likelihood label and extractor are spreadsheet formulas."""
    root = copy_runs(runs, tmp_path_factory.mktemp("hostile") / "runs")
    for path, record in records(root):
        make_hostile(record)
        write(path, record)
    baseline = json.loads((root / f"machine-a/records/{BASELINE}--seed0.json").read_text())
    variant(baseline, root / "machine-x", {"tag": HOSTILE, "note": SVG})
    formula = json.loads(variant(baseline, root / "machine-x", {"lr": 0.5}).read_text())
    formula["model"]["likelihood"] = FORMULA
    formula["metrics"]["sample_quality"]["extractor"] = "@SUM(1+1)"
    write(root / "machine-x/records" / f"{formula['key']}.json", formula)
    return root


def expected_rows(root: Path) -> int:
    return len({(r["spec"]["dataset"], r["spec"]["budget"], r["spec"]["plugin"], r["spec"]["model"],
                 variant_label(RunSpec(**r["spec"]))) for _, r in records(root)})


def build(runs_dir: Path, out: Path, *options: str):
    return CliRunner().invoke(main, ["leaderboard", str(runs_dir), "--out", str(out), *options])


def tree(root: Path) -> dict[str, object]:
    """Every entry under ``root``: file bytes, link targets, folders."""
    found: dict[str, object] = {}
    for folder, names, files in os.walk(root):
        for name in names + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = "folder"
            elif path.is_file():
                found[key] = path.read_bytes()
            else:
                found[key] = "other"
    return found


@pytest.fixture(scope="module")
def hostile_board(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile-board")
    result = build(corpus, out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def hostile_names_board(corpus, tmp_path_factory) -> Path:
    """Names the schema refuses (plugin, model, dataset, budget, option keys full of markup), built
    past `collect_records`: what the output code does on its own if a bad name ever got through."""
    found = []
    for path, record in records(corpus):
        spec = record["spec"]
        spec["plugin"] = f"{spec['plugin']}{SCRIPT}"
        spec["model"] = f"{spec['model']}{ATTRIBUTE}|x $\\undefined{{$"  # mathtext in a plot title would fail
        spec["dataset"] = f"{spec['dataset']}{SVG}"
        spec["budget"] = f"{spec['budget']}{LATEX}\n"
        spec["config"] = {f"{key}{LINK}": value for key, value in spec["config"].items()}
        record["key"] = RunSpec(**spec).key
        found.append(Found(path, RunRecord.from_dict(record)))
    out = tmp_path_factory.mktemp("hostile-names")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build_module, "collect_records", lambda runs_dir, report: sorted(found, key=lambda f: f.path))
        build_leaderboard(corpus, out, report=lambda line: None)
    return out


# --- browser ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def driver():
    """One headless Chromium for the module (skipped, or failed under CI, like the page test)."""
    with headless_chromium(*chromium_binaries()) as browser:
        yield browser


INSPECT = """
const all = Array.from(document.querySelectorAll('*'));
return {
  title: document.title,
  scripts: document.scripts.length,
  svg: document.querySelectorAll('svg').length,
  embedded: document.querySelectorAll('iframe, object, embed, frame, base, form, meta[http-equiv]').length,
  handlers: all.filter(e => Array.from(e.attributes).some(a => a.name.toLowerCase().startsWith('on')))
               .map(e => e.outerHTML.slice(0, 120)),
  links: Array.from(document.querySelectorAll('[href], [src]'))
              .map(e => e.getAttribute('href') || e.getAttribute('src')),
  images: Array.from(document.images, i => i.getAttribute('src')),
  text: document.body.innerText,
};
"""


def inspect_page(browser, page: Path, title: str, scripts: int) -> dict:
    """Open ``page`` and check that nothing from the records became markup."""
    browser.get(page.as_uri())
    time.sleep(0.2)  # an onerror/onload would have fired by now
    seen = browser.execute_script(INSPECT)
    assert seen["title"] == title
    assert seen["scripts"] == scripts and seen["svg"] == 0 and seen["embedded"] == 0
    assert seen["handlers"] == []
    assert not [link for link in seen["links"] if re.match(r"\s*(javascript|data|vbscript):", link, re.IGNORECASE)]
    text = " ".join(seen["text"].split())
    for payload in (SCRIPT, ATTRIBUTE, SVG, LATEX):
        assert payload in text, payload  # shown as the text it is
    return seen


def render_markdown(text: str, folder: Path, name: str) -> Path:
    page = folder / f"{name}.html"
    body = markdown.markdown(text, extensions=["tables"])
    page.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Rendered</title></head>'
                    f"<body>{body}</body></html>")
    return page


# --- format checks ---------------------------------------------------------------------------

def bare_pipes(line: str) -> int:
    """Cell boundaries of a Markdown table row: pipes not escaped by a backslash."""
    count, escaped = 0, False
    for char in line:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            count += 1
    return count


def check_markdown_tables(text: str) -> int:
    """Every row of every table has as many cells as its header; returns the number of rows."""
    rows, block = 0, []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            header = bare_pipes(block[0])
            assert all(bare_pipes(row) == header for row in block), block
            assert re.fullmatch(r"\|(:--|--:)(\|(:--|--:))*\|", block[1])
            rows += len(block) - 2
        block = []
    return rows


LATEX_COMMANDS = {"begin", "end", "toprule", "midrule", "bottomrule", "centering", "scriptsize", "caption", "label",
                  "textsuperscript", "textbackslash", "textasciitilde", "textasciicircum", "textless",
                  "textgreater", "textbar", "pm", "leq", "approx", "uparrow", "downarrow", "usepackage"}


def check_latex(tex: str) -> None:
    commands = set(re.findall(r"\\([A-Za-z]+)", tex))
    assert commands <= LATEX_COMMANDS, commands - LATEX_COMMANDS
    assert "\\input" not in tex
    depth = 0
    for token in re.findall(r"\\[A-Za-z]+|\\.|[{}]", tex):
        depth += {"{": 1, "}": -1}.get(token, 0)
        assert depth >= 0
    assert depth == 0
    for tabular in re.findall(r"\\begin\{tabular\}.*?\\end\{tabular\}", tex, re.DOTALL):
        assert "\n\n" not in tabular and not re.search(r"\n\s*\n", tabular)
        lines = tabular.split("\\midrule\n")[1].split("\n\\bottomrule")[0].splitlines()
        header = tabular.split("\\toprule\n")[1].splitlines()[0]
        cells = len(re.findall(r"(?<!\\)&", header))
        for line in lines:
            assert line.endswith(r" \\") and len(re.findall(r"(?<!\\)&", line)) == cells, line


# --- the hostile corpus through every format -------------------------------------------------

def test_the_hostile_corpus_is_built_into_the_expected_files_only(hostile_board):
    names = {str(p.relative_to(hostile_board)) for p in hostile_board.rglob("*") if p.is_file()}
    assets = {name for name in names if name.startswith("assets/")}
    assert names - assets == set(BUILT) and assets
    assert all(SAFE_ASSET.fullmatch(name) for name in assets), assets


def test_no_script_runs_in_the_page(hostile_board, driver):
    seen = inspect_page(driver, hostile_board / "index.html", "Leaderboard", scripts=1)
    assert seen["images"] and all(SAFE_ASSET.fullmatch(src) and (hostile_board / src).is_file()
                                  for src in seen["images"])
    html_text = (hostile_board / "index.html").read_text()
    assert html_text.count("<script") == 1 and "<svg" not in html_text and "<img src=x" not in html_text


@pytest.mark.parametrize("name", ["leaderboard.md", "protocol.md"])
def test_no_script_runs_in_the_rendered_markdown_and_rows_stay_whole(hostile_board, corpus, driver, tmp_path, name):
    text = (hostile_board / name).read_text()
    rows = check_markdown_tables(text)
    if name == "leaderboard.md":  # a row per (dataset, budget, model), in the board and in the gallery or not
        assert rows >= expected_rows(corpus)
    page = render_markdown(text, tmp_path, name)
    seen = inspect_page(driver, page, "Rendered", scripts=0)
    assert all(SAFE_ASSET.fullmatch(src) for src in seen["images"])
    assert not [link for link in seen["links"] if "javascript" in link]


def test_latex_has_no_command_from_the_records_and_no_broken_row(hostile_board):
    tex = (hostile_board / "leaderboard.tex").read_text()
    check_latex(tex)
    assert r"\textbackslash{}input\{/etc/passwd\}" in tex


def test_csv_round_trips_the_hostile_text_and_neutralises_formulas(hostile_board, corpus):
    path = hostile_board / "leaderboard.csv"
    with path.open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert all(len(line) == len(lines[0]) for line in lines)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert frame.shape == (expected_rows(corpus), len(lines[0]))
    assert any(f"tag={HOSTILE}" in value for value in frame["variant"])  # newlines and all
    assert any(f"tag={HOSTILE}" in shlex.split(value) for value in frame["command"])  # still a valid command
    assert FORMULA not in set(frame["likelihood"]) and "'" + FORMULA in set(frame["likelihood"])
    assert "'@SUM(1+1)" in set(frame["fid_label"])
    for column in frame.columns:  # no text cell of any column starts a formula
        assert not frame[column].str.match(r"[=+@\t\r]").any(), column
        assert not frame[column].str.match(r"-[^0-9]").any(), column
    assert frame["bits_per_dim_mean"].str.match(r"^$|^[0-9.e+-]+$").all()  # numbers untouched


def test_hostile_names_past_the_schema_stay_inside_out_and_stay_text(hostile_names_board, driver, tmp_path):
    names = {str(p.relative_to(hostile_names_board)) for p in hostile_names_board.rglob("*") if p.is_file()}
    assert all(name in BUILT or SAFE_ASSET.fullmatch(name) for name in names), names
    inspect_page(driver, hostile_names_board / "index.html", "Leaderboard", scripts=1)
    for name in ("leaderboard.md", "protocol.md"):
        text = (hostile_names_board / name).read_text()
        check_markdown_tables(text)
        inspect_page(driver, render_markdown(text, tmp_path, name), "Rendered", scripts=0)
    check_latex((hostile_names_board / "leaderboard.tex").read_text())
    frame = pd.read_csv(hostile_names_board / "leaderboard.csv", dtype=str, keep_default_na=False)
    assert frame["plugin"].str.endswith(SCRIPT).all() and frame["dataset"].str.contains("<svg").all()


# --- refused records -------------------------------------------------------------------------

def _nan(record):
    record["metrics"]["test_nll"]["nats"] = float("nan")


def _infinity(record):
    record["training"]["seconds"] = float("inf")


def _minus_infinity(record):
    record["metrics"]["sample_quality"]["fid"] = float("-inf")


def _string_seed(record):
    record["spec"]["seed"] = "0"


def _string_parameters(record):
    record["model"]["parameters"] = "many"


def _list_device(record):
    record["provenance"]["device_name"] = ["cpu", SCRIPT]


def _number_grid(record):
    record["samples_grid"] = 5


def _grid_outside(record):
    record["samples_grid"] = "samples/../../../etc/passwd.png"


def _other_key(record):
    record["key"] = record["key"].replace("seed0", "seed7")


def _hostile_key(record):
    record["key"] = "../../evil"


def _plugin_path(record):
    record["spec"]["plugin"] = "../../../tmp/x/evil"
    record["key"] = RunSpec(**record["spec"]).key


def _plugin_markup(record):
    record["spec"]["plugin"] = SCRIPT
    record["key"] = RunSpec(**record["spec"]).key


@pytest.mark.parametrize("change", [_nan, _infinity, _minus_infinity, _string_seed, _string_parameters, _list_device,
                                    _number_grid, _grid_outside, _other_key, _hostile_key, _plugin_path,
                                    _plugin_markup])
def test_bad_records_are_refused_with_one_line_and_nothing_is_written(runs, tmp_path, change):
    root = copy_runs(runs, tmp_path / "runs", "machine-a")
    path = root / f"machine-a/records/{BASELINE}--seed0.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))  # NaN and Infinity as Python's json writes them
    before = tree(tmp_path)
    result = build(root, tmp_path / "out")
    assert_one_line_error(result, path.name)
    assert tree(tmp_path) == before


def test_a_duplicate_key_and_an_overflowing_number_are_refused(runs, tmp_path):
    root = copy_runs(runs, tmp_path / "runs", "machine-a")
    path = root / f"machine-a/records/{BASELINE}--seed0.json"
    text = path.read_text()
    for bad in (text.replace('"status": "ok"', '"status": "ok", "status": "ok"'),
                re.sub(r'"seconds": [0-9.e+-]+', '"seconds": 1e999', text, count=1)):
        assert bad != text
        path.write_text(bad)
        assert_one_line_error(build(root, tmp_path / "out"), path.name)
        assert not (tmp_path / "out").exists()


# --- finding 1: asset names never leave --out ------------------------------------------------

def test_asset_paths_are_safe_names_inside_assets():
    for asset_id in ("../../../tmp/x/evil--toy--digits--unit", "/etc/evil", "..", ".hidden", "", "a\nb",
                     SCRIPT, "x" * 400, "ok--name--digits--unit"):
        for kind in ("samples", "curve"):
            path = asset_path(asset_id, kind)
            assert SAFE_ASSET.fullmatch(path) and len(Path(path).name) < 200, path
    assert asset_path("vae--vae--digits--unit", "curve") == "assets/vae--vae--digits--unit--curve.png"
    assert asset_path("a/b", "curve") != asset_path("a_b", "curve")  # sanitised ids still differ


def test_a_path_in_a_name_writes_nothing_outside_out(runs, tmp_path, monkeypatch):
    """A plugin named like a path, past the schema: the row's images go to assets/<safe name>."""
    root = copy_runs(runs, tmp_path / "runs", "machine-a")
    escape_to = Path("/tmp") / f"evalgen-hostile-{uuid.uuid4().hex}"
    found = []
    for path, record in records(root):
        if record["spec"]["plugin"] == "baselines" and record["spec"]["dataset"] == "digits":
            record["spec"]["plugin"] = "../../../../x/evil" if record["spec"]["seed"] != 1 else f"{escape_to}/evil"
            record["key"] = RunSpec(**record["spec"]).key
        found.append(Found(path, RunRecord.from_dict(record)))
    monkeypatch.setattr(build_module, "collect_records", lambda runs_dir, report: found)
    out = tmp_path / "a" / "b" / "out"  # ../../../../ from out/assets is tmp_path itself
    before = tree(tmp_path)
    build_leaderboard(root, out, report=lambda line: None)
    after = tree(tmp_path)
    assert {name for name in after if name not in before and not name.startswith("a/b/out")} == {"a", "a/b"}
    assets = [p.name for p in (out / "assets").iterdir()]
    assert any("evil" in name for name in assets), assets
    assert all(SAFE_ASSET.fullmatch(f"assets/{name}") for name in assets)
    assert not escape_to.exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("plugin", ["../../../tmp/x/evil", "/tmp/x/evil"])
def test_a_path_in_a_name_through_the_command_is_refused_or_kept_inside(runs, tmp_path, plugin):
    root = copy_runs(runs, tmp_path / "runs", "machine-a")
    path = root / f"machine-a/records/{BASELINE}--seed0.json"
    record = json.loads(path.read_text())
    record["spec"]["plugin"] = plugin  # the key is left as it was: only the spec lies
    path.write_text(json.dumps(record))
    out = tmp_path / "a" / "b" / "out"
    before = tree(tmp_path)
    result = build(root, out)
    after = tree(tmp_path)
    if result.exit_code != 0:
        assert_one_line_error(result, path.name)
        assert after == before
    else:
        assert all(name in before or name.startswith("a") for name in after)
        assert all(SAFE_ASSET.fullmatch(f"assets/{p.name}") for p in (out / "assets").iterdir())
    assert not Path("/tmp/x/evil--categorical--digits--unit--samples.png").exists()


# --- finding 2: the manifest; only evalgen's own files are replaced or removed ---------------

@pytest.fixture
def small_runs(runs, tmp_path) -> Path:
    """machine-a's runs: two digits rows and an eight-gaussians row, quick to build."""
    return copy_runs(runs, tmp_path / "runs", "machine-a")


def test_a_hand_written_index_html_is_refused_unless_force(small_runs, tmp_path):
    out = tmp_path / "board"
    out.mkdir()
    (out / "index.html").write_text("<p>my own page</p>")
    (out / "NOTES.md").write_text("notes")
    before = tree(tmp_path)
    result = build(small_runs, out)
    assert_one_line_error(result, str(out / "index.html"), "--force", "move it")
    assert tree(tmp_path) == before  # nothing written at all
    assert build(small_runs, out, "--force").exit_code == 0
    assert "my own page" not in (out / "index.html").read_text()
    assert (out / "NOTES.md").read_text() == "notes"
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest) == ["about", "files", "format"] and "index.html" in manifest["files"]
    assert all(hashlib.sha256((out / name).read_bytes()).hexdigest() == sha for name, sha in manifest["files"].items())


def test_notes_and_runs_beside_a_board_are_kept_and_stale_assets_removed(runs, tmp_path):
    board = tmp_path / "board"
    inputs = copy_runs(runs, board / "runs", "machine-a")  # the committed layout: records beside the board
    (board / "NOTES.md").write_text("hand-written")
    assert build(inputs, board).exit_code == 0
    curve = board / "assets" / "baselines--gaussian--eight-gaussians--unit--curve.png"
    assert curve.is_file()
    mine = board / "assets" / "my--samples.png"  # named like evalgen's, but not in the manifest
    mine.write_bytes(PNG_MAGIC)
    (inputs / "machine-a/records/baselines--gaussian--eight-gaussians--unit--seed0.json").unlink()
    runs_before = tree(board / "runs")
    result = build(inputs, board)
    assert result.exit_code == 0, result.output
    assert not curve.exists()  # the row is gone and the manifest says evalgen wrote it
    assert mine.read_bytes() == PNG_MAGIC and (board / "NOTES.md").read_text() == "hand-written"
    assert tree(board / "runs") == runs_before
    assert "assets/my--samples.png" not in json.loads((board / MANIFEST).read_text())["files"]


def test_a_changed_generated_file_is_refused_and_a_changed_stale_one_is_kept(small_runs, tmp_path):
    out = tmp_path / "board"
    assert build(small_runs, out).exit_code == 0
    (out / "leaderboard.md").write_text("edited by hand")
    before = tree(tmp_path)
    assert_one_line_error(build(small_runs, out), str(out / "leaderboard.md"), "--force")
    assert tree(tmp_path) == before
    assert build(small_runs, out, "--force").exit_code == 0
    curve = out / "assets" / "baselines--gaussian--eight-gaussians--unit--curve.png"
    curve.write_bytes(curve.read_bytes() + b"edited")
    (small_runs / "machine-a/records/baselines--gaussian--eight-gaussians--unit--seed0.json").unlink()
    result = build(small_runs, out)
    assert result.exit_code == 0 and f"kept {curve}" in result.output
    assert curve.exists()


def test_a_hostile_manifest_makes_evalgen_delete_nothing(small_runs, tmp_path):
    out = tmp_path / "board"
    assert build(small_runs, out).exit_code == 0
    outside = tmp_path / "outside.png"
    outside.write_bytes(PNG_MAGIC + b"precious")
    (out / "NOTES.md").write_text("notes")
    (out / "runs").mkdir()
    (out / "runs" / "data.json").write_text("{}")
    link = out / "assets" / "link--samples.png"
    link.symlink_to(outside)
    sha = hashlib.sha256(outside.read_bytes()).hexdigest()
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"].update({
        "../outside.png": sha, str(outside): sha, "assets/../../outside.png": sha, "assets/link--samples.png": sha,
        "NOTES.md": hashlib.sha256(b"notes").hexdigest(), "runs/data.json": hashlib.sha256(b"{}").hexdigest(),
        "assets/x.png": "not a hash", "index.html/../../outside.png": sha,
    })
    (out / MANIFEST).write_text(json.dumps(manifest))
    result = build(small_runs, out)
    assert result.exit_code == 0, result.output
    assert "ignored 8 entries" in result.output
    assert outside.read_bytes() == PNG_MAGIC + b"precious" and link.is_symlink()
    assert (out / "NOTES.md").exists() and (out / "runs" / "data.json").exists()
    assert not set(json.loads((out / MANIFEST).read_text())["files"]) & {"NOTES.md", "assets/link--samples.png"}


def test_a_manifest_or_assets_folder_that_is_a_link_is_refused(small_runs, tmp_path):
    out = tmp_path / "board"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "assets").symlink_to(elsewhere, target_is_directory=True)
    assert_one_line_error(build(small_runs, out), str(out / "assets"), "symbolic link")
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in out.iterdir()) == ["assets"]
    (out / "assets").unlink()
    target = tmp_path / "target.json"
    target.write_text("{}")
    (out / MANIFEST).symlink_to(target)
    assert_one_line_error(build(small_runs, out), str(out / MANIFEST), "--force")
    assert build(small_runs, out, "--force").exit_code == 0
    assert not (out / MANIFEST).is_symlink() and target.read_text() == "{}"


def test_an_interrupted_build_can_be_rerun(small_runs, tmp_path):
    """Files that already hold exactly the new bytes are not "in the way" (e.g. a build killed
    before it wrote its manifest)."""
    out = tmp_path / "board"
    assert build(small_runs, out).exit_code == 0
    (out / MANIFEST).unlink()
    assert build(small_runs, out).exit_code == 0


# --- finding 3: only the PNG evalgen run wrote is published ----------------------------------

GRID = f"{BASELINE}--seed0.png"


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="png")
    return buffer.getvalue()


def _link_to_secret(samples: Path, tmp: Path) -> None:
    (tmp / "secret").write_text("-----BEGIN PRIVATE KEY-----")
    (samples / GRID).unlink()
    (samples / GRID).symlink_to(tmp / "secret")


def _link_to_a_png(samples: Path, tmp: Path) -> None:
    shutil.copy(samples / GRID, tmp / "elsewhere.png")
    (samples / GRID).unlink()
    (samples / GRID).symlink_to(tmp / "elsewhere.png")


def _folder_link(samples: Path, tmp: Path) -> None:
    shutil.move(samples, tmp / "real-samples")
    samples.symlink_to(tmp / "real-samples", target_is_directory=True)


def _fifo(samples: Path, tmp: Path) -> None:
    (samples / GRID).unlink()
    os.mkfifo(samples / GRID)


def _folder(samples: Path, tmp: Path) -> None:
    (samples / GRID).unlink()
    (samples / GRID).mkdir()


def _too_big(samples: Path, tmp: Path) -> None:
    (samples / GRID).write_bytes((samples / GRID).read_bytes() + b"\0" * (9 * 2**20))


def _html(samples: Path, tmp: Path) -> None:
    (samples / GRID).write_text(f"<html>{SCRIPT}</html>")


def _corrupt(samples: Path, tmp: Path) -> None:
    good = (samples / GRID).read_bytes()
    (samples / GRID).write_bytes(good[:40] + b"garbage" * 10 + good[-12:])


def _trailing_data(samples: Path, tmp: Path) -> None:
    (samples / GRID).write_bytes((samples / GRID).read_bytes() + f"<html>{SCRIPT}</html>".encode())


def _wrong_size(samples: Path, tmp: Path) -> None:
    (samples / GRID).write_bytes(_png(10, 10))


@pytest.mark.parametrize("tamper,why", [
    (_link_to_secret, "symbolic link"), (_link_to_a_png, "symbolic link"), (_folder_link, "symbolic link"),
    (_fifo, "not a regular file"), (_folder, "not a regular file"), (_too_big, "MiB"), (_html, "PNG"),
    (_corrupt, "PNG"), (_trailing_data, "after the image"), (_wrong_size, "10x10 pixels"),
])
def test_a_bad_sample_grid_is_reported_and_the_board_still_built(small_runs, tmp_path, tamper, why):
    tamper(small_runs / "machine-a" / "samples", tmp_path)
    out = tmp_path / "board"
    result = build(small_runs, out)
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sample grid" in lines[0] and why in lines[0], lines
    assert f"{BASELINE}--seed0.json" in lines[0] and GRID in lines[0]
    assets = {p.name for p in (out / "assets").iterdir()}
    assert f"{BASELINE}--samples.png" not in assets and f"{BASELINE}--curve.png" in assets
    assert "secret" not in "".join(p.read_text(errors="replace") for p in out.glob("*.*"))
    assert (out / "index.html").is_file()


def test_a_grid_of_the_wrong_size_for_its_record_is_refused(small_runs, tmp_path):
    path = small_runs / f"machine-a/records/{BASELINE}--seed0.json"
    record = json.loads(path.read_text())
    record["metrics"]["sampling"]["num_samples"] = 3
    path.write_text(json.dumps(record))
    result = build(small_runs, tmp_path / "board")
    assert result.exit_code == 0 and "210x210 pixels where evalgen writes 80x28" in result.stderr


def test_grid_paths_outside_samples_are_refused(small_runs, tmp_path):
    path = small_runs / f"machine-a/records/{BASELINE}--seed0.json"
    record = json.loads(path.read_text())
    for grid in ("../../secret.png", "/etc/passwd", "samples/../../x.png", "samples/.hidden.png"):
        record["samples_grid"] = grid
        data, problem = sample_grid_problem(Found(path, RunRecord.from_dict(record)), small_runs)
        assert data is None and "not samples/<name>.png" in problem, grid
    record["samples_grid"] = f"samples/{GRID}"
    data, problem = sample_grid_problem(Found(path, RunRecord.from_dict(record)), small_runs)
    assert problem is None and data.startswith(PNG_MAGIC)


@pytest.mark.parametrize("shape,count", [((1, 8, 8), 64), ((1, 8, 8), 2000), ((3, 5, 7), 10), ((1, 28, 28), 1),
                                         ((1, 30, 30), 9), ((1, 7, 7), 8)])
def test_grid_size_is_the_size_of_the_grid_the_harness_writes(tmp_path, shape, count):
    path = save_sample_grid(torch.zeros(count, *shape), 2, tmp_path / "grid.png")
    assert Image.open(path).size == grid_size(shape, count)
    assert grid_size((1, 8), 64) is None and grid_size((1, 0, 8), 64) is None and grid_size(shape, 0) is None


# --- escaping units --------------------------------------------------------------------------

def test_markdown_escaping_keeps_ordinary_names_and_code_spans_fall_back():
    for plain in ("max_seconds", "x86_64", "Alpaydin & Kaynak", "IS ↑ [digits-classifier]", "vae:vae-conv (n=3)"):
        assert markdown_text(plain) == plain
    assert markdown_text("a\r\n\tb|c") == "a b\\|c"
    assert markdown_text("[x](javascript:y) _e_ &lt;") == "[x\\](javascript:y) \\_e\\_ &amp;lt;"
    assert markdown_code("evalgen run --plugin vae") == "`evalgen run --plugin vae`"
    for unsafe in ("a`b", "a|b", "a\nb", "a\\"):
        assert not markdown_code(unsafe).startswith("`")
