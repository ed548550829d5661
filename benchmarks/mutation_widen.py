"""Widen mutmut's map of which tests reach which function to whole test modules.

mutmut 3 credits a function to the test during whose setup or call it ran. evalgen's costly
results (a trained run, a built leaderboard) are module-scoped fixtures: they run once, in the
first test's setup, and every later test of the module reads them. Without widening, a mutant of
the leaderboard's ranking is tried only against the first test, which may not look at ranks, and
"survives". Run between mutmut's stats phase and its mutants (docs/mutation.md):

    python benchmarks/mutation_widen.py mutants/mutmut-stats.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def widen(stats: dict) -> dict:
    by_module: dict[str, set[str]] = defaultdict(set)
    for test in stats["duration_by_test"]:
        by_module[test.split("::", 1)[0]].add(test)
    tests = stats["tests_by_mangled_function_name"]
    for function, found in tests.items():
        modules = {test.split("::", 1)[0] for test in found}
        tests[function] = sorted(set(found).union(*(by_module[m] for m in modules)))
    return stats


def main(path: str) -> None:
    file = Path(path)
    stats = widen(json.loads(file.read_text()))
    file.write_text(json.dumps(stats))
    counts = [len(v) for v in stats["tests_by_mangled_function_name"].values()]
    print(f"{len(counts)} functions, {sum(counts)} (function, test) pairs after widening to modules")


if __name__ == "__main__":
    main(sys.argv[1])
