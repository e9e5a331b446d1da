"""The speech task's hyperpyyaml config: loading with ``--cfg-options``, the schema and its checks.

Models are built by hyperpyyaml itself (``!new:kdhub_speech.models.Separator`` over SpeechBrain lobes), as
in SpeechBrain's recipes, and so are the optimiser (``optimizer: !name:torch.optim.Adam {...}``) and the
learning-rate scheduler (``lr_scheduler: !new:speechbrain.nnet.schedulers.ReduceLROnPlateau {...}``); the
kdhub sections (``data``, ``training``, ``teacher_training``, ``distill``,
``evaluation``) are checked against the schema below. Other top-level scalars are the file's own
variables (``!ref <N>``) and are left alone.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Dict, Sequence

import torch
import yaml
from hyperpyyaml import load_hyperpyyaml

from kdhub.config import ConfigError, Field, parse_overrides, validate
from kdhub.device import check_device_name

from .models import Separator

TRAINING = {
    "epochs": Field(int, 10, min=1), "batch_size": Field(int, 8, min=1), "lr": Field(float, 1e-3),
    "max_grad_norm": Field(float, 5.0), "num_workers": Field(int, 0, min=0),
    "log_interval": Field(int, 50, help="report the training loss, each distillation term and the learning rate "
                                        "(train.log, TensorBoard) every N optimisation steps, and at each "
                                        "epoch's end; 0: at epoch ends only"),
    "limit": Field(int, 0, help="use the references of the first N training mixtures only (0: all): a labelled "
                                "subset, e.g. for the students while the teacher learns from the whole set"),
}

SCHEMA = {
    "task": Field(str, choices=("speech",)),
    "method": Field(str, "distill", choices=("distill", "supervised"),
                    help="supervised trains student_model on the references alone (e.g. to make a teacher)"),
    "seed": Field(int, 1234),
    "sample_rate": Field(int, 8000),
    "num_spks": Field(int, 2),
    "device": Field(str, "auto", help="auto (CUDA when available, else the CPU), cpu, cuda or cuda:N"),
    "baseline": Field(bool, True, help="also train student_model on the references alone, same init and budget"),
    "teacher_checkpoint": Field((str, type(None)), None,
                                help="a separator state dict for teacher_model; null trains the teacher first"),
    "teacher": {"source": Field((str, type(None)), None,
                                help="a SpeechBrain pretrained separator for teacher_model: a model-hub folder "
                                     "(hyperparams.yaml, encoder/masknet/decoder.ckpt) or a recipe's "
                                     "save/CKPT+... folder; instead of teacher_checkpoint")},
    "optimizer": Field(object, None, help="the optimiser as in SpeechBrain's recipes: a !name: factory called on the "
                                          "parameters, e.g. !name:torch.optim.Adam {lr: 1.5e-4, weight_decay: 0}; "
                                          "null: Adam with training.lr"),
    "lr_scheduler": Field(object, None, help="a speechbrain.nnet.schedulers.ReduceLROnPlateau (!new:), stepped "
                                             "once per epoch on the validation loss; null: a constant learning "
                                             "rate"),
    "teacher_optimizer": Field(object, None, help="the teacher's own training (null: Adam at teacher_training.lr "
                                                  "where that is set, else optimizer)"),
    "teacher_lr_scheduler": Field(object, None, help="the teacher's own training (null: lr_scheduler)"),
    "student_model": Field(torch.nn.Module),
    "teacher_model": Field((torch.nn.Module, type(None)), None),
    "data": {
        "source": Field(str, "embedded", choices=("embedded", "csv")),
        "train_csv": Field(str, ""), "valid_csv": Field(str, ""), "test_csv": Field(str, ""),
        "unlabelled_csv": Field(str, "", help="mixtures without references (ID, mix_wav) that the distilled "
                                              "student learns from the teacher alone, next to the training set"),
        "root": Field(str, "", help="embedded: where generated data sets are kept (default ~/.cache/kdhub)"),
        "on_bad": Field(str, "stop", choices=("stop", "skip"),
                        help="a bad manifest row or wav: stop with its name, or skip it (counted, reported)"),
        "segment_seconds": Field(float, 0.0, help="crop training mixtures to this length (0 keeps them whole)"),
        "random_crop": Field(bool, False, help="random crop offsets (augmentation; not with distill.cache)"),
        "embedded": {"seconds": Field(float, 1.0), "train": Field(int, 1200), "valid": Field(int, 150),
                     "test": Field(int, 200), "utterances_per_voice": Field(int, 24), "seed": Field(int, 0)},
    },
    "training": TRAINING,
    "teacher_training": dict(TRAINING, epochs=Field(int, 20, min=1)),
    "distill": {
        "output": Field(float, 1.0, help="weight of PIT-aligned output distillation (0 switches it off)"),
        "features": {"weight": Field(float, 0.0, help="weight of intermediate feature distillation"),
                     "pairs": Field(list, [], help="[[student module path, teacher module path], ...]")},
        "shifting": {"start": Field(float, 0.5), "end": Field(float, 0.5), "until": Field(float, 1.0),
                     "shape": Field(str, "linear", choices=("linear", "cosine"))},
        "teacher_only": Field(bool, False, help="distil to the teacher alone (mixtures without references)"),
        "unlabelled_rest": Field(bool, False, help="the training mixtures past training.limit join the distilled "
                                                   "student's data without their references (semi-supervised)"),
        "cache": Field(bool, False, help="cache teacher outputs on disk (fixed training data only)"),
    },
    "evaluation": {"sdr": Field(bool, True), "examples": Field(int, 3)},
}


def _nested(overrides: Sequence[str], top: Sequence[str], source: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in parse_overrides(overrides):
        parts = key.split(".")
        if parts[0] not in top:
            close = difflib.get_close_matches(parts[0], list(top), n=2, cutoff=0.6)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise ConfigError(f"{source}: --cfg-options {key}: unknown key '{parts[0]}'{hint}")
        node = out
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: --cfg-options {key}: {'.'.join(parts[:i + 1])} is given a value "
                                  f"({node!r}) by another option, so it has no key {parts[i + 1]!r}; give one of them")
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"{source}: --cfg-options {key}: another option sets a key inside {key}; give one of "
                              f"them")
        node[parts[-1]] = value
    return out


def load(path: Path, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Load and check a speech config; every error names the file and the key."""
    source = str(path)
    text = Path(path).read_text(encoding="utf-8")
    try:
        keys = [k for k in yaml.compose(text).value] if text.strip() else []
        top = [k.value for k, _ in keys]
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    torch.manual_seed(0)  # models built with !new: get a deterministic init even without __set_seed
    nested = _nested(overrides, list(SCHEMA) + top, source)
    try:
        raw = load_hyperpyyaml(text, nested, overrides_must_match=False)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{source}: hyperpyyaml could not build this config: {type(exc).__name__}: {exc}") from None
    for key, value in raw.items():
        if key not in SCHEMA and isinstance(value, dict):
            close = difflib.get_close_matches(key, [k for k, v in SCHEMA.items() if isinstance(v, dict)], n=1)
            if close:
                raise ConfigError(f"{source}: unknown section '{key}' (did you mean '{close[0]}'?)")
    cfg = validate({k: v for k, v in raw.items() if k in SCHEMA}, SCHEMA, source)
    cfg["_extra"] = {k: v for k, v in raw.items() if k not in SCHEMA}
    cfg["_overrides"] = nested   # for the resolved copy each sub-run keeps (hyperparams.yaml)
    cfg["_lr_given"] = {k: "lr" in (raw.get(k) or {}) for k in ("training", "teacher_training")}
    check(cfg, source)
    for section, key in (("training", "optimizer"), ("teacher_training", "teacher_optimizer")):
        if cfg["_lr_given"][section] and cfg[key] is not None:
            raise ConfigError(f"{source}: {section}.lr is set, but the learning rate comes from '{key}' here "
                              f"(its lr: argument, e.g. --cfg-options lr=... where it reads !ref <lr>); drop "
                              f"{section}.lr, or set {key}: null to train with Adam at {section}.lr")
    return cfg


