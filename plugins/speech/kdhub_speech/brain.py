"""The SpeechBrain ``Brain`` that trains a separator, alone or distilled from a frozen teacher.

The teacher is owned by :class:`Distillation`, outside ``self.modules`` and outside any module tree (so Brain
never puts it in train mode, hands its parameters to the optimiser or wraps it in DDP): it is moved to the
device with it, frozen and run under ``no_grad``, or replaced by a :class:`~kdhub_speech.cache.TeacherCache`. Adapters of the intermediate term are a module
of their own (``modules.distill``) so they train, checkpoint and go through DDP with the student.
Training loss = ``(1 - alpha) * PIT-SI-SNR(S, refs) + alpha * (w_out * L_out + w_feat * L_feat)`` with
``alpha`` from the objective-shifting schedule; without references it is the distillation part alone, and
in a batch that mixes the two each example gets its own (``alpha`` where it has references, 1 where not).
Training reports through the core :class:`~kdhub.runs.RunContext`, so lifecycle plugins (and ``train.log``,
TensorBoard) see speech runs: every ``log_interval`` optimisation steps and at each epoch's end, the means of
the loss and of each distillation term since the last report, ``alpha`` and the learning rate at that step;
each validation as an evaluation at the same global step (SpeechBrain's ``optimizer_step``, which the Brain's
checkpoints keep, so a resumed run continues the count).
"""
from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import speechbrain as sb
import speechbrain.nnet.schedulers as schedulers
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from kdhub.checkpoint import rng_state, set_rng_state
from kdhub.algorithm import TeacherOwner
from kdhub.logs import get_logger
from kdhub.runs import RunContext
from kdhub.taps import FeatureTaps, unwrap

from .cache import TeacherCache
from .data import labelled as batch_labelled, targets as batch_targets
from .intermediate import MASKS, IntermediateDistillation, read_frames
from .models import Separator
from .objective_shifting import ObjectiveShifting
from .pit_kd import align_teacher, pit, pit_each

log = get_logger("speech")
#: training values that are a schedule's value at a step rather than a per-batch loss: reported as they are
#: at the reported step, not averaged
SCHEDULED = ("alpha",)


@register_checkpoint_hooks
class RNGState:
    """Checkpoint recoverable for the torch / python / numpy RNGs, so a resumed run continues exactly."""

    @mark_as_saver
    def _save(self, path):
        torch.save(rng_state(), path)

    @mark_as_loader
    def _recover(self, path, end_of_epoch=True):
        set_rng_state(torch.load(path, weights_only=True))


class AtomicCheckpointer(sb.utils.checkpoints.Checkpointer):
    """SpeechBrain's Checkpointer whose checkpoints appear whole or not at all.

    SpeechBrain writes a checkpoint folder's ``CKPT.yaml`` first and then each recoverable's file, so a
    process killed in between leaves a folder that recovery picks and fails to load. Here every checkpoint is
    written under a staging name that recovery ignores and renamed into place when complete; staging folders
    left by an interrupted save are removed when the next run starts.
    """

    STAGING = ".staging-"

    def __init__(self, checkpoints_dir, *args, **kwargs):
        super().__init__(checkpoints_dir, *args, **kwargs)
        self._final: Optional[Path] = None
        if sb.utils.distributed.if_main_process():
            for stale in Path(checkpoints_dir).glob(self.STAGING + "*"):
                shutil.rmtree(stale, ignore_errors=True)

    def _staged(self, final: Path) -> Path:
        self._final = final
        return final.with_name(self.STAGING + final.name)

    def _new_checkpoint_dirpath(self):
        return self._staged(super()._new_checkpoint_dirpath())

    def _custom_checkpoint_dirpath(self, name):
        return self._staged(super()._custom_checkpoint_dirpath(name))

    def save_checkpoint(self, *args, **kwargs):
        """Save under the staging name, rename into place on the main process, then wait for every rank: in
        ``save_and_keep_only`` each rank lists the checkpoints to decide how many to delete (one broadcast
        per deletion), so a rank listing before the rename would make fewer broadcasts and deadlock the group."""
        saved = super().save_checkpoint(*args, **kwargs)
        if saved is not None:
            final, self._final = self._final, None
            os.replace(saved.path, final)
            saved = sb.utils.checkpoints.Checkpoint(final, saved.meta, {k: final / Path(v).name
                                                                        for k, v in saved.paramfiles.items()})
        sb.utils.distributed.ddp_barrier()
        return saved  # None on the other ranks: they wrote nothing of their own


