"""Training through SpeechBrain's Brain at tiny sizes: what trains, what stays frozen, cache, resume."""
import copy

import pytest
import speechbrain as sb
import torch

from kdhub_speech.brain import Distillation, RNGState, SeparationBrain
from kdhub_speech.cache import TeacherCache
from kdhub_speech.data import dataset, labelled as batch_labelled, read_manifest
from kdhub_speech.intermediate import IntermediateDistillation
from kdhub_speech.metrics import evaluate
from kdhub_speech.objective_shifting import ObjectiveShifting
from kdhub_speech.pit_kd import align_teacher, pit
from kdhub.algorithm import count_parameters
from speech_helpers import _block, load, tiny_config

PAIRS = [("masknet.temporal_conv_net.temporalblock_0_1", "masknet.dual_mdl.0")]


@pytest.fixture
def models(tmp_path):
    cfg = load(tiny_config(tmp_path)).cfg
    return cfg["teacher_model"], cfg["student_model"]


def _batch(tiny_data, n=4):
    ds = dataset(read_manifest(tiny_data / "train.csv", 2, 8000))
    return next(iter(sb.dataio.dataloader.make_dataloader(ds, batch_size=n)))


def _kd(teacher, student, cache=None, pairs=PAIRS):
    chans = IntermediateDistillation.probe_channels(student, teacher, pairs, 4000)
    return Distillation(teacher=teacher, output_weight=1.0, feature_weight=1.0, pairs=pairs, cache=cache,
                        shifting=ObjectiveShifting(0.9, 0.1), intermediate=IntermediateDistillation(pairs, chans))


def test_distillation_step_trains_student_and_adapters_never_the_teacher(models, tiny_data):
    teacher, student = models
    kd = _kd(teacher, student)
    brain = SeparationBrain(student, lr=3e-3, epochs=1, steps_per_epoch=10, num_spks=2, distillation=kd,
                            run_opts={"device": "cpu", "noprogressbar": True})
    brain.on_fit_start()
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    t_before = copy.deepcopy(teacher.state_dict())
    s_before = copy.deepcopy(student.state_dict())
    a_before = copy.deepcopy(kd.intermediate.state_dict())
    batch = _batch(tiny_data)
    losses = []
    for step in range(1, 9):
        brain.step = step
        losses.append(float(brain.fit_batch(batch)))
        assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in t_before.items())
    assert any(not torch.equal(v, student.state_dict()[k]) for k, v in s_before.items())
    assert any(not torch.equal(v, kd.intermediate.state_dict()[k]) for k, v in a_before.items())
    assert all(p.grad is None for p in teacher.parameters())
    assert not any(p is q for p in brain.optimizer.param_groups[0]["params"] for q in teacher.parameters())
    terms = brain.distillation_terms(student(batch.mix_sig.data), batch.mix_sig.data, list(batch.id),
                                     torch.stack([batch.s1_sig.data, batch.s2_sig.data], -1))
    assert {"loss", "output", "features", "separation", "alpha"} <= set(terms)


@pytest.mark.parametrize("teacher_family, student_family",
                         [("sepformer", "sepformer"), ("convtasnet", "convtasnet")])
def test_smaller_students_learn_from_a_teacher_of_their_own_family(tmp_path, tiny_data, teacher_family,
                                                                   student_family):
    cfg = load(tiny_config(tmp_path, teacher=teacher_family, student=student_family)).cfg
    teacher, student = cfg["teacher_model"], cfg["student_model"]
    assert (teacher.family, student.family) == (teacher_family, student_family)
    assert count_parameters(student) < count_parameters(teacher)
    pairs = [(_block(student_family, 1), _block(teacher_family, 1))]
    brain = SeparationBrain(student, lr=3e-3, epochs=1, steps_per_epoch=10, num_spks=2,
                            distillation=_kd(teacher, student, pairs=pairs),
                            run_opts={"device": "cpu", "noprogressbar": True})
    brain.on_fit_start()
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    t_before = copy.deepcopy(teacher.state_dict())
    batch = _batch(tiny_data)
    losses = []
    for step in range(1, 9):
        brain.step = step
        losses.append(float(brain.fit_batch(batch)))
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in t_before.items())


