"""The leaderboard as one static page: sortable tables (inline script, no network), each board's
interval and trade-off figures (`figures`), sample grids and learning curves (relative links into
assets/).

Every piece of text, in elements and in (always double-quoted) attributes alike, goes through
`html_text`: record text cannot open a tag or an attribute, and the page's one script is evalgen's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple

from evalgen.leaderboard.board import Board, Capability, Cell, Column, Row
from evalgen.leaderboard.curves import NO_TRACES, has_traces
from evalgen.leaderboard.escape import html_text
from evalgen.leaderboard.figures import INTERVALS, TRADEOFF, BoardFigure
from evalgen.leaderboard.formats import CAPABILITY_HEADERS, CAPABILITY_NOTE, GENERATED, legend, rank_note

__all__ = ["leaderboard_html"]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
td.num { text-align: right; white-space: nowrap; }
th { cursor: pointer; background: #f4f4f4; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
sup { color: #666; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; border: 1px solid #ddd; padding: 0.5em; }
figcaption { font-size: 0.8em; max-width: 420px; }
code { font-size: 0.85em; }
"""

# Click a header: sort by its data-sort values (numbers or text); empty values stay last.
# Columns where higher is better sort descending first. The sort is stable.
SCRIPT = """
"use strict";
function sortKey(cell, numeric) {
  const raw = cell.dataset.sort;
  if (raw === undefined || raw === "") return null;
  return numeric ? Number(raw) : raw;
}
function sortBy(th) {
  const body = th.closest("table").tBodies[0];
  const column = th.cellIndex;
  const numeric = th.dataset.type === "number";
  const first = th.dataset.better === "higher" ? "descending" : "ascending";
  const other = first === "ascending" ? "descending" : "ascending";
  const direction = th.getAttribute("aria-sort") === first ? other : first;
  for (const header of th.parentNode.cells) header.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", direction);
  const sign = direction === "ascending" ? 1 : -1;
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = sortKey(a.cells[column], numeric), y = sortKey(b.cells[column], numeric);
    if (x === null || y === null) return (x === null) - (y === null);
    return sign * (numeric ? x - y : (x < y ? -1 : x > y ? 1 : 0));
  });
  for (const row of rows) body.appendChild(row);
}
for (const th of document.querySelectorAll("table.sortable th")) {
  th.tabIndex = 0;
  th.addEventListener("click", () => sortBy(th));
  th.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(th); }
  });
}
"""


def _sort_value(value: object) -> str:
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def _header(column: Column) -> str:
    better = f' data-better="{column.better}"' if column.better else ""
    kind = "number" if column.numeric else "text"
    return f'<th scope="col" data-type="{kind}"{better}>{html_text(column.header)}</th>'


def _cell(cell: Cell, column: Column, row: Row) -> str:
    text = html_text(cell.text)
    rank = column.superscript(cell)
    if rank is not None:
        text += f"<sup>{rank}</sup>"
    attributes = f' data-sort="{html_text(_sort_value(cell.value))}"'
    if column.numeric:
        attributes += ' class="num"'
    if column.name == "model":
        attributes += f' title="{html_text(row.command)}"'
    return f"<td{attributes}>{text}</td>"