def optimizer_for(cfg: Dict[str, Any], key: str) -> Any:
    """The optimiser factory for the students (``optimizer``) or the teacher (``teacher_optimizer``); None means
    Adam at the section's ``lr``. The teacher falls back to ``optimizer`` unless ``teacher_training.lr`` is set."""
    if key == "optimizer" or cfg[key] is not None:
        return cfg[key]
    return None if cfg["_lr_given"]["teacher_training"] else cfg["optimizer"]


def scheduler_for(cfg: Dict[str, Any], key: str) -> Any:
    """The scheduler of ``lr_scheduler`` or ``teacher_lr_scheduler`` (which falls back to ``lr_scheduler``)."""
    return cfg[key] if cfg[key] is not None or key == "lr_scheduler" else cfg["lr_scheduler"]


def _check_training_objects(cfg: Dict[str, Any], source: str) -> None:
    """Optimiser factories must build a torch optimiser; schedulers must be SpeechBrain's ReduceLROnPlateau."""
    from speechbrain.nnet.schedulers import ReduceLROnPlateau

    for key in ("optimizer", "teacher_optimizer"):
        factory = cfg[key]
        if factory is None:
            continue
        try:
            built = factory([torch.nn.Parameter(torch.zeros(1))]) if callable(factory) else None
        except Exception as exc:
            raise ConfigError(f"{source}: '{key}' could not build an optimiser: {type(exc).__name__}: {exc}; "
                              f"write it as in SpeechBrain's recipes, e.g. {key}: !name:torch.optim.Adam "
                              f"{{lr: 0.00015, weight_decay: 0}}") from None
        if not isinstance(built, torch.optim.Optimizer):
            raise ConfigError(f"{source}: '{key}' must be a !name: factory of a torch.optim optimiser (e.g. "
                              f"!name:torch.optim.Adam {{lr: 0.00015, weight_decay: 0}}), got "
                              f"{type(factory).__name__}")
    for key in ("lr_scheduler", "teacher_lr_scheduler"):
        sched = cfg[key]
        if sched is not None and not isinstance(sched, ReduceLROnPlateau):
            # NewBobScheduler is not offered: it measures relative improvement, which flips sign on the
            # negative SI-SNR loss, so every improving epoch would count as a plateau
            raise ConfigError(f"{source}: '{key}' is a {type(sched).__name__}; kdhub steps a scheduler once per "
                              f"epoch on the validation loss, as SpeechBrain's separation recipes do: use "
                              f"!new:speechbrain.nnet.schedulers.ReduceLROnPlateau, or null")


