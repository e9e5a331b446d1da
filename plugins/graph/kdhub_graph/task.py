"""The graph task: per seed, a GNN teacher (trained or loaded), cached soft labels, a baseline MLP and a
distilled MLP, all on the core Trainer; results aggregated over seeds into ``summary.json``.

Layout of a work dir: ``seed_<s>/{teacher,baseline,student}/`` each with checkpoints and a
``result.json`` (a finished sub-run is skipped on ``--resume``, an unfinished one continues from its last
checkpoint), ``seed_<s>/student.pth`` (the exported student) and ``summary.json``.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import torch
from torch import nn
from torch_geometric.data import Data

from kdhub import Task, count_parameters, dist
from kdhub.checkpoint import CheckpointError, atomic_save, atomic_write_text, load_checkpoint
from kdhub.config import ConfigError, LoadedConfig, require_file
from kdhub.engine import Trainer
from kdhub.runs import RunContext, RunInfo
from kdhub.task import DemoResult, ModelResult
from kdhub.timing import median_seconds

from .data import load_graph, prepare
from .ffg2m import FFG2M
from .glnn import GLNN, labelled_ce
from .models import MLP, GNN, build_teacher
from .sampler import CSR, sample
from .soft_labels import soft_labels

ARCH_KEYS = ("model", "hidden", "layers", "dropout", "aggr", "heads", "attn_dropout")


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


def _mean_std(runs: List[Dict[str, float]]) -> Dict[str, float]:
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        out[k] = statistics.fmean(vals)
        out[f"{k}_std"] = statistics.pstdev(vals) if len(vals) > 1 else 0.0
    return out


class GraphRun:
    """One ``kdhub train`` of the graph task."""

    def __init__(self, loaded: LoadedConfig, work_dir: Path, resume: bool):
        self.cfg, self.source = loaded.cfg, str(loaded.path)
        self.work_dir, self.resume = Path(work_dir), resume
        dev = self.cfg["device"]
        self.device = torch.device("cuda" if dev == "cuda" or (dev == "auto" and torch.cuda.is_available()) else "cpu")
        self.data = load_graph(self.cfg["data"], self.source)
        self.setting, self.method = self.cfg["setting"], self.cfg["method"]

    # sub-runs -------------------------------------------------------------------------------
    def _sub(self, seed_dir: Path, role: str) -> RunContext:
        return RunContext(RunInfo("graph", f"{self.method}:{role}", seed_dir / role, Path(self.source),
                                  dist.rank(), dist.world_size()))

    def _finished(self, ctx: RunContext) -> Optional[Dict[str, Any]]:
        path = ctx.work_dir / "result.json"
        if self.resume and path.is_file():
            return json.loads(path.read_text())
        return None

    def _record(self, ctx: RunContext, result: Dict[str, Any]) -> Dict[str, Any]:
        if ctx.main:
            atomic_write_text(ctx.work_dir / "result.json", json.dumps(result, indent=2) + "\n")
        ctx.end(result)
        return result

    # teacher --------------------------------------------------------------------------------
    def _arch(self) -> Dict[str, Any]:
        return {k: self.cfg["teacher"][k] for k in ARCH_KEYS}

    def load_teacher(self, path: Path, split: Data) -> GNN:
        state = load_checkpoint(path)
        if not isinstance(state, dict) or "model" not in state:
            raise CheckpointError(f"{path} is not a kdhub-graph teacher checkpoint (no 'model' entry)")
        feats, classes = split.num_features, int(split.y.max()) + 1
        if (state.get("in_channels"), state.get("num_classes")) != (feats, classes):
            raise ConfigError(
                f"{self.source}: teacher.checkpoint {path} was trained for {state.get('in_channels')} features "
                f"and {state.get('num_classes')} classes, but the data has {feats} features and {classes} "
                f"classes; use a teacher trained on this data set (or leave teacher.checkpoint empty to train one)")
        teacher = build_teacher(state.get("arch", self._arch()), feats, classes)
        teacher.load_state_dict(state["model"])
        return teacher

    def train_teacher(self, split: Data, seed: int, seed_dir: Path) -> Path:
        ctx = self._sub(seed_dir, "teacher")
        path = ctx.work_dir / "teacher.pth"
        if self._finished(ctx) and path.is_file():
            return path
        t = self.cfg["teacher"]
        torch.manual_seed(seed)
        classes = int(split.y.max()) + 1
        gnn = build_teacher(self._arch(), split.num_features, classes).to(self.device)
        objective = TeacherObjective(gnn)
        x, y = split.x.to(self.device), split.y.to(self.device)
        ei, train = split.obs_edge_index.to(self.device), split.train_mask.to(self.device)
        csr = CSR.from_edge_index(split.obs_edge_index, split.num_nodes) if t["model"] == "sage" else None

        def batches(epoch: int):
            if csr is None:
                yield {"x": x, "edge_index": ei, "y": y, "labelled": train}
                return
            g = torch.Generator().manual_seed(seed * 7919 + epoch)
            for seeds in _shards(torch.nonzero(split.train_mask).flatten(), t["batch_size"], seed, epoch):
                sub = sample(csr, seeds, t["fanout"], g)
                yield {"x": x[sub.n_id.to(self.device)], "edge_index": sub.edge_index.to(self.device),
                       "y": y[seeds.to(self.device)], "labelled": torch.ones(len(seeds), dtype=torch.bool,
                                                                             device=self.device),
                       "batch_size": sub.batch_size}

        def evaluate():
            return split_metrics(gnn(x, ei).cpu(), split, "transductive")  # observed graph: val only matters

        trainer = self._fit(objective, gnn, t, ctx, batches, evaluate, f"teacher seed {seed}")
        if ctx.main:
            atomic_save({"model": gnn.state_dict(), "arch": self._arch(), "in_channels": split.num_features,
                         "num_classes": classes}, path)
        self._record(ctx, {"val_acc": trainer.best_value})
        dist.barrier()
        return path

    # training -------------------------------------------------------------------------------
    def _fit(self, objective: nn.Module, net: nn.Module, hp: Dict[str, Any], ctx: RunContext,
             batches: Callable, evaluate: Callable, desc: str) -> Trainer:
        """Adam on ``net``, best validation accuracy selected (GLNN's tie rule), early stopping; the best
        weights are loaded back into ``net``."""
        model = nn.parallel.DistributedDataParallel(objective) if dist.is_distributed() else objective
        opt = torch.optim.Adam(net.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        trainer = Trainer(model, opt, ctx, epochs=hp["epochs"], batches=batches, evaluate=evaluate,
                          select="val_acc", patience=hp["patience"], ties_to_later=True,
                          checkpoint_interval=self.cfg["checkpoint_interval"], desc=desc)
        trainer.fit(resume=self.resume)
        trainer.load_best()
        return trainer

    # students -------------------------------------------------------------------------------
    def train_student(self, split: Data, seed: int, seed_dir: Path, role: str,
                      teacher_logits: Optional[torch.Tensor]) -> Dict[str, Any]:
        ctx = self._sub(seed_dir, role)
        done = self._finished(ctx)
        if done is not None:
            return done
        s = self.cfg["student"]
        torch.manual_seed(seed + 1)
        classes = int(split.y.max()) + 1
        mlp = MLP(split.num_features, s["hidden"], classes, s["layers"], s["dropout"], s["norm"]).to(self.device)
        dev = self.device
        x, y, train = split.x.to(dev), split.y.to(dev), split.train_mask.to(dev)
        method = "none" if role == "baseline" else self.method
        if method == "glnn":
            model = GLNN(mlp, self.cfg["distill"]["lambda"], self.cfg["distill"]["temperature"])
        elif method == "ffg2m":
            model = FFG2M(mlp, self.cfg["distill"]["lambda"], self.cfg["distill"]["tau"])
        else:
            model = PlainStudent(mlp)
        # GLNN: distil over every observed node (transductive: all nodes); baseline: labelled nodes only
        nodes = torch.nonzero(split.train_mask if method == "none" else split.obs_mask).flatten()
        soft = teacher_logits.to(dev) if teacher_logits is not None else None
        csr = CSR.from_edge_index(split.obs_edge_index, split.num_nodes) if method == "ffg2m" else None

        def make_batch(targets: torch.Tensor) -> Dict[str, Any]:
            t = targets.to(dev)
            if csr is None:
                batch = {"x": x[t], "y": y[t], "labelled": train[t]}
                if soft is not None:
                    batch["teacher_logits"] = soft[t]
                return batch
            sub = sample(csr, targets, [-1])
            n_id = sub.n_id.to(dev)
            return {"x": x[n_id], "y": y[t], "labelled": train[t], "teacher_logits": soft[n_id],
                    "edge_index": sub.edge_index.to(dev), "num_targets": sub.batch_size}

        full = s["batch_size"] >= len(nodes) and not dist.is_distributed()
        fixed = [make_batch(nodes)] if full else None  # one batch holding every node: build it once

        def batches(epoch: int):
            if fixed is not None:
                yield from fixed
                return
            for targets in _shards(nodes, s["batch_size"], seed, epoch):
                yield make_batch(targets)

        def evaluate():
            return split_metrics(mlp(x).cpu(), split, self.setting)

        metrics = dict(self._fit(model, mlp, s, ctx, batches, evaluate, f"{role} seed {seed}").best_metrics)
        if ctx.main:
            path = seed_dir / ("student.pth" if role == "student" else f"{role}.pth")
            atomic_save({"student": mlp.state_dict(), "seed": seed, "in_channels": split.num_features,
                         "num_classes": classes, "arch": dict(s)}, path)
            metrics["checkpoint"] = str(path)
        return self._record(ctx, metrics)

    # one seed, all seeds --------------------------------------------------------------------
    def run_seed(self, seed: int) -> Dict[str, Any]:
        seed_dir = self.work_dir / f"seed_{seed}"
        split = prepare(self.data, self.cfg["data"], seed, self.setting, self.source)
        given = self.cfg["teacher"]["checkpoint"]
        if given:
            path = require_file(given.format(seed=seed), "teacher.checkpoint", self.source,
                                "train a teacher first (leave teacher.checkpoint empty) or fix the path")
        else:
            path = self.train_teacher(split, seed, seed_dir)
        teacher = self.load_teacher(path, split).to(self.device).eval()
        x = split.x.to(self.device)
        # the soft labels are the teacher's logits on the observed graph: computed once (or read from the
        # cache) and used both for distillation and for the teacher's own metrics
        cache = self.cfg["distill"]["cache_dir"] or None
        observed, cached = soft_labels(teacher, path, x, split.obs_edge_index.to(self.device), cache,
                                       fallback_dir=seed_dir / "soft_labels")
        if self.setting == "transductive":  # the observed graph is the whole graph
            scores = observed
        else:  # GLNN: observed test nodes scored on the observed graph, hidden ones on the full graph
            with torch.no_grad():
                scores = teacher(x, split.edge_index.to(self.device)).cpu()
            scores[split.obs_mask] = observed[split.obs_mask]
        result: Dict[str, Any] = {"seed": seed, "teacher": split_metrics(scores, split, self.setting),
                                  "teacher_checkpoint": str(path), "soft_labels_cached": cached}
        if self.cfg["baseline"]:
            result["baseline"] = self.train_student(split, seed, seed_dir, "baseline", None)
        if self.method != "none":
            result["student"] = self.train_student(split, seed, seed_dir, "student", observed)
        s = self.cfg["student"]
        student = MLP(split.num_features, s["hidden"], int(split.y.max()) + 1, s["layers"], s["dropout"], s["norm"])
        result["params"] = {"teacher": count_parameters(teacher), "student": count_parameters(student)}
        return result

    def run(self) -> Dict[str, Any]:
        ctx = RunContext(RunInfo("graph", self.method, self.work_dir, Path(self.source), dist.rank(),
                                 dist.world_size(), {"setting": self.setting}))
        ctx.start()
        per_seed = [self.run_seed(seed) for seed in self.cfg["seeds"]]
        strip = lambda m: {k: v for k, v in m.items() if isinstance(v, float)}
        teacher = _mean_std([strip(r["teacher"]) for r in per_seed])
        baseline = _mean_std([strip(r["baseline"]) for r in per_seed]) if self.cfg["baseline"] else None
        student = _mean_std([strip(r["student"]) for r in per_seed]) if self.method != "none" else (baseline or {})
        ckpt = per_seed[0].get("student", per_seed[0].get("baseline", {})).get("checkpoint")
        return ctx.finish(teacher=teacher, student=student, baseline=baseline, params=per_seed[0]["params"],
                          student_checkpoint=ckpt, setting=self.setting, seeds=self.cfg["seeds"],
                          teacher_model=self.cfg["teacher"]["model"], per_seed=per_seed)


class GraphTask(Task):
    """GNN-to-MLP distillation (GLNN, FF-G2M) on torch-geometric graphs."""

    name = domain = "graph"
    package = "kdhub-graph"

    def train(self, loaded: LoadedConfig, work_dir: Path, resume: bool = False, launcher: str = "none"):
        dist.init_distributed(launcher)
        return GraphRun(loaded, work_dir, resume).run()

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
        from .config import load
        from .plugin import CONFIG_DIR

        path = CONFIG_DIR / "demo.yaml"
        teachers = work_dir / "glnn" / "seed_{seed}" / "teacher" / "teacher.pth"
        summaries = {}
        for method, extra in (("glnn", []), ("ffg2m", [f"teacher.checkpoint={teachers}", "baseline=false"])):
            overrides = [f"method={method}"] + extra
            run = GraphRun(LoadedConfig("graph", load(path, overrides), path, method, overrides),
                           work_dir / method, resume=True)
            summaries[method] = run.run()
        g, ff = summaries["glnn"], summaries["ffg2m"]
        split = prepare(run.data, run.cfg["data"], run.cfg["seeds"][0], "transductive")
        teacher = run.load_teacher(Path(g["per_seed"][0]["teacher_checkpoint"]), split).eval()
        s = run.cfg["student"]
        mlp = MLP(split.num_features, s["hidden"], int(split.y.max()) + 1, s["layers"]).eval()
        with torch.no_grad():
            t_ms = median_seconds(lambda: teacher(split.x, split.edge_index)) * 1e3
            s_ms = median_seconds(lambda: mlp(split.x)) * 1e3
        p = g["params"]
        row = lambda name, summ, role, params, ms: ModelResult(name, summ[role]["test_acc"], params, ms,
                                                              summ[role]["test_acc_std"])
        rows = [row(f"teacher ({g['teacher_model']})", g, "teacher", p["teacher"], t_ms),
                row("baseline MLP", g, "baseline", p["student"], s_ms),
                row("GLNN MLP", g, "student", p["student"], s_ms),
                row("FF-G2M MLP", ff, "student", p["student"], s_ms)]
        notes = [f"embedded CSBM graph: {split.num_nodes} nodes, {split.edge_index.size(1) // 2} edges, "
                 f"{len(g['seeds'])} seeds, transductive; latency: inference over every node on this machine",
                 f"summaries: {work_dir / 'glnn' / 'summary.json'}, {work_dir / 'ffg2m' / 'summary.json'}"]
        return DemoResult("graph", "Graph: GNN -> MLP on the embedded CSBM graph", "test acc (%)", rows, notes)
