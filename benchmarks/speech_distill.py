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
3. ``--profile-only JSON``: one distillation step broken into its parts (teacher forward, student step, the
   adapters, the PIT alignment, the losses, machinery), each a share of the step, and the step's peak memory
   against the floor's (teacher forward + student step), each measured in a fresh process. ``--scale recipe``
   profiles the shipped LibriMix recipe's models instead (SpeechBrain's SepFormer sizes as the teacher, a
   Conv-TasNet student) on one 4 s mixture: the recipe's batch of one, cropped as its ``segment_seconds: 4.0``
   option does (the recipe itself trains on whole mixtures).

    python benchmarks/speech_distill.py [--config CONFIG] [--teacher-checkpoint PTH] [--seeds 0 1 2]
                                        [--labelled 0 100] [--out results/speech_distill.json]
    python benchmarks/speech_distill.py --profile-only results/speech_profile.json [--timing-repeats 5]
    python benchmarks/speech_distill.py --profile-only results/speech_profile_recipe.json --scale recipe
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
from typing import Dict, Optional, Sequence

import speechbrain as sb
import torch

from kdhub.checkpoint import atomic_write_text
from kdhub.cli import main as kdhub
from kdhub.taps import FeatureTaps
from kdhub.timing import median_seconds
from kdhub_speech.brain import Distillation, SeparationBrain
from kdhub_speech.cache import TeacherCache
from kdhub_speech.data import dataset, targets as batch_targets
from kdhub_speech.intermediate import IntermediateDistillation, read_frames
from kdhub_speech.objective_shifting import ObjectiveShifting
from kdhub_speech.pit_kd import align_teacher, pit
from kdhub_speech.plugin import kdhub_load_config
from kdhub_speech.task import load_data, load_separator
from provenance import run_info

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "plugins" / "speech" / "configs" / "convtasnet_distill.yaml"
#: --scale recipe: the shipped LibriMix recipe (SepFormer at SpeechBrain's recipe sizes -> Conv-TasNet), on mixtures
#: of SpeechBrain's training_signal_len (32000 samples: 4 s at 8 kHz, the length its LibriMix recipes crop to when
#: limit_training_signal_len is set, and the segment the config suggests to save memory)
RECIPE_CONFIG = ROOT / "plugins" / "speech" / "configs" / "librimix_sepformer_to_convtasnet.yaml"
RECIPE_SECONDS = 4.0


def train(work: Path, *options: str) -> dict:
    rc = kdhub(["train", str(CONFIG), "--work-dir", str(work), "--resume", "--cfg-options", *options])
    if rc != 0:
        raise SystemExit(f"kdhub train {CONFIG.name} failed ({rc})")
    return json.loads((work / "summary.json").read_text())


def make_brain(cfg: dict, teacher, device: str, kd_on: bool, cache: Optional[TeacherCache] = None,
               features: bool = True) -> SeparationBrain:
    """A Brain of the config's student (a fresh copy of its initial weights) at its first training step: plain,
    or distilling from ``teacher`` (or from ``cache``) with the config's terms (the feature term when
    ``features``)."""
    hp, d = cfg["training"], cfg["distill"]
    student = copy.deepcopy(cfg["student_model"]).to(device)
    kd = None
    if kd_on:
        p = [tuple(x) for x in d["features"]["pairs"]] if features else []
        inter = IntermediateDistillation(p, IntermediateDistillation.probe_channels(student, teacher, p, 4000)) \
            if p else None
        kd = Distillation(teacher=teacher, output_weight=d["output"], feature_weight=d["features"]["weight"]
                          if p else 0.0, pairs=p, shifting=ObjectiveShifting(**d["shifting"]), cache=cache,
                          intermediate=inter)
    b = SeparationBrain(student, lr=hp["lr"], epochs=1, steps_per_epoch=100, num_spks=2, distillation=kd,
                        run_opts={"device": device, "noprogressbar": True})
    b.on_fit_start()
    b.on_stage_start(sb.Stage.TRAIN, 1)
    b.step = 1
    return b


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
    cache = TeacherCache.build(work / "timing_cache.pt", teacher, train_ds, [t for _, t in pairs], device)

    def brain(kd_on: bool, cached: bool, features: bool = True) -> SeparationBrain:
        return make_brain(cfg, teacher, device, kd_on, cache if cached else None, features)

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