def _check_sources(model: Separator, key: str, num_spks: int, source: str) -> None:
    """The separator decodes as many sources as its mask network estimates, and as many as ``num_spks``."""
    masks = getattr(model.masknet, "num_spks", getattr(model.masknet, "C", None))  # Dual_Path_Model / MaskNet
    if masks is not None and masks != model.num_spks:
        raise ConfigError(f"{source}: {key}: its masknet estimates {masks} sources but the Separator's num_spks is "
                          f"{model.num_spks}; give both the same number")
    if model.num_spks != num_spks:
        raise ConfigError(f"{source}: {key} separates {model.num_spks} sources but num_spks is {num_spks}; set the "
                          f"model's num_spks (Separator and masknet: num_spks, or C for Conv-TasNet) to {num_spks}, "
                          f"or num_spks to {model.num_spks}")


def check(cfg: Dict[str, Any], source: str) -> None:
    """Cross-key checks that the schema cannot express."""
    for key in ("student_model", "teacher_model"):
        if cfg[key] is not None and not isinstance(cfg[key], Separator):
            raise ConfigError(f"{source}: '{key}' must be a !new:kdhub_speech.models.Separator (encoder, masknet, "
                              f"decoder from SpeechBrain lobes), got {type(cfg[key]).__name__}")
        if cfg[key] is not None:
            _check_sources(cfg[key], key, cfg["num_spks"], source)
    check_device_name(cfg["device"], source)
    _check_training_objects(cfg, source)
    d = cfg["distill"]
    if cfg["method"] == "distill" and cfg["teacher_model"] is None:
        raise ConfigError(f"{source}: method 'distill' needs 'teacher_model' (and teacher_checkpoint, or it is "
                          f"trained first)")
    if cfg["teacher"]["source"] and cfg["teacher_checkpoint"]:
        raise ConfigError(f"{source}: both teacher_checkpoint and teacher.source name a teacher; keep one (e.g. "
                          f"--cfg-options teacher.source=null to use teacher_checkpoint)")
    if cfg["teacher"]["source"] and cfg["method"] != "distill":
        raise ConfigError(f"{source}: teacher.source is set but method is {cfg['method']!r}, which has no "
                          f"teacher; set method: distill or teacher.source=null")
    if cfg["data"]["source"] == "csv":
        for k in ("train_csv", "valid_csv", "test_csv"):
            if not cfg["data"][k]:
                raise ConfigError(f"{source}: data.source is csv but 'data.{k}' is empty; give a LibriMix-style "
                                  f"manifest (ID, duration, mix_wav, s1_wav, s2_wav)")
    if d["unlabelled_rest"] and cfg["training"]["limit"] <= 0:
        raise ConfigError(f"{source}: distill.unlabelled_rest needs training.limit > 0 (the mixtures past the limit "
                          f"are the unlabelled ones); set training.limit=N or unlabelled_rest=false")
    if d["cache"] and cfg["data"]["random_crop"]:
        raise ConfigError(f"{source}: distill.cache needs fixed training data, but data.random_crop is true; "
                          f"switch one off")
    pairs = d["features"]["pairs"]
    if d["features"]["weight"] > 0 and not pairs:
        raise ConfigError(f"{source}: distill.features.weight > 0 but distill.features.pairs is empty; list "
                          f"[student path, teacher path] pairs, e.g. [masknet.dual_mdl.0, masknet.dual_mdl.1]")
    for p in pairs:
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p)):
            raise ConfigError(f"{source}: distill.features.pairs: {p!r} is not a [student path, teacher path] pair")
    if cfg["method"] == "distill" and d["output"] <= 0 and d["features"]["weight"] <= 0:
        raise ConfigError(f"{source}: method 'distill' with distill.output and distill.features.weight both 0 "
                          f"has nothing to distil; use method: supervised for a plain student")
    for k in ("start", "end"):
        if not 0.0 <= d["shifting"][k] <= 1.0:
            raise ConfigError(f"{source}: distill.shifting.{k} must be in [0, 1], got {d['shifting'][k]}")
    if d["shifting"]["until"] <= 0:
        raise ConfigError(f"{source}: distill.shifting.until must be > 0")
