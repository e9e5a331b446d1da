"""The speech task: the core pipeline's teacher, baseline and distilled student on SpeechBrain Brains.

``work_dir/{teacher,baseline,student}/`` are the pipeline's sub-runs: each holds SpeechBrain checkpoints
(``save/``), ``train_log.txt`` (SpeechBrain's FileTrainLogger: one line per epoch), ``hyperparams.yaml`` (the
resolved config, as SpeechBrain's experiment directory keeps it), the exported separator (``model.pth``, a
plain state dict), the per-utterance test CSV and ``result.json``. The optimiser and the learning-rate
scheduler come from the config (``optimizer``, ``lr_scheduler``) as in SpeechBrain's recipes. A finished
sub-run is reused on ``--resume``; an unfinished one continues from its last checkpoint. The baseline starts
from the same initial weights as the distilled student and trains with the same budget and seed. A given
teacher is a state dict (``teacher_checkpoint``) or a SpeechBrain pretrained separator (``teacher.source``,
see :mod:`kdhub_speech.pretrained`).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import speechbrain as sb
import torch
from hyperpyyaml import resolve_references
from speechbrain.utils.train_logger import FileTrainLogger

from kdhub import dist
from kdhub.checkpoint import CheckpointError, atomic_save, atomic_write_text, load_checkpoint, state_mismatch
from kdhub.config import ConfigError, LoadedConfig, require_file, resolve_path
from kdhub.device import resolve_device
from kdhub.logs import get_logger, log_once
from kdhub.algorithm import count_parameters
from kdhub.pipeline import Pipeline, Stages, demo_rows
from kdhub.progress import is_enabled as progress_enabled
from kdhub.runs import RunContext, RunInfo
from kdhub.task import DemoResult, Task
from kdhub.taps import TapPathError, resolve

from . import data as speech_data
from .brain import AtomicCheckpointer, Distillation, RNGState, SeparationBrain
from .cache import TeacherCache, fingerprint
from .config import optimizer_for, scheduler_for
from .intermediate import IntermediateDistillation
from .metrics import evaluate
from .models import Separator
from .objective_shifting import ObjectiveShifting
from .pretrained import find_folder, load_pretrained
from .synth import SynthSpec, ensure_embedded

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
log = get_logger("speech")


@dataclass
class SpeechData:
    """The manifests a run reads (None: a split it was not asked for, as ``kdhub eval`` needs the test set only)."""

    train: Optional[speech_data.Manifest]
    valid: Optional[speech_data.Manifest]
    test: Optional[speech_data.Manifest]
    unlabelled: Optional[speech_data.Manifest] = None

    @property
    def skipped(self):
        return [m for man in (self.train, self.valid, self.test, self.unlabelled) if man for m in man.skipped]


def load_data(cfg: Dict[str, Any], source: str, need_references: bool = True,
              splits: Sequence[str] = ("train", "valid", "test", "unlabelled")) -> SpeechData:
    """The manifests of ``splits``, checked (the unlabelled one where the config names it); the embedded set is
    generated first if needed (rank 0 only)."""
    d = cfg["data"]
    if d["source"] == "embedded":
        spec = SynthSpec.from_config(sample_rate=cfg["sample_rate"], **d["embedded"])
        root = resolve_path(d["root"], source) if d["root"] else None
        if dist.is_main():
            folder = ensure_embedded(spec, root)
        dist.barrier()
        folder = ensure_embedded(spec, root)
        paths = {k: folder / f"{k}.csv" for k in ("train", "valid", "test") if k in splits}
    else:
        paths = {k: require_file(d[f"{k}_csv"], f"data.{k}_csv", source, "give a LibriMix-style manifest")
                 for k in ("train", "valid", "test") if k in splits}

    if d["unlabelled_csv"] and "unlabelled" in splits:
        paths["unlabelled"] = require_file(d["unlabelled_csv"], "data.unlabelled_csv", source,
                                           "give a manifest of mixtures (ID, mix_wav), or leave it empty")

    shortest = max([m.encoder.conv1d.kernel_size[0] for m in (cfg["student_model"], cfg["teacher_model"])
                    if m is not None and hasattr(m.encoder, "conv1d")] + [1])

    def read(split: str, refs: bool) -> speech_data.Manifest:
        return speech_data.read_manifest(paths[split], cfg["num_spks"], cfg["sample_rate"], d["on_bad"], refs,
                                         f"data.{split}_csv", min_samples=shortest)
    return SpeechData(train=read("train", need_references) if "train" in paths else None,
                      valid=read("valid", True) if "valid" in paths else None,
                      test=read("test", True) if "test" in paths else None,
                      unlabelled=read("unlabelled", False) if "unlabelled" in paths else None)


def load_separator(model: Separator, path: Path, key: str, source: str) -> Separator:
    """Load a state dict (plain, or a kdhub checkpoint with 'model') into ``model`` strictly; errors name
    ``key`` and list the first keys or shapes that do not fit."""
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        raise ConfigError(f"{source}: {key}: {exc}") from None
    state = state.get("model", state) if isinstance(state, dict) else state
    problem = state_mismatch(model.state_dict(), state) if isinstance(state, dict) else "not a state dict"
    if problem:
        raise ConfigError(f"{source}: {key}: {path} does not fit the configured model: {problem}; check that the "
                          f"model section matches the one the checkpoint was trained with")
    model.load_state_dict(state)
    return model


class SpeechRun(Stages):
    """One ``kdhub train`` of a speech config: the core pipeline's stages on SpeechBrain Brains."""

    def __init__(self, loaded: LoadedConfig, work_dir: Path, resume: bool = False, launcher: str = "none"):
        self.loaded, self.cfg, self.source = loaded, loaded.cfg, str(loaded.path)
        self.work_dir, self.resume = Path(work_dir), resume
        self.batches_per_epoch: Dict[str, int] = {}   # per rank, for the sub-runs trained in this process
        self.data: Optional[SpeechData] = None
        self.teacher_from: Optional[Path] = None  # the checkpoint loaded into teacher_model
        dist.init_distributed(launcher)
        self.device = str(resolve_device(self.cfg["device"], self.source))
        # the group's backend (kdhub.dist started it): SpeechBrain's DDP passes device_ids unless it is "gloo"
        # Brain's per-batch progress bar (tqdm), off with KDHUB_PROGRESS=0 like every kdhub progress display
        self.run_opts = {"device": self.device, "noprogressbar": not progress_enabled(),
                         "distributed_backend": dist.backend_for("cuda" in self.device)}
        self.distilling = self.cfg["method"] == "distill"
        # the baseline has every label the distilled student has; with teacher-only distillation it has none
        self.baseline = self.distilling and self.cfg["baseline"] and not self.cfg["distill"]["teacher_only"]

    def precision(self) -> str:
        """SpeechBrain's ``precision`` run option: fp32, or bf16 with ``--amp``. Not fp16 (the separation
        recipes' ``--precision fp16``): on an H200 the Conv-TasNet student's loss became non-finite in fp16
        despite Brain's loss scaling, and SpeechBrain refuses fp16 on the CPU; bf16 keeps fp32's range."""
        return "bf16" if self.amp else "fp32"

    # the pipeline's stages -----------------------------------------------------------------------
    def check(self) -> None:
        """Before anything is written: the given teacher checkpoint read and fitted strictly to teacher_model,
        the feature pairs' module paths in both models, then the manifests and every wav they name."""
        given = self.teacher_checkpoint() if self.distilling else None
        if given is not None:
            self.use_teacher(given)
        if self.distilling and self.cfg["distill"]["features"]["weight"] > 0:
            for student_path, teacher_path in self.cfg["distill"]["features"]["pairs"]:
                try:
                    resolve(self.cfg["student_model"], student_path)
                    resolve(self.cfg["teacher_model"], teacher_path)
                except TapPathError as exc:
                    raise ConfigError(f"{self.source}: distill.features.pairs: {exc}") from None
        self.prepare()

    def teacher_checkpoint(self) -> Optional[Path]:
        """The given teacher: a SpeechBrain folder (``teacher.source``), a state dict (``teacher_checkpoint``),
        or None to train it in ``teacher/``."""
        if self.cfg["teacher"]["source"]:
            return find_folder(self.cfg["teacher"]["source"], self.source)
        if not self.cfg["teacher_checkpoint"]:
            return None
        return require_file(self.cfg["teacher_checkpoint"], "teacher_checkpoint", self.source,
                            "train one with method: supervised, or set teacher_checkpoint: null to train it here")

    def use_teacher(self, checkpoint: Path) -> None:
        """Load ``checkpoint`` (a state dict file, or a SpeechBrain folder) into teacher_model (once: check,
        test and use all hand the same one)."""
        if self.teacher_from != checkpoint:
            if checkpoint.is_dir():
                load_pretrained(self.cfg["teacher_model"], str(checkpoint), self.source)
            else:
                load_separator(self.cfg["teacher_model"], checkpoint, "teacher_checkpoint", self.source)
            self.teacher_from = checkpoint

    def test_teacher(self, checkpoint: Path) -> Dict[str, float]:
        self.use_teacher(checkpoint)
        return self.test(self.cfg["teacher_model"], self.work_dir / "teacher")

    def started(self, work_dir: Path) -> bool:
        """SpeechBrain keeps a sub-run's checkpoints in ``save/``."""
        save = work_dir / "save"
        return save.is_dir() and any(save.iterdir())

    def train(self, role: str, work_dir: Path) -> Dict[str, Any]:
        cfg = self.cfg
        if role == "teacher":
            model = cfg["teacher_model"]
            self.train_model(role, work_dir, model, cfg["teacher_training"],
                             self.data.train.split(cfg["teacher_training"]["limit"])[0])
        elif role == "baseline":
            model = self.baseline_model
            self.train_model(role, work_dir, model, self.baseline_budget(), self.labelled)
        else:
            model = cfg["student_model"]
            kd = self.distillation(cfg["teacher_model"], model, self.student_train) if self.distilling else None
            self.train_model(role, work_dir, model, cfg["training"], self.student_train, kd)
        return {"test": self.test(model, work_dir), "export": str(work_dir / "model.pth"),
                "params": count_parameters(model), "batches_per_epoch": self.batches_per_epoch.get(role)}

    def baseline_budget(self) -> Dict[str, Any]:
        """The distilled student's training with as many steps: its epochs also run over unlabelled mixtures."""
        budget = dict(self.cfg["training"])
        budget["epochs"] = math.ceil(budget["epochs"] * len(self.student_train.rows) / len(self.labelled.rows))
        return budget

    def inference(self, role: str, result: Mapping[str, Any]):
        model = self.cfg["teacher_model" if role == "teacher" else "student_model"]
        if role == "baseline":
            model = load_separator(copy.deepcopy(model), Path(result["export"]), role, self.source)
        model = model.cpu().eval()
        mix = torch.zeros(1, int(self.cfg["sample_rate"] * self.cfg["data"]["embedded"]["seconds"]))

        def run():
            with torch.no_grad():
                return model(mix)
        return run

    # one training sub-run ------------------------------------------------------------------------
    def train_model(self, role: str, sub: Path, model: Separator, hp: Dict[str, Any], train: speech_data.Manifest,
                    kd: Optional[Distillation] = None) -> Path:
        """Train ``model`` on SpeechBrain's Brain in ``sub`` (continuing its checkpoints on resume); the best
        validation checkpoint is exported as ``sub/model.pth``."""
        torch.manual_seed(self.cfg["seed"])
        seg = int(self.cfg["data"]["segment_seconds"] * self.cfg["sample_rate"])
        train_ds = speech_data.dataset(train, seg, self.cfg["data"]["random_crop"])
        valid_ds = speech_data.dataset(self.data.valid)
        counter = sb.utils.epoch_loop.EpochCounter(limit=hp["epochs"])
        recoverables = {"model": model, "counter": counter, "rng": RNGState()}
        if kd is not None and kd.intermediate is not None:
            recoverables["distill"] = kd.intermediate
        prefix = "teacher_" if role == "teacher" else ""
        # each sub-run anneals from the config's pristine scheduler, and checkpoints its state for --resume
        scheduler = copy.deepcopy(scheduler_for(self.cfg, prefix + "lr_scheduler"))
        if scheduler is not None:
            recoverables["lr_scheduler"] = scheduler
        ckpt = AtomicCheckpointer(sub / "save", recoverables=recoverables)
        method = "supervised" if kd is None else "distill"
        ctx = RunContext(RunInfo(task="speech", method=method, work_dir=sub, config_path=self.loaded.path,
                                 rank=dist.rank(), world_size=dist.world_size(), role=role))
        steps = math.ceil(len(train.rows) / (hp["batch_size"] * dist.world_size()))
        if dist.is_main():
            self.write_hyperparams(sub)
        brain = SeparationBrain(model, lr=hp["lr"], epochs=hp["epochs"], steps_per_epoch=steps,
                                num_spks=self.cfg["num_spks"], distillation=kd, ctx=ctx, role=role,
                                run_opts=dict(self.run_opts, max_grad_norm=hp["max_grad_norm"],
                                              precision=self.precision()), checkpointer=ckpt,
                                opt_class=optimizer_for(self.cfg, prefix + "optimizer"), lr_scheduler=scheduler,
                                train_logger=FileTrainLogger(str(sub / "train_log.txt")),
                                log_interval=hp["log_interval"])
        ctx.start()
        brain.fit(counter, train_ds, valid_ds, progressbar=progress_enabled(),
                  train_loader_kwargs={"batch_size": hp["batch_size"], "shuffle": True,
                                       "num_workers": hp["num_workers"]},
                  valid_loader_kwargs={"batch_size": self.valid_batch_size(hp["batch_size"])})
        brain.close()
        self.batches_per_epoch[role] = brain.batches_seen
        ckpt.recover_if_possible(max_key="si-snr")
        final = sub / "model.pth"
        if dist.is_main():
            atomic_save(model.state_dict(), final)
            ctx.end({"role": role, "checkpoint": final})
        dist.barrier()
        return final

    def valid_batch_size(self, batch_size: int) -> int:
        """The training batch size, or 1 when the validation mixtures differ in length: a padded batch changes
        the separator's output (its normalisation runs over the padding) and the SI-SNR over it, so validation, and
        the checkpoint it keeps, would depend on the batch size. SpeechBrain's separation recipes validate one
        mixture at a time."""
        if batch_size > 1 and not self.data.valid.same_length():
            log_once(log, "speech-valid-batch", f"{self.data.valid.path}: the validation mixtures differ in length; "
                                                f"validating one at a time (no padding)")
            return 1
        return batch_size

    def write_hyperparams(self, sub: Path) -> Path:
        """``sub/hyperparams.yaml``: the config with ``--cfg-options`` applied and references resolved, as
        SpeechBrain's ``create_experiment_directory`` keeps it (hyperpyyaml's ``resolve_references``, the same
        header); it loads again as this run's config."""
        with open(self.loaded.path, encoding="utf-8") as f:
            resolved = resolve_references(f, self.cfg["_overrides"]).getvalue()
        header = f"# Generated {date.today()} from:\n# {Path(self.loaded.path).resolve()}\n# yamllint disable\n"
        return atomic_write_text(sub / "hyperparams.yaml", header + resolved)

    def test(self, model: Separator, sub: Path) -> Dict[str, Any]:
        """Test metrics of ``model`` on every rank (rank 0 evaluates and writes the per-utterance CSV and the
        listening examples in ``sub``)."""
        result: Dict[str, Any] = {}
        if dist.is_main():
            ev = self.cfg["evaluation"]
            model.to(self.device)
            result = evaluate(model, speech_data.dataset(self.data.test), self.cfg["num_spks"], self.cfg["sample_rate"],
                              self.device, sdr=ev["sdr"], csv_path=sub / "test_results.csv",
                              examples_dir=sub / "examples", examples=ev["examples"], desc=f"[{sub.name}] test")
        dist.barrier()
        return dist_broadcast(result)

    # the whole run -------------------------------------------------------------------------------
    def distillation(self, teacher: Separator, student: Separator, train: speech_data.Manifest) -> Distillation:
        d = self.cfg["distill"]
        pairs = [tuple(p) for p in d["features"]["pairs"]] if d["features"]["weight"] > 0 else []
        teacher.to(self.device)
        student.to(self.device)
        intermediate = None
        if pairs:
            try:
                chans = IntermediateDistillation.probe_channels(student, teacher, pairs, self.cfg["sample_rate"])
                with torch.random.fork_rng(devices=[]):  # the adapters' initial weights depend on the seed alone
                    torch.manual_seed(self.cfg["seed"])
                    intermediate = IntermediateDistillation(pairs, chans).to(self.device)
            except (LookupError, ValueError) as exc:
                raise ConfigError(f"{self.source}: distill.features.pairs: {exc}") from None
        cache = None
        if d["cache"]:
            seg = int(self.cfg["data"]["segment_seconds"] * self.cfg["sample_rate"])
            key = fingerprint(teacher, train, [t for _, t in pairs], seg)
            try:
                # batched by length: a padded batch would change the cached outputs of its shorter mixtures
                cache = TeacherCache.build(self.work_dir / "teacher_cache" / f"{key}.pt", teacher,
                                           speech_data.dataset(train, seg), [t for _, t in pairs], self.device,
                                           lengths=train.lengths(seg))
            except ValueError as exc:
                raise ConfigError(f"{self.source}: distill.cache: {exc}") from None
        sh = d["shifting"]
        return Distillation(teacher=teacher, output_weight=d["output"], feature_weight=d["features"]["weight"],
                            pairs=pairs, shifting=ObjectiveShifting(sh["start"], sh["end"], sh["until"], sh["shape"]),
                            cache=cache, intermediate=intermediate)

    def prepare(self) -> None:
        """Read the manifests and split the student's training data into labelled and unlabelled mixtures."""
        cfg = self.cfg
        data = self.data = load_data(cfg, self.source,
                                     need_references=not (self.distilling and cfg["distill"]["teacher_only"]))
        self.labelled, rest = data.train.split(cfg["training"]["limit"])
        self.student_train = self.labelled
        if self.distilling:
            try:
                if cfg["distill"]["unlabelled_rest"]:
                    self.student_train = self.student_train.with_unlabelled(rest)
                if data.unlabelled is not None:
                    self.student_train = self.student_train.with_unlabelled(data.unlabelled)
            except speech_data.DataError as exc:
                raise ConfigError(f"{self.source}: data.unlabelled_csv: {exc}") from None
        # the baseline starts from the distilled student's initial weights
        self.baseline_model = copy.deepcopy(cfg["student_model"]) if self.baseline else None

    def run(self) -> Dict[str, Any]:
        cfg = self.cfg
        if self.data is None:  # check() has not prepared it
            self.prepare()
        if self.data.skipped and dist.is_main():  # here, not in check(), so train.log has it too
            log.info(f"skipped {len(self.data.skipped)} bad manifest row(s) (data.on_bad=skip); first: "
                     f"{self.data.skipped[0]}")
        ctx = RunContext(RunInfo(task="speech", method=cfg["method"], work_dir=self.work_dir,
                                 config_path=self.loaded.path, rank=dist.rank(), world_size=dist.world_size()))
        ctx.start()
        pipeline = Pipeline(ctx, self.resume)
        if self.distilling:
            results = self.results = pipeline.run(self)
        else:
            results = self.results = {"teacher": {"test": {}},
                       "student": pipeline.stage("student", self.work_dir / "student",
                                                 lambda d: self.train("student", d), self.started)}
        data_sizes = {"labelled": len(self.labelled.rows), "unlabelled": self.student_train.unlabelled,
                      "baseline_epochs": self.baseline_budget()["epochs"] if self.baseline else None}
        return pipeline.finish(results, params={"teacher": count_parameters(cfg["teacher_model"])} if self.distilling
                               else None,
                               student_data=data_sizes, world_size=dist.world_size(),
                               batches_per_epoch={r: v["batches_per_epoch"] for r, v in results.items()
                                                  if v.get("batches_per_epoch") is not None},
                               skipped=len(self.data.skipped), skipped_rows=self.data.skipped[:20],
                               test_results=self.work_dir / "student" / "test_results.csv")


