"""Load invariance: the same `evalgen run` on an idle machine and beside CPU-burning processes
must give the same record apart from timings and provenance (budgets count training, not
seconds). For each model: one run idle, then the same command beside busy loops (one per core);
prints steps, what stopped training, both wall times and whether the records match (else the
first field that differs). It always exits 0: it is a benchmark, not a test
(`tests/test_budgets.py` holds the test, on one model at `smoke`).

    EVALGEN_DATA_DIR=../shared/data python benchmarks/load_invariance.py [--budget quick]
        [--dataset digits] [--model plugin:model ...]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evalgen.plugins import load_plugins
from evalgen.testing.reproducibility import without_timings

BINARY_ONLY = {"ebm"}  # families whose models take binary data only: run on the binarized twin
def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _first_difference(a, b, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := _first_difference(x, y, f"{path}[{i}]"))), None)
    return None if a == b else f"{path}: {a!r} != {b!r}"


def _run(plugin: str, model: str, dataset: str, budget: str, out: Path) -> tuple[dict | None, float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "evalgen", "run", "--plugin", plugin, "--model", model,
                             "--dataset", dataset, "--budget", budget, "--no-baseline", "--out", str(out)],
                            capture_output=True, text=True)
    seconds = time.perf_counter() - started
    records = sorted((out / "records").glob("*.json")) if (out / "records").is_dir() else []
    if result.returncode != 0 or not records:
        return None, seconds, (result.stderr.strip().splitlines() or ["no record"])[-1]
    return json.loads(records[0].read_text()), seconds, ""


def _loaded(burners_count: int, *run_args) -> tuple[dict | None, float, str]:
    """`_run` beside ``burners_count`` busy loops."""
    burners = [multiprocessing.Process(target=_burn, args=(3600,)) for _ in range(burners_count)]
    for burner in burners:
        burner.start()
    try:
        return _run(*run_args)
    finally:
        for burner in burners:
            burner.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", action="append", help="plugin:model (repeatable; default all bundled)")
    parser.add_argument("--burners", type=int, default=multiprocessing.cpu_count(),
                        help="busy loops beside the loaded run (default one per core: more oversubscribes "
                             "OpenMP so badly that a 40 s run takes over 10 minutes)")
    args = parser.parse_args(argv)
    plugins = load_plugins()
    wanted = args.model or [f"{p}:{m.name}" for p in sorted(plugins.families) for m in plugins.families[p].models]
    same = 0
    with tempfile.TemporaryDirectory() as tmp:
        for label in wanted:
            plugin, _, model = label.partition(":")
            dataset = f"binarized-{args.dataset}" if plugin in BINARY_ONLY else args.dataset
            base = Path(tmp) / label.replace(":", "--")
            idle, idle_s, error = _run(plugin, model, dataset, args.budget, base / "idle")
            if idle is None:
                print(f"{label:24} {dataset:16} failed idle: {error}", flush=True)
                continue
            loaded, loaded_s, error = _loaded(args.burners, plugin, model, dataset, args.budget, base / "loaded")
            if loaded is None:
                print(f"{label:24} {dataset:16} failed loaded: {error}", flush=True)
                continue
            diff = _first_difference(without_timings(idle), without_timings(loaded))
            same += diff is None
            training = idle["training"]
            print(f"{label:24} {dataset:16} {training['steps']:>6} steps ({training['stopped_by']}), "
                  f"idle {idle_s:5.0f} s, loaded {loaded_s:5.0f} s: "
                  f"{'identical' if diff is None else 'DIFFERS at ' + diff}", flush=True)
    print(f"{same} of {len(wanted)} records identical idle and loaded (timings and provenance aside)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
