"""Detection distillation benchmark on the embedded data: GID (RetinaNet, Faster R-CNN) and DETRDistill
(Deformable DETR, DINO).

Every model is trained by the pipeline itself through the real launcher (``kdhub train ... --resume``, so an
interrupted benchmark continues and finished runs are reused): one teacher per family (its config's seed), then,
for every seed of ``--seeds``, the baseline student and the distilled students with that seed
(``randomness.seed``) and the same schedule. DETRDistill on Deformable DETR is also run with each component
alone (logits, feature, query, contrastive; the other weights 0), and with the released query-prior form
(``query_prior=released``) against the default, to choose the default by measurement. Test-split COCO AP comes from each run's
``summary.json`` (nothing is tuned on the test split); the JSON holds AP and gain per seed and their means over
seeds, and for the ablation the check "all components >= each single component" on those means. Step times are
the median of repeated training steps in one process: distillation step / (student step + teacher forward).
Finished runs are reused by work-dir name: after changing a method, use a fresh ``--work-root``.

    python benchmarks/detection_distill.py [--only gid|frcnn|detr|dino] [--seeds 0,1] [--work-root DIR] [--out ...json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from provenance import run_info

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "plugins" / "detection" / "configs"
TARGET_GAIN = 2.0
TARGET_FAMILIES = ("gid", "detr")  # the acceptance targets; the other rows are reported without one

FAMILIES = {
    "gid": {
        "teacher": "retinanet_r18w32_synth.py",
        "baseline": "retinanet_r18w16_synth.py",
        "distill": "gid_retinanet_r18w32_r18w16_synth.py",
        "variants": {"gid": []},
        "detector": "RetinaNet",
        "method": "GID",
    },
    "frcnn": {
        "teacher": "faster_rcnn_r18w32_synth.py",
        "baseline": "faster_rcnn_r18w16_synth.py",
        "distill": "gid_faster_rcnn_r18w32_r18w16_synth.py",
        "variants": {"gid": []},
        "detector": "Faster R-CNN",
        "method": "GID",
    },
    "detr": {
        "teacher": "deformable_detr_r18w32_synth.py",
        "baseline": "deformable_detr_r18w16_synth.py",
        "distill": "detrdistill_deformable_detr_r18w32_r18w16_synth.py",
        "variants": {  # the first is the method; the others keep one component (every other weight 0)
            "all": [],
            "logits": ["model.distiller.feature_weight=0", "model.distiller.query_weight=0",
                       "model.distiller.contrastive_weight=0"],
            "feature": ["model.distiller.logits_weight=0", "model.distiller.query_weight=0",
                        "model.distiller.contrastive_weight=0"],
            "query": ["model.distiller.logits_weight=0", "model.distiller.feature_weight=0",
                      "model.distiller.contrastive_weight=0"],
            "contrastive": ["model.distiller.logits_weight=0", "model.distiller.feature_weight=0",
                            "model.distiller.query_weight=0"],
        },
        # the method with one switch changed, per seed; compared with the method, not part of the ablation check
        "alternatives": {"all_released_query_prior": ["model.distiller.query_prior=released"]},
        "detector": "Deformable DETR",
        "method": "DETRDistill",
    },
    "dino": {
        "teacher": "dino_r18w32_synth.py",
        "baseline": "dino_r18w16_synth.py",
        "distill": "detrdistill_dino_r18w32_r18w16_synth.py",
        "variants": {"all": []},
        "detector": "DINO",
        "method": "DETRDistill",
    },
}


def train(config: Path, work: Path, options=(), log: Path = None) -> dict:
    """``kdhub train`` in a subprocess (resumable); returns the run's summary.json."""
    if not (work / "summary.json").is_file():
        cmd = [sys.executable, "-m", "kdhub", "train", str(config), "--work-dir", str(work), "--resume"]
        if options:
            cmd += ["--cfg-options", *options]
        t0 = time.perf_counter()
        with open(log or work.with_suffix(".log"), "w") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed; see {log or work.with_suffix('.log')}")
        print(f"  trained {work.name} in {time.perf_counter() - t0:.0f} s", flush=True)
    return json.loads((work / "summary.json").read_text())