def test_teacher_only_loss_reaches_every_part_of_the_student_and_nothing_of_the_teacher(models, tiny_data):
    teacher, student = models
    brain = SeparationBrain(student, lr=1e-3, epochs=1, steps_per_epoch=1, num_spks=2,
                            distillation=_kd(teacher, student), run_opts={"device": "cpu"})
    brain.epoch, brain.step = 1, 1
    teacher.requires_grad_(True)       # even a teacher left trainable by mistake gets no gradient
    mix = _batch(tiny_data).mix_sig.data
    targets = brain.teacher_targets(mix, [], None)
    assert not targets.aligned.requires_grad and not any(f.requires_grad for f in targets.features)
    terms = brain.distillation_terms(student(mix), mix, [], None, targets)
    assert set(terms) == {"loss", "output", "features"}
    terms["loss"].backward()
    for part in ("encoder", "masknet", "decoder"):
        grads = [p.grad for p in getattr(student, part).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), part
        assert any(g.abs().sum() > 0 for g in grads), part
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in brain.modules.distill.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_cached_teacher_outputs_match_the_online_teacher(models, tiny_data, tmp_path):
    teacher, student = models
    teacher.eval()
    man = read_manifest(tiny_data / "train.csv", 2, 8000)
    cache = TeacherCache.build(tmp_path / "c.pt", teacher, dataset(man), [t for _, t in PAIRS], "cpu", batch_size=4)
    batch = _batch(tiny_data)
    out, feats = cache.lookup(list(batch.id), batch.mix_sig.data.shape[-1], "cpu")
    refs = torch.stack([batch.s1_sig.data, batch.s2_sig.data], -1)
    with torch.no_grad():
        online = align_teacher(teacher(batch.mix_sig.data), refs)[0]
    assert torch.allclose(out, online, atol=2e-3, rtol=1e-2)
    assert feats[0].shape == (4, 16, teacher.num_frames(batch.mix_sig.data))
    online_kd = SeparationBrain(copy.deepcopy(student), lr=1e-3, epochs=1, steps_per_epoch=1, num_spks=2,
                                distillation=_kd(teacher, student), run_opts={"device": "cpu"})
    cached_kd = SeparationBrain(copy.deepcopy(student), lr=1e-3, epochs=1, steps_per_epoch=1, num_spks=2,
                                distillation=_kd(teacher, student, cache), run_opts={"device": "cpu"})
    for b in (online_kd, cached_kd):
        b.epoch, b.step = 1, 1
        b.modules.distill.load_state_dict(online_kd.modules.distill.state_dict())
    mix = batch.mix_sig.data
    a = online_kd.distillation_terms(online_kd.modules.model(mix), mix, list(batch.id), refs)
    c = cached_kd.distillation_terms(cached_kd.modules.model(mix), mix, list(batch.id), refs)
    assert a["output"].item() == pytest.approx(c["output"].item(), abs=0.05)
    assert a["features"].item() == pytest.approx(c["features"].item(), rel=0.02)


@pytest.mark.parametrize("progress", ["1", "0"])
def test_manifest_check_teacher_cache_and_test_pass_show_progress_unless_switched_off(models, tiny_data, tmp_path,
                                                                                    capsys, monkeypatch, progress):
    monkeypatch.setenv("KDHUB_PROGRESS", progress)
    teacher, _ = models
    test = dataset(read_manifest(tiny_data / "test.csv", 2, 8000))
    TeacherCache.build(tmp_path / "c.pt", teacher, test, [], "cpu", batch_size=2)
    evaluate(teacher, test, 2, 8000, sdr=False, desc="[teacher] test")
    err = capsys.readouterr().err
    if progress == "0":
        assert err == ""
    else:  # a pipe, not a terminal: one line per tenth, the last one complete
        for done in ("checking test.csv [########################] 4/4", "caching teacher outputs [######"
                     "##################] 2/2", "[teacher] test [########################] 4/4"):
            assert done in err


class _Interrupt(Exception):
    pass