@dataclass
class TeacherTargets:
    """What one batch asks of the teacher: T_sigma [B, T, C], sigma [B, C] (None without references) and
    the tapped features as encoder frames [B, C, L], in the order of ``Distillation.pairs``."""

    aligned: torch.Tensor
    sigma: Optional[torch.Tensor]
    features: List[torch.Tensor]


class Distillation(TeacherOwner, torch.nn.Module):
    """What a distilling Brain needs besides the student: the frozen teacher (or its cache), the terms and their
    schedule. The teacher is owned the core way (:class:`kdhub.algorithm.TeacherOwner`): outside the module tree,
    so the Brain's optimiser, DDP and checkpoints never see it, while ``.to(device)`` carries it along; the
    intermediate term's adapters are a submodule."""

    def __init__(self, teacher: Separator, output_weight: float = 1.0, feature_weight: float = 0.0,
                 pairs: Sequence[Tuple[str, str]] = (), shifting: Optional[ObjectiveShifting] = None,
                 cache: Optional[TeacherCache] = None, intermediate: Optional[IntermediateDistillation] = None):
        super().__init__()
        self.set_teachers(teacher)
        self.output_weight, self.feature_weight, self.pairs = output_weight, feature_weight, list(pairs)
        self.shifting = shifting or ObjectiveShifting()
        self.cache, self.intermediate = cache, intermediate


