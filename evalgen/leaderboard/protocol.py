"""protocol.md: what the numbers of a leaderboard were measured on, with what, and how to get
every row again.

Everything taken from records is escaped (`evalgen.leaderboard.escape`): table cells by
`markdown_table`, list items and headings with `markdown_text`, commands as code spans only where
a code span is safe (`markdown_code`).
"""

from __future__ import annotations

import importlib.metadata
from collections import Counter
from collections.abc import Callable
from typing import Any

from evalgen.harness.flops import FLOP_CONVENTION
from evalgen.leaderboard.board import Board
from evalgen.leaderboard.collect import Found
from evalgen.leaderboard.escape import clean_text, markdown_code, markdown_text
from evalgen.leaderboard.formats import GENERATED, markdown_table
from evalgen.record_types import TRAINED, RunRecord

__all__ = ["BUDGET_FIELDS", "PLOTTED_WITH", "protocol_markdown"]

#: Budget fields in the order `evalgen budgets` shows them; others follow, sorted.
BUDGET_FIELDS = ("name", "target", "max_flops", "max_steps", "max_examples", "clock_cap_seconds", "batch_size",
                 "eval_every", "patience", "num_samples", "importance_samples", "valid_importance_samples",
                 "outlier_examples", "legacy", "summary")
#: The plots' renderer: PNG bytes are only reproducible with the same version.
PLOTTED_WITH = f"matplotlib {importlib.metadata.version('matplotlib')}"
VERSIONS = (("evalgen", "evalgen_version"), ("git commit", "git_commit"), ("torch", "torch_version"),
            ("CUDA", "cuda_version"), ("python", "python_version"))


def _text(value: Any) -> str:
    return "—" if value is None else str(value)


def _first_of_each(found: list[Found], name: Callable[[RunRecord], str]) -> list[RunRecord]:
    firsts: dict[str, RunRecord] = {}
    for item in found:
        firsts.setdefault(name(item.record), item.record)
    return [firsts[key] for key in sorted(firsts)]


def _datasets(found: list[Found]) -> str:
    rows = []
    for record in _first_of_each(found, lambda r: r.dataset.name):
        data = record.dataset
        rows.append([data.name, data.kind, "×".join(map(str, data.shape)), _text(data.levels),
                     " / ".join(f"{n:,}" for n in data.sizes), _text(data.checksum), data.source])
    return markdown_table(["dataset", "kind", "shape", "levels", "train / valid / test", "sha256 of the data",
                           "source"], rows, [False, False, False, True, True, False, False])


def _budgets(found: list[Found]) -> str:
    budgets = [r.training.budget.to_dict() for r in _first_of_each(found, lambda r: r.spec.budget)]
    extra = sorted({k for b in budgets for k in b} - set(BUDGET_FIELDS))
    names = [f for f in BUDGET_FIELDS if any(f in b for b in budgets)] + extra
    return markdown_table(names, [[_text(b.get(f)) for f in names] for b in budgets],
                          [f not in ("name", "target", "summary") for f in names])


def _counted(values: list[str]) -> str:
    return "; ".join(f"{value} ({n} record{'s' if n > 1 else ''})" for value, n in sorted(Counter(values).items()))


def _hardware(found: list[Found]) -> str:
    pairs = Counter((f.record.provenance.device_name, f.record.provenance.platform) for f in found)
    return markdown_table(["device", "platform", "records"],
                          [[device, platform, str(n)] for (device, platform), n in sorted(pairs.items())],
                          [False, False, True])


def _versions(found: list[Found]) -> str:
    records = [f.record for f in found]
    lines = [f"- {title}: {markdown_text(_counted([_text(getattr(r.provenance, key)) for r in records]))}"
             for title, key in VERSIONS]
    plugins = sorted({r.spec.plugin for r in records})
    lines += [f"- plugin {markdown_text(name)}: " + markdown_text(
              _counted([_text(r.model.plugin_version) or "—" for r in records if r.spec.plugin == name]))
              for name in plugins]
    return "\n".join(lines)


def _seeds(seeds: tuple[int, ...]) -> str:
    text = ", ".join(map(str, seeds))
    if seeds != tuple(range(len(seeds))):
        text += f" (the command runs seeds 0 to {max(seeds)})"
    return text


