"""Results of the conformance checks and their one-line rendering."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["passed", "failed", "skipped", "xfailed"]


class CheckFailed(Exception):
    """Raised inside a check: the plugin breaks the contract; the message says what to do."""


class CheckSkipped(Exception):
    """Raised inside a check: it cannot run for this model; the message says why."""


@dataclass(frozen=True)
class CheckResult:
    """One check of one model variant on one kind of data.

    Attributes:
        check: the check's name (see `evalgen.testing.CHECKS`).
        model: the model variant ("" for checks of the whole family).
        status: "passed", "failed" or "skipped"; "xfailed" for a failure the family declared in
            ``FamilyInfo.known_failures`` (an expected failure: not a failure of the report).
        message: for a failure, what is wrong and what the plugin should do; for a skip, why;
            for a pass, what was measured; for an expected failure, the declared reason and
            what failed.
        seconds: wall time of the check (shared work, such as training, counts once, in the
            first check that needs it).
        data: the data kind the model was checked on ("binary", "discrete", "continuous"; ""
            for checks of the whole family).
    """

    check: str
    model: str
    status: Status
    message: str
    seconds: float
    data: str = ""

    @property
    def label(self) -> str:
        return ":".join(part for part in (self.model, self.data, self.check) if part)


@dataclass
class CheckReport:
    """Every result of `evalgen.testing.check_plugin`; ``ok`` when none failed."""

    plugin: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def expected_failures(self) -> list[CheckResult]:
        """The failures the family declared in ``FamilyInfo.known_failures``."""
        return [r for r in self.results if r.status == "xfailed"]

    def summary(self) -> str:
        return summary_line(self.plugin, self.results)

    def __str__(self) -> str:
        return "\n".join([*(format_result(r) for r in self.results), self.summary()])


_WORD = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "xfailed": "XFAIL"}


def format_result(result: CheckResult, verbose: bool = False) -> str:
    """``PASS  planar      continuous  normalization   0.21s`` (+ the message for FAIL/SKIP/XFAIL)."""
    line = (f"{_WORD[result.status]:<5} {result.model or '(family)':<12} {result.data or '-':<10} "
            f"{result.check:<14} {result.seconds:6.2f}s")
    if result.message and (verbose or result.status != "passed"):
        line += f"  {result.message}"
    return line


def summary_line(plugin: str, results: list[CheckResult]) -> str:
    counts = Counter(r.status for r in results)
    seconds = sum(r.seconds for r in results)
    verdict = "FAILED" if counts["failed"] else "OK"
    expected = f", {counts['xfailed']} expected to fail" if counts["xfailed"] else ""
    return (f"{verdict}: plugin '{plugin}': {len(results)} checks, {counts['passed']} passed, "
            f"{counts['failed']} failed, {counts['skipped']} skipped{expected} in {seconds:.1f}s")
