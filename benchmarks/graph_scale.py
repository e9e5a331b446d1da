"""GLNN at scale: wall time and peak memory of the whole distillation on generated CSBM graphs of growing size.

For each size (default 100k, 500k and 2.5M nodes; average degree 25, 100 features, 10 classes) a fresh
interpreter runs, one thread, each phase timed on its own and its resident-set peak read from ``VmHWM`` after
resetting it at the phase's start (``benchmarks/breakdown.py``'s helpers; the process's peak is the largest):

1. ``generate``: the graph as a CSR (:func:`kdhub_graph.csbm.csbm_csr`), the stand-in for reading a data set;
2. ``split``: a fixed fraction of the nodes for training the teacher, another for testing;
3. ``teacher_train``: a 2-layer SAGE teacher on neighbour-sampled mini-batches of the training nodes
   (:func:`kdhub_graph.streaming.train_sampled_teacher`), a fixed number of epochs;
4. ``soft_labels``: layer-wise inference over every node with every neighbour
   (:mod:`kdhub_graph.layerwise`), GLNN's prepared rows written batch by batch to a ``.npy`` file
   (:mod:`kdhub_graph.soft_label_store`);
5. ``student_train``: the GLNN MLP trained over every node in batches that read their cached rows from that
   file (:func:`kdhub_graph.streaming.train_streamed_student`), a fixed number of epochs;
6. ``evaluate``: teacher (from its cached soft labels) and student test accuracy, and the nearest-class-centre
   classifier's: the Bayes rule from features alone (class centre plus unit Gaussian noise, balanced classes), the
   best a feature-only model can do on nodes it was not fitted to. The student is distilled over every node
   (GLNN's transductive setting), test nodes included, so on the smaller graphs it can fit some of their
   teacher labels beyond that rate;
7. ``mlp_baseline``: the same MLP on the training nodes' labels alone, as many optimiser steps as the student,
   to show what the teacher adds.

The distillation cost is phases 3 to 5; per node it is divided by the graph's node count. The teacher trains on
a fixed fraction of the nodes and the student on all of them, so the work per node is the same at every size
and a flat cost per node means no phase grows faster than the graph. Generation is reported but not counted:
it stands for loading a data set and is not part of distillation (it sorts the edge list, O(E log E)).

    python benchmarks/graph_scale.py [--sizes 100000 500000 2500000] [--out results/graph_scale.json]
    python benchmarks/graph_scale.py --table results/graph_scale.json   # the README's table, from the JSON
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
MARK = "SCALE_JSON "
MB = 1e6
SIZES = (100_000, 500_000, 2_500_000)
TARGET_RATIO = 1.5
MEMORY_LIMIT_MB = 16_000  # 16 GB
CONFIG = {
    "graph": {"classes": 10, "features": 100, "avg_degree": 25.0, "homophily": 0.8, "feature_signal": 1.0,
              "seed": 0},
    "split": {"train_fraction": 0.1, "test_fraction": 0.1, "seed": 1},
    "teacher": {"model": "sage", "aggr": "gcn", "hidden": 128, "layers": 2, "dropout": 0.0, "init": "dgl",
                "fanouts": [10, 5], "batch_size": 1024, "epochs": 5, "lr": 0.003, "weight_decay": 0.0},
    "soft_labels": {"batch_size": 8192, "neighbours": "all", "temperature": 1.0},
    "student": {"hidden": 128, "layers": 2, "batch_size": 4096, "epochs": 20, "lr": 0.003, "weight_decay": 0.0,
                "lambda": 0.0, "block_batches": 32, "distil_over": "all nodes"},
    "mlp_baseline": "the student's architecture and batch size, CE on the training nodes' labels alone, epochs = "
                    "student epochs / train_fraction (as many optimiser steps as the student)",
}
DISTILL_PHASES = ("teacher_train", "soft_labels", "student_train")


# the measured child ------------------------------------------------------------------------------------------
def child(nodes: int, scratch: Path) -> Dict[str, Any]:
    import torch

    from breakdown import _reset_hwm, _status_kb, _trim, hwm_resettable
    from kdhub_graph.csbm import csbm_csr
    from kdhub_graph.glnn import GLNN
    from kdhub_graph.models import MLP, build_teacher, init_like_dgl_
    from kdhub_graph.task import PlainStudent
    from kdhub_graph.streaming import cache_glnn_soft_labels, predict, train_sampled_teacher, train_streamed_student

    torch.set_num_threads(1)
    resettable = hwm_resettable()
    seconds: Dict[str, float] = {}
    peaks = {"startup": _status_kb("VmHWM") / 1e3}  # the interpreter and its imports

    @contextlib.contextmanager
    def phase(name: str):
        _trim()
        if resettable:
            _reset_hwm()
        t0 = time.perf_counter()
        yield
        seconds[name] = time.perf_counter() - t0
        peaks[name] = _status_kb("VmHWM") / 1e3

    load_start = os.getloadavg()[0]
    cfg, c = CONFIG, CONFIG["graph"]
    with phase("generate"):
        g = csbm_csr(nodes, c["classes"], c["features"], c["avg_degree"], c["homophily"], c["feature_signal"],
                     c["seed"])
    x, y, csr = g
    with phase("split"):
        s = cfg["split"]
        perm = torch.randperm(nodes, generator=torch.Generator().manual_seed(s["seed"]))
        n_train, n_test = int(nodes * s["train_fraction"]), int(nodes * s["test_fraction"])
        train, test = perm[:n_train].sort().values, perm[n_train:n_train + n_test].sort().values
        del perm
        labelled = torch.zeros(nodes, dtype=torch.bool)
        labelled[train] = True

    t = cfg["teacher"]
    with phase("teacher_train"):
        torch.manual_seed(0)
        arch = {k: t[k] for k in ("model", "aggr", "hidden", "layers", "dropout")}
        teacher = init_like_dgl_(build_teacher(arch, c["features"], c["classes"]))
        teacher_losses = train_sampled_teacher(teacher, x, y, csr, train, t["fanouts"], t["batch_size"], t["epochs"],
                                               t["lr"], t["weight_decay"], seed=0)

    st = cfg["student"]
    torch.manual_seed(1)
    glnn = GLNN(MLP(c["features"], st["hidden"], c["classes"], st["layers"]), st["lambda"],
                cfg["soft_labels"]["temperature"])
    cache = scratch / f"soft_labels_{nodes}.npy"
    with phase("soft_labels"):
        soft = cache_glnn_soft_labels(teacher, glnn, x, csr, cache, cfg["soft_labels"]["batch_size"],
                                      meta={"teacher": arch, "nodes": nodes})
    cache_bytes = cache.stat().st_size

    with phase("student_train"):
        student_losses = train_streamed_student(glnn, x, y, labelled, soft, st["epochs"], st["batch_size"], st["lr"],
                                                st["weight_decay"], block=st["block_batches"], seed=0)

    with phase("evaluate"):
        teacher_pred = soft.rows(test)["teacher_probs"].argmax(1)
        teacher_acc = (teacher_pred == y[test]).float().mean().item() * 100
        student_pred = predict(glnn.student, x, test)
        student_acc = (student_pred == y[test]).float().mean().item() * 100
        agreement = (student_pred == teacher_pred).float().mean().item() * 100
        # the Bayes rule from features alone on unseen nodes: features are a class centre plus unit Gaussian noise
        # and the classes are balanced, so it is the nearest centre (estimated from every node)
        centres = torch.stack([x[y == k].mean(0) for k in range(c["classes"])])
        nearest = torch.cat([torch.cdist(x[b], centres).argmin(1) for b in test.split(65536)])
        centre_acc = (nearest == y[test]).float().mean().item() * 100

    with phase("mlp_baseline"):
        torch.manual_seed(1)
        plain = PlainStudent(MLP(c["features"], st["hidden"], c["classes"], st["layers"]))
        epochs = round(st["epochs"] / s["train_fraction"])
        train_streamed_student(plain, x, y, labelled, None, epochs, st["batch_size"], st["lr"], st["weight_decay"],
                               nodes=train, block=st["block_batches"], seed=0)
        mlp_acc = (predict(plain.student, x, test) == y[test]).float().mean().item() * 100

    distill_s = sum(seconds[p] for p in DISTILL_PHASES)
    return {
        "nodes": nodes, "directed_edges": int(len(csr.col)), "avg_degree": round(len(csr.col) / nodes, 3),
        "train_nodes": n_train, "test_nodes": n_test,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "distill_s": round(distill_s, 3),
        "distill_us_per_node": round(distill_s / nodes * 1e6, 3),
        "us_per_node": {k: round(v / nodes * 1e6, 3) for k, v in seconds.items()},
        "teacher_us_per_train_node_epoch": round(seconds["teacher_train"] / (n_train * t["epochs"]) * 1e6, 3),
        "peak_rss_mb": round(max(peaks.values()), 1),
        "peak_rss_mb_per_phase": {k: round(v, 1) for k, v in peaks.items()},
        "hwm_reset_works": resettable,
        "cache_file_mb": round(cache_bytes / MB, 2),
        "accuracy": {"teacher_test": round(teacher_acc, 2), "student_test": round(student_acc, 2),
                     "mlp_baseline_test": round(mlp_acc, 2), "student_teacher_agreement": round(agreement, 2),
                     "nearest_class_centre_test": round(centre_acc, 2)},
        "loss": {"teacher_per_epoch": [round(v, 4) for v in teacher_losses],
                 "student_per_epoch": [round(v, 4) for v in student_losses]},
        "threads": torch.get_num_threads(),
        "load_average_1min": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
    }


# the driver --------------------------------------------------------------------------------------------------
def run_size(nodes: int, scratch: Path) -> Dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(nodes), "--scratch",
                           str(scratch)], env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"size {nodes} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out = json.loads(lines[-1][len(MARK):])
    out["process_wall_s"] = round(time.perf_counter() - t0, 1)  # interpreter start and imports included
    return out


def summarise(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    by_size = {r["nodes"]: r for r in runs}
    small, large = by_size[min(by_size)], by_size[max(by_size)]
    ratio = large["distill_us_per_node"] / small["distill_us_per_node"]
    with_gen = lambda r: (r["distill_s"] + r["seconds"]["generate"]) / r["nodes"]
    phase_ratio = {p: round(large["us_per_node"][p] / small["us_per_node"][p], 3)
                   for p in ("generate",) + DISTILL_PHASES}
    issue_sizes = min(by_size) == SIZES[0] and max(by_size) == SIZES[-1]
    return {
        "smallest": small["nodes"], "largest": large["nodes"],
        "per_node_ratio_largest_to_smallest": round(ratio, 3),
        "per_node_ratio_per_phase": phase_ratio,
        "per_node_ratio_with_generation": round(with_gen(large) / with_gen(small), 3),
        "largest_peak_rss_mb": large["peak_rss_mb"],
        "targets": {"per_node_ratio_at_most": TARGET_RATIO, "largest_peak_rss_mb_at_most": MEMORY_LIMIT_MB,
                    "sizes_of_the_issue": list(SIZES)},
        "met": {"per_node_ratio": ratio <= TARGET_RATIO if issue_sizes else None,
                "memory": large["peak_rss_mb"] <= MEMORY_LIMIT_MB if issue_sizes else None,
                "student_above_mlp_baseline_every_size": all(
                    r["accuracy"]["student_test"] > r["accuracy"]["mlp_baseline_test"] for r in runs)},
    }


def table(result: Dict[str, Any]) -> str:
    """The README's table and summary line, printed from a result JSON (``--table``)."""
    rows = ["| nodes | generate s | teacher s | soft labels s | student s | distillation s | us / node | "
            "peak RSS MB | cache MB | teacher / student / MLP / nearest centre test acc |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["sizes"]:
        sec, acc = r["seconds"], r["accuracy"]
        rows.append(f"| {r['nodes']:,} | {sec['generate']:.1f} | {sec['teacher_train']:.1f} | {sec['soft_labels']:.1f} | "
                    f"{sec['student_train']:.1f} | {r['distill_s']:.1f} | {r['distill_us_per_node']:.1f} | "
                    f"{r['peak_rss_mb']:,.0f} | {r['cache_file_mb']:.1f} | {acc['teacher_test']:.2f} / "
                    f"{acc['student_test']:.2f} / {acc['mlp_baseline_test']:.2f} / "
                    f"{acc.get('nearest_class_centre_test', float('nan')):.2f} |")
    s = result["summary"]
    rows.append("")
    rows.append(f"Per-node distillation time, {s['largest']:,} against {s['smallest']:,} nodes: "
                f"{s['per_node_ratio_largest_to_smallest']:.3f}x (target <= {s['targets']['per_node_ratio_at_most']}, "
                f"met: {s['met']['per_node_ratio']}); peak RSS at {s['largest']:,} nodes {s['largest_peak_rss_mb']:,.0f} "
                f"MB (target <= {s['targets']['largest_peak_rss_mb_at_most']:,} MB, met: {s['met']['memory']}). "
                f"Run: commit {result['commit'][:7]} (uncommitted changes: {result['uncommitted_changes']}), "
                f"`{result['command']}`, {result['machine']['threads']} thread, {result['wall_time_s']:.0f} s in all.")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--out", default="results/graph_scale.json")
    ap.add_argument("--scratch", default="work_dirs/graph_scale", help="folder of the soft-label caches (removed)")
    ap.add_argument("--table", metavar="JSON", help="print the README table of a result file and exit")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return
    scratch = Path(args.scratch)
    if args.child is not None:
        sys.path.insert(0, str(HERE))
        print(MARK + json.dumps(child(args.child, scratch)), flush=True)
        return

    import torch

    from kdhub.checkpoint import atomic_write_text
    from provenance import run_info

    torch.set_num_threads(1)
    info = run_info()  # the checkout as the run starts (another commit may land while it runs)
    scratch.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs = []
    try:
        for n in args.sizes:
            runs.append(run_size(n, scratch))
            print(json.dumps({k: runs[-1][k] for k in ("nodes", "seconds", "distill_us_per_node", "peak_rss_mb",
                                                       "accuracy")}), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "benchmark": "graph_scale",
        "what": "GLNN end to end (sampled SAGE teacher, layer-wise soft-label inference to a .npy cache, streamed "
                "MLP student) on generated CSBM graphs, each size in a fresh process on one thread",
        "config": CONFIG,
        "cost_counted": f"phases {', '.join(DISTILL_PHASES)} (distill_s); per node = / nodes. 'generate' stands for "
                        "loading a data set and is reported, not counted; 'split', 'evaluate' and 'mlp_baseline' are "
                        "not part of the distillation either",
        "peak_rss": "VmHWM of the size's process, reset at the start of each phase (per-phase peaks; the size's "
                    "peak is the largest, the interpreter's start-up included); MB = 1e6 bytes",
        "cache_read": "the student reads the soft-label file through a memory map right after it was written, so "
                      "from the page cache",
        "sizes": runs,
        "summary": summarise(runs),
        "wall_time_s": round(time.perf_counter() - t0, 1),
        **info,
    }
    end = run_info()
    if (end["commit"], end["uncommitted_changes"]) != (info["commit"], info["uncommitted_changes"]):
        result["checkout_at_end"] = {"commit": end["commit"], "uncommitted_changes": end["uncommitted_changes"]}
    result["machine"]["load_average_1min"] = round(os.getloadavg()[0], 2)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
