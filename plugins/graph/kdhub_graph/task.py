"""The graph task: per seed, the core pipeline runs a GNN teacher (trained or loaded), a baseline MLP and an
MLP distilled from the teacher's cached soft labels, all on the core Trainer; results are aggregated over
seeds into ``summary.json``.

Layout of a work dir: ``seed_<s>/{teacher,baseline,student}/`` are the pipeline's sub-runs (checkpoints and
``result.json``), ``seed_<s>/student.pth`` the exported student, and ``summary.json``.
"""
from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

import torch
import yaml
from torch import nn
from torch_geometric.data import Data

from kdhub import Task, count_parameters, dist
from kdhub.checkpoint import CheckpointError, atomic_save, atomic_write_text, load_checkpoint, state_mismatch
from kdhub.config import ConfigError, LoadedConfig, require_file
from kdhub.engine import Trainer
from kdhub.pipeline import Pipeline, Stages, demo_rows
from kdhub.runs import RunContext, RunInfo
from kdhub.task import DemoResult

from .config import PATH_KEYS
from .data import load_graph, prepare
from kdhub.device import resolve_device
from .glnn import labelled_ce
from .models import MLP, GNN, build_teacher, init_like_dgl_
from .methods import build_method
from .sampler import CSR, RowBuffer, rows, sample
from .soft_labels import soft_labels
from .teacher_state import LAYOUTS, mismatch_hints, read_teacher_state

ARCH_KEYS = ("model", "hidden", "layers", "dropout", "act", "aggr", "heads", "out_heads", "attn_dropout")


def accuracy(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    return (logits[mask].argmax(-1) == y[mask]).float().mean().item() * 100 if mask.any() else float("nan")


def split_metrics(logits: torch.Tensor, split: Data, setting: str) -> Dict[str, float]:
    """val/test accuracy; inductive and production settings also report the observed (tran) and hidden
    (ind) test nodes and GLNN's production mix 0.8 * tran + 0.2 * ind."""
    out = {"val_acc": accuracy(logits, split.y, split.val_mask)}
    if setting == "transductive":
        out["test_acc"] = accuracy(logits, split.y, split.test_mask)
        return out
    tran = accuracy(logits, split.y, split.test_tran_mask)
    ind = accuracy(logits, split.y, split.test_ind_mask)
    out.update(test_acc_tran=tran, test_acc_ind=ind, test_acc_prod=0.8 * tran + 0.2 * ind)
    out["test_acc"] = ind if setting == "inductive" else out["test_acc_prod"]
    return out


class PlainStudent(nn.Module):
    """The baseline: the student architecture trained on hard labels alone."""

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, x, y, labelled, **_):
        return {"loss_ce": labelled_ce(self.student(x), y, labelled)}


class TeacherObjective(nn.Module):
    """Supervised GNN training: full graph (GCN, GAT) or sampled subgraphs (SAGE)."""

    def __init__(self, gnn: GNN):
        super().__init__()
        self.gnn = gnn

    def forward(self, x, edge_index, y, labelled, batch_size=None):
        logits = self.gnn(x, edge_index)
        if batch_size is not None:
            logits = logits[:batch_size]
        return {"loss_ce": labelled_ce(logits, y, labelled)}


