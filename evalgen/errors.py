"""The one user-facing error class, and helpers that make its messages useful."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EvalgenError(Exception):
    """An error the user can act on; the CLI prints it as one line and exits non-zero.

    Subclasses only say where the problem comes from; the message must say what to do.
    """


class PluginContractError(EvalgenError):
    """A plugin's hook returned something that breaks the documented contract."""


class DataUnavailableError(EvalgenError):
    """A dataset's files are missing and cannot be downloaded."""


class TrainingDiverged(EvalgenError):
    """Raised by a plugin's ``evalgen_train_step`` when training has failed beyond repair (e.g.
    a discriminator that has won completely for a sustained period).

    The harness ends the run with status ``diverged``, records the message and the step, writes
    the record and goes on with the sweep; it is not a failure of the command. The message says
    what was seen, e.g. "discriminator separated real from generated examples in every batch of
    the last 2000 steps".
    """


def unknown_name(what: str, name: str, known: Iterable[str]) -> EvalgenError:
    """Build an "unknown X 'name'" error with a "did you mean" hint when one is close."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    listing = ", ".join(known) if known else "none"
    return EvalgenError(f"unknown {what} '{name}'{hint} (known: {listing})")