def step_times(config: Path, options, repeats: int = 5, device: str = "cpu") -> dict:
    """Median seconds of a student training step, a teacher forward and a distillation training step, on
    ``device`` (the data preprocessor moves each batch to the model's device)."""
    import torch
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    from mmdet.registry import DATASETS, MODELS
    from mmengine.dataset import pseudo_collate

    from kdhub.timing import median_seconds
    from kdhub_detection.config import load

    cfg = load(config, list(options))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()  # the student's initialisation (the teacher keeps its trained weights)
    model.to(device).train()
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    batch = cfg.train_dataloader.batch_size
    data = model.data_preprocessor(pseudo_collate([ds[i] for i in range(batch)]), True)
    inputs, samples = data["inputs"], data["data_samples"]

    def student_step():
        model.zero_grad(set_to_none=True)
        model.parse_losses(model.student.loss(inputs, samples))[0].backward()

    def teacher_forward():
        with torch.no_grad():
            model.teacher._forward(inputs, samples)

    def distill_step():
        model.zero_grad(set_to_none=True)
        model.parse_losses(model(inputs, samples, mode="loss"))[0].backward()

    t_s = median_seconds(student_step, repeats, warmup=2)
    t_t = median_seconds(teacher_forward, repeats, warmup=2)
    t_d = median_seconds(distill_step, repeats, warmup=2)
    return {"batch": batch, "student_step_s": round(t_s, 4), "teacher_forward_s": round(t_t, 4),
            "distill_step_s": round(t_d, 4), "ratio": round(t_d / (t_s + t_t), 3)}


def _mean(values) -> float:
    values = list(values)
    return round(sum(values) / len(values), 3)


def _per_seed(values: dict) -> dict:
    """``{seed: value}`` -> ``{"per_seed": {...}, "mean": mean over seeds}``."""
    return {"per_seed": {str(k): round(v, 3) for k, v in values.items()}, "mean": _mean(values.values())}


def run_family(name: str, spec: dict, root: Path, seeds=(0,)) -> dict:
    print(f"{name}: {spec['detector']} (seeds {', '.join(map(str, seeds))})", flush=True)
    root.mkdir(parents=True, exist_ok=True)
    teacher = train(CONFIGS / spec["teacher"], root / f"{name}_teacher")
    ckpt = f"model.teacher.checkpoint={root / f'{name}_teacher' / 'student.pth'}"
    baselines, students = {}, {v: {} for v in spec["variants"]}
    for seed in seeds:
        seed_opt = f"randomness.seed={seed}"
        baselines[seed] = train(CONFIGS / spec["baseline"], root / f"{name}_baseline_s{seed}", [seed_opt])
        for v, opts in spec["variants"].items():
            students[v][seed] = train(CONFIGS / spec["distill"], root / f"{name}_distill_{v}_s{seed}",
                                      [ckpt, seed_opt, *opts])
    alternatives = {v: {seed: train(CONFIGS / spec["distill"], root / f"{name}_distill_{v}_s{seed}",
                                    [ckpt, f"randomness.seed={seed}", *opts]) for seed in seeds}
                    for v, opts in spec.get("alternatives", {}).items()}
    main = next(iter(spec["variants"]))
    # teacher and baseline are plain configs (metrics under "model"); distillation runs report "student"
    base_ap = {seed: b["model"]["AP"] for seed, b in baselines.items()}
    ap = {v: {seed: s["student"]["AP"] for seed, s in runs.items()} for v, runs in students.items()}
    gain = {v: {seed: a - base_ap[seed] for seed, a in per.items()} for v, per in ap.items()}
    result = {
        "detector": spec["detector"],
        "configs": {k: spec[k] for k in ("teacher", "baseline", "distill")},
        "seeds": list(seeds),
        "teacher": teacher["model"],
        "baseline_AP": _per_seed(base_ap),
        "distilled_AP": _per_seed(ap[main]),
        "gain_AP": _per_seed(gain[main]),
        "target_gain_AP": TARGET_GAIN if name in TARGET_FAMILIES else None,
        "per_seed": {str(seed): {"baseline": baselines[seed]["model"],
                                 "distilled": {v: students[v][seed]["student"] for v in students}}
                     for seed in seeds},
        "params": {"teacher": teacher["params"]["model"], "student": baselines[seeds[0]]["params"]["model"]},
        "wall_time_s": {"teacher": teacher["wall_time_s"],
                        **{f"baseline_s{seed}": b["wall_time_s"] for seed, b in baselines.items()},
                        **{f"distill_{v}_s{seed}": r["wall_time_s"] for v, runs in students.items()
                           for seed, r in runs.items()}},
    }
    result["target_met"] = result["gain_AP"]["mean"] >= TARGET_GAIN if name in TARGET_FAMILIES else None
    if len(students) > 1:
        result["ablation_AP"] = {v: _per_seed(per) for v, per in ap.items()}
        result["ablation_gain_AP"] = {v: _per_seed(per) for v, per in gain.items()}
        singles = {v: result["ablation_AP"][v]["mean"] for v in students if v != main}
        all_mean = result["ablation_AP"][main]["mean"]
        below = sorted(v for v, m in singles.items() if all_mean < m)
        result["ablation_check"] = {
            "rule": f"mean AP over seeds of '{main}' >= that of each single component",
            "all_mean_AP": all_mean, "single_mean_AP": singles, "passed": not below, "below": below}
    if alternatives:
        alt_ap = {v: _per_seed({seed: r["student"]["AP"] for seed, r in runs.items()})
                  for v, runs in alternatives.items()}
        result["alternatives_AP"] = {"options": spec["alternatives"], main: result["distilled_AP"], **alt_ap}
        result["wall_time_s"].update({f"distill_{v}_s{seed}": r["wall_time_s"] for v, runs in alternatives.items()
                                      for seed, r in runs.items()})
    print(f"  step times ({name})", flush=True)
    result["step_time"] = step_times(CONFIGS / spec["distill"], [ckpt])
    return result


