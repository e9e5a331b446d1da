"""Print the README's graph acceptance section (Cora accuracy, inference speed, distillation throughput, the
comparison with the run before the fidelity work) from ``results/graph_reproduce.json`` and
``results/before_fidelity/graph_reproduce.json``; every figure printed comes from one of those two files.
``plugin`` and ``plugin-scale`` print the graph plugin README's measured text the same way: the GLNN bullets on
production seed 5 and the measured Cora runs (from the same two files), and what the scale benchmark shows
(from ``results/graph_scale.json``; sizes in bytes are computed from its node, edge and width counts).

    python3 scripts/graph_readme.py ["CONTEXT"]
    python3 scripts/graph_readme.py plugin                    # plugins/graph/README.md, GLNN section
    python3 scripts/graph_readme.py plugin-scale ["CONTEXT"]  # plugins/graph/README.md, "What it shows"

CONTEXT says what else ran on the machine during the run (e.g. "beside the graph profile"); it is printed
after the run's commit and wall time (for ``plugin-scale``: what the cores were shared with).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List

from profile_readme import _load
from readme_text import wrap

ROOT = Path(__file__).resolve().parents[1]
#: bytes per element of the scale benchmark's tensors: float32 features and activations, int64 CSR indices
FLOAT32, INT64 = 4, 8


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
        "weights\nas `torch.nn.Linear` does, narrower per layer than DGL's Xavier start (the bounds are in "
        "`plugins/graph/README.md`),\nso a teacher whose best validation epoch came within the first few epochs "
        "handed the student almost uniform\nsoft labels (seed 5's teacher was one; the account is in "
        "`plugins/graph/README.md`).",
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


def _gap(r: dict) -> str:
    return f"{r['gap']:.2f} (seed {r['seed']})"


def plugin_glnn(after: dict, before: dict) -> str:
    """The graph plugin README's GLNN bullets "Why production seed 5 stalled" and "Measured": seed 5 and the
    other seeds in the released-loop production run before the fidelity work (PyG's teacher start) and after it
    (``teacher.init: dgl``), then every Cora row of the current run with the command that trains it."""
    tr, prod, rel = after["transductive"], after["production"], after["released_schedule"]
    seeds_before = sorted(before["released_schedule"]["production_per_seed"], key=lambda r: r["gap"])
    s5_before = next(r for r in seeds_before if r["seed"] == 5)
    weaker = [r for r in seeds_before if r["seed"] != 5][:3]
    s5_after = next(r for r in rel["production_per_seed"] if r["seed"] == 5)
    worst_rel = min(rel["production_per_seed"], key=lambda r: r["gap"])
    worst_joint = min(rel["production_per_seed_joint"], key=lambda r: r["gap"])
    options = " ".join(f"student.{k}={v}" for k, v in rel["options"].items())
    before_src = f"commit {before['commit'][:7]}, `results/before_fidelity/graph_reproduce.json`"
    stalled = (
        "**Why production seed 5 stalled.** With PyG's start, the production teacher of seed 5 reached its best "
        "validation accuracy within the first few epochs, while its training loss was still close to ln 7 (the "
        "cross entropy of a uniform prediction over Cora's 7 classes), and no later epoch matched it within the "
        "patience of 50. Its soft labels were almost uniform (mean top probability and mean entropy close to the "
        "uniform distribution's), so the student's KL term was small from its first epoch; with weight decay 0.005 "
        "and dropout 0.6 the student never learnt the teacher's ranking. In the released-loop production run "
        f"before the fidelity work ({before_src}) seed 5's student ended at {s5_before['student']:.2f} against its "
        f"teacher's {s5_before['teacher']:.2f}. The seeds with the next largest gaps there, "
        + ", ".join(str(r["seed"]) for r in weaker[:-1]) + f" and {weaker[-1]['seed']} ("
        + ", ".join(f"{r['gap']:.2f}" for r in weaker[:-1]) + f" and {weaker[-1]['gap']:.2f} points), also kept "
        "early teachers with flat soft labels. With `teacher.init: dgl` (`results/graph_reproduce.json`, "
        f"commit {after['commit'][:7]}) seed 5's student ends at {s5_after['student']:.2f} against "
        f"{s5_after['teacher']:.2f}, and no seed more than {-worst_rel['gap']:.2f} points below its own teacher "
        f"(seed {worst_rel['seed']}). The student side already matched the released code: the MLP starts as "
        "`torch.nn.Linear`, uses no norm, lr 0.01, weight decay 0.005 on every parameter and dropout 0.6; the KL "
        "term is the same as `KLDivLoss(reduction='batchmean', log_target=True)` on log-softmaxes; the kept epoch "
        "is the best validation epoch (ties to the later one), with validation on the observed validation nodes.")
    measured = (
        f"**Measured** (`results/graph_reproduce.json`: commit {after['commit'][:7]}, `{after['command']}`; "
        "Cora npz, 10 seeds; every row trained by `kdhub train` with the shipped configs, the SAGE teachers with "
        "`teacher.init: dgl`; this bullet and the one before are printed by `python3 scripts/graph_readme.py "
        "plugin`): `kdhub train graph::glnn_cora_sage.yaml --cfg-options data.path=cora.npz setting=production` "
        "trains the production teachers and a student on the joint schedule: production GLNN "
        f"{_ms(prod['GLNN']['prod'])} against the teachers' {_ms(prod['SAGE']['prod'])}, the largest gap to a "
        f"seed's own teacher {_gap(worst_joint)}. The released loop from those teachers "
        f"(`teacher.checkpoint=<run>/seed_{{seed}}/teacher/teacher.pth {options} baseline=false`) gives "
        f"production GLNN {_ms(prod['GLNN released schedule']['prod'])} (tran "
        f"{prod['GLNN released schedule']['tran']['mean']:.2f}, ind {prod['GLNN released schedule']['ind']['mean']:.2f}"
        f"), the largest gap {_gap(worst_rel)}; seed 5: {s5_after['student']:.2f} against "
        f"{s5_after['teacher']:.2f}. The same loop with PyG's teacher start ({before_src}) gave "
        f"{_ms(before['production']['GLNN released schedule']['prod'])}, seed 5 at {s5_before['student']:.2f} "
        f"against {s5_before['teacher']:.2f}. Transductive, shipped config (joint): SAGE {_ms(tr['SAGE'])}, MLP "
        f"{_ms(tr['MLP'])}, GLNN {_ms(tr['GLNN'])}; the released loop from those teachers "
        f"{_ms(rel['transductive_GLNN'])}; FF-G2M from those teachers (`ffg2m_cora_sage.yaml`, `teacher.checkpoint` "
        f"as above) {_ms(tr['FF-G2M'])}.")
    return "\n".join(wrap(t, first="- ", rest="  ") for t in (stalled, measured))


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.3g} GB"


def plugin_scale(scale: dict, context: str = "") -> str:
    """The graph plugin README's "What it shows" bullets on memory and cost per node at scale: what the largest
    graph's peak holds (sizes computed from the JSON's node, edge and width counts), each phase's cost per node
    from the smallest to the largest graph, the teacher's cost per training node and epoch, and the load."""
    cfg, sizes, sm = scale["config"], scale["sizes"], scale["summary"]
    big = max(sizes, key=lambda r: r["nodes"])
    n, e, feats = big["nodes"], big["directed_edges"], cfg["graph"]["features"]
    hidden = cfg["teacher"]["hidden"]
    phases = big["peak_rss_mb_per_phase"]
    peak_phase = max(phases, key=phases.get)
    phase_names = {"soft_labels": "the soft-label phase", "teacher_train": "teacher training",
                   "generate": "generation", "student_train": "student training"}
    memory = (
        f"**Memory.** The {n:,}-node peak ({big['peak_rss_mb']:,.0f} MB, in {phase_names.get(peak_phase, peak_phase)}"
        f") is, above the process's start-up ({phases['startup']:,.0f} MB), the features ({n:,} x {feats} float32: "
        f"{_gb(n * feats * FLOAT32)}), the CSR ({e:,} int64 neighbour ids and {n + 1:,} offsets: "
        f"{_gb((e + n + 1) * INT64)}) and, during inference, one hidden layer for every node ({n:,} x {hidden} "
        f"float32: {_gb(n * hidden * FLOAT32)}); generation peaks at {phases['generate']:,.0f} MB. Nothing holds "
        f"the 2-hop activations of the graph or its per-edge messages ({e:,} x {feats} float32: "
        f"{_gb(e * feats * FLOAT32)} for layer 1 at this size).")
    t = cfg["teacher"]
    fan = t["fanouts"]
    drawn, layer = 0, t["batch_size"]
    for f in fan:
        layer *= f
        drawn += layer
    order = sorted(sizes, key=lambda r: r["nodes"])
    teacher = [r["teacher_us_per_train_node_epoch"] for r in order]
    loads = [x for r in order for x in (r["load_average_1min"]["start"], r["load_average_1min"]["end"])]
    ratio = sm["per_node_ratio_per_phase"]
    shared = f"were shared with {context}" if context else "were shared with other work"
    cost = (
        f"**Cost per node.** Each phase's cost per node at {order[-1]['nodes']:,} nodes against "
        f"{order[0]['nodes']:,}: the teacher {ratio['teacher_train']}x, the soft-label inference "
        f"{ratio['soft_labels']}x, the student {ratio['student_train']}x (generation {ratio['generate']}x, not "
        f"counted). The teacher's time per training node and epoch (`teacher_us_per_train_node_epoch`) is "
        + ", ".join(f"{x}" for x in teacher[:-1]) + f" and {teacher[-1]} us"
        + (", the largest graph highest" if teacher[-1] == max(teacher) else "")
        + f": a batch of {t['batch_size']} seeds draws up to {drawn:,} sampled neighbours (fan-outs "
        + " and ".join(map(str, fan)) + f"), and on a {order[0]['nodes']:,}-node graph many of them repeat, so its "
        f"subgraphs have fewer distinct nodes than on {order[-1]['nodes']:,} nodes. The machine's "
        f"{scale['machine']['cores']} cores {shared} during this run (1-minute load average {min(loads)} to "
        f"{max(loads)}, in the JSON)" + (", rising from the first size to the last" if loads == sorted(loads) else "")
        + "; the largest graph, whose working set does not fit in cache, is the most exposed to that.")
    return "\n".join(wrap(t, first="- ", rest="  ") for t in (memory, cost))


def main(argv: List[str]) -> None:
    after = json.loads((ROOT / "results" / "graph_reproduce.json").read_text())
    before = json.loads((ROOT / "results" / "before_fidelity" / "graph_reproduce.json").read_text())
    if argv[:1] == ["plugin"]:
        print(plugin_glnn(after, before))
    elif argv[:1] == ["plugin-scale"]:
        print(plugin_scale(_load("graph_scale"), argv[1] if len(argv) > 1 else ""))
    else:
        print(section(after, before, argv[0] if argv else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
