"""Plugin options: what a model declares (`evalgen.types.Option`) against what a user gives
(``-o key=value``).

Everything here runs before any data is loaded or any model is built: `evalgen run` (through
`evalgen.planning.plan_specs`), `evalgen check` and the harness resolve options with it, so a
typo fails in a second with one line and a "did you mean", and a run's identity (its
`RunSpec.config`, hence its key and its row label) holds only the options that differ from the
defaults. Hooks receive the *resolved* options: every declared option, defaults filled in.

A model that declares no options (``ModelSpec.options`` None and no ``FamilyInfo.options``, as
in plugins written before options were declared) gets the given values unchecked, with one
`OptionWarning` per model.
"""

from __future__ import annotations

import difflib
import math
import textwrap
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from evalgen.errors import EvalgenError
from evalgen.types import FamilyInfo, ModelSpec, Option

__all__ = [
    "OptionWarning",
    "declared_options",
    "describe_range",
    "format_options",
    "resolve_for_models",
    "resolve_options",
    "resolved_options",
]

#: How each option type is named in messages.
_EXPECTS = {int: "an integer (int)", float: "a number (float)", bool: "true or false (bool)", str: "a string (str)"}
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")


class OptionWarning(UserWarning):
    """A ``-o`` value that evalgen could not check (the model declares no options) or that does
    not apply to one of the models of a sweep."""


def declared_options(family: FamilyInfo, model_spec: ModelSpec) -> tuple[Option, ...] | None:
    """The options ``model_spec`` takes: its family's, then its own (an option of the same name
    replaces the family's in place). None when neither declares any: the model is undeclared."""
    own = model_spec.options
    if own is None and not family.options:
        return None
    merged = {option.name: option for option in family.options}
    merged.update((option.name, option) for option in own or ())
    return tuple(merged.values())


def _unknown(key: str, label: str, known: Iterable[str]) -> EvalgenError:
    known = sorted(set(known))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    if close:
        return EvalgenError(f"unknown option '{key}' of {label}; did you mean '{close[0]}'?")
    if not known:
        return EvalgenError(f"unknown option '{key}' of {label}: it takes no options")
    return EvalgenError(f"unknown option '{key}' of {label} (known: {', '.join(known)})")


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _coerce(option: Option, value: Any) -> Any:
    """``value`` as a value of ``option``'s type, or None when it is not one."""
    if option.type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in (*_TRUE, *_FALSE):
            return value.lower() in _TRUE
        return None
    if isinstance(value, bool):
        return None
    if option.type is int:
        if isinstance(value, int):
            return value
        return int(value) if isinstance(value, float) and value.is_integer() else None
    if option.type is float:
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    return value if isinstance(value, str) else None


def describe_range(option: Option) -> str:
    """The allowed values of ``option`` in words: "0 to 1", "at least 1", "mlp or conv", ""."""
    if option.choices is not None:
        shown = [_show(c) for c in option.choices]
        return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
    low, high = option.minimum, option.maximum
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    if low is not None:
        return f"at least {low:g}"
    return f"at most {high:g}" if high is not None else ""


