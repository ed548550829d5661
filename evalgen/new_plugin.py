"""``evalgen new-plugin NAME``: write a ready-to-install plugin package from `evalgen.template`.

The package holds a small but real model family (mixtures of independent-dimension models with
an exact likelihood), its ``pyproject.toml`` with the ``evalgen`` entry point, a README and a
pytest file that runs the conformance kit (`evalgen.testing`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import keyword
import re
from pathlib import Path
from string import Template

import click

from evalgen.cli_common import user_errors
from evalgen.errors import EvalgenError
from evalgen.registry import is_valid_name

#: A family name: lowercase letters, digits and underscores, starting with a letter.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")

#: Template file (in ``evalgen/template``) -> its path in the new package; ``{package}`` is
#: replaced by the import package's name.
TEMPLATE_FILES: dict[str, str] = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "{package}/__init__.py",
    "models.py.tmpl": "{package}/models.py",
    "test_conformance.py.tmpl": "tests/test_conformance.py",
}


def validate_name(name: str) -> None:
    """Raise EvalgenError unless ``name`` can be a family, an entry point and part of a module name."""
    if not NAME_PATTERN.fullmatch(name) or keyword.iskeyword(name) or not is_valid_name(name):
        raise EvalgenError(
            f"plugin name '{name}' is not valid: use lowercase letters, digits and underscores, "
            "starting with a letter, at most 40 characters (e.g. 'myfamily')")
    installed = {ep.name for ep in importlib.metadata.entry_points(group="evalgen")}
    if name in installed:
        raise EvalgenError(f"a plugin named '{name}' is already installed (see evalgen plugins); choose another name")
    if importlib.util.find_spec(package_name(name)) is not None:
        raise EvalgenError(f"a module named '{package_name(name)}' is already importable; choose another name")


def package_name(name: str) -> str:
    """The import package of family ``name``: ``evalgen_<name>`` (never shadows another module)."""
    return f"evalgen_{name}"


def default_target(name: str) -> Path:
    return Path(f"evalgen-{name}")


def render(name: str) -> dict[str, str]:
    """The new package's files, relative path -> text (nothing is written)."""
    from evalgen.version import __version__

    values = {"name": name, "package": package_name(name), "distribution": f"evalgen-{name}",
              "evalgen_version": __version__}
    root = importlib.resources.files("evalgen.template")
    files = {}
    for template, target in TEMPLATE_FILES.items():
        text = Template(root.joinpath(template).read_text(encoding="utf-8")).substitute(values)
        files[target.format(package=values["package"])] = text
    return files


def _check_target(target: Path) -> None:
    if target.is_dir() and any(target.iterdir()):
        raise EvalgenError(f"{target} already exists and is not empty; nothing was written (choose another --dir)")
    if target.exists() and not target.is_dir():
        raise EvalgenError(f"{target} exists and is not a folder; nothing was written (choose another --dir)")


def write_plugin(name: str, target: Path | None = None) -> Path:
    """Write the package of family ``name`` into ``target`` (default ``./evalgen-<name>``).

    ``target`` must not exist or be an empty folder; nothing is overwritten.
    :return: the folder written.
    """
    validate_name(name)
    target = default_target(name) if target is None else target
    _check_target(target)
    files = render(name)  # before anything is written: a template error leaves no half package
    try:
        for relative, text in files.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise EvalgenError(f"cannot write the plugin package to {target}: {exc}") from exc
    return target


@click.command("new-plugin")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="Folder to write the package to (default: ./evalgen-NAME); must be new or empty.")
def new_plugin_command(name: str, directory: Path | None) -> None:
    """Write a ready-to-install plugin package for a new model family NAME."""

    target = user_errors(write_plugin)(name, directory)
    click.echo(f"wrote {target}/ (family '{name}', package {package_name(name)})")
    click.echo(f"next: pip install -e {target} && evalgen check {name} && "
               f"evalgen run --plugin {name} --budget smoke")