class SeparationBrain(sb.Brain):
    """Trains ``modules.model`` (a Separator) with PIT SI-SNR, plus the distillation terms when given."""

    def __init__(self, model: Separator, *, lr: float = 1e-3, epochs: int, steps_per_epoch: int, num_spks: int,
                 distillation: Optional[Distillation] = None, ctx: Optional[RunContext] = None,
                 role: str = "student", run_opts: Optional[Dict[str, Any]] = None,
                 checkpointer: Optional[sb.utils.checkpoints.Checkpointer] = None,
                 opt_class: Optional[Callable[..., torch.optim.Optimizer]] = None, lr_scheduler: Any = None,
                 train_logger: Optional[sb.utils.train_logger.TrainLogger] = None, log_interval: int = 50):
        """``opt_class`` is the recipe's optimiser factory (default Adam at ``lr``); ``lr_scheduler`` a
        SpeechBrain ReduceLROnPlateau stepped on each validation loss; ``train_logger``
        gets one line per epoch (epoch, lr, train and valid stats), as in SpeechBrain's recipes; ``ctx``
        gets the training metrics every ``log_interval`` optimisation steps (0: at epoch ends only)."""
        modules: Dict[str, torch.nn.Module] = {"model": model}
        kd = distillation
        if kd is not None and kd.intermediate is not None:
            modules["distill"] = kd.intermediate
        super().__init__(modules=modules, opt_class=opt_class or functools.partial(torch.optim.Adam, lr=lr),
                         hparams={}, run_opts=run_opts or {}, checkpointer=checkpointer)
        self.lr_scheduler, self.train_logger = lr_scheduler, train_logger
        self.kd, self.ctx, self.role = kd, ctx, role
        self.epochs, self.steps_per_epoch, self.num_spks = epochs, max(1, steps_per_epoch), num_spks
        self.epoch, self.train_stats, self.batches_seen = 0, {}, 0
        self.log_interval = max(0, int(log_interval))
        self._sums: Dict[str, float] = {}              # this epoch's sums of the training terms
        self._window: Dict[str, float] = {}            # sums since the last report to ctx
        self._window_steps = 0
        self._batch_terms: Optional[Dict[str, float]] = None
        self.student_taps = self.teacher_taps = None
        self._teacher: Optional[TeacherTargets] = None
        if kd is not None:
            kd.to(self.device)
            if kd.pairs and kd.feature_weight > 0:
                self.student_taps = FeatureTaps(model, [s for s, _ in kd.pairs])
                if kd.cache is None:
                    self.teacher_taps = FeatureTaps(kd.teacher, [t for _, t in kd.pairs], detach=True)

    def close(self) -> None:
        """Remove the feature taps from student and teacher (they outlive the Brain otherwise)."""
        for taps in (self.student_taps, self.teacher_taps):
            if taps is not None:
                taps.close()

    # forward and losses --------------------------------------------------------------------------
    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        mix = batch.mix_sig.data
        if stage == sb.Stage.TRAIN and self.kd is not None:
            for taps in (self.student_taps, self.teacher_taps):  # only this step's forwards can be read
                if taps is not None:
                    taps.clear()
            # The teacher runs first, so its activations are freed before the student's graph is built.
            self._teacher = self.teacher_targets(mix, list(batch.id), batch_targets(batch, self.num_spks),
                                                 batch_labelled(batch))
        return self.modules.model(mix)

    def compute_objectives(self, est, batch, stage):
        refs = batch_targets(batch, self.num_spks)
        if stage != sb.Stage.TRAIN or self.kd is None:
            return pit(est, refs)[0].mean()
        teacher, self._teacher = self._teacher, None
        terms = self.distillation_terms(est, batch.mix_sig.data, list(batch.id), refs, teacher,
                                        batch_labelled(batch))
        self._batch_terms = {k: float(v.detach()) for k, v in terms.items()}
        for k, v in self._batch_terms.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        return terms["loss"]

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Add this batch's loss and terms to the values reported next; report every ``log_interval``
        optimisation steps."""
        terms, self._batch_terms = self._batch_terms or {}, None
        for k, v in {"loss": float(loss.detach()), **terms}.items():
            self._window[k] = v if k in SCHEDULED else self._window.get(k, 0.0) + v
        self._window_steps += 1
        if should_step and self.log_interval and self.optimizer_step % self.log_interval == 0:
            self.report_training()

    def report_training(self) -> None:
        """Tell ``ctx`` the training values since the last report, at the current global optimisation step:
        means of the loss and terms, ``alpha`` and the learning rate as they are now, and the epoch."""
        if not self._window_steps:
            return
        if self.ctx is not None:
            metrics = {k: v if k in SCHEDULED else v / self._window_steps for k, v in self._window.items()}
            metrics.update(lr=self.optimizer.param_groups[0]["lr"], epoch=self.epoch)
            self.ctx.log_metrics(self.optimizer_step, metrics)
        self._window, self._window_steps = {}, 0

    def anneal(self, valid_loss: float, epoch: int) -> Tuple[float, float]:
        """Step the scheduler on this epoch's validation loss, as SpeechBrain's separation recipes do
        (recipes/LibriMix/separation/train.py), and set the optimiser's next learning rate; returns the learning
        rate this epoch trained with and the next one."""
        if not isinstance(self.lr_scheduler, schedulers.ReduceLROnPlateau):
            current = self.optimizer.param_groups[0]["lr"]
            return current, current
        current, following = self.lr_scheduler([self.optimizer], epoch, valid_loss)
        schedulers.update_learning_rate(self.optimizer, following)
        return current, following

    def progress(self) -> float:
        """Fraction of training done at the current step (for the objective-shifting schedule)."""
        return (self.epoch - 1 + (max(self.step, 1) - 1) / self.steps_per_epoch) / self.epochs

    def teacher_targets(self, mix: torch.Tensor, ids: List[str], refs: Optional[torch.Tensor],
                        labelled: Optional[torch.Tensor] = None) -> TeacherTargets:
        """The teacher's sources aligned to the references (T_sigma), sigma, and its frame features;
        ``labelled`` [B] marks the examples whose references are real (None: all)."""
        kd = self.kd
        if kd.cache is not None:  # cached outputs are aligned already; sigma only orders masks (never cached)
            t_aligned, t_feats = kd.cache.lookup(ids, mix.shape[-1], self.device)
            return TeacherTargets(t_aligned, None, t_feats)
        with torch.no_grad():
            t_est = kd.teacher(mix)
            t_aligned, sigma = align_teacher(t_est, refs, labelled)
            t_feats = []
            if self.teacher_taps is not None:
                t_feats = read_frames(kd.teacher, self.teacher_taps, [t for _, t in kd.pairs],
                                      kd.teacher.num_frames(mix), sigma)
        return TeacherTargets(t_aligned, sigma, t_feats)

    def distillation_terms(self, est: torch.Tensor, mix: torch.Tensor, ids: List[str],
                           refs: Optional[torch.Tensor],
                           teacher: Optional[TeacherTargets] = None,
                           labelled: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """The training loss and its parts; ``teacher`` is computed here when not given. ``labelled`` [B]
        marks the examples whose references are real (None: all); the others are distilled alone."""
        kd = self.kd
        if teacher is None:
            teacher = self.teacher_targets(mix, ids, refs, labelled)
        student = unwrap(self.modules.model)
        terms: Dict[str, torch.Tensor] = {}
        perms = sep_ex = out_ex = feat = None
        if kd.output_weight > 0 or MASKS in [s for s, _ in kd.pairs]:
            if refs is None:
                out_ex, perms = pit(est, teacher.aligned.detach())
            else:  # the separation and output terms share one PIT pass over the student's estimate
                (sep_ex, _), (out_ex, perms) = pit_each(est, [refs, teacher.aligned.detach()])
            terms["output"] = out_ex.mean().detach()
        if self.student_taps is not None:
            s_feats = read_frames(student, self.student_taps, [s for s, _ in kd.pairs], student.num_frames(mix), perms)
            feat = self.modules.distill(s_feats, teacher.features)
            terms["features"] = feat.detach()

        def kd_loss(weight: torch.Tensor) -> torch.Tensor:
            """The distillation terms, example i weighted by weight[i] (the features term by the mean)."""
            loss = est.new_zeros(())
            if kd.output_weight > 0:
                loss = loss + kd.output_weight * (weight * out_ex).mean()
            if feat is not None:
                loss = loss + kd.feature_weight * weight.mean() * feat
            return loss

        ones = est.new_ones(est.shape[0])
        if refs is None:
            terms["loss"] = kd_loss(ones)
            return terms
        if sep_ex is None:
            sep_ex = pit(est, refs)[0]
        alpha = kd.shifting.alpha(self.progress())
        real = ones if labelled is None else labelled.to(est.device).float()
        terms.update(separation=((sep_ex * real).sum() / real.sum().clamp_min(1)).detach(),
                     alpha=torch.tensor(alpha))
        terms["loss"] = (1 - alpha) * (sep_ex * real).mean() + kd_loss(alpha * real + (1 - real))
        return terms

    # stages --------------------------------------------------------------------------------------
    def on_stage_start(self, stage, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.epoch = epoch or 1
            self._sums, self._window, self._window_steps = {}, {}, 0

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            n = max(1, self.step)
            self.batches_seen = self.step     # this rank's share of the epoch (a distributed sampler splits it)
            self.train_stats = {"loss": float(stage_loss), **{k: v / n for k, v in self._sums.items()}}
            self.report_training()        # before validation anneals: the learning rate these steps had
            return
        if stage != sb.Stage.VALID:
            return
        metrics = {"si-snr": -float(stage_loss)}
        current_lr, _ = self.anneal(float(stage_loss), epoch)
        if self.train_logger is not None:
            self.train_logger.log_stats(stats_meta={"epoch": epoch, "lr": current_lr}, train_stats=self.train_stats,
                                        valid_stats={"loss": float(stage_loss), **metrics}, verbose=False)
        if self.ctx is not None:
            self.ctx.evaluation_done(self.role, self.optimizer_step, metrics)
        if sb.utils.distributed.if_main_process():
            parts = ", ".join(f"{k} {v:.3f}" for k, v in self.train_stats.items())
            log.info(f"[{self.role}] epoch {epoch}/{self.epochs}: {parts}; valid si-snr {metrics['si-snr']:.2f} dB")
        if self.checkpointer is not None:
            self.checkpointer.save_and_keep_only(meta={"si-snr": metrics["si-snr"], "epoch": epoch},
                                                 max_keys=["si-snr"], verbosity=10)
            latest = self.checkpointer.find_checkpoint()
            if self.ctx is not None and latest is not None:
                self.ctx.checkpoint_saved(self.optimizer_step, Path(latest.path) / "CKPT.yaml")