def _check(label: str, option: Option, value: Any) -> Any:
    """``value`` converted to ``option``'s type and checked against its range and choices."""
    coerced = _coerce(option, value)
    where = f"option '{option.name}' of {label}"
    if coerced is None:
        raise EvalgenError(f"{where} expects {_EXPECTS[option.type]}, got {_show(value)}")
    outside = ((option.minimum is not None and coerced < option.minimum)
               or (option.maximum is not None and coerced > option.maximum))
    if outside or (option.choices is not None and coerced not in option.choices):
        raise EvalgenError(f"{where} must be {describe_range(option)}, got {_show(value)}")
    return coerced


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def resolve_options(label: str, declared: tuple[Option, ...] | None,
                    given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check ``given`` (``-o`` values, as `evalgen.cli_common.parse_value` makes them) against
    the ``declared`` options of the model ``label`` ("flows:maf").

    Returns ``(canonical, resolved)``: ``canonical`` holds the given options that differ from
    their defaults, converted to their types (``-o lr=<default>`` is the same run as no option);
    ``resolved`` every declared option, defaults filled in and overridden by the given values.
    A given value of None means the default. ``declared`` None (undeclared): ``given`` is
    returned unchanged as both.

    :raises EvalgenError: an unknown key (with "did you mean"), a value of the wrong type, or
        one outside the option's range or choices, in one line.
    """
    if declared is None:
        return dict(given), dict(given)
    by_name = {option.name: option for option in declared}
    canonical: dict[str, Any] = {}
    for key, value in given.items():
        if key not in by_name:
            raise _unknown(key, label, by_name)
        if value is None:
            continue
        coerced = _check(label, by_name[key], value)
        if not _same(coerced, by_name[key].default):
            canonical[key] = coerced
    resolved = {name: canonical.get(name, option.default) for name, option in by_name.items()}
    return canonical, resolved


def resolve_for_models(plugin: str, declared: Mapping[str, tuple[Option, ...] | None],
                       given: Mapping[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """`resolve_options` for every model of a sweep (model name -> its declared options): a key
    that no model takes is an error; one that only some take reaches those, and each of the
    others is told with an `OptionWarning` that it runs without it. An undeclared model gets
    ``given`` unchecked, with an `OptionWarning`."""
    taken = {name: {o.name for o in options} for name, options in declared.items() if options is not None}
    undeclared = [name for name, options in declared.items() if options is None]
    for key in given:
        if not undeclared and not any(key in names for names in taken.values()):
            label = ", ".join(f"{plugin}:{name}" for name in declared)
            raise _unknown(key, label, set().union(*taken.values()))
    results = {}
    for name, options in declared.items():
        if options is None:
            if given:
                warnings.warn(f"plugin '{plugin}' declares no options for model '{name}'; -o values are "
                              f"passed to it unchecked", OptionWarning, stacklevel=2)
            results[name] = (dict(given), dict(given))
            continue
        skipped = [key for key in given if key not in taken[name]]
        if skipped:
            one = len(skipped) == 1
            warnings.warn(f"{plugin}:{name} takes no option{'' if one else 's'} {', '.join(map(repr, skipped))}; "
                          f"it runs without {'it' if one else 'them'}", OptionWarning, stacklevel=2)
        results[name] = resolve_options(f"{plugin}:{name}", options,
                                        {k: v for k, v in given.items() if k in taken[name]})
    return results


def resolved_options(family: FamilyInfo, model_name: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The options the hooks of ``model_name`` get for ``given`` (default: none given), as the
    harness passes them: for calling a family's hooks directly, e.g. in a plugin's own tests.

    :raises EvalgenError: as `resolve_options`.
    """
    spec = family.model(model_name)
    return resolve_options(f"{family.name}:{model_name}", declared_options(family, spec), given or {})[1]


def _plain(value: Any) -> str:
    """A value as typed after ``-o name=``: ``conv``, ``true``, ``0.001``; None as ``None``."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def format_options(options: tuple[Option, ...] | None, width: int | None = None, indent: str = "    ") -> list[str]:
    """Lines listing ``options`` (name, type, default, allowed values, help) for a terminal of
    ``width`` columns (None: each on one line); where the columns leave the help too little
    room, the help goes on the lines below its option."""
    if options is None:
        return [f"{indent}(options not declared: -o values are passed to the plugin unchecked)"]
    if not options:
        return [f"{indent}(no options)"]
    rows = [(o.name, o.type.__name__, _plain(o.default),
             "|".join(map(_plain, o.choices)) if o.choices is not None else describe_range(o), o.help)
            for o in options]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    heads = [indent + "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " for row in rows]
    below = width is not None and len(heads[0]) + 30 > width
    lines = []
    for head, row in zip(heads, rows):
        if width is None:
            lines.append(head + row[4])
        elif below:
            lines.append(head.rstrip())
            lines.extend(textwrap.wrap(row[4], width, initial_indent=indent + "  ", subsequent_indent=indent + "  "))
        else:
            lines.extend(textwrap.wrap(row[4], width, initial_indent=head, subsequent_indent=" " * len(head)))
    return lines
