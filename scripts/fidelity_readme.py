"""Print the README's before/after tables of the fidelity rerun (issue 14) from the committed JSONs.

"Before" is ``results/before_fidelity/<benchmark>.json`` (the run the README quoted before the methods were
aligned with their authors' released code), "after" is ``results/<benchmark>.json``. Every figure printed here
comes from one of those two files; each table names the run (commit) each column comes from.

    python scripts/fidelity_readme.py [graph|segmentation|detection ...]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from readme_text import json_commit

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    before = json.loads((ROOT / "results" / "before_fidelity" / f"{name}.json").read_text())
    after = json.loads((ROOT / "results" / f"{name}.json").read_text())
    return before, after


def _ms(x: dict) -> str:
    return f"{x['mean']:.2f} ± {x['std']:.2f}"




def graph() -> str:
    b, a = load("graph_reproduce")
    head = f"| model | before ({json_commit(b)}) | after ({json_commit(a)}) |\n|---|---|---|"
    rows = [head]
    for key, label in (("SAGE", "SAGE teacher"), ("MLP", "MLP (labels only)"), ("GLNN", "GLNN MLP"),
                       ("FF-G2M", "FF-G2M MLP")):
        rows.append(f"| transductive: {label} | {_ms(b['transductive'][key])} | {_ms(a['transductive'][key])} |")
    rows.append(f"| transductive: GLNN, released loop | {_ms(b['released_schedule']['transductive_GLNN'])} | "
                f"{_ms(a['released_schedule']['transductive_GLNN'])} |")
    for key, label in (("SAGE", "SAGE teacher"), ("MLP", "MLP"), ("GLNN", "GLNN MLP"),
                       ("GLNN released schedule", "GLNN, released loop")):
        rows.append(f"| production (prod): {label} | {_ms(b['production'][key]['prod'])} | "
                    f"{_ms(a['production'][key]['prod'])} |")
    gaps = {k: min(r["gap"] for r in d["released_schedule"]["production_per_seed"]) for k, d in (("b", b), ("a", a))}
    rows.append(f"| production, released loop: largest gap below a seed's teacher | {gaps['b']:.2f} | {gaps['a']:.2f} |")
    for key, label in (("GCN teacher", "authors' GCN teacher"), ("MLP", "MLP"), ("FF-G2M", "FF-G2M MLP")):
        rows.append(f"| FF-G2M, {label} | {_ms(b['ffg2m_authors_gcn_teacher'][key])} | "
                    f"{_ms(a['ffg2m_authors_gcn_teacher'][key])} |")
    t_b, t_a = b["distill_throughput"], a["distill_throughput"]
    rows.append(f"| GLNN student epoch / plain epoch (100,000 nodes) | {t_b['ratio']:.3f} | {t_a['ratio']:.3f} |")
    checks = "; ".join(f"{k}: {'met' if v else 'not met'}" for k, v in a["checks"].items())
    return "\n".join(rows) + f"\n\nChecks in the after run: {checks}."


def segmentation() -> str:
    b, a = load("segmentation_distill")
    mb, ma = b["accuracy"]["methods"], a["accuracy"]["methods"]
    rows = [f"| method | before: test mIoU (std), gain | after: test mIoU (std), gain |", "|---|---|---|"]
    rows.append(f"| teacher | {b['accuracy']['teacher']['test_mIoU']:.2f} | {a['accuracy']['teacher']['test_mIoU']:.2f} |")
    for m in ma:
        def cell(ms):
            r = ms.get(m)
            return "-" if r is None else f"{r['test_mIoU']:.2f} ({r['test_mIoU_std']:.2f}), {r['test_gain_over_baseline']:+.2f}"
        rows.append(f"| {m} | {cell(mb)} | {cell(ma)} |")
    st_b, st_a = b.get("step_time", {}), a.get("step_time", {})
    ratio = [s.get("ratio_transkd_vs_student_plus_teacher_backbone") for s in (st_b, st_a)]
    if all(r is not None for r in ratio):
        rows.append(f"| step ratio (TransKD / student + teacher backbone) | {ratio[0]} | {ratio[1]} |")
    return "\n".join(rows)


def detection() -> str:
    b, a = load("detection_distill")
    rows = ["| method (detector) | before: seeds, baseline / distilled AP, gain | after: seeds, baseline / distilled "
            "AP (means), gain |", "|---|---|---|"]
    for fam, label in (("gid", "GID (RetinaNet)"), ("detr", "DETRDistill (Deformable DETR)")):
        old, new = b[fam], a[fam]
        rows.append(f"| {label} | 0: {old['baseline']['AP']:.1f} / {old['distilled']['AP']:.1f}, "
                    f"{old['gain_AP']:+.1f} | {','.join(map(str, new['seeds']))}: {new['baseline_AP']['mean']:.2f} / "
                    f"{new['distilled_AP']['mean']:.2f}, {new['gain_AP']['mean']:+.2f} |")
    old_abl = b["detr"].get("ablation_AP", {})
    new_abl = a["detr"].get("ablation_AP", {})
    rows += ["", "| DETRDistill component | before (seed 0) | after (mean over seeds) |", "|---|---|---|"]
    for v in new_abl:
        rows.append(f"| {v} | {old_abl[v]:.1f}" if v in old_abl else f"| {v} | -")
        rows[-1] += f" | {new_abl[v]['mean']:.2f} |"
    return "\n".join(rows)


def main(argv) -> int:
    parts = {"graph": graph, "segmentation": segmentation, "detection": detection}
    for name in argv or list(parts):
        print(f"<!-- {name}: printed by scripts/fidelity_readme.py -->")
        print(parts[name]())
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