def _shards(nodes: torch.Tensor, batch_size: int, seed: int, epoch: int) -> Iterator[torch.Tensor]:
    """This rank's node batches for an epoch: same permutation on every rank, equal batch counts."""
    g = torch.Generator().manual_seed(seed * 100003 + epoch)
    perm = nodes[torch.randperm(len(nodes), generator=g)]
    world, rank = dist.world_size(), dist.rank()
    perm = perm[: len(perm) // world * world][rank::world]
    yield from perm.split(batch_size)


def released_batches(nodes: torch.Tensor, batch_size: int, generator: torch.Generator) -> List[torch.Tensor]:
    """One pass of GLNN's released ``train_mini_batch``: a fresh permutation, ``max(1, n // batch_size)`` batches
    of ``batch_size`` nodes, the last partial batch dropped (all nodes in one batch when there are fewer)."""
    count = max(1, len(nodes) // batch_size)
    perm = nodes[torch.randperm(len(nodes), generator=generator)][: count * batch_size]
    return list(perm.split(batch_size))


def _mean_std(runs: List[Dict[str, float]]) -> Dict[str, float]:
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        out[k] = statistics.fmean(vals)
        out[f"{k}_std"] = statistics.pstdev(vals) if len(vals) > 1 else 0.0
    return out


class SeedStages(Stages):
    """The pipeline's stages for one seed: a GNN teacher, then MLP students on its cached soft labels."""

    def __init__(self, run: "GraphRun", seed: int, split: Data, seed_dir: Path):
        self.run, self.seed, self.split, self.seed_dir = run, seed, split, seed_dir
        self.cfg = run.cfg
        self.baseline = bool(self.cfg["baseline"])
        self.distil = run.method != "none"
        self.teacher_path: Optional[Path] = None
        self._soft: Optional[tuple] = None

    def _ctx(self, role: str, work_dir: Path) -> RunContext:
        return RunContext(RunInfo("graph", f"{self.run.method}:{role}", work_dir, Path(self.run.source),
                                  dist.rank(), dist.world_size(), role=role))

    # teacher ------------------------------------------------------------------------------------------
    def teacher_checkpoint(self) -> Optional[Path]:
        given = self.cfg["teacher"]["checkpoint"]
        if not given:
            return None
        self.teacher_path = require_file(given.format(seed=self.seed), "teacher.checkpoint", self.run.source,
                                         "train a teacher first (leave teacher.checkpoint empty) or fix the path")
        return self.teacher_path

    def use_teacher(self, checkpoint: Path) -> None:
        self.teacher_path = checkpoint

    def soft_labels(self) -> tuple:
        """The teacher's logits on the observed graph, computed once per seed (or read from the cache), and
        whether they came from the cache; used for distillation and for the teacher's own metrics."""
        if self._soft is None:
            teacher = self.run.load_teacher(self.teacher_path, self.split).to(self.run.device).eval()
            x, ei = self.split.x.to(self.run.device), self.split.obs_edge_index.to(self.run.device)
            observed, cached = soft_labels(teacher, self.teacher_path, x, ei, self.cfg["distill"]["cache_dir"] or None,
                                           fallback_dir=self.seed_dir / "soft_labels",
                                           variant=json.dumps(self.run.arch(), sort_keys=True))
            self._soft = (teacher, observed, cached)
        return self._soft

    def test_teacher(self, checkpoint: Path) -> Dict[str, float]:
        self.teacher_path = checkpoint
        teacher, observed, _ = self.soft_labels()
        split = self.split
        if self.run.setting == "transductive":  # the observed graph is the whole graph
            scores = observed
        else:  # GLNN: observed test nodes scored on the observed graph, hidden ones on the full graph
            with torch.no_grad():
                scores = teacher(split.x.to(self.run.device), split.edge_index.to(self.run.device)).cpu()
            scores[split.obs_mask] = observed[split.obs_mask]
        return split_metrics(scores, split, self.run.setting)

    def train(self, role: str, work_dir: Path) -> Dict[str, Any]:
        if role == "teacher":
            return self.train_teacher(work_dir)
        return self.train_student(role, work_dir)

    def train_teacher(self, work_dir: Path) -> Dict[str, Any]:
        split, seed, run = self.split, self.seed, self.run
        ctx = self._ctx("teacher", work_dir)
        t = self.cfg["teacher"]
        torch.manual_seed(seed)
        classes = int(split.y.max()) + 1
        gnn = build_teacher(run.arch(), split.num_features, classes)
        if t["init"] == "dgl":
            init_like_dgl_(gnn)
        gnn = gnn.to(run.device)
        objective = TeacherObjective(gnn)
        x, y = split.x.to(run.device), split.y.to(run.device)
        ei, train = split.obs_edge_index.to(run.device), split.train_mask.to(run.device)
        csr = CSR.from_edge_index(split.obs_edge_index, split.num_nodes) if t["model"] == "sage" else None

        def batches(epoch: int):
            if csr is None:
                yield {"x": x, "edge_index": ei, "y": y, "labelled": train}
                return
            g = torch.Generator().manual_seed(seed * 7919 + epoch)
            for seeds in _shards(torch.nonzero(split.train_mask).flatten(), t["batch_size"], seed, epoch):
                sub = sample(csr, seeds, t["fanout"], g)
                yield {"x": x[sub.n_id.to(run.device)], "edge_index": sub.edge_index.to(run.device),
                       "y": y[seeds.to(run.device)], "labelled": torch.ones(len(seeds), dtype=torch.bool,
                                                                            device=run.device),
                       "batch_size": sub.batch_size}

        def evaluate():
            return split_metrics(gnn(x, ei).cpu(), split, "transductive")  # observed graph: val only matters

        trainer = run.fit(objective, gnn, t, ctx, batches, evaluate, f"teacher seed {seed}")
        path = work_dir / "teacher.pth"
        if ctx.main:
            atomic_save({"model": gnn.state_dict(), "arch": run.arch(), "in_channels": split.num_features,
                         "num_classes": classes}, path)
        dist.barrier()
        result = {"test": self.test_teacher(path), "export": str(path), "params": count_parameters(gnn),
                  "val_acc": trainer.best_value}
        ctx.end(result)
        return result

    def train_student(self, role: str, work_dir: Path) -> Dict[str, Any]:
        split, seed, run = self.split, self.seed, self.run
        ctx = self._ctx(role, work_dir)
        s = self.cfg["student"]
        method = "none" if role == "baseline" else run.method
        teacher_logits = self.soft_labels()[1] if method != "none" else None
        torch.manual_seed(seed + 1)
        classes = int(split.y.max()) + 1
        mlp = MLP(split.num_features, s["hidden"], classes, s["layers"], s["dropout"], s["norm"]).to(run.device)
        dev = run.device
        x, y, train = split.x.to(dev), split.y.to(dev), split.train_mask.to(dev)
        model = PlainStudent(mlp) if method == "none" else build_method(method, mlp, self.cfg["distill"])
        # GLNN: distil over every observed node (transductive: all nodes); baseline: labelled nodes only
        nodes = torch.nonzero(split.train_mask if method == "none" else split.obs_mask).flatten()
        soft = teacher_logits.to(dev) if teacher_logits is not None else None
        needs_graph = getattr(model, "needs_graph", False)  # the method reads the targets' neighbourhoods
        csr = CSR.from_edge_index(split.obs_edge_index, split.num_nodes) if needs_graph else None
        per_node = {}  # what each batch carries from the teacher, one row per node
        if soft is not None:
            prepare = getattr(model, "prepare_teacher", None)
            per_node = prepare(soft) if prepare is not None and csr is None else {"teacher_logits": soft}

        features = RowBuffer()  # a neighbourhood's feature rows, written in place batch after batch

        def make_batch(targets: torch.Tensor) -> Dict[str, Any]:
            t = targets.to(dev)
            if csr is None:
                return {"x": rows(x, t), "y": rows(y, t), "labelled": rows(train, t),
                        **{k: rows(v, t) for k, v in per_node.items()}}
            sub = sample(csr, targets, [-1])
            n_id = sub.n_id.to(dev)
            return {"x": features(x, n_id), "y": rows(y, t), "labelled": rows(train, t),
                    "teacher_logits": rows(soft, n_id),
                    "edge_index": sub.edge_index.to(dev), "num_targets": sub.batch_size}

        full = s["batch_size"] >= len(nodes) and not dist.is_distributed()
        fixed = [make_batch(nodes)] if full else None  # one batch holding every node: build it once
        released = method != "none" and s["schedule"] == "released"
        if released and dist.is_distributed():
            raise ConfigError(f"{run.source}: student.schedule 'released' is GLNN's single-process loop; use "
                              f"student.schedule=joint under --launcher")
        labelled_nodes = torch.nonzero(split.train_mask).flatten()

        def batches(epoch: int):
            if released:  # GLNN's released loop: a CE pass over the labelled nodes, then a KD pass
                g = torch.Generator().manual_seed(seed * 100003 + epoch)
                for part, pool in (("ce", labelled_nodes), ("kd", nodes)):
                    for targets in released_batches(pool, s["batch_size"], g):
                        yield dict(make_batch(targets), part=part)
                return
            if fixed is not None:
                yield from fixed
                return
            for targets in _shards(nodes, s["batch_size"], seed, epoch):
                yield make_batch(targets)

        def evaluate():
            return split_metrics(mlp(x).cpu(), split, run.setting)

        metrics = dict(run.fit(model, mlp, s, ctx, batches, evaluate, f"{role} seed {seed}").best_metrics)
        path = self.seed_dir / ("student.pth" if role == "student" else f"{role}.pth")
        if ctx.main:
            atomic_save({"student": mlp.state_dict(), "seed": seed, "in_channels": split.num_features,
                         "num_classes": classes, "arch": dict(s)}, path)
        result = {"test": metrics, "export": str(path), "params": count_parameters(mlp)}
        ctx.end(result)
        return result

    def inference(self, role: str, result: Mapping[str, Any]):
        split = self.split
        if role == "teacher":
            teacher = self.soft_labels()[0].cpu().eval()
            return lambda: _no_grad(teacher, split.x, split.edge_index)
        s = self.cfg["student"]
        mlp = MLP(split.num_features, s["hidden"], int(split.y.max()) + 1, s["layers"], s["dropout"], s["norm"]).eval()
        return lambda: _no_grad(mlp, split.x)


def _anchored(value: str, config: Path) -> str:
    """``value`` as an absolute path where the run reads it (:func:`kdhub.config.resolve_path`): beside the working
    directory if it exists there, else beside the config file if it exists there, else the working directory's."""
    if not value or Path(value).expanduser().is_absolute():
        return value
    probe = value.replace("{seed}", "0")
    base = next((b for b in (Path.cwd(), Path(config).resolve().parent) if (b / probe).exists()), Path.cwd())
    return str(base / value)


def _describe(arch: Mapping[str, Any]) -> str:
    text = f"{arch.get('model')}, hidden {arch.get('hidden')}, {arch.get('layers')} layers"
    if arch.get("model") == "sage":
        text += f", aggr {arch.get('aggr')}"
    if arch.get("model") == "gat":
        text += f", {arch.get('heads')} heads, {arch.get('out_heads', 1)} output head(s)"
    return text


def _no_grad(model: nn.Module, *inputs: Any) -> Any:
    with torch.no_grad():
        return model(*inputs)


class GraphRun:
    """One ``kdhub train`` of the graph task: the pipeline once per seed, aggregated over seeds."""

    #: bf16 autocast of the training forward passes (``kdhub train --amp``; set by ``Task.train``)
    amp: bool = False

    def __init__(self, loaded: LoadedConfig, work_dir: Path, resume: bool = False, launcher: str = "none"):
        dist.init_distributed(launcher)
        self.cfg, self.source = loaded.cfg, str(loaded.path)
        self.work_dir, self.resume = Path(work_dir), resume
        self.device = resolve_device(self.cfg["device"], self.source)
        self.data = load_graph(self.cfg["data"], self.source)
        self.setting, self.method = self.cfg["setting"], self.cfg["method"]

    def arch(self) -> Dict[str, Any]:
        return {k: self.cfg["teacher"][k] for k in ARCH_KEYS}

    def check(self) -> None:
        """Before anything is written (the data was read and checked in ``__init__``): every seed's split, and
        each seed's given teacher checkpoint read and fitted strictly to the configured teacher."""
        for seed in self.cfg["seeds"]:
            stages = self.stages(seed)
            path = stages.teacher_checkpoint()
            if path is not None:
                self.load_teacher(path, stages.split)

    def load_teacher(self, path: Path, split: Data) -> GNN:
        """The configured teacher (the config's teacher section) with the weights of ``path``, loaded strictly:
        a graph run's ``teacher.pth`` or a state dict saved by the user's own PyG code, in a layout
        :mod:`kdhub_graph.teacher_state` accepts. A file that does not fit names the first differing keys
        and shapes, and the config change that fits it where its keys tell."""
        key = f"{self.source}: teacher.checkpoint"
        given, meta = read_teacher_state(path, key)
        feats, classes = split.num_features, int(split.y.max()) + 1
        saved_for = (meta.get("in_channels"), meta.get("num_classes"))
        if None not in saved_for and saved_for != (feats, classes):
            raise ConfigError(
                f"{self.source}: teacher.checkpoint {path} was trained for {meta['in_channels']} features "
                f"and {meta['num_classes']} classes, but the data has {feats} features and {classes} "
                f"classes; use a teacher trained on this data set (or leave teacher.checkpoint empty to train one)")
        teacher = build_teacher(self.arch(), feats, classes)
        expected = teacher.state_dict()
        problem = state_mismatch(expected, given)
        saved = meta.get("arch")
        if problem:
            held = f"; the file holds {_describe(saved)}" if isinstance(saved, dict) and "model" in saved else ""
            hints = mismatch_hints(expected, given, self.arch(), feats, classes)
            fix = "; ".join(hints) if hints else "set the teacher section to the architecture it was trained with"
            raise ConfigError(
                f"{key} {path} does not fit the configured teacher ({_describe(self.arch())}, built for the data's "
                f"{feats} features and {classes} classes{held}): {problem}. Fix: {fix} (or leave "
                f"teacher.checkpoint empty to train one). Accepted files: {LAYOUTS}")
        if isinstance(saved, dict) and saved.get("act", "relu") != self.arch()["act"]:  # not visible in the weights
            raise ConfigError(
                f"{key} {path} was trained with teacher.act={saved.get('act', 'relu')}, but the config says "
                f"{self.arch()['act']}; set teacher.act={saved.get('act', 'relu')}")
        teacher.load_state_dict(given)
        return teacher

    def fit(self, objective: nn.Module, net: nn.Module, hp: Dict[str, Any], ctx: RunContext,
            batches: Callable, evaluate: Callable, desc: str) -> Trainer:
        """Adam on ``net``, best validation accuracy selected (GLNN's tie rule), early stopping; the best
        weights are loaded back into ``net``."""
        model = nn.parallel.DistributedDataParallel(objective) if dist.is_distributed() else objective
        opt = torch.optim.Adam(net.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        trainer = Trainer(model, opt, ctx, epochs=hp["epochs"], batches=batches, evaluate=evaluate,
                          select="val_acc", patience=hp["patience"], ties_to_later=True,
                          checkpoint_interval=self.cfg["checkpoint_interval"], desc=desc, amp=self.amp)
        trainer.fit(resume=self.resume)
        trainer.load_best()
        return trainer

    def stages(self, seed: int) -> SeedStages:
        split = prepare(self.data, self.cfg["data"], seed, self.setting, self.source)
        return SeedStages(self, seed, split, self.work_dir / f"seed_{seed}")

    def run(self) -> Dict[str, Any]:
        ctx = RunContext(RunInfo("graph", self.method, self.work_dir, Path(self.source), dist.rank(),
                                 dist.world_size(), {"setting": self.setting}))
        ctx.start()
        pipeline = Pipeline(ctx, self.resume)
        per_seed = []
        for seed in self.cfg["seeds"]:
            stages = self.stages(seed)
            results = pipeline.run(stages, stages.seed_dir)
            teacher, _, cached = stages.soft_labels()
            row: Dict[str, Any] = {"seed": seed, "teacher": results["teacher"]["test"],
                                   "teacher_checkpoint": results["teacher"]["export"], "soft_labels_cached": cached}
            for role in ("baseline", "student"):
                if role in results:
                    row[role] = dict(results[role]["test"], checkpoint=results[role]["export"])
            s = self.cfg["student"]
            mlp = MLP(stages.split.num_features, s["hidden"], int(stages.split.y.max()) + 1, s["layers"], s["dropout"],
                      s["norm"])
            row["params"] = {"teacher": count_parameters(teacher), "student": count_parameters(mlp)}
            per_seed.append(row)
        strip = lambda m: {k: v for k, v in m.items() if isinstance(v, float)}
        teacher = _mean_std([strip(r["teacher"]) for r in per_seed])
        baseline = _mean_std([strip(r["baseline"]) for r in per_seed]) if self.cfg["baseline"] else None
        student = _mean_std([strip(r["student"]) for r in per_seed]) if self.method != "none" else (baseline or {})
        ckpt = per_seed[0].get("student", per_seed[0].get("baseline", {})).get("checkpoint")
        # the first seed's checkpoints at the top, as every domain's summary has them; per_seed has each seed's
        return ctx.finish(teacher=teacher, student=student, baseline=baseline, params=per_seed[0]["params"],
                          student_checkpoint=ckpt, teacher_checkpoint=per_seed[0]["teacher_checkpoint"],
                          setting=self.setting, seeds=self.cfg["seeds"],
                          device=str(self.device), teacher_model=self.cfg["teacher"]["model"], per_seed=per_seed)


class GraphTask(Task):
    """GNN-to-MLP distillation on torch-geometric graphs; the method is any registered graph distiller."""

    run_class = GraphRun

    def dump_config(self, loaded: LoadedConfig, work_dir: Path) -> None:
        """``config.yaml``: the config as the run read it (defaults filled in, ``--cfg-options`` applied), in
        the domain's own format, so ``kdhub train work_dir/config.yaml`` repeats the run: its paths are written
        absolute, as the run found them (beside the working directory, or else the config file)."""
        cfg = copy.deepcopy(loaded.cfg)
        for section, key in PATH_KEYS:
            cfg[section][key] = _anchored(cfg[section][key], loaded.path)
        atomic_write_text(Path(work_dir) / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))

    def evaluate(self, loaded: LoadedConfig, checkpoint: Path) -> Dict[str, float]:
        cfg = loaded.cfg
        state = load_checkpoint(checkpoint)
        if "student" not in state:
            raise CheckpointError(f"{checkpoint} is not a kdhub-graph student checkpoint (no 'student' entry)")
        data = load_graph(cfg["data"], str(loaded.path))
        split = prepare(data, cfg["data"], int(state.get("seed", cfg["seeds"][0])), cfg["setting"])
        classes = int(split.y.max()) + 1
        if (state["in_channels"], state["num_classes"]) != (split.num_features, classes):
            raise ConfigError(f"{checkpoint}: student was trained for {state['in_channels']} features and "
                              f"{state['num_classes']} classes; the data has {split.num_features} and {classes}")
        a = state["arch"]
        mlp = MLP(split.num_features, a["hidden"], classes, a["layers"], a["dropout"], a["norm"])
        mlp.load_state_dict(state["student"])
        mlp.eval()
        with torch.no_grad():
            return split_metrics(mlp(split.x), split, cfg["setting"])

    def demo(self, work_dir: Path) -> DemoResult:
        """SAGE teacher, baseline MLP, GLNN and FF-G2M students (the latter two from the same teachers) on
        the embedded CSBM graph; finished parts of an earlier demo in ``work_dir`` are reused."""
        from .config import CONFIG_DIR, load

        path = CONFIG_DIR / "demo.yaml"
        teachers = work_dir / "glnn" / "seed_{seed}" / "teacher" / "teacher.pth"
        summaries = {}
        for method, extra in (("glnn", []), ("ffg2m", [f"teacher.checkpoint={teachers}", "baseline=false"])):
            overrides = [f"method={method}"] + extra
            run = GraphRun(LoadedConfig("graph", load(path, overrides), path, method, overrides),
                           work_dir / method, resume=True)
            run.check()
            summaries[method] = run.run()
        g, ff = summaries["glnn"], summaries["ffg2m"]
        stages = run.stages(run.cfg["seeds"][0])
        stages.use_teacher(Path(g["per_seed"][0]["teacher_checkpoint"]))
        split = stages.split
        rows = demo_rows(g, "test_acc", stages, roles=(("teacher", f"teacher ({g['teacher_model']})"),
                                                       ("baseline", "baseline MLP"), ("student", "GLNN MLP")))
        rows += demo_rows(ff, "test_acc", stages, roles=(("student", "FF-G2M MLP"),))
        notes = [f"embedded CSBM graph: {split.num_nodes} nodes, {split.edge_index.size(1) // 2} edges, "
                 f"{len(g['seeds'])} seeds, transductive; latency: inference over every node on this machine",
                 f"summaries: {work_dir / 'glnn' / 'summary.json'}, {work_dir / 'ffg2m' / 'summary.json'}"]
        return DemoResult("graph", "Graph: GNN -> MLP on the embedded CSBM graph", "test acc (%)", rows, notes)
