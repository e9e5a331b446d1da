"""Print the README's accuracy check after the performance work (issue 17) from the committed JSONs.

Issue 17 asks that the detection and segmentation benchmarks' results stay within noise after the cost work, one
seed rerun each. The reruns are the JSONs in ``results/accuracy_check/`` (seed 0, written by the benchmarks
themselves at a later commit; detection's two families ran as two invocations, one file each); the runs they are
compared with are ``results/<benchmark>.json``, whose seed 0 is read from their per-seed records. Every figure
printed here comes from one of those files.

    python scripts/accuracy_check_readme.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from readme_text import json_commit

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "results" / "accuracy_check"
DETECTION = {"gid": "GID", "detr": "DETRDistill"}


def _json(path: Path) -> dict:
    return json.loads(path.read_text())




def _row(bench: str, model: str, before: float, after: float, digits: int = 2) -> tuple:
    """One table row (its text, its difference), at the precision the benchmark's JSON keeps (detection AP: 1
    decimal)."""
    diff = after - before
    return f"| {bench} | {model} | {before:.{digits}f} | {after:.{digits}f} | {diff:+.{digits}f} |", diff


def detection_rows(before: dict, after: dict) -> list:
    rows = []
    for fam in (f for f in DETECTION if f in after):
        label = DETECTION[fam]
        b, a = before[fam], after[fam]
        rows.append(_row("detection (AP)", f"{label}: teacher", b["teacher"]["AP"], a["teacher"]["AP"], 1))
        b0, a0 = b["per_seed"]["0"], a["per_seed"]["0"]
        rows.append(_row("detection (AP)", f"{label}: baseline, seed 0", b0["baseline"]["AP"], a0["baseline"]["AP"], 1))
        for variant in a0["distilled"]:  # DETRDistill's ablation runs too
            name = "distilled" if len(a0["distilled"]) == 1 else f"distilled ({variant})"
            rows.append(_row("detection (AP)", f"{label}: {name}, seed 0", b0["distilled"][variant]["AP"],
                             a0["distilled"][variant]["AP"], 1))
    return rows


def segmentation_rows(before: dict, after: dict) -> list:
    b, a = before["accuracy"], after["accuracy"]
    rows = [_row("segmentation (test mIoU)", "teacher", b["teacher"]["test_mIoU"], a["teacher"]["test_mIoU"])]
    for method, result in a["methods"].items():
        seed0 = {r["seed"]: r["test_mIoU"] for r in b["methods"][method]["runs"]}[0]
        rerun = {r["seed"]: r["test_mIoU"] for r in result["runs"]}[0]
        rows.append(_row("segmentation (test mIoU)", f"{method}, seed 0", seed0, rerun))
    return rows


RERUNS = [("detection_distill_gid.json", "detection_distill", detection_rows),
          ("detection_distill_detr.json", "detection_distill", detection_rows),
          ("segmentation_distill.json", "segmentation_distill", segmentation_rows)]


def main() -> int:
    parts = []
    rows = []
    for rerun, name, build in RERUNS:
        if not (CHECK / rerun).is_file():
            continue
        before, after = _json(ROOT / "results" / f"{name}.json"), _json(CHECK / rerun)
        rows += build(before, after)
        command = after.get("command") or (after.get("provenance") or {}).get("command")
        parts.append(f"`results/accuracy_check/{rerun}` (commit {json_commit(after)}"
                     + (f", `{command}`" if command else "")
                     + f") against `results/{name}.json` (commit {json_commit(before)})")
    if not parts:
        print("no rerun in results/accuracy_check/", file=sys.stderr)
        return 1
    print("Accuracy after the cost work, one seed rerun each: " + "; ".join(parts) + ".\n")
    print("| benchmark | model | seed 0 of the benchmark's run | rerun | difference |\n|---|---|---|---|---|")
    print("\n".join(text for text, _ in rows))
    largest = max(abs(diff) for _, diff in rows)
    print("\n" + (f"All {len(rows)} rerun figures equal the benchmark's seed-0 figures exactly (the JSONs' values, "
                   "before rounding)." if largest == 0 else f"The largest difference is {largest:.4g} (of {len(rows)} "
                                                            "figures)."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
