"""Start-up cost of ``kdhub list`` as a ratio to ``python -c "import torch"`` (issue target: <= 1.5).

Every installed plugin registers lazily, so listing what is installed should cost little more than the
core's own import of torch. Both commands run as fresh processes, interleaved (the order alternates each
round, so drift and disk caches affect both alike), ``--runs`` times each after one warm-up of each; the
JSON holds their medians and minima, the ratio of the medians, the commit and the machine.

    python benchmarks/list_startup.py [--runs 10] [--out results/list_startup.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from provenance import run_info

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5


def kdhub_command() -> list:
    """The console script installed beside this interpreter (as a user runs it)."""
    script = Path(sys.executable).parent / "kdhub"
    if not script.is_file():
        found = shutil.which("kdhub")
        if not found:
            sys.exit(f"no kdhub console script beside {sys.executable} or on PATH; install kdhub (pip install -e .)")
        script = Path(found)
    return [str(script), "list"]


def timed(cmd: list, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    ap.add_argument("--out", default=str(ROOT / "results" / "list_startup.json"))
    args = ap.parse_args()
    env = {**os.environ, "KDHUB_PROGRESS": "0"}
    commands = {"kdhub_list": kdhub_command(), "import_torch": [sys.executable, "-c", "import torch"]}
    for cmd in commands.values():  # warm-up: page cache, .pyc files
        timed(cmd, env)
    times = {name: [] for name in commands}
    names = list(commands)
    for i in range(args.runs):
        for name in (names if i % 2 == 0 else names[::-1]):
            times[name].append(timed(commands[name], env))
    med = {name: statistics.median(t) for name, t in times.items()}
    ratio = med["kdhub_list"] / med["import_torch"]

    result = {
        "benchmark": "list_startup",
        "kdhub_list_median_s": round(med["kdhub_list"], 4),
        "kdhub_list_min_s": round(min(times["kdhub_list"]), 4),
        "import_torch_median_s": round(med["import_torch"], 4),
        "import_torch_min_s": round(min(times["import_torch"]), 4),
        "ratio": round(ratio, 4),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "runs": args.runs,
        "commands": {name: " ".join(cmd) for name, cmd in commands.items()},
        "times_s": {name: [round(t, 4) for t in ts] for name, ts in times.items()},
        **run_info(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
