"""Record text made safe for each output format.

Records come from other people's machines, so every string taken from one (names, option values,
device names, dataset sources, likelihood labels, commands) is *text* in every leaderboard file,
never markup: it cannot open a tag, a link, a code span or a LaTeX command, and it cannot split a
table row. Each format has one function, applied to whole cells:

- `markdown_text`: control characters (newlines too) become a space; ``< >`` become HTML entities
  and ``\\ ` * |`` get a backslash, always; ``&``, ``_`` and ``]`` only where a renderer could read
  them as markup (see `markdown_text`), so that ordinary names (``max_seconds``, ``x86_64``,
  ``Smith & Jones``, ``[digits-classifier]``) stay as they are. `markdown_code` makes a code span
  where that is safe and falls back to `markdown_text` where it is not. Cells evalgen builds from
  safe parts (image links, code spans) are marked `Markdown` and copied as they are.
- `html_text`: control characters become a space, then `html.escape` (quotes too: it is used in
  attributes).
- `latex_text`: control characters become a space (a newline in a tabular would end the row's
  paragraph), then every LaTeX special is escaped.
- `csv_text`: the csv module quotes; this only stops spreadsheets from running a text cell as a
  formula (a leading ``'``). Newlines stay: CSV quoting carries them.

Escaping changes only what a renderer would have treated as markup: the rendered text is the
record's text (with control characters as spaces).
"""

from __future__ import annotations

import html
import re

__all__ = [
    "LATEX_SPECIAL",
    "Markdown",
    "clean_text",
    "csv_text",
    "html_text",
    "latex_text",
    "markdown_code",
    "markdown_text",
]

#: C0 and C1 controls (newlines, tabs, NUL, escape...), Unicode line and paragraph separators and
#: the bidirectional overrides that can make a cell display in another order than it reads.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+")


def clean_text(text: object) -> str:
    """``text`` on one line: each run of control characters becomes one space."""
    return _CONTROL.sub(" ", str(text))


class Markdown(str):
    """Markdown that evalgen built from safe parts: tables copy it without escaping."""

    __slots__ = ()


_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MARKDOWN_SPECIAL = re.compile(
    r"[\\`*|<>]"  # a backslash (it would escape what follows), code, emphasis, a cell boundary, HTML
    r"|&(?=[A-Za-z0-9#])"  # what could start an entity (&lt; &#60;); a lone & is text
    r"|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"  # _ emphasises only where it does not join two words
    r"|\](?=\s*[(\[:])"  # [text](url), [text][ref]: a link needs ] followed by ( or [ (or : for a definition)
)


def _markdown_escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ENTITIES.get(char, "\\" + char)


def markdown_text(text: object) -> str:
    """Text that renders as itself in a Markdown table cell, heading or list item (GitHub's
    renderer and Python-Markdown alike), on one line.

    The context-dependent escapes look only inside the text: what evalgen puts around it (" | "
    between cells, a line end, ": ") can never complete a link or an entity, and no line of
    evalgen's Markdown starts with record text, so no record can define a link reference.
    """
    return _MARKDOWN_SPECIAL.sub(_markdown_escape, clean_text(text))


#: What a code span cannot hold: a backtick would end it, a pipe splits the table row in some
#: renderers even inside code, and a backslash before the closing backtick escapes it in others.
_NOT_IN_CODE = re.compile("[`|\\\\]")


def markdown_code(text: str) -> Markdown:
    """``text`` as a code span (commands); as escaped plain text where a code span would not be
    safe (a backtick, pipe, backslash or control character in it)."""
    if text and clean_text(text) == text and not _NOT_IN_CODE.search(text):
        return Markdown(f"`{text}`")
    return Markdown(markdown_text(text))


def html_text(text: object) -> str:
    """Text for an HTML element or a quoted attribute value."""
    return html.escape(clean_text(text), quote=True)


LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}", "±": r"$\pm$", "≤": r"$\leq$", "≈": r"$\approx$", "↑": r"$\uparrow$",
    "↓": r"$\downarrow$", "—": "---", "–": "--",
    "[": "{[}", "]": "{]}",  # a cell starting with [ would be read as the optional argument of \\
}
_LATEX = str.maketrans(LATEX_SPECIAL)


def latex_text(text: object) -> str:
    """Text safe in a LaTeX document: specials escaped, the table's symbols in math mode."""
    return clean_text(text).translate(_LATEX)


#: A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(text: str) -> str:
    """A text cell that a spreadsheet shows instead of evaluating (numbers are not passed here)."""
    return "'" + text if text.startswith(_FORMULA_START) else text
