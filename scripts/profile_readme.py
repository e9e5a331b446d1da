"""Print the README's cost table (issue 17's acceptance) from the committed profile JSONs.

One row per method and model scale: the distillation step, its ratio to the teacher's forward plus the plain
student's step (GLNN: the cached epoch over the plain student's epoch), the overhead above the floor (the floor
includes the method's own modules) and the step's peak memory, over the teacher's forward plus the plain student's
step and over that floor plus the method's own modules run alone (the issue's floor; FF-G2M: the plain student on
the same neighbourhood rows), each against its target. Every
figure comes from ``results/<domain>_profile[_recipe].json``; the table names each file's commit and command.
A derived figure (the speech step ratio) is computed here from that file's own parts.

    python scripts/profile_readme.py
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
STEP_TARGETS = {"GID": 1.10, "DETRDistill": 1.30, "TransKD": 1.30, "speech KD": 1.05, "GLNN": 1.05, "core KD": 1.05}
OVERHEAD_TARGET, PEAK_TARGET = 0.10, 1.15


def _load(name: str) -> Optional[dict]:
    path = ROOT / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _mark(value: Optional[float], target: Optional[float], fmt: str) -> str:
    if value is None:
        return "-"
    text = format(value, fmt)
    if target is None:
        return text
    return f"{text} ({'met' if value <= target else 'not met'})"


def _row(method: str, scale: str, source: str, full_ms: float, step: Optional[float], overhead: float,
         peak: Optional[float], peak_floor: Optional[float]) -> str:
    target = STEP_TARGETS.get(method)
    return (f"| {method} | {scale} | {full_ms:.1f} | {_mark(step, target, '.3f')} | "
            f"{_mark(overhead * 100, OVERHEAD_TARGET * 100, '.1f')} | {_mark(peak, None, '.3f')} | "
            f"{_mark(peak_floor, PEAK_TARGET, '.3f')} | {source} |")


def rows() -> List[str]:
    out: List[str] = []
    det_scale = {"detection_profile": "embedded (tiny)", "detection_profile_recipe": "COCO recipe"}
    for name, scale in det_scale.items():
        d = _load(name)
        if d is None:
            continue
        for fam in d["families"].values():
            out.append(_row(fam["method"], f"{scale}: {fam['detector']}, batch {fam['batch']} at "
                            f"{'x'.join(map(str, fam['image_size']))}", name, fam["full_ms"], fam["step_ratio"],
                            fam["overhead_above_floor"], fam["peak_memory"]["ratio"],
                            fam["peak_memory"]["ratio_to_floor_plus_method"]))
    for name, scale in {"segmentation_profile": "embedded (tiny)",
                        "segmentation_profile_recipe": "Cityscapes recipe"}.items():
        d = _load(name)
        if d is None:
            continue
        for variant, v in d["variants"].items():
            parts = v["parts_ms"]
            step = v["full_ms"] / (parts["teacher_forward"] + parts["student_step"])
            out.append(_row("TransKD", f"{scale}: {variant}, batch {d['batch']} at "
                            f"{'x'.join(map(str, d['image_size']))}", name, v["full_ms"], step,
                            v["overhead_above_floor"], v["peak_memory"]["ratio"],
                            v["peak_memory"]["ratio_to_floor_plus_method"]))
    s = _load("speech_profile")
    if s is not None:
        b = s["breakdown"]
        step = b["full_ms"] / (b["parts_ms"]["teacher_forward"] + b["parts_ms"]["student_step"])
        out.append(_row("speech KD", f"embedded: Conv-TasNet, batch {s['batch']}", "speech_profile", b["full_ms"],
                        step, b["overhead_above_floor"], s["peak_memory"]["ratio"],
                        s["peak_memory"]["ratio_to_floor_plus_method"]))
    c = _load("core_overhead")
    if c is not None:  # the method's adapter and losses run inside the step: one floor, teacher and student
        peak = c.get("peak_memory", {}).get("ratio")
        out.append(_row("core KD", f"small CNN, batch {c['batch']}", "core_overhead", c["distill_step_ms"], c["ratio"],
                        c["breakdown"]["overhead_above_floor"], peak, peak))
    g = _load("graph_profile")
    if g is not None:
        epoch = g.get("glnn_epoch", {}).get("ratio")
        for method, m in g["methods"].items():
            label = "GLNN" if method == "glnn" else "FF-G2M"
            mem = m["peak_memory"]  # FF-G2M's floor: the plain student on the same neighbourhood rows
            out.append(_row(label, f"CSBM {g['graph'].split(',')[1].strip()}, batch of targets", "graph_profile",
                            m["full_ms"], epoch if method == "glnn" else None, m["overhead_above_floor"],
                            mem["ratio"], mem.get("ratio_to_floor_neighbourhood", mem["ratio"])))
    return out


def provenance() -> List[str]:
    lines = []
    for name in ("detection_profile", "detection_profile_recipe", "segmentation_profile",
                 "segmentation_profile_recipe", "speech_profile", "core_overhead", "graph_profile"):
        d = _load(name)
        if d is not None:
            lines.append(f"- `results/{name}.json`: commit {str(d.get('commit'))[:7]}, `{d.get('command')}`")
    return lines


def main() -> None:
    print("| method | models | step ms | step ratio (target) | overhead above floor % (<= 10) | "
          "peak vs teacher + student | peak vs floor with the method's modules (<= 1.15) | JSON |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows()))
    print()
    print("\n".join(provenance()))


if __name__ == "__main__":
    main()