class _StopAtEpoch(SeparationBrain):
    """Interrupted when epoch ``stop_at`` starts; keeps SpeechBrain's own mean training loss of each epoch."""

    stop_at = None

    def on_stage_start(self, stage, epoch=None):
        if stage == sb.Stage.TRAIN and epoch == self.stop_at:
            raise _Interrupt
        super().on_stage_start(stage, epoch)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.epoch_losses.append(float(stage_loss))
        super().on_stage_end(stage, stage_loss, epoch)


class _Reports:
    """Stands in for the run's RunContext: what the Brain reports, in order."""

    def __init__(self):
        self.train, self.evals = [], []

    def log_metrics(self, step, metrics):
        self.train.append((step, dict(metrics)))

    def evaluation_done(self, role, step, metrics):
        self.evals.append(step)

    def checkpoint_saved(self, step, path, record=True):
        pass


def _fit(student, teacher, tiny_data, save_dir, stop_at=None, ctx=None):
    """Three epochs of four batches, reported every three optimisation steps; returns the Brain."""
    kd = _kd(teacher, student)
    counter = sb.utils.epoch_loop.EpochCounter(limit=3)
    ckpt = sb.utils.checkpoints.Checkpointer(save_dir, recoverables={
        "model": student, "counter": counter, "rng": RNGState(), "distill": kd.intermediate})
    brain = _StopAtEpoch(student, lr=2e-3, epochs=3, steps_per_epoch=4, num_spks=2, distillation=kd,
                         run_opts={"device": "cpu", "noprogressbar": True}, checkpointer=ckpt, ctx=ctx,
                         log_interval=3)
    brain.stop_at, brain.epoch_losses = stop_at, []
    train = dataset(read_manifest(tiny_data / "train.csv", 2, 8000))
    valid = dataset(read_manifest(tiny_data / "valid.csv", 2, 8000))
    brain.fit(counter, train, valid, progressbar=False, train_loader_kwargs={"batch_size": 4, "shuffle": True},
              valid_loader_kwargs={"batch_size": 4})
    return brain


def test_interrupted_training_resumes_exactly_and_counts_steps_on(models, tiny_data, tmp_path):
    teacher, student = models
    reports = {run: _Reports() for run in ("full", "part", "resumed")}
    torch.manual_seed(0)
    full = _fit(copy.deepcopy(student), teacher, tiny_data, tmp_path / "a", ctx=reports["full"])
    torch.manual_seed(0)
    part = copy.deepcopy(student)
    with pytest.raises(_Interrupt):
        _fit(part, teacher, tiny_data, tmp_path / "b", stop_at=2, ctx=reports["part"])
    resumed = _fit(copy.deepcopy(student), teacher, tiny_data, tmp_path / "b", ctx=reports["resumed"])
    for k, v in full.modules.model.state_dict().items():
        assert torch.allclose(v, resumed.modules.model.state_dict()[k], atol=1e-6), k

    # every third optimisation step and at each epoch's last (4 a epoch), counted on across the resume
    assert [s for s, _ in reports["full"].train] == [3, 4, 6, 8, 9, 12] and reports["full"].evals == [4, 8, 12]
    assert [s for s, _ in reports["part"].train] == [3, 4] and reports["part"].evals == [4]
    assert [s for s, _ in reports["resumed"].train] == [6, 8, 9, 12] and reports["resumed"].evals == [8, 12]
    first = reports["full"].train[0][1]
    assert set(first) == {"loss", "output", "features", "separation", "alpha", "lr", "epoch"}
    assert first["lr"] == 2e-3 and first["epoch"] == 1
    assert first["alpha"] == pytest.approx(0.9 - 0.8 * (2 / 4) / 3)    # at the third batch of three epochs
    # the last epoch's reports (1 batch at step 9, 3 at step 12) average to SpeechBrain's own epoch loss
    (_, at_9), (_, at_12) = reports["full"].train[-2:]
    assert (at_9["loss"] + 3 * at_12["loss"]) / 4 == pytest.approx(full.epoch_losses[-1], rel=1e-6)