def profile_setup(config: Path = CONFIG, device: str = "cpu", scale: str = "embedded", overrides: Sequence[str] = ()):
    """The config with its teacher as initialised (seed 0) and one batch of its size: the profile's timings and
    memory do not depend on trained weights. ``embedded``: the first batch of the config's training data;
    ``recipe``: :func:`recipe_batch` for the recipe's models. ``overrides`` (``--cfg-options``) apply to the
    embedded set's config: with ``recipe``, to the set the recipe's batch is joined from."""
    cfg = kdhub_load_config(config, [] if scale == "recipe" else list(overrides)).cfg
    torch.manual_seed(0)
    teacher = cfg["teacher_model"].eval().to(device)
    if scale == "recipe":
        return cfg, teacher, recipe_batch(cfg["training"]["batch_size"], RECIPE_SECONDS, overrides).to(device)
    train_ds = dataset(load_data(cfg, str(config)).train)
    batch = next(iter(sb.dataio.dataloader.make_dataloader(train_ds, batch_size=cfg["training"]["batch_size"])))
    return cfg, teacher, batch.to(device)


def recipe_batch(size: int, seconds: float, overrides: Sequence[str] = ()) -> sb.dataio.batch.PaddedBatch:
    """``size`` mixtures of ``seconds`` each, built offline from the embedded training set (its 8 kHz sample rate
    is the recipe's): consecutive 0.5 s embedded mixtures joined end to end, their sources joined alike, so each
    mixture is still the exact sum of its two references (whose speakers change at every join; the timing does
    not depend on the content). ``overrides`` apply to the embedded set's config."""
    cfg = kdhub_load_config(CONFIG, list(overrides)).cfg
    ds = dataset(load_data(cfg, str(CONFIG)).train)
    per = _joined(cfg, seconds)
    items = [ds[i] for i in range(size * per)]
    joined = [{"id": f"recipe{j}", **{k: torch.cat([it[k] for it in items[j * per:(j + 1) * per]])
                                      for k in ("mix_sig", "s1_sig", "s2_sig")}} for j in range(size)]
    return sb.dataio.batch.PaddedBatch(joined)


def _joined(cfg: dict, seconds: float) -> int:
    """How many of the embedded set's mixtures :func:`recipe_batch` joins into one of ``seconds``."""
    return round(seconds / cfg["data"]["embedded"]["seconds"])


def describe_recipe_data(seconds: float = RECIPE_SECONDS, overrides: Sequence[str] = ()) -> str:
    """What :func:`recipe_batch` builds, for the JSON's ``data``."""
    each = kdhub_load_config(CONFIG, list(overrides)).cfg
    return (f"{seconds:g} s: {_joined(each, seconds)} consecutive {each['data']['embedded']['seconds']:g} s mixtures "
            "of the embedded training set joined end to end")