def _target(result: dict) -> str:
    met = result.get("target_met")
    return "-" if met is None else ("met" if met else "not met")


def table(results: dict) -> str:
    """The README tables (Markdown) from the results JSON: means over seeds."""
    lines = ["| method (detector) | seeds | teacher AP | baseline AP | distilled AP | gain | target (+2.0) | "
             "step ratio |", "|---|---|---|---|---|---|---|---|"]
    for name, spec in FAMILIES.items():
        r = results.get(name)
        if not r:
            continue
        if "baseline_AP" not in r:
            raise SystemExit(f"{name}: these results predate per-seed runs (--seeds); rerun the benchmark")
        st = r.get("step_time", {})
        lines.append(f"| {spec['method']} ({r['detector']}) | {','.join(map(str, r['seeds']))} | "
                     f"{r['teacher']['AP']:.1f} | {r['baseline_AP']['mean']:.1f} | {r['distilled_AP']['mean']:.1f} | "
                     f"{r['gain_AP']['mean']:+.1f} | {_target(r)} | {st.get('ratio', float('nan')):.2f} |")
    detr = results.get("detr") or {}
    abl = detr.get("ablation_AP")
    if abl:
        seeds = [str(s) for s in detr["seeds"]]
        lines += ["", "| DETRDistill components | " + " | ".join(f"AP seed {s}" for s in seeds)
                  + " | mean AP | mean gain over baseline |", "|---" * (len(seeds) + 3) + "|"]
        for v, per in abl.items():
            lines.append(f"| {v} | " + " | ".join(f"{per['per_seed'][s]:.1f}" for s in seeds)
                         + f" | {per['mean']:.1f} | {detr['ablation_gain_AP'][v]['mean']:+.1f} |")
        alt = detr.get("alternatives_AP")
        if alt:
            for v, opts in alt["options"].items():
                per = alt[v]
                lines.append(f"| {v} ({', '.join(o.split('.')[-1] for o in opts)}) | "
                             + " | ".join(f"{per['per_seed'][s]:.1f}" for s in seeds)
                             + f" | {per['mean']:.1f} | {per['mean'] - detr['baseline_AP']['mean']:+.1f} |")
        check = detr.get("ablation_check")
        if check:
            lines += ["", f"all >= each single component (mean over seeds): "
                          f"{'yes' if check['passed'] else 'no, below: ' + ', '.join(check['below'])}"]
    return "\n".join(lines)


def _seeds(text: str):
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds wants comma-separated integers, e.g. 0,1; got {text!r}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds wants distinct integers, e.g. 0,1; got {text!r}")
    return seeds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=sorted(FAMILIES), action="append")
    p.add_argument("--seeds", type=_seeds, default=(0, 1),
                   help="students' seeds (randomness.seed), comma-separated; one teacher per family (default 0,1)")
    p.add_argument("--work-root", default=str(ROOT / "work_dirs" / "bench_detection"))
    p.add_argument("--out", default=str(ROOT / "results" / "detection_distill.json"))
    p.add_argument("--table", action="store_true", help="print the README tables from --out and exit")
    args = p.parse_args(argv)
    if args.table:
        print(table(json.loads(Path(args.out).read_text())))
        return 0
    root = Path(args.work_root)
    os.environ.setdefault("KDHUB_DATA_DIR", str(root / "data"))
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    for name in args.only or list(FAMILIES):
        results[name] = run_family(name, FAMILIES[name], root, args.seeds)
        results["machine"] = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                              "python": platform.python_version(), "note": "2-core CPU shared with other jobs; "
                              "step times are medians of 5 and noisy under that load"}
        results["provenance"] = run_info()  # this invocation; finished runs in --work-root are reused
        from kdhub.checkpoint import atomic_write_text
        atomic_write_text(out, json.dumps(results, indent=2) + "\n")
        print(json.dumps(results[name], indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
