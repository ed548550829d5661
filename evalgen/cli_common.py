"""What every evalgen command shares: one-line errors (`user_errors`), the folder parameter
type (`Folder`) and ``-o key=value`` parsing (`parse_options`). The subcommands import it; it
imports no command, so the imports run one way (cli -> subcommands -> cli_common)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from evalgen.errors import EvalgenError

__all__ = ["DEBUG_ENV", "Folder", "debug", "parse_options", "user_errors"]


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


DEBUG_ENV = "EVALGEN_DEBUG"


def debug() -> bool:
    return os.environ.get(DEBUG_ENV) == "1"


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn evalgen's errors (and unexpected ones) into one-line click errors."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except EvalgenError as exc:
            if debug():
                raise
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted; finished records are kept, rerun to continue") from None
        except Exception as exc:
            if debug():
                raise
            raise click.ClickException(
                f"internal error: {type(exc).__name__}: {exc} (rerun with {DEBUG_ENV}=1 for the traceback)"
            ) from None

    return wrapper




def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EvalgenError(f"plugin option '{pair}' should look like key=value")
        options[key] = parse_value(value)
    return options


def parse_value(value: str) -> Any:
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return value
