"""The progress display of a sweep: a line per event (a run started, ended, failed) with the
sweep's counts and elapsed time, written through the ``report`` callback (stderr in the CLI)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Progress"]


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class Progress:
    """Counts of a sweep's runs: done (including reused), running, failed, of ``total``."""

    total: int
    report: Callable[[str], None]
    done: int = 0
    running: int = 0
    failed: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def counts(self) -> str:
        pending = self.total - self.done - self.running - self.failed
        return (f"[{self.done}/{self.total} done, {self.running} running, {self.failed} failed, "
                f"{pending} pending, {_clock(time.monotonic() - self.started_at)}]")

    def say(self, line: str) -> None:
        self.report(f"{self.counts()} {line}")

    def started(self, key: str, where: str = "") -> None:
        self.running += 1
        self.say(f"started {key}{f' ({where})' if where else ''}")

    def finished(self, line: str, was_running: bool = True) -> None:
        self.running -= was_running
        self.done += 1
        self.say(line)

    def failure(self, key: str, reason: str, was_running: bool = True) -> None:
        self.running -= was_running
        self.failed += 1
        self.say(f"failed {key}: {reason}")
