"""pluggy's markers for evalgen's hooks, at the bottom of the layers: the built-in modules that
register budgets, datasets and metrics mark their hooks with `hookimpl` without importing the
hook specifications (which import the types those hooks pass)."""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "evalgen"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