def dist_broadcast(obj):
    """``obj`` as rank 0 has it, on every rank."""
    return dist.gather_objects(obj)[0]


class SpeechTask(Task):
    """Speech separation on SpeechBrain: separators trained by Brains, distilled from a frozen teacher."""

    run_class = SpeechRun

    def dump_config(self, loaded: LoadedConfig, work_dir: Path) -> None:
        """Nothing at the top: each sub-run keeps its resolved ``hyperparams.yaml``, as SpeechBrain recipes do."""

    def evaluate(self, loaded: LoadedConfig, checkpoint: Path) -> Dict[str, float]:
        cfg = loaded.cfg
        model = load_separator(cfg["student_model"], Path(checkpoint), "checkpoint", str(loaded.path))
        data = load_data(cfg, str(loaded.path), splits=("test",))  # the other splits need not exist here
        device = str(resolve_device(cfg["device"], str(loaded.path)))
        return evaluate(model.to(device), speech_data.dataset(data.test), cfg["num_spks"], cfg["sample_rate"],
                        device, sdr=cfg["evaluation"]["sdr"])

    def demo(self, work_dir: Path) -> DemoResult:
        from .plugin import kdhub_load_config
        loaded = kdhub_load_config(CONFIG_DIR / "demo.yaml", [])
        run = SpeechRun(loaded, work_dir, resume=True)
        run.check()
        summary = run.run()
        rows = demo_rows(summary, "si-snri", run, run.results, repeats=5)
        data = summary["student_data"]
        notes = ["two-speaker 8 kHz mixtures of synthetic voices; test voices unseen in training",
                 f"teacher trained on every labelled mixture; students have the references of {data['labelled']}, "
                 f"the distilled one also distils {data['unlabelled']} more from the teacher alone",
                 f"SDRi: teacher {summary['teacher']['sdri']:.2f}, baseline {summary['baseline']['sdri']:.2f}, "
                 f"distilled {summary['student']['sdri']:.2f} dB"]
        return DemoResult(domain="speech", title="Speech separation (SepFormer -> Conv-TasNet)",
                          metric_name="SI-SNRi (dB)", rows=rows, notes=notes)
