"""A plain PyTorch training loop for domains without an engine of their own (graph, third-party plugins).

Epoch-granular checkpoints hold model (teachers excluded), optimiser, scheduler, every RNG, the epoch and
step counters and the best-so-far selection, so ``resume=True`` continues exactly where the last
checkpoint left off. A non-finite loss stops the run before the optimiser step; the last good checkpoint
stays on disk.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

import torch
from torch import nn

from . import dist
from .checkpoint import CheckpointError, atomic_save, load_checkpoint, rng_state, set_rng_state
from .logs import get_logger, log_once
from .progress import Progress
from .runs import RunContext, plain
from .taps import unwrap

log = get_logger()


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; the message says where and which checkpoint is kept."""


def model_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    """What a checkpoint keeps of ``model``: its state dict (an algorithm's teachers are not in it)."""
    return unwrap(model).state_dict()


def load_model_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: Any = "checkpoint") -> None:
    try:
        unwrap(model).load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{source} does not fit this model (was the architecture changed in the config?): "
                              f"{str(exc).splitlines()[0]}. Resume with the config it was written with, or "
                              f"start in a new --work-dir.") from None


class Trainer:
    """Runs ``epochs`` passes of ``batches(epoch)`` through ``model`` (which returns a dict of losses).

    ``evaluate()`` returns metrics (called every ``eval_interval`` epochs); when ``select`` names one of
    them, the model state with the highest value is kept as ``best.pth`` and restored by
    :meth:`load_best`; with ``patience``, training stops after that many evaluations without improvement
    (early stopping); ``ties_to_later`` makes an evaluation that equals the best count as an improvement
    (GLNN's rule: on a small validation set, ties keep the longer-trained weights). Batches are passed as ``model(**batch)`` for dicts, ``model(*batch)`` for tuples/lists, ``model(batch)`` else.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, ctx: RunContext, *,
                 epochs: int, batches: Callable[[int], Iterable[Any]],
                 scheduler: Optional[Any] = None, evaluate: Optional[Callable[[], Dict[str, float]]] = None,
                 eval_interval: int = 1, checkpoint_interval: int = 1, select: Optional[str] = None,
                 patience: Optional[int] = None, ties_to_later: bool = False, grad_clip: Optional[float] = None,
                 keep_checkpoints: int = 2, progress: bool = True,
                 desc: str = "train", amp: bool = False):
        self.model, self.optimizer, self.scheduler, self.ctx = model, optimizer, scheduler, ctx
        self.epochs, self.batches, self.evaluate = int(epochs), batches, evaluate
        self.eval_interval, self.checkpoint_interval = max(1, eval_interval), max(1, checkpoint_interval)
        self.select, self.grad_clip, self.keep = select, grad_clip, max(1, keep_checkpoints)
        self.patience, self.ties_to_later = patience, ties_to_later
        self.since_best = 0  # evaluations without improvement of ``select``
        self.progress, self.desc = progress, desc
        self.amp = amp
        self.epoch = 0  # completed epochs
        self.written: list = []  # checkpoint files of this run (only these are pruned)
        self.step = 0
        self.best_value = -math.inf
        self.best_metrics: Dict[str, float] = {}
        self.last_metrics: Dict[str, float] = {}

    # checkpoints ------------------------------------------------------------------------------
    def _state(self) -> Dict[str, Any]:
        return {
            "model": model_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "epoch": self.epoch, "step": self.step, "rng": dist.gather_objects(rng_state()),
            "written": [p.name for p in self.written],
            "best_value": self.best_value, "best_metrics": self.best_metrics, "since_best": self.since_best,
        }

    def save_checkpoint(self) -> Optional[Path]:
        state = self._state()  # every rank takes part (per-rank RNG states are gathered)
        if not self.ctx.main:
            return None
        path = self.ctx.checkpoint_dir / f"epoch_{self.epoch}.pth"
        self.written = [p for p in self.written if p != path] + [path]
        state["written"] = [p.name for p in self.written]
        atomic_save(state, path)
        self.ctx.checkpoint_saved(self.step, path)
        for old in self.written[:-self.keep]:
            old.unlink(missing_ok=True)
        self.written = self.written[-self.keep:]
        return path

    def resume(self, path: Optional[Path] = None) -> bool:
        """Load the latest (or given) checkpoint; False when there is none to resume from."""
        path = path or self.ctx.latest_checkpoint()
        if path is None:
            if self.ctx.main:
                log_once(log, "resume-fresh", f"--resume: no checkpoint in {self.ctx.checkpoint_dir}; starting "
                                              f"from scratch")
            return False
        state = load_checkpoint(path)
        load_model_state(self.model, state["model"], path)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.best_value, self.best_metrics = state["best_value"], state["best_metrics"]
        self.since_best = state.get("since_best", 0)
        self.written = [self.ctx.checkpoint_dir / n for n in state.get("written", [])]
        rngs = state["rng"]
        set_rng_state(rngs[dist.rank()] if dist.rank() < len(rngs) else rngs[0])
        return True

    @property
    def best_path(self) -> Path:
        return self.ctx.checkpoint_dir / "best.pth"

    def load_best(self) -> None:
        """Put the selected (best) weights back into the model, if a selection was made."""
        dist.barrier()  # rank 0 writes best.pth; the others must not read an older one
        if self.select and self.best_path.is_file():
            load_model_state(self.model, load_checkpoint(self.best_path)["model"], self.best_path)

    # the loop ---------------------------------------------------------------------------------
    def _autocast(self):
        """bf16 autocast of the forward pass when ``amp`` is on, on the device the model's weights are on.
        bf16 keeps float32's exponent range, so no loss scaling is needed (unlike fp16)."""
        param = next(self.model.parameters(), None)
        device = param.device.type if param is not None else "cpu"
        return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=self.amp)

    def _train_step(self, batch: Any) -> Dict[str, float]:
        with self._autocast():
            if isinstance(batch, dict):
                losses = self.model(**batch)
            elif isinstance(batch, (tuple, list)):
                losses = self.model(*batch)
            else:
                losses = self.model(batch)
        losses = {k: v.float() for k, v in losses.items()}
        total = sum(losses.values())
        if not dist.all_ranks_true(bool(torch.isfinite(total))):  # every rank stops, none waits in backward
            last = self.ctx.latest_checkpoint()
            raise NonFiniteLossError(
                (f"loss became {total.item()}" if not torch.isfinite(total) else "another rank's loss became non-finite")
                + f" at epoch {self.epoch + 1}, step {self.step + 1} "
                f"({', '.join(f'{k}={v.item():.4g}' for k, v in losses.items())}); the run stopped before "
                f"updating the weights. Last good checkpoint: {last or 'none written yet'}. "
                f"Lower the learning rate or check the data for NaN/inf values.")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], self.grad_clip)
        self.optimizer.step()
        self.step += 1
        out = {k: v.item() for k, v in losses.items()}
        out["loss"] = total.item()
        return out

    def fit(self, resume: bool = False) -> Dict[str, float]:
        """Train to ``epochs``; returns the metrics of the selected (or last) evaluation."""
        if resume:
            self.resume()
        self.ctx.start()
        bar = Progress(self.epochs, self.desc, enabled=self.progress and self.ctx.main)
        bar.update(self.epoch)
        while self.epoch < self.epochs and not (self.patience is not None and self.since_best >= self.patience):
            self.model.train()
            sums: Dict[str, float] = {}
            n = 0
            for batch in self.batches(self.epoch):
                for k, v in self._train_step(batch).items():
                    sums[k] = sums.get(k, 0.0) + v
                n += 1
            if self.scheduler is not None:
                self.scheduler.step()
            self.epoch += 1
            logged = {k: v / max(n, 1) for k, v in sums.items()}
            logged["lr"] = self.optimizer.param_groups[0]["lr"]
            logged["epoch"] = self.epoch
            self.ctx.log_metrics(self.step, logged)
            if self.evaluate is not None and (self.epoch % self.eval_interval == 0 or self.epoch == self.epochs):
                self._evaluate()
            stop = self.patience is not None and self.since_best >= self.patience
            if self.epoch % self.checkpoint_interval == 0 or self.epoch == self.epochs or stop:
                self.save_checkpoint()
            bar.update(1, postfix=f"loss {logged.get('loss', float('nan')):.4f}")
            if stop:
                break
        bar.close()
        return self.best_metrics if self.select else self.last_metrics

    def _evaluate(self) -> None:
        self.model.eval()
        with torch.no_grad():
            # plain floats (an evaluate() may return numpy or tensor scalars): the checkpoints that keep them
            # must load with weights_only=True
            metrics = dist.gather_objects(plain(dict(self.evaluate())))[0]  # rank 0 decides for all ranks
        self.last_metrics = metrics
        self.ctx.evaluation_done(self.ctx.info.role, self.step, metrics)
        if self.select:
            if self.select not in metrics:
                raise KeyError(f"select metric {self.select!r} not among evaluation metrics {sorted(metrics)}")
            self.since_best += 1
            value = metrics[self.select]
            if value > self.best_value or (self.ties_to_later and value == self.best_value):
                self.best_value, self.best_metrics, self.since_best = metrics[self.select], metrics, 0
                if self.ctx.main:
                    atomic_save({"model": model_state(self.model), "epoch": self.epoch, "metrics": metrics},
                                self.best_path)