def method_parts(cfg: dict, teacher, inter: IntermediateDistillation, batch):
    """The method's parts of a distillation step on ``batch``, each a callable: the intermediate term's adapters
    (forward, backward and the Adam update of their parameters), the teacher's PIT alignment to the references
    (no grad), and the losses (PIT SI-SNR output term and the feature MSE, forward and backward), on leaf
    tensors of the step's shapes against the teacher's real outputs and features (``teacher`` without taps;
    copies of ``inter``'s modules). Also the student features' shapes."""
    d = cfg["distill"]
    pairs = [tuple(p) for p in d["features"]["pairs"]]
    mix, refs = batch.mix_sig.data, batch_targets(batch, cfg["num_spks"])
    with torch.no_grad():  # the features' and outputs' shapes of this batch
        s_model = copy.deepcopy(cfg["student_model"]).to(mix.device)
        with FeatureTaps(s_model, [s for s, _ in pairs], detach=True) as taps:
            s_model(mix)
            s_feats = read_frames(s_model, taps, [s for s, _ in pairs], s_model.num_frames(mix))
        with FeatureTaps(teacher, [t for _, t in pairs], detach=True) as taps:
            t_out = teacher(mix)
            t_aligned, sigma = align_teacher(t_out, refs)
            t_feats = read_frames(teacher, taps, [t for _, t in pairs], teacher.num_frames(mix), sigma)
        adapted = [a(s) for a, s in zip(inter.adapters, s_feats)]
    adapters = copy.deepcopy(inter.adapters)
    opt = torch.optim.Adam(adapters.parameters(), lr=cfg["training"]["lr"])
    feature_loss = copy.deepcopy(inter)  # the term's loss with identity adapters: its inputs are adapted already
    feature_loss.adapters = torch.nn.ModuleList(torch.nn.Identity() for _ in pairs)
    s_in = [torch.randn_like(s).requires_grad_() for s in s_feats]
    a_in = [torch.randn_like(a).requires_grad_() for a in adapted]
    est = torch.randn_like(t_out).requires_grad_()

    def modules():
        sum(a(x).sum() for a, x in zip(adapters, s_in)).backward()
        opt.step()
        opt.zero_grad()

    def matching():
        with torch.no_grad():
            align_teacher(t_out, refs)

    def losses():
        out_ex, _ = pit(est, t_aligned)
        (d["output"] * out_ex.mean() + d["features"]["weight"] * feature_loss(a_in, t_feats)).backward()
    return modules, matching, losses, [list(x.shape) for x in s_feats]


def peak_step(variant: str, config: str = str(CONFIG), device: str = "cpu", scale: str = "embedded",
              overrides: Sequence[str] = ()):
    """One step for the peak-memory measurement (:func:`breakdown.peak_rss_mb`): ``distill``, the distilling
    Brain's ``fit_batch``; ``floor``, the teacher's no-grad forward and then the plain student's ``fit_batch``;
    ``method``, the adapters', the alignment's and the losses' parts alone."""
    cfg, teacher, batch = profile_setup(Path(config), device, scale, overrides)
    if variant == "method":
        inter = make_brain(cfg, teacher, device, True).kd.intermediate
        parts = method_parts(cfg, copy.deepcopy(teacher), inter, batch)[:3]
        return lambda: [part() for part in parts]
    if variant == "distill":
        brain = make_brain(cfg, teacher, device, True)
        return lambda: brain.fit_batch(batch)
    plain = make_brain(cfg, teacher, device, False)

    def floor():
        with torch.no_grad():
            teacher(batch.mix_sig.data)
        plain.fit_batch(batch)
    return floor


def time_block(config: Path, repeats: int, device: str, check_graph: bool, scale: str = "embedded",
               overrides: Sequence[str] = ()):
    """One block of the profile's timing on a new setup (the config's models built again, seed 0): the parts and
    the full step interleaved over ``repeats`` rounds. Returns this block's
    samples, the parts' names, the student features' shapes and (with ``check_graph``) whether the teacher's
    outputs join the student's autograd graph."""
    from breakdown import TeacherGraphProbe, interleaved

    cfg, teacher, batch = profile_setup(config, device, scale, overrides)
    plain_teacher = copy.deepcopy(teacher)  # no taps: the teacher_forward part is the bare network
    student, full = make_brain(cfg, teacher, device, False), make_brain(cfg, teacher, device, True)
    mix = batch.mix_sig.data
    method_modules, matching, losses, s_shapes = method_parts(cfg, plain_teacher, full.kd.intermediate, batch)

    def teacher_forward():
        with torch.no_grad():
            plain_teacher(mix)

    graph = {}
    if check_graph:
        probe = TeacherGraphProbe(teacher)
        full.fit_batch(batch)
        graph = probe.result()
        probe.close()
        if graph["teacher_outputs_in_autograd_graph"]:
            raise SystemExit(f"the teacher's activations join the student's graph: {graph}")
    parts = {"teacher_forward": teacher_forward, "student_step": lambda: student.fit_batch(batch),
             "method_modules": method_modules, "matching": matching, "losses": losses}
    block: Dict[str, list] = {}
    # a recipe-size step takes seconds, far above the timer's resolution: one call per part and round suffices
    interleaved({**parts, "distill_step": lambda: full.fit_batch(batch)}, repeats, inner=1 if scale == "recipe" else 3,
                warmup=1, samples_out=block)
    return {"samples": block, "parts": list(parts), "shapes": s_shapes, "graph": graph, "cfg": cfg,
            "mix_samples": mix.shape[-1]}


