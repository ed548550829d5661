"""Click parameter types shared by evalgen's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["Folder"]


class Folder(click.Path):
    """A folder argument as a Path; an empty string is refused (``Path("")`` would silently be the
    current folder)."""

    name = "folder"

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            option = param.opts[-1] if param is not None and param.opts else "the folder"
            # One line like every other bad input, not click's usage block.
            raise click.ClickException(f"{option} is empty; give a folder, e.g. evalgen-runs (. for the current one)")
        return super().convert(value, param, ctx)
