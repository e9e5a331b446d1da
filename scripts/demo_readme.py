"""Print the README's demo paragraph from a ``kdhub demo --json`` record (``results/demo.json``).

The README quotes one demo run; its figures are pasted from this output, never typed:

    python3 scripts/demo_readme.py results/demo.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def minutes(seconds: float) -> str:
    """``N min S s``, the seconds rounded (so 119.6 s is 2 min 0 s, never 1 min 60 s)."""
    whole, rest = divmod(round(seconds), 60)
    return f"{whole} min {rest} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("record", type=Path)
    path = ap.parse_args().record
    record = json.loads(path.read_text())
    machine = record["machine"]
    command = record.get("command", "")
    how = "`make demo`" if command.endswith("demo --work-dir work_dirs/demo --json results/demo.json") else \
        f"`{command.replace('python .venv/bin/', '')}`"
    print(f"From {how} at commit {record['commit'][:7]} ({machine['cores']} cores, torch {machine['torch']}; "
          f"`{path.as_posix()}`): {minutes(record['wall_time_s'])} for the demos, "
          + ", ".join(f"{d} {minutes(v['wall_time_s'])}" for d, v in record["domains"].items()) + ".\n")
    print("| domain | model | metric | params | latency (ms) |\n|---|---|---|---|---|")
    for domain, v in record["domains"].items():
        for row in v["rows"]:
            std = f" ± {row['std']:.2f}" if row["std"] is not None else ""
            latency = "-" if row["latency_ms"] is None else f"{row['latency_ms']:.3f}"
            print(f"| {domain} | {row['model']} | {row['metric']:.2f}{std} {v['metric']} | {row['params']:,} | "
                  f"{latency} |")


if __name__ == "__main__":
    main()