def profile(config: Path, repeats: int, device: str = "cpu", peak_repeats: int = 3, blocks: int = 1,
            scale: str = "embedded", overrides: Sequence[str] = ()) -> dict:
    """Break the distillation step (``SeparationBrain.fit_batch`` with :class:`Distillation`) into its parts,
    timed interleaved in one process on one batch: the teacher's forward (no grad, hook-free copy), the plain
    student's train step, the intermediate term's adapters (forward and backward on the captured features'
    shapes, and their update), the PIT alignment of the teacher to the references, and the distillation losses
    (PIT SI-SNR output term and the feature MSE, forward and backward, on tensors of the step's shapes);
    machinery is the rest. The timing runs in ``blocks`` blocks, each on a new setup (:func:`time_block`), and
    the step ratio and overhead are formed within each round, as the other domains' profiles do. Then the step's
    peak memory against the floor's, and whether the teacher's outputs join the student's autograd graph."""
    from breakdown import block_report, peak_ratio, peak_rss_mb

    runs = [time_block(config, repeats, device, b == 0, scale, overrides) for b in range(max(1, blocks))]
    first = runs[0]
    cfg, graph, s_shapes, parts = first["cfg"], first["graph"], first["shapes"], first["parts"]
    rep = block_report([r["samples"] for r in runs], "distill_step", ("teacher_forward", "student_step"),
                       {k: k for k in parts})
    kwargs = {"config": str(config), "device": device, "scale": scale, "overrides": list(overrides)}
    peaks = {v: peak_rss_mb("speech_distill:peak_step", {"variant": v, **kwargs}, repeats=peak_repeats, device=device)
             for v in ("floor", "distill", "method")}
    return {
        "breakdown": {"of": "SeparationBrain.fit_batch with Distillation (teacher run live, not cached), medians "
                            "of interleaved rounds",
                      **rep, "target_overhead": 0.10, "target_step_ratio": 1.05,
                      "step_ratio_is": "the distillation step over the teacher's forward plus the plain student's "
                                       "step, formed within each interleaved round, median over every round of "
                                       "every block",
                      "overhead_is": "overhead_above_floor: the step over the sum of its parts less one, formed "
                                     "within each round, median over every round of every block; "
                                     "overhead_of_medians: the same from the parts' pooled medians (the shares' "
                                     "basis)",
                      "parts": {
                          "teacher_forward": "the teacher's forward under no_grad (a copy without the taps)",
                          "student_step": "the plain student's fit_batch: forward, PIT SI-SNR to the references, "
                                          "backward, Adam step",
                          "method_modules": "the intermediate term's 1x1 Conv1d adapters, forward and backward "
                                            "on the student features' shapes " + str(s_shapes) + ", and the Adam "
                                            "update of their parameters",
                          "matching": "PIT alignment of the teacher's estimate to the references (sigma); "
                                      "no GISM, Hungarian or top-K selection in this method",
                          "losses": "PIT SI-SNR output term against T_sigma and the normalised feature MSE, "
                                    "forward and backward, on tensors of the step's shapes",
                          "machinery": "the rest: taps, reading and framing the features, the teacher's hooks, the "
                                       "objective-shifting weights, SpeechBrain's bookkeeping; the separation and "
                                       "output terms share one PIT pass in the step, which this can absorb"}},
        "peak_memory": {"floor": peaks["floor"], "distill_step": peaks["distill"],
                        "ratio": peak_ratio(peaks["distill"], peaks["floor"]), "target_ratio": 1.15,
                        "method_alone": peaks["method"],
                        "ratio_to_floor_plus_method": round(peaks["distill"]["peak_delta_mb"] / (
                            peaks["floor"]["peak_delta_mb"] + peaks["method"]["peak_delta_mb"]), 4),
                        "ratio_to_floor_plus_method_is": "the step's peak over the floor's peak plus the peak of the "
                                                         "method's parts run alone (adapters, alignment, losses, "
                                                         "forward and backward)",
                        "floor_is": "the teacher's no-grad forward, then the plain student's fit_batch, one after the "
                                    "other in one process",
                        "each_in": "a fresh process, after the setup and one warm-up step"},
        "teacher_graph": graph,
        "teacher_weights": "as initialised (seed 0): the step's time and memory do not depend on trained weights",
        "batch": f"{cfg['training']['batch_size']} x {first['mix_samples']} samples",
        "scale": scale, "repeats": repeats, "blocks": len(runs), "device": device, "threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


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
    ap.add_argument("--config", type=Path, default=None,
                    help="speech distillation config (hyperpyyaml; default: the embedded set's, or with --scale "
                         "recipe the LibriMix recipe's)")
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
    ap.add_argument("--profile-only", metavar="JSON", default=None,
                    help="break one distillation step into its parts (shares, overhead above the floor) and "
                         "measure its peak memory against the floor's, into JSON")
    ap.add_argument("--device", default="cpu", help="device of --profile-only")
    ap.add_argument("--profile-blocks", type=int, default=1,
                    help="repeat --profile-only's timing on this many new setups and pool the rounds")
    ap.add_argument("--scale", default="embedded", choices=("embedded", "recipe"),
                    help="--profile-only's models and batch: the config's on its embedded set (embedded), or the "
                         "LibriMix recipe's on 4 s mixtures (recipe)")
    ap.add_argument("--cfg-options", nargs="*", default=[], metavar="KEY=VALUE",
                    help="overrides of --profile-only's embedded-set config (with --scale recipe: of the set the recipe's "
                         "batch is joined from), e.g. a smaller set: data.embedded.train=120")
    args = ap.parse_args()
    if args.scale == "recipe" and not args.profile_only:
        ap.error("--scale recipe applies to --profile-only only")
    config = (args.config or (RECIPE_CONFIG if args.scale == "recipe" else CONFIG)).resolve()
    if args.scale == "embedded":  # the config every run below trains; the recipe's batch still joins CONFIG's set
        CONFIG = config
    if args.profile_only or args.cache_only:  # one measurement of one config, recorded with its provenance
        if args.profile_only:
            path, measured = args.profile_only, {"benchmark": "speech_profile",
                                                 **profile(config, args.timing_repeats, args.device,
                                                           blocks=args.profile_blocks, scale=args.scale,
                                                           overrides=args.cfg_options)}
        else:
            Path(args.work_dir).mkdir(parents=True, exist_ok=True)
            path, measured = args.cache_only, cache_cost(Path(args.work_dir), args.timing_repeats, config)
        options = args.cfg_options if args.profile_only else []
        data = describe_recipe_data(overrides=options) if args.scale == "recipe" else \
            describe_data(kdhub_load_config(config, options).cfg)
        result = {"config": str(config.relative_to(ROOT)) if config.is_relative_to(ROOT) else str(config),
                  **({"cfg_options": options} if options else {}), "data": data, **measured, **run_info()}
        atomic_write_text(Path(path), json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return
    if args.timing_only:
        out = Path(args.out)
        result = json.loads(out.read_text())
        teacher_ckpt = args.teacher_checkpoint or \
            Path(args.work_dir) / f"epochs{args.student_epochs[0]}" / f"seed{args.seeds[0]}" / "teacher" / "model.pth"
        if not teacher_ckpt.is_file():
            raise SystemExit(f"--timing-only: no teacher at {teacher_ckpt}; pass --teacher-checkpoint PTH")
        run, before = run_info(), result.get("machine")
        add_step_times(result, teacher_ckpt.resolve(), Path(args.work_dir), args.timing_repeats)
        # the step times come from this run (its commit, command and machine), the rest from the run before
        result["step_ms_run"] = {**run, "machine": {**run["machine"], **result.pop("machine")}}
        if before is not None:
            result["machine"] = before
        atomic_write_text(out, json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["step_ms"], indent=2))
        return
    work = Path(args.work_dir)
    t0 = time.perf_counter()
    info = run_info()  # the checkout as the run starts: commits may land during its hour
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
    result.update(info, machine={**info["machine"], **result.get("machine", {})})  # the step times' facts stay
    out = Path(args.out)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({"gains_db": {b["student_epochs"]: b["si_snri_gain_db"] for b in budgets},
                      "step_ms": result["step_ms"]}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
