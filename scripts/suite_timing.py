"""Run the README's test command and record what it did: writes ``results/test_suite.json``.

The README quotes the suite's size and time from this file, not from memory. It runs ``make test`` in the
checkout (setting up ``.venv`` first if needed, which is timed apart), with pytest's JUnit report, and records
the commit, the machine (CPU count, Python, platform), the command, the counts of passed, failed, errored and
skipped tests, the wall time of the setup and of the tests, and the slowest tests.

    python3 scripts/suite_timing.py --out results/test_suite.json
    python3 scripts/suite_timing.py --readme     # the README's sentence on that run, from the JSON
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from demo_readme import minutes

ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def junit_summary(path: Path, slowest: int = 25) -> dict:
    """Counts and the slowest test cases of a pytest JUnit XML report."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    cases = []
    for case in suite.iter("testcase"):
        outcome = "passed"
        for kind in ("failure", "error", "skipped"):
            if case.find(kind) is not None:
                outcome = kind
        cases.append((float(case.get("time", 0.0)), f"{case.get('classname')}::{case.get('name')}", outcome))
    counts = {k: sum(1 for c in cases if c[2] == k) for k in ("passed", "failure", "error", "skipped")}
    return {"tests": len(cases), "passed": counts["passed"], "failed": counts["failure"], "errors": counts["error"],
            "skipped": counts["skipped"], "pytest_time_s": round(float(suite.get("time", 0.0)), 1),
            "slowest": [{"test": name, "seconds": round(t, 1), "outcome": outcome}
                        for t, name, outcome in sorted(cases, reverse=True)[:slowest]],
            "failed_tests": [name for _, name, outcome in cases if outcome in ("failure", "error")],
            "skipped_tests": [name for _, name, outcome in cases if outcome == "skipped"]}


def readme_sentence(record: dict) -> str:
    """The README's sentence on a recorded run (its commit, date, machine, setup and test times and counts)."""
    skipped = record.get("skipped_tests", [])
    which = f" ({', '.join(f'`{name}`' for name in skipped)})" if 0 < len(skipped) <= 3 else ""
    return (f"at commit {record['commit'][:7]} ({record['date']}, {record['machine']['cpus']} cores): setup "
            f"{record['setup_wall_s']} s, then {record['passed']} passed, {record['failed']} failed, "
            f"{record['errors']} errors and {record['skipped']} skipped{which} in {record['test_wall_s']} s "
            f"({minutes(record['test_wall_s'])}).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "test_suite.json"))
    parser.add_argument("--readme", action="store_true", help="print the README's sentence on --out's run and exit")
    args = parser.parse_args()
    if args.readme:
        print(readme_sentence(json.loads(Path(args.out).read_text())))
        return 0
    started = time.perf_counter()
    setup = subprocess.run(["make", "setup"], cwd=ROOT)
    setup_s = time.perf_counter() - started
    if setup.returncode != 0:
        return setup.returncode
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        env = dict(os.environ, PYTEST_ADDOPTS=f"{os.environ.get('PYTEST_ADDOPTS', '')} --junitxml={report}".strip())
        started = time.perf_counter()
        proc = subprocess.run(["make", "test"], cwd=ROOT, env=env)
        wall = time.perf_counter() - started
        summary = junit_summary(report) if report.is_file() else {}
    record = {"command": "make test", "commit": git_commit(), "returncode": proc.returncode,
              "setup_wall_s": round(setup_s, 1), "test_wall_s": round(wall, 1), **summary,
              "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
                          "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{out}: {record.get('passed')} passed, {record.get('failed')} failed in {record['test_wall_s']} s")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