def _reproduce(board: Board) -> str:
    rows = [[row.label, _seeds(row.seeds), markdown_code(row.command)] for row in board.rows]
    return markdown_table(["model", "seeds", "command"], rows, [False, False, False])


def _origin_row(record: RunRecord) -> list[str]:
    origin = record.origin
    if origin.samples is not None:
        what = f"{origin.samples.count} samples from {origin.samples.file}, SHA-256 {origin.samples.sha256}"
    elif origin.reevaluation is not None:
        again = origin.reevaluation
        what = (f"{', '.join(again.settings) or 'the original settings'}; of {again.of}, checkpoint SHA-256 "
                f"{again.checkpoint_sha256}")
    else:
        what = f"weights SHA-256 {_text(record.provenance.weights_sha256)}"
    return [record.key, origin.kind, what]


def _origins(found: list[Found]) -> str:
    """The records not trained here: what they were made from, with the files' SHA-256."""
    rows = [_origin_row(f.record) for f in found if f.record.origin.kind != TRAINED]
    if not rows:
        return "Every record is of a model evalgen trained under its budget."
    return ("Every other record is of a model evalgen trained under its budget.\n\n"
            + markdown_table(["record", "origin", "made from"], rows, [False, False, False]))


RANKING_PROTOCOL = (
    "Each number is the mean over a row's seeds, with its sample standard deviation and n; "
    "`leaderboard.csv` adds the 95 % confidence interval of the mean (Student's t with n - 1 degrees "
    "of freedom, `scipy.stats.t`; empty for one seed). A row's rank in a column is 1 + the number of "
    "rows significantly better: Welch's unequal-variance t-test on each pair's seeds "
    "(`scipy.stats.ttest_ind_from_stats`), Holm's step-down correction over the column's tested pairs, "
    "family-wise level 5 %. Rows the noise cannot order share a rank. A one-seed row has no spread over "
    "seeds: where its record carries the run's own 95 % interval (sample metrics over R independent "
    "sample draws, Student's t with R - 1 degrees of freedom; test NLL from its standard error over test "
    "examples, with the AIS log Z error added where there is one; AUROC from a seeded percentile "
    "bootstrap) it is tested with that standard error, which measures evaluation noise only, not the "
    "training seed's; without one it is ordered by value. Sample metrics are the mean over the run's R "
    "draws; FID∞ is the mean over the draws of the intercept of a least-squares line of FID against 1/N "
    "at five sample counts from N/5 to N (Chong & Forsyth 2020), with the draws' Student-t interval. "
    "An NLL bound (≤) is ranked by the bound, which is "
    "pessimistic for that model; an estimate (≈) by the estimate.")


def protocol_markdown(found: list[Found], boards: list[Board], runs_relative: str) -> str:
    """The protocol of the leaderboard built from ``found``; ``runs_relative``: the runs folder
    as seen from the output folder, for the command that regenerates it."""
    runs_relative = clean_text(runs_relative)  # it ends an indented code block: one line
    parts = [
        "# Protocol", f"<!-- {GENERATED} -->",
        (f"How the numbers of this leaderboard were obtained, from {len(found)} run records. Regenerate "
         f"every file of this folder, byte for byte (the PNGs with the same matplotlib version: "
         f"{PLOTTED_WITH}), by running this in it:\n\n    evalgen leaderboard {runs_relative} --out ."),
        "## Datasets", "Splits are fixed; the checksum covers the stored values.", _datasets(found),
        "## Budgets", ("Training stops at the first limit reached: counted training FLOPs (`max_flops`), steps "
                       "or examples; the clock cap is a safety net, and a run it stopped is not ranked. Evaluation "
                       f"is not charged to the budget. FLOPs: {FLOP_CONVENTION}."), _budgets(found),
        "## Ranks and intervals", RANKING_PROTOCOL,
        "## Hardware", _hardware(found),
        "## Versions", _versions(found),
        "## Records not trained here", _origins(found),
        "## Reproducing each row",
        ("Each command trains and evaluates that row's seeds into `evalgen-runs/` (`--out` to change); a "
         "re-evaluated row's then evaluates them again, and an external-samples row's scores the submitted file."),
    ]
    for board in boards:
        parts += [f"### {markdown_text(board.title)}", _reproduce(board)]
    return "\n\n".join(parts) + "\n"
