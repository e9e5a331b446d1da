"""Print the README's graph acceptance section (Cora accuracy, inference speed, distillation throughput, the
comparison with the run before the fidelity work) from ``results/graph_reproduce.json`` and
``results/before_fidelity/graph_reproduce.json``; every figure printed comes from one of those two files.

    python3 scripts/graph_readme.py ["CONTEXT"]

CONTEXT says what else ran on the machine during the run (e.g. "beside the graph profile"); it is printed
after the run's commit and wall time.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ms(x: dict) -> str:
    return f"{x['mean']:.2f} ± {x['std']:.2f}"


def section(after: dict, before: dict, context: str = "") -> str:
    tr, prod, rel, paper = after["transductive"], after["production"], after["released_schedule"], after["paper"]
    where = f", {context}" if context else ""
    out = [
        f"Acceptance benchmark (`benchmarks/graph_reproduce.py`, results in `results/graph_reproduce.json`, rerun from "
        f"a fresh\nclone at commit {after['commit'][:7]} with one thread{where}, {after['wall_time_s']:.0f} s; the JSON "
        "names the commit and command): Cora, GLNN's npz graph (largest connected component, 2,485 nodes) and split "
        "(20 labelled / 30 validation nodes per class, the rest test), GraphSAGE teacher (GLNN's hyper-parameters; "
        "started as DGL 0.6.1, the library GLNN's released code uses, starts it: `teacher.init: dgl`), 10 seeds (split "
        "and initialisation per seed), mean ± std of test accuracy (%), measured on this project's 2-core CPU machine.",
        "",
        "| model | transductive (kdhub) | transductive (GLNN paper) |",
        "|---|---|---|",
        f"| SAGE teacher | {_ms(tr['SAGE'])} | {paper['SAGE']['transductive']} |",
        f"| MLP (labels only) | {_ms(tr['MLP'])} | {paper['MLP']['transductive']} |",
        f"| GLNN MLP | {_ms(tr['GLNN'])} | {paper['GLNN']['transductive']} |",
        f"| GLNN MLP, the authors' released loop (`student.schedule=released`, batch {rel['options']['batch_size']}, "
        f"{rel['options']['epochs']} epochs) | {_ms(rel['transductive_GLNN'])} | - |",
        f"| FF-G2M MLP (same teachers, cached soft labels reused) | {_ms(tr['FF-G2M'])} | - |",
        "",
        "Production setting (GLNN: 20% of the test nodes and their edges hidden in training; prod = 0.8 tran + 0.2 ind):",
        "",
        "| model | tran | ind | prod | paper: trans / ind / prod |",
        "|---|---|---|---|---|",
    ]
    for key, label, paper_key in (("SAGE", "SAGE teacher", "SAGE"), ("MLP", "MLP", "MLP"),
                                  ("GLNN", "GLNN MLP", "GLNN"), ("GLNN released schedule", "GLNN MLP, released loop", None)):
        r = prod[key]
        p = paper[paper_key] if paper_key else None
        prod_cell = f"**{_ms(r['prod'])}**" if paper_key is None else _ms(r["prod"])
        paper_cell = f"{p['transductive']} / {p['inductive']} / {p['production']}" if p else ""
        out.append(f"| {label} | {_ms(r['tran'])} | {_ms(r['ind'])} | {prod_cell} | {paper_cell} |".replace("|  |", "| |"))
    seeds = rel["production_per_seed"]
    worst = min(seeds, key=lambda r: r["gap"])
    s5_after = next(r for r in seeds if r["seed"] == 5)
    s5_before = next(r for r in before["released_schedule"]["production_per_seed"] if r["seed"] == 5)
    released = prod["GLNN released schedule"]["prod"]["mean"]
    met = lambda ok: "met" if ok else "not met"
    out += [
        "",
        f"Production GLNN with the released loop reaches {released:.2f} (issue 14's target: >= 77.5, "
        f"{met(released >= 77.5)}), and no seed ends more than\n{-worst['gap']:.2f} points below its own teacher "
        f"(seed {worst['seed']}; target: 5, {met(-worst['gap'] <= 5)}). Seed 5, which stalled at "
        f"{s5_before['student']:.2f} before, ends at {s5_after['student']:.2f}\nagainst its teacher's "
        f"{s5_after['teacher']:.2f}. The cause was the teacher's start, not the MLP recipe: PyG's SAGEConv starts its "
        "weights\nas `torch.nn.Linear` does, about 3x narrower per layer than DGL's Xavier start, so a teacher whose "
        "best validation\nepoch came within the first few epochs handed the student almost uniform soft labels "
        "(seed 5's teacher was kept at\nepoch 2; the evidence is in `plugins/graph/README.md`).",
    ]
    gcn = after["ffg2m_authors_gcn_teacher"]
    out += [
        "",
        "FF-G2M with the authors' Cora GCN teacher (`ffg2m_cora_gcn_authors.yaml`: teacher and student 3 x 512, "
        "dropout 0.5\nand 0.6, same split and seeds): "
        f"GCN teacher {_ms(gcn['GCN teacher'])}, MLP {_ms(gcn['MLP'])}, FF-G2M MLP **{_ms(gcn['FF-G2M'])}**: the MLP "
        f"ends\n{'above' if gcn['student_above_teacher'] else 'below'} its teacher"
        f"{', as the paper reports' if gcn['student_above_teacher'] else ' (the paper reports it above)'}. "
        "What each paper and its released code say: `plugins/graph/README.md`.",
    ]
    inf = after["inference"]
    out += [
        "",
        f"Speed, one run, same machine, {inf['nodes']:,}-node generated graph ({inf['edges']:,} edges), 128 features, "
        f"predicting every node in batches of {inf['batch']}:",
        "",
        "| teacher deployment | SAGE (s) | MLP (s) | MLP speed-up |",
        "|---|---|---|---|",
        f"| 2-hop full neighbourhood fetched per batch (how GLNN's SAGE infers) | {inf['sage_full_neighbourhood_s']} | "
        f"{inf['mlp_s']} | **{inf['speedup']}x** |",
        f"| 2-hop neighbourhood sampled 5,5 per batch | {inf['sage_sampled_5_5_s']} | {inf['mlp_s']} | "
        f"{inf['speedup_sampled_5_5']}x |",
        f"| whole graph in one pass (all nodes known in advance) | {inf['sage_whole_graph_s']} | "
        f"{inf['mlp_whole_graph_s']} | {inf['speedup_whole_graph']}x |",
    ]
    th = after["distill_throughput"]
    out += [
        "",
        "Distillation throughput: a GLNN student epoch on cached soft labels (prepared once as probabilities and "
        f"entropies, so the KL is one soft-target cross entropy) takes {th['ratio']}x the plain student's "
        f"cross-entropy epoch over the same {th['nodes']:,} nodes ({th['glnn_epoch_s']} s vs "
        f"{th['plain_student_epoch_s']} s; issue 17's target {th['target_ratio']}: "
        f"{met(th['ratio'] <= th['target_ratio'])} in this run, from 3 alternations; the graph profile under \"Cost "
        "breakdown\" measures the same comparison with many more); the teacher never runs during student training. "
        "On this shared 2-core machine these timings vary between runs.",
    ]
    bt, bp = before["transductive"], before["production"]
    bg = before["ffg2m_authors_gcn_teacher"]
    mlp_same = all(before[k]["MLP"] == after[k]["MLP"] for k in ("transductive", "production"))
    out += [
        "",
        f"Against the run before the fidelity work (commit {before['commit'][:7]}, "
        "`results/before_fidelity/graph_reproduce.json`; both side by side: `python3 scripts/fidelity_readme.py "
        f"graph`): the DGL-style teacher start lifts every GLNN row (transductive {bt['GLNN']['mean']:.2f} -> "
        f"{tr['GLNN']['mean']:.2f}, production {bp['GLNN']['prod']['mean']:.2f} -> {prod['GLNN']['prod']['mean']:.2f}, "
        f"released loop {bp['GLNN released schedule']['prod']['mean']:.2f} -> {released:.2f}) and cuts their spread to "
        f"{max(tr['GLNN']['std'], prod['GLNN']['prod']['std'], prod['GLNN released schedule']['prod']['std']):.2f} "
        f"points at most; the MLP rows are {'identical' if mlp_same else 'within rounding of each other'}; the "
        "authors' GCN teacher (PyG's start, unchanged) moves by "
        f"{abs(gcn['GCN teacher']['mean'] - bg['GCN teacher']['mean']):.2f} and its FF-G2M student by "
        f"{abs(gcn['FF-G2M']['mean'] - bg['FF-G2M']['mean']):.2f} (one thread now, several before: see "
        "Reproducibility below).",
    ]
    checks = "; ".join(f"{k}: {met(v)}" for k, v in after["checks"].items())
    out += ["", f"The benchmark's own checks in this run: {checks}."]
    return "\n".join(out)


if __name__ == "__main__":
    after = json.loads((ROOT / "results" / "graph_reproduce.json").read_text())
    before = json.loads((ROOT / "results" / "before_fidelity" / "graph_reproduce.json").read_text())
    print(section(after, before, sys.argv[1] if len(sys.argv) > 1 else ""))
