"""The graph task's YAML config: schema, defaults and loading (with ``--cfg-options``).

``method`` is any graph method in the registry (the plugin's own and third-party ones) or ``none``;
``distill.<method>`` subsections carry a method's own hyper-parameters (see :mod:`kdhub_graph.methods`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Sequence

import yaml
from torch import nn

from kdhub.config import ConfigError, Field, apply_overrides, validate

from kdhub.device import check_device_name
from .methods import build_method, method_names

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

SETTINGS = ("transductive", "inductive", "production")
TEACHERS = ("gcn", "sage", "gat")
SCHEDULES = ("joint", "released")
TEACHER_INITS = ("pyg", "dgl")  # kdhub_graph.models.init_like_dgl_
#: a path key: null (``--cfg-options teacher.checkpoint=null``) clears it, as an empty string does
PATH = (str, type(None))
#: the config keys that name files or folders (teacher.checkpoint may hold ``{seed}``)
PATH_KEYS = (("data", "path"), ("data", "root"), ("teacher", "checkpoint"), ("distill", "cache_dir"))

SCHEMA = {
    "task": Field(str, choices=("graph",)),
    "setting": Field(str, "transductive", choices=SETTINGS),
    "seeds": Field(list, [0], help="one run per seed (split, initialisation); mean and std are reported"),
    "device": Field(str, "auto", help="auto (CUDA when available, else the CPU), cpu, cuda or cuda:N; under "
                                      "torchrun each rank uses the GPU of its LOCAL_RANK"),
    "baseline": Field(bool, True, help="also train the student architecture on labels alone"),
    "checkpoint_interval": Field(int, 50),
    "data": {
        "source": Field(str, "csbm", choices=("pyg", "planetoid", "npz", "csbm"),
                        help="pyg: PyG data set by name from data.root (planetoid is an alias)"),
        "name": Field(str, "Cora"),
        "root": Field(PATH, ""),
        "path": Field(PATH, ""),
        "normalize_features": Field(bool, False, help="divide each feature row by its L1 norm"),
        "largest_component": Field(bool, False, help="keep the largest connected component (GLNN does for npz)"),
        "split": {"train_per_class": Field(int, 20, min=1), "val_per_class": Field(int, 30, min=1)},
        "inductive_fraction": Field(float, 0.2, min=0.0, max=1.0),
        "csbm": {"nodes": Field(int, 3000), "classes": Field(int, 5), "features": Field(int, 64),
                 "avg_degree": Field(float, 8.0), "homophily": Field(float, 0.8),
                 "feature_signal": Field(float, 1.0), "seed": Field(int, 0)},
    },
    "teacher": {
        "model": Field(str, "sage", choices=TEACHERS),
        "hidden": Field(int, 128, min=1), "layers": Field(int, 2, min=1), "dropout": Field(float, 0.0, min=0.0, max=1.0),
        "act": Field(str, "relu", choices=("relu", "elu"),
                     help="activation between layers (PyG's own models: relu; PyG's GAT example: elu)"),
        "aggr": Field(str, "gcn", choices=("gcn", "mean"),
                      help="SAGE aggregator: gcn = mean over neighbours and self (GLNN), mean = PyG default"),
        "heads": Field(int, 8, min=1), "attn_dropout": Field(float, 0.6, min=0.0, max=1.0, help="GAT; hidden is split across heads"),
        "out_heads": Field(int, 1, help="GAT: heads of the output layer, averaged (PyG's own GAT model uses "
                                        "'heads' there; GLNN and PyG's example GAT use 1)"),
        "fanout": Field(list, [5, 5], help="GraphSAGE neighbours sampled per layer (sage only)"),
        "init": Field(str, "pyg", choices=TEACHER_INITS,
                      help="initialisation of a teacher trained here: pyg = PyG's layer defaults; dgl = DGL 0.6.1's "
                           "(GLNN's released code; SAGE: Xavier-uniform, ReLU gain, zero bias)"),
        "batch_size": Field(int, 512, min=1), "lr": Field(float, 0.01, min=0.0),
        "weight_decay": Field(float, 5e-4, min=0.0),
        "epochs": Field(int, 200, min=1), "patience": Field(int, 50, min=1),
        "checkpoint": Field(PATH, "", help="load this teacher instead of training one ({seed} is replaced): a "
                                          "graph run's teacher.pth or a state dict saved by your own PyG code "
                                          "(see kdhub_graph.teacher_state)"),
    },
    "student": {
        "hidden": Field(int, 128, min=1), "layers": Field(int, 2, min=1), "dropout": Field(float, 0.6, min=0.0, max=1.0),
        "norm": Field(str, "none", choices=("none", "batch", "layer")),
        "lr": Field(float, 0.01, min=0.0), "weight_decay": Field(float, 5e-3, min=0.0),
        "epochs": Field(int, 500, min=1), "patience": Field(int, 50, min=1), "batch_size": Field(int, 4096, min=1),
        "schedule": Field(str, "joint", choices=SCHEDULES,
                          help="joint: one optimiser step per batch on the whole loss; released: GLNN's released "
                               "code, per epoch a CE pass over the labelled nodes then a KD pass over the "
                               "distillation nodes, each in its own mini-batches (glnn only)"),
    },
    "distill": {
        "lambda": Field(float, 0.0, help="weight of the hard-label loss"),
        "temperature": Field(float, 1.0), "tau": Field(float, 1.5, help="FF-G2M high-frequency temperature"),
        "cache_dir": Field(PATH, "", help="where teacher soft labels are cached (default: beside the teacher)"),
    },
}


def load(path: Path, overrides: Sequence[str]) -> Dict[str, Any]:
    """Read, override and validate a graph config; every error names the file and the key."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    raw = apply_overrides(raw or {}, overrides, source)
    methods = method_names()
    sections = _method_sections(raw, methods, source)
    method = Field(str, "glnn", choices=(*methods, "none"), help="distillation method; none trains the baseline only")
    cfg = validate(raw, {"task": SCHEMA["task"], "method": method, **SCHEMA}, source)
    cfg["distill"].update(sections)
    for section, key in PATH_KEYS:
        cfg[section][key] = cfg[section][key] or ""
    if cfg["method"] != "none":  # the method reads its hyper-parameters now, so a bad one fails before training
        try:
            build_method(cfg["method"], nn.Identity(), cfg["distill"])
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    check_device_name(cfg["device"], source)
    d = cfg["data"]
    if d["source"] in ("pyg", "planetoid") and not d["root"]:
        raise ConfigError(f"{source}: data.source is {d['source']} but data.root is empty; set it to the folder "
                          f"holding {d['name']}/raw/ (or use data.source: csbm)")
    if d["source"] == "npz" and not d["path"]:
        raise ConfigError(f"{source}: data.source is npz but data.path is empty; set it to the .npz file")
    if not cfg["seeds"] or not all(isinstance(s, int) and not isinstance(s, bool) for s in cfg["seeds"]):
        raise ConfigError(f"{source}: key 'seeds' must be a non-empty list of integers, got {cfg['seeds']!r}")
    if len(set(cfg["seeds"])) < len(cfg["seeds"]):
        raise ConfigError(f"{source}: key 'seeds' repeats a seed ({cfg['seeds']!r}); each seed is one run, and the "
                          f"mean and std are taken over distinct runs")
    if cfg["teacher"]["model"] == "sage" and len(cfg["teacher"]["fanout"]) != cfg["teacher"]["layers"]:
        raise ConfigError(f"{source}: teacher.fanout has {len(cfg['teacher']['fanout'])} entries but "
                          f"teacher.layers is {cfg['teacher']['layers']}; give one fan-out per layer")
    c = d["csbm"]
    if d["source"] == "csbm" and not (0.0 <= c["homophily"] <= 1.0 and c["classes"] >= 2 and c["nodes"] >= 10
                                      and c["features"] >= 1 and c["avg_degree"] > 0):
        raise ConfigError(f"{source}: data.csbm needs 0 <= homophily <= 1, classes >= 2, nodes >= 10, "
                          f"features >= 1 and avg_degree > 0; got {c}")
    if not 0.0 <= d["inductive_fraction"] < 1.0:
        raise ConfigError(f"{source}: data.inductive_fraction must be in [0, 1), got {d['inductive_fraction']}")
    if cfg["setting"] != "transductive" and d["inductive_fraction"] == 0.0:
        raise ConfigError(f"{source}: setting {cfg['setting']} hides data.inductive_fraction of the test nodes, but it "
                          f"is 0: no inductive test node would be left; give a fraction > 0 or setting=transductive")
    if cfg["student"]["schedule"] == "released" and cfg["method"] not in ("glnn", "none"):
        raise ConfigError(f"{source}: student.schedule 'released' is GLNN's released training loop (a CE pass, then a "
                          f"KD pass); method {cfg['method']!r} trains on the joint loss: set student.schedule=joint")
    t = cfg["teacher"]
    if t["model"] == "gat" and t["hidden"] % t["heads"]:
        raise ConfigError(f"{source}: teacher.hidden ({t['hidden']}) must be a multiple of teacher.heads ({t['heads']}): "
                          f"GAT splits the hidden width across its heads")
    if not 0.0 <= cfg["distill"]["lambda"] <= 1.0:
        raise ConfigError(f"{source}: distill.lambda must be in [0, 1], got {cfg['distill']['lambda']}")
    return cfg


def _method_sections(raw: Dict[str, Any], methods: Sequence[str], source: str) -> Dict[str, Dict[str, Any]]:
    """Take the ``distill.<method>`` subsections out of ``raw`` (the schema does not know third-party
    methods' keys; each method checks its own) and return them."""
    distill = raw.get("distill")
    if not isinstance(distill, dict):
        return {}
    sections = {k: distill.pop(k) for k in list(distill) if k in methods}
    for name, section in sections.items():
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: distill.{name} must be a mapping (the own hyper-parameters of method "
                              f"{name!r}), got {type(section).__name__} {section!r}")
    return sections
