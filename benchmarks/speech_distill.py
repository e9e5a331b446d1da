"""Speech acceptance benchmark: distilled vs baseline student on the embedded set, and step-time ratios.

1. One teacher is trained by the pipeline (``kdhub train CONFIG``: its teacher stage), or taken from an
   earlier pipeline run (``--teacher-checkpoint``, e.g. one trained with ``--cfg-options device=cuda``);
   then for each student budget (epochs) and seed a baseline and a distilled student of the same
   architecture, initial weights, budget and seed are trained against it. Test voices are unseen in
   training. SI-SNRi / SDRi in dB. ``--labelled N`` adds the semi-supervised setting: the students have
   the references of the first N training mixtures only, the distilled one also distils the other mixtures
   from the teacher alone, and the baseline takes as many steps (more epochs over its N mixtures).
2. Step times, measured interleaved in one process on one fixed batch: a distillation step vs (student
   step + teacher forward), and a step with cached teacher outputs vs the plain student step.

    python benchmarks/speech_distill.py [--config CONFIG] [--teacher-checkpoint PTH] [--seeds 0 1 2]
                                        [--labelled 0 100] [--out results/speech_distill.json]
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

import speechbrain as sb
import torch

from kdhub.checkpoint import atomic_write_text
from kdhub.cli import main as kdhub
from kdhub.timing import median_seconds
from kdhub_speech.brain import Distillation, SeparationBrain
from kdhub_speech.cache import TeacherCache
from kdhub_speech.data import dataset
from kdhub_speech.intermediate import IntermediateDistillation
from kdhub_speech.objective_shifting import ObjectiveShifting
from kdhub_speech.plugin import kdhub_load_config
from kdhub_speech.task import load_data, load_separator
from provenance import run_info

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "plugins" / "speech" / "configs" / "convtasnet_distill.yaml"


def train(work: Path, *options: str) -> dict:
    rc = kdhub(["train", str(CONFIG), "--work-dir", str(work), "--resume", "--cfg-options", *options])
    if rc != 0:
        raise SystemExit(f"kdhub train {CONFIG.name} failed ({rc})")
    return json.loads((work / "summary.json").read_text())


def step_times(teacher_path: Path, work: Path, repeats: int, device: str = "cpu", config: Path = CONFIG,
               overrides=()) -> dict:
    """Median step times (ms) of plain, distilled and cached-distilled training on one batch of ``config``
    (with ``overrides``), on ``device``."""
    cfg = kdhub_load_config(config, list(overrides)).cfg
    teacher = load_separator(cfg["teacher_model"], teacher_path, "teacher", str(config)).eval().to(device)
    data = load_data(cfg, str(config))
    train_ds = dataset(data.train)
    hp = cfg["training"]
    batch = next(iter(sb.dataio.dataloader.make_dataloader(train_ds, batch_size=hp["batch_size"])))
    d = cfg["distill"]
    pairs = [tuple(p) for p in d["features"]["pairs"]]
    sh = ObjectiveShifting(**d["shifting"])
    cache = TeacherCache.build(work / "timing_cache.pt", teacher, train_ds, [t for _, t in pairs], device)

    def brain(kd_on: bool, cached: bool, features: bool = True) -> SeparationBrain:
        student = copy.deepcopy(cfg["student_model"]).to(device)
        kd = None
        if kd_on:
            p = pairs if features else []
            inter = IntermediateDistillation(p, IntermediateDistillation.probe_channels(student, teacher, p, 4000)) \
                if p else None
            kd = Distillation(teacher=teacher, output_weight=d["output"], feature_weight=d["features"]["weight"]
                              if p else 0.0, pairs=p, shifting=sh, cache=cache if cached else None,
                              intermediate=inter)
        b = SeparationBrain(student, lr=hp["lr"], epochs=1, steps_per_epoch=100, num_spks=2, distillation=kd,
                            run_opts={"device": device, "noprogressbar": True})
        b.on_fit_start()
        b.on_stage_start(sb.Stage.TRAIN, 1)
        b.step = 1
        return b

    runs = {"student_step": brain(False, False), "distill_step": brain(True, False),
            "cached_distill_step": brain(True, True), "cached_output_only_step": brain(True, True, features=False)}

    def teacher_forward():
        with torch.no_grad():
            teacher(batch.mix_sig.data.to(device))

    fns = {k: (lambda b=b: b.fit_batch(batch)) for k, b in runs.items()}
    fns["teacher_forward"] = teacher_forward
    samples = {k: [] for k in fns}
    for _ in range(repeats):  # interleaved, so drift in machine load hits every variant alike
        for k, fn in fns.items():
            samples[k].append(median_seconds(fn, repeats=3, warmup=1))
    ms = {k: round(statistics.median(v) * 1000, 3) for k, v in samples.items()}
    ms["distill_vs_student_plus_teacher"] = round(ms["distill_step"] / (ms["student_step"] + ms["teacher_forward"]), 4)
    ms["cached_with_features_vs_student"] = round(ms["cached_distill_step"] / ms["student_step"], 4)
    ms["cached_output_only_vs_student"] = round(ms["cached_output_only_step"] / ms["student_step"], 4)
    ms["batch"] = f"{hp['batch_size']} x {batch.mix_sig.data.shape[-1]} samples"
    return ms


def cache_cost(work: Path, repeats: int, config: Path = CONFIG) -> dict:
    """Disk size of the teacher cache per hour of training audio, and the cost of reading one batch from it
    against the plain student step, interleaved in one process. Sizes and read times do not depend on the
    teacher's weights, so the config's teacher is used as initialised (seed 0)."""
    cfg = kdhub_load_config(config, []).cfg
    torch.manual_seed(0)
    teacher = cfg["teacher_model"].eval()
    data = load_data(cfg, str(config))
    train_ds = dataset(data.train)
    pairs = [tuple(p) for p in cfg["distill"]["features"]["pairs"]]
    path = work / "cache_cost.pt"  # reused when present: its size does not depend on the teacher's weights
    cache = TeacherCache.build(path, teacher, train_ds, [t for _, t in pairs], "cpu")
    seconds = sum(sb.dataio.dataio.read_audio_info(r["mix_wav"]).num_frames for r in data.train.rows.values()) \
        / cfg["sample_rate"]
    hours = seconds / 3600
    out_bytes = cache.outputs.numel() * cache.outputs.element_size()
    feat_bytes = sum(f.numel() * f.element_size() for f in cache.features)
    hp = cfg["training"]
    batch = next(iter(sb.dataio.dataloader.make_dataloader(train_ds, batch_size=hp["batch_size"])))
    samples_per = batch.mix_sig.data.shape[-1]
    student = SeparationBrain(copy.deepcopy(cfg["student_model"]), lr=hp["lr"], epochs=1, steps_per_epoch=100,
                              num_spks=2, run_opts={"device": "cpu", "noprogressbar": True})
    student.on_fit_start()
    student.on_stage_start(sb.Stage.TRAIN, 1)
    student.step = 1
    fns = {"student_step": lambda: student.fit_batch(batch),
           "cache_read": lambda: cache.lookup(list(batch.id), samples_per, "cpu")}
    runs = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            runs[k].append(median_seconds(fn, repeats=3, warmup=1))
    ms = {k: round(statistics.median(v) * 1000, 4) for k, v in runs.items()}
    audio_per_batch_s = hp["batch_size"] * samples_per / cfg["sample_rate"]
    return {
        "cache_file_bytes": path.stat().st_size,
        "train_audio_hours": round(hours, 4),
        "mb_per_hour_of_audio": round(path.stat().st_size / 1e6 / hours, 1),
        "mb_per_hour_outputs": round(out_bytes / 1e6 / hours, 1),
        "mb_per_hour_features": round(feat_bytes / 1e6 / hours, 1),
        "step_ms": ms,
        "read_vs_student_step": round(ms["cache_read"] / ms["student_step"], 4),
        "read_hours_of_audio_per_s": round(audio_per_batch_s / 3600 / (ms["cache_read"] / 1000), 2),
        "batch": f"{hp['batch_size']} x {samples_per} samples",
        "stored_as": "float16, memory-mapped; outputs aligned to the references; features of the configured pairs",
    }


def describe_data(cfg: dict) -> str:
    d = cfg["data"]
    if d["source"] != "embedded":
        return f"manifests: {d['train_csv']} / {d['valid_csv']} / {d['test_csv']}"
    e = d["embedded"]
    return (f"embedded: {e['train']} train / {e['valid']} valid / {e['test']} test two-speaker "
            f"{cfg['sample_rate'] // 1000} kHz mixtures of {e['seconds']} s; test voices unseen")


def add_step_times(result: dict, teacher_ckpt: Path, work: Path, repeats: int) -> None:
    """Measure the step times into ``result`` with the acceptance flags and the machine they ran on."""
    result["step_ms"] = step_times(teacher_ckpt, work, repeats)
    result["acceptance_step_ok"] = result["step_ms"]["distill_vs_student_plus_teacher"] <= 1.10
    # "with cached teacher outputs": the output term from the cache; the feature term adds its adapters'
    # own forward and backward on top, reported as cached_with_features_vs_student
    result["acceptance_cached_ok"] = result["step_ms"]["cached_output_only_vs_student"] <= 1.05
    result["machine"] = {"cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
                         "torch": torch.__version__, "speechbrain": sb.__version__,
                         "load_average_1min_before_timing": round(os.getloadavg()[0], 2)}


def main() -> None:
    global CONFIG
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=CONFIG, help="speech distillation config (hyperpyyaml)")
    ap.add_argument("--teacher-checkpoint", type=Path, default=None,
                    help="a teacher model.pth from an earlier pipeline run of this config (else trained here)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--work-dir", default="work_dirs/bench_speech")
    ap.add_argument("--teacher-epochs", type=int, default=None, help="the teacher's budget (default: the config's)")
    ap.add_argument("--student-epochs", type=int, nargs="+", default=[3],
                    help="budgets of baseline and distilled student (each budget is a separate comparison)")
    ap.add_argument("--labelled", type=int, nargs="+", default=[0],
                    help="labelled training mixtures of the students (0: all; N: first N, the rest unlabelled)")
    ap.add_argument("--timing-repeats", type=int, default=7)
    ap.add_argument("--out", default="results/speech_distill.json")
    ap.add_argument("--timing-only", action="store_true",
                    help="re-measure only the step times (e.g. on a quieter machine) into the existing --out")
    ap.add_argument("--cache-only", metavar="JSON", default=None,
                    help="measure only the teacher cache's disk size per hour of audio and its read cost vs the "
                         "student step, into JSON")
    args = ap.parse_args()
    CONFIG = args.config.resolve()
    if args.cache_only:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        result = {"config": str(CONFIG.relative_to(ROOT)) if CONFIG.is_relative_to(ROOT) else str(CONFIG),
                  "data": describe_data(kdhub_load_config(CONFIG, []).cfg),
                  **cache_cost(work, args.timing_repeats, CONFIG), **run_info()}
        atomic_write_text(Path(args.cache_only), json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return
    if args.timing_only:
        out = Path(args.out)
        result = json.loads(out.read_text())
        teacher_ckpt = args.teacher_checkpoint or \
            Path(args.work_dir) / f"epochs{args.student_epochs[0]}" / f"seed{args.seeds[0]}" / "teacher" / "model.pth"
        if not teacher_ckpt.is_file():
            raise SystemExit(f"--timing-only: no teacher at {teacher_ckpt}; pass --teacher-checkpoint PTH")
        add_step_times(result, teacher_ckpt.resolve(), Path(args.work_dir), args.timing_repeats)
        atomic_write_text(out, json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["step_ms"], indent=2))
        return
    work = Path(args.work_dir)
    t0 = time.perf_counter()
    teacher_ckpt, teacher, params = None, None, None
    provenance = "trained by this run (the config's teacher stage, first seed)"
    if args.teacher_checkpoint:
        teacher_ckpt = args.teacher_checkpoint.resolve()
        provenance = f"given: {args.teacher_checkpoint} (an earlier kdhub train run of this config's teacher stage)"
    budgets = []
    for labelled in args.labelled:
        for epochs in args.student_epochs:
            runs, student_data = [], None
            for seed in args.seeds:
                options = [f"seed={seed}", f"training.epochs={epochs}"]
                options += [f"teacher_training.epochs={args.teacher_epochs}"] if args.teacher_epochs else []
                options += [f"teacher_checkpoint={teacher_ckpt}"] if teacher_ckpt else []
                options += [f"training.limit={labelled}", "distill.unlabelled_rest=true"] if labelled else []
                run_dir = work / f"{f'labelled{labelled}_' if labelled else ''}epochs{epochs}" / f"seed{seed}"
                s = train(run_dir, *options)
                if teacher_ckpt is None:
                    teacher_ckpt = (run_dir / "teacher" / "model.pth").resolve()
                teacher = teacher or s["teacher"]
                params, student_data = s["params"], s.get("student_data")
                runs.append({"seed": seed, "baseline": s["baseline"], "distilled": s["student"]})
                print(f"labelled {labelled or 'all'}, {epochs} epochs, seed {seed}: baseline "
                      f"{s['baseline']['si-snri']:.2f} dB, distilled {s['student']['si-snri']:.2f} dB")
            mean = {role: {k: round(statistics.mean(r[role][k] for r in runs), 3) for k in ("si-snri", "sdri")}
                    for role in ("baseline", "distilled")}
            gain = round(mean["distilled"]["si-snri"] - mean["baseline"]["si-snri"], 3)
            budgets.append({"labelled_mixtures": labelled or "all", "student_data": student_data,
                            "student_epochs": epochs, "seeds": runs, "mean": mean, "si_snri_gain_db": gain,
                            "acceptance_gain_ok": gain >= 0.5})
    cfg = kdhub_load_config(CONFIG, []).cfg
    result = {
        "config": str(CONFIG.relative_to(ROOT)) if CONFIG.is_relative_to(ROOT) else str(CONFIG),
        "data": describe_data(cfg),
        "teacher": {k: round(v, 3) for k, v in teacher.items()},
        "teacher_checkpoint": {"provenance": provenance,
                               "sha256": hashlib.sha256(teacher_ckpt.read_bytes()).hexdigest()[:16]},
        "teacher_epochs": args.teacher_epochs or cfg["teacher_training"]["epochs"],
        "params": params,
        "budgets": budgets,
    }
    add_step_times(result, teacher_ckpt, work, args.timing_repeats)
    result["wall_time_s"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({"gains_db": {b["student_epochs"]: b["si_snri_gain_db"] for b in budgets},
                      "step_ms": result["step_ms"]}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
