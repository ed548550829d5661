"""`RunSpec`, the identity of a result, where the harness has always exported it (it lives in
`evalgen.runspec` so that `evalgen.records` can check a record's key without importing the
harness)."""

from evalgen.runspec import RunSpec

__all__ = ["RunSpec"]
