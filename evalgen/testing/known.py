"""A family's own known failures (``FamilyInfo.known_failures``), as scikit-learn's ``_xfail_checks``.

A key is a check name (every model), ``"model:check"`` or ``"model:data:check"`` (the label a
report prints); the value says why. A declared check that fails is reported as an expected
failure ("xfailed", with the reason); one that passes is a failure telling the author to remove
the declaration, so that the list cannot outlive the bugs it excuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from evalgen.errors import EvalgenError, unknown_name
from evalgen.types import DataKind, FamilyInfo

__all__ = ["known_reason", "validate_known_failures"]

WHERE = "FamilyInfo.known_failures"


def validate_known_failures(family: FamilyInfo, check_names: Sequence[str]) -> dict[str, str]:
    """The family's declarations, checked: every key names a check (and a model and data kind of
    the family) and every reason is a non-empty string.

    :raises EvalgenError: naming the bad key, with a "did you mean" among the valid names.
    """
    declared = family.known_failures
    if not isinstance(declared, Mapping):
        raise EvalgenError(f"plugin '{family.name}': {WHERE} must be a dict of check name -> reason, "
                           f"got {type(declared).__name__}")
    models = [m.name for m in family.models]
    kinds = [k.value for k in DataKind]
    found: dict[str, str] = {}
    for key, reason in declared.items():
        where = f"plugin '{family.name}': {WHERE}"
        if not isinstance(key, str) or not isinstance(reason, str) or not reason.strip():
            raise EvalgenError(f"{where}: {key!r} -> {reason!r}: give each check name a reason (a non-empty str)")
        parts = key.split(":")
        if len(parts) > 3:
            raise EvalgenError(f"{where}: {key!r} is not 'check', 'model:check' or 'model:data:check'")
        if parts[-1] not in check_names:
            raise _unknown(where, "check", parts[-1], check_names)
        if len(parts) >= 2 and parts[0] not in models:
            raise _unknown(where, "model", parts[0], models)
        if len(parts) == 3 and parts[1] not in kinds:
            raise _unknown(where, "data kind", parts[1], kinds)
        found[key] = reason
    return found


def _unknown(where: str, what: str, name: str, known: Sequence[str]) -> EvalgenError:
    return EvalgenError(f"{where}: {unknown_name(what, name, known)}")


def known_reason(known: Mapping[str, str], model: str, data: str, check: str) -> str | None:
    """The declared reason for this (model, data kind, check), the most specific key first."""
    for key in (f"{model}:{data}:{check}", f"{model}:{check}", check):
        if key in known:
            return known[key]
    return None