def _table(board: Board) -> str:
    head = "".join(_header(c) for c in board.columns)
    body = "\n".join("<tr>" + "".join(_cell(cell, col, row) for cell, col in zip(row.cells, board.columns)) + "</tr>"
                     for row in board.rows)
    return (f'<div class="scroll"><table class="sortable" id="table-{html_text(board.slug)}">\n'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>")


def _gallery(board: Board, assets: dict[str, dict[str, str]]) -> str:
    figures = []
    for row in board.rows:
        found = assets.get(row.asset_id, {})
        images = "".join(f'<img src="{html_text(found[kind])}" alt="{html_text(kind)} of {html_text(row.label)}">'
                         for kind in ("samples", "curve") if kind in found)
        untraced = "" if has_traces(row) else f" <i>({NO_TRACES})</i>"
        if images:
            figures.append(f"<figure>{images}<figcaption><b>{html_text(row.label)}</b>: "
                           f"<code>{html_text(row.command)}</code>{untraced}</figcaption></figure>")
    if not figures:
        return ""
    return ('<h3>Samples (lowest seed), validation NLL against training time, traced FID and modes against '
            'training compute</h3>\n<div class="gallery">\n' + "\n".join(figures) + "\n</div>")


#: A board's figure sections (`evalgen.leaderboard.figures`): heading and how to read them.
FIGURE_SECTIONS = (
    (INTERVALS, "Intervals",
     "Each ranked column: a dot at each model's value, a bar for its 95 % interval. Filled dot, solid bar: the "
     "mean over seeds and its Student-t interval; open dot, dashed bar: one seed, the run's own interval; open "
     "grey dot, no bar: one seed whose record has no interval. NLL markers: circle exact, downward "
     "triangle upper bound (≤), diamond estimate (≈)."),
    (TRADEOFF, "Likelihood against sample quality",
     "Test NLL against FID, one labelled point per model, with both 95 % intervals (as above). Models without a "
     "likelihood are shown on the FID axis alone, in the strip below."),
)


def _figures(figures: Sequence[BoardFigure]) -> str:
    """The board's figures, a section each (`FIGURE_SECTIONS`), after its table."""
    parts = []
    for section, heading, note in FIGURE_SECTIONS:
        images = "\n".join(f'<figure><img src="{html_text(f.path)}" alt="{html_text(f.alt)}">'
                           f"</figure>" for f in figures if f.section == section)
        if images:
            parts.append(f"<h3>{html_text(heading)}</h3>\n<p>{html_text(note)}</p>\n"
                         f'<div class="gallery">\n{images}\n</div>')
    return "\n".join(parts)


def _capability_row(capability: Capability) -> str:
    cells = "".join(f'<td data-sort="{text}">{text}</td>' for text in map(html_text, astuple(capability)))
    return f"<tr>{cells}</tr>"


def _capabilities(capabilities: list[Capability]) -> str:
    head = "".join(f'<th scope="col" data-type="text">{html_text(h)}</th>' for h in CAPABILITY_HEADERS)
    body = "\n".join(_capability_row(c) for c in capabilities)
    return (f'<table class="sortable" id="table-capabilities">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody>\n</table>")


def leaderboard_html(boards: list[Board], capabilities: list[Capability], assets: dict[str, dict[str, str]],
                     num_records: int, figures: Mapping[str, Sequence[BoardFigure]] | None = None) -> str:
    """The page. ``figures``: each board's figures by board slug (none without)."""
    figures = figures or {}
    items = "".join(f"<li>{html_text(line)}</li>" for line in legend())
    links = " · ".join(f'<a href="#{html_text(b.slug)}">{html_text(b.title)}</a>' for b in boards)
    sections = []
    for board in boards:
        sections.append(f'<section id="{html_text(board.slug)}">\n<h2>{html_text(board.title)}</h2>\n{_table(board)}\n'
                        f"<p>{html_text(rank_note(board))}</p>\n{_figures(figures.get(board.slug, ()))}\n"
                        f"{_gallery(board, assets)}\n</section>")
    return f"""<!DOCTYPE html>
<!-- {html_text(GENERATED)} -->
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Leaderboard</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Leaderboard</h1>
<p>{num_records} run records. Click a column header to sort; hover a model for the command that reproduces it.
Also: <a href="leaderboard.md">Markdown</a>, <a href="leaderboard.csv">CSV</a>, <a href="leaderboard.tex">LaTeX</a>,
<a href="protocol.md">protocol</a>.</p>
<ul>{items}</ul>
<nav>{links} · <a href="#capabilities">Capabilities</a></nav>
{chr(10).join(sections)}
<section id="capabilities">
<h2>Capabilities</h2>
<p>{html_text(CAPABILITY_NOTE)}</p>
{_capabilities(capabilities)}
</section>
<script>{SCRIPT}</script>
</body>
</html>
"""