def test_mixed_batch_distils_unlabelled_examples_from_the_teacher_alone(models, tiny_data):
    teacher, student = models
    man = read_manifest(tiny_data / "train.csv", 2, 8000)
    labelled, rest = man.split(2)
    ds = dataset(labelled.with_unlabelled(rest))
    batch = next(iter(sb.dataio.dataloader.make_dataloader(ds, batch_size=4)))
    mask = batch_labelled(batch)
    assert mask.tolist() == [True, True, False, False]
    refs = torch.stack([batch.s1_sig.data, batch.s2_sig.data], -1)
    mix = batch.mix_sig.data
    with torch.no_grad():
        t_est = teacher(mix)
    aligned, sigma = align_teacher(t_est, refs, mask)
    assert sigma[2:].tolist() == [[0, 1], [0, 1]] and torch.equal(aligned[2:], t_est[2:])
    assert torch.equal(aligned[:2], align_teacher(t_est[:2], refs[:2])[0])
    brain = SeparationBrain(student, lr=1e-3, epochs=1, steps_per_epoch=1, num_spks=2,
                            distillation=_kd(teacher, student), run_opts={"device": "cpu"})
    brain.epoch, brain.step = 1, 1
    alpha = brain.kd.shifting.alpha(brain.progress())
    est = student(mix)
    t = brain.teacher_targets(mix, list(batch.id), refs, mask)
    mixed = brain.distillation_terms(est, mix, list(batch.id), refs, t, mask)
    sep = pit(est[:2], refs[:2])[0]
    out = pit(est, t.aligned)[0]
    weight = torch.tensor([alpha, alpha, 1.0, 1.0])
    expected = (1 - alpha) * sep.sum() / 4 + (weight * out).mean() + weight.mean() * mixed["features"]
    assert mixed["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert mixed["separation"].item() == pytest.approx(sep.mean().item(), rel=1e-5)
    mixed["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)
    assert all(p.grad is None for p in teacher.parameters())
    student.zero_grad()
    only = brain.distillation_terms(student(mix[2:]), mix[2:], [], refs[2:],
                                    brain.teacher_targets(mix[2:], [], refs[2:], mask[2:]), mask[2:])
    teacher_only = brain.distillation_terms(student(mix[2:]), mix[2:], [], None,
                                            brain.teacher_targets(mix[2:], [], None))
    assert only["loss"].item() == pytest.approx(teacher_only["loss"].item(), rel=1e-5)


def test_cached_outputs_of_mixtures_of_different_lengths_are_the_teachers_on_each_alone(tmp_path, tiny_data):
    """Padding a mixture into a batch changes what the teacher outputs for it; the cache of a set whose lengths
    differ holds the teacher's output on each mixture alone, as the online teacher of a one-mixture batch gives."""
    from kdhub_speech.pit_kd import align_teacher
    from kdhub_speech.task import SpeechRun
    from speech_helpers import load, tiny_config
    from test_speech_data import _cropped_set

    lengths = [4000, 1700, 3300, 1700, 4000]  # batched by length: two batches of two, one of one
    varied = _cropped_set(tiny_data, tmp_path / "varied", lengths)
    loaded = load(tiny_config(tmp_path), ["data.source=csv", f"data.train_csv={varied}", f"data.valid_csv={varied}",
                                          f"data.test_csv={varied}", "distill.cache=true"])
    run = SpeechRun(loaded, tmp_path / "w")
    run.check()
    teacher, student = loaded.cfg["teacher_model"], loaded.cfg["student_model"]
    kd = run.distillation(teacher, student, run.student_train)
    ds = dataset(run.student_train)
    teacher.eval()
    for i, n in enumerate(lengths):
        item = ds[i]
        with torch.no_grad():
            alone = align_teacher(teacher(item["mix_sig"][None]),
                                  torch.stack([item["s1_sig"], item["s2_sig"]], -1)[None])[0]
        cached, _ = kd.cache.lookup([item["id"]], n, "cpu")
        # float16 storage; a batch of equal lengths may round a last bit differently from a batch of one (padded
        # into a batch of all five, the outputs were up to 0.02 off, against outputs up to 0.04)
        torch.testing.assert_close(cached, alone.half().float(), rtol=0, atol=1e-5)
        assert float(alone.abs().max()) > 0.01
