"""Sweep scaling: the same runs sequentially (one process, ``--jobs 1``) and with ``--jobs N``
(fresh processes, the machine's cores divided among them), side by side, with the speed-up and
whether the records agree (timings and provenance aside). Then, where Debian's slurm-wlm and
munge are installed and we are root, the SLURM path's overhead per run on a single-node
cluster started for the purpose (`evalgen.testing.local_slurm`): submit to the run's start, and
the run's end to its record, against the run's own training and evaluation seconds.

It always exits 0: it is a benchmark, not a test (tests/test_sweep_local.py and
tests/test_slurm.py hold the tests).

    EVALGEN_DATA_DIR=../shared/data python benchmarks/sweep_scaling.py [--jobs 2] [--budget quick]
        [--model flows:maf --model flows:realnvp] [--seeds 4] [--slurm-runs 2] [--sequential-threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evalgen.testing.local_slurm import missing_daemons, start_cluster
from evalgen.testing.reproducibility import without_timings


def _sweep_file(folder: Path, models: list[str], budget: str, seeds: int) -> Path:
    lines = [f'budgets = ["{budget}"]', f"seeds = {seeds}", "baseline = false", 'device = "cpu"']
    for name in models:
        plugin, model = name.split(":")
        lines += ["[[runs]]", f'plugin = "{plugin}"', f'models = ["{model}"]', 'datasets = ["digits"]']
    path = folder / "sweep.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _sweep(path: Path, out: Path, *extra: str, env: dict | None = None) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "evalgen", "sweep", str(path), "--out", str(out), *extra],
                            capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        print(f"  sweep {' '.join(extra)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return seconds


def _records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))}


def _scaling(args: argparse.Namespace, folder: Path) -> None:
    path = _sweep_file(folder, args.model, args.budget, args.seeds)
    runs = len(args.model) * args.seeds
    print(f"{runs} runs ({', '.join(args.model)} x {args.seeds} seeds, {args.budget}, digits) on "
          f"{len(os.sched_getaffinity(0))} cores")
    threads = args.sequential_threads or len(os.sched_getaffinity(0))
    sequential = _sweep(path, folder / "sequential", env={"OMP_NUM_THREADS": str(threads)})
    print(f"  sequential (one process, {threads} torch thread{'s' * (threads > 1)}): {sequential:7.1f} s")
    parallel = _sweep(path, folder / "parallel", "--jobs", str(args.jobs))
    print(f"  --jobs {args.jobs} (fresh processes, {max(1, len(os.sched_getaffinity(0)) // args.jobs)} thread each): "
          f"{parallel:7.1f} s")
    one, two = _records(folder / "sequential"), _records(folder / "parallel")
    same = sum(without_timings(one[k]) == without_timings(two.get(k)) for k in one)
    print(f"  speed-up {sequential / parallel:.2f}x; records identical apart from timings: {same} of {len(one)}"
          " (a record can depend on the torch threads per run)")
    verdict = "PASS" if sequential / parallel >= args.target else "BELOW"
    print(f"{verdict}: --jobs {args.jobs} is {sequential / parallel:.2f}x the sequential speed (target {args.target}x)")


def _poll_times(out: Path, keys: list[str], timeout: float) -> tuple[dict[str, float], dict[str, float]]:
    """When each run's state file (the job has started evalgen) and record appeared."""
    started, recorded = {}, {}
    deadline = time.perf_counter() + timeout
    while len(recorded) < len(keys) and time.perf_counter() < deadline:
        now = time.perf_counter()
        for key in keys:
            if key not in started and (out / ".sweep" / "state" / f"{key}.json").exists():
                started[key] = now
            if key not in recorded and (out / "records" / f"{key}.json").exists():
                recorded[key] = now
        time.sleep(0.02)
    return started, recorded


def _slurm_overhead(args: argparse.Namespace, folder: Path) -> None:
    missing = missing_daemons()
    if missing or os.geteuid() != 0:
        print(f"SLURM overhead: not measured ({'missing ' + ', '.join(missing) if missing else 'needs root'})")
        return
    cluster = start_cluster(folder / "cluster")
    try:
        path = _sweep_file(folder, ["baselines:categorical"], "smoke", args.slurm_runs)
        out = folder / "slurm"
        submitted = time.perf_counter()
        subprocess.run([sys.executable, "-m", "evalgen", "sweep", str(path), "--out", str(out), "--executor", "slurm",
                        "--detach"], capture_output=True, text=True, env={**cluster.env, "OMP_NUM_THREADS": "1"},
                       check=True)
        keys = [f"baselines--categorical--digits--smoke--seed{s}" for s in range(args.slurm_runs)]
        started, recorded = _poll_times(out, keys, timeout=300)
        print(f"SLURM path, {args.slurm_runs} smoke runs on a single-node cluster (seconds per run):")
        for key in keys:
            if key not in recorded:
                print(f"  {key}: no record after 300 s")
                continue
            record = json.loads((out / "records" / f"{key}.json").read_text())
            work = record["training"]["seconds"] + sum(record["evaluation"]["seconds"].values())
            print(f"  {key}: submit -> evalgen running {started[key] - submitted:5.1f} "
                  f"(scheduling, python and imports), running -> record {recorded[key] - started[key]:5.1f} "
                  f"of which training + evaluation {work:4.1f}")
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--model", action="append", help="plugin:model (repeatable)")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--target", type=float, default=1.7)
    parser.add_argument("--slurm-runs", type=int, default=2)
    parser.add_argument("--sequential-threads", type=int, default=1,
                        help="torch threads of the sequential sweep: 1 (as each job has on 2 cores with --jobs 2, "
                             "the like-for-like comparison) or 0 for all cores")
    parser.add_argument("--no-slurm", action="store_true")
    args = parser.parse_args()
    args.model = args.model or ["flows:maf", "flows:realnvp"]
    with tempfile.TemporaryDirectory() as tmp:
        _scaling(args, Path(tmp))
        if not args.no_slurm:
            _slurm_overhead(args, Path(tmp))


if __name__ == "__main__":
    main()
