"""kdhub's OpenMMLab layer: the atomic file backend, one hook and wrapper for every mm scope, the runner config,
``--cfg-options`` and the teacher keys."""
import os
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import get_file_backend

from kdhub.config import ConfigError
from kdhub_openmmlab.fileio import AtomicLocalBackend
from kdhub_openmmlab.hooks import KDHubLifecycleHook
from kdhub_openmmlab.options import merge_cfg_options, parse_cfg_options
from kdhub_openmmlab.runner import check_amp, eval_config, runner_config
from kdhub_openmmlab.teacher import model_config, package_config, resolve_specs


@pytest.fixture
def backend():
    found = get_file_backend(backend_args=dict(backend="kdhub_atomic"))
    assert isinstance(found, AtomicLocalBackend)
    return found


def test_put_and_put_text_replace_the_whole_file(backend, tmp_path):
    target = tmp_path / "sub" / "epoch_1.pth"
    backend.put(b"\x00new bytes", target)
    backend.put_text("iter_3.pth\n", tmp_path / "last_checkpoint")
    assert target.read_bytes() == b"\x00new bytes"
    assert (tmp_path / "last_checkpoint").read_text() == "iter_3.pth\n"


@pytest.mark.parametrize("fail", ["fsync", "replace", "serialise"])
def test_a_failed_write_leaves_the_old_file_intact(backend, tmp_path, monkeypatch, fail):
    ckpt, marker = tmp_path / "epoch_1.pth", tmp_path / "last_checkpoint"
    ckpt.write_bytes(b"old checkpoint")
    marker.write_text("old record")
    data, text = b"new checkpoint" * 1000, "new record"
    if fail == "serialise":     # the object raises while it is being written out
        data, text = object(), "unencodable \udcff"
    else:                       # the new bytes reached the temporary file; syncing or renaming it fails
        def broken(*args, **kwargs):
            raise OSError(f"{fail} failed")
        monkeypatch.setattr(os, fail, broken)
    with pytest.raises((OSError, TypeError, UnicodeEncodeError)):
        backend.put(data, ckpt)
    with pytest.raises((OSError, UnicodeEncodeError)):
        backend.put_text(text, marker)
    monkeypatch.undo()
    assert ckpt.read_bytes() == b"old checkpoint" and marker.read_text() == "old record"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth", "last_checkpoint"]  # no temporaries


def test_both_mm_scopes_build_the_one_hook_and_wrapper():
    pytest.importorskip("mmdet")
    pytest.importorskip("mmseg")
    import kdhub_detection.register  # noqa: F401
    import kdhub_segmentation.mm  # noqa: F401
    from mmdet.registry import HOOKS as DET_HOOKS, MODEL_WRAPPERS as DET_WRAPPERS
    from mmengine.registry import HOOKS, DefaultScope
    from mmseg.registry import HOOKS as SEG_HOOKS, MODEL_WRAPPERS as SEG_WRAPPERS

    from kdhub_openmmlab.ddp import KDHubDDP

    cfg = dict(type="KDHubLifecycleHook", task="t", method="m")
    built = [DET_HOOKS.build(cfg), SEG_HOOKS.build(cfg)]
    for scope in ("mmdet", "mmseg"):   # as the Runner builds custom hooks: the root registry, in a scope
        with DefaultScope.overwrite_default_scope(scope):
            built.append(HOOKS.build(cfg))
    assert {type(h) for h in built} == {KDHubLifecycleHook}
    assert DET_WRAPPERS.get("KDHubDDP") is SEG_WRAPPERS.get("KDHubDDP") is KDHubDDP


def _config(**extra):
    return Config(dict(model=dict(type="M"), load_from="pretrained.pth", **extra))


def test_runner_config_completes_the_config_for_a_run(tmp_path):
    cfg = runner_config(_config(), tmp_path, task="detection", method="gid", config_path=tmp_path / "c.py",
                        resume=True, launcher="pytorch", default_scope="mmdet",
                        extra_hooks=[dict(type="TeacherEvalHook")], find_unused_parameters=True)
    assert cfg.work_dir == str(tmp_path) and cfg.launcher == "pytorch" and cfg.default_scope == "mmdet"
    assert cfg.resume is False and cfg.load_from == "pretrained.pth"   # nothing to resume from yet
    assert cfg.default_hooks.checkpoint.backend_args == dict(backend="kdhub_atomic")
    assert [h["type"] for h in cfg.custom_hooks] == ["KDHubLifecycleHook", "TeacherEvalHook"]
    assert cfg.custom_hooks[0]["config_path"] == str(tmp_path / "c.py")
    assert cfg.model_wrapper_cfg == dict(type="KDHubDDP", broadcast_buffers=False, find_unused_parameters=True)
    if not torch.cuda.is_available():
        assert cfg.env_cfg.dist_cfg.backend == "gloo"
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_1.pth"))
    resumed = runner_config(_config(), tmp_path, task="detection", method="gid", resume=True)
    assert resumed.resume is True and resumed.load_from is None and "model_wrapper_cfg" not in resumed
    test = eval_config(_config(default_hooks=dict(checkpoint=dict(type="CheckpointHook")),
                               visualizer=dict(type="DetLocalVisualizer", name="visualizer")), tmp_path,
                       load_from="w.pth", experiment_name="eval_3")
    assert test.load_from == "w.pth" and test.resume is False and "checkpoint" not in test.default_hooks
    assert test.experiment_name == test.visualizer.name == "eval_3"   # its own visualizer, not the last run's


def test_amp_switches_to_mmengines_amp_wrapper_and_needs_cuda(tmp_path, monkeypatch):
    cfg = runner_config(_config(optim_wrapper=dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.1))),
                        tmp_path, task="detection", method="gid", amp=True)
    # what mmdet's and mmseg's own tools/train.py --amp do
    assert cfg.optim_wrapper.type == "AmpOptimWrapper" and cfg.optim_wrapper.loss_scale == "dynamic"
    assert cfg.optim_wrapper.optimizer == dict(type="SGD", lr=0.1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="--amp: .*needs a CUDA device"):
        check_amp(True)
    check_amp(False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check_amp(True)
    on_gpu = runner_config(_config(), tmp_path, task="detection", method="gid", launcher="slurm")
    assert on_gpu.env_cfg.dist_cfg.backend == "cpu:gloo,cuda:nccl"


def test_cfg_options_are_parsed_by_mmengine_and_typos_named():
    options = parse_cfg_options(["a.b=[1,2]", "c=None", "d=1e-3", "e=True", "f=x/y.pth"])
    assert options == {"a.b": [1, 2], "c": None, "d": 1e-3, "e": True, "f": "x/y.pth"}
    cfg = _config(train_cfg=dict(max_iters=4))
    merge_cfg_options(cfg, ["train_cfg.max_iters=8", "baseline=True"], "c.py", extra_keys=("baseline",))
    assert cfg.train_cfg.max_iters == 8 and cfg.baseline is True
    with pytest.raises(ConfigError, match="c.py: --cfg-options trian_cfg.max_iters: unknown key 'trian_cfg' "
                                          "\\(did you mean 'train_cfg'\\?\\)"):
        merge_cfg_options(cfg, ["trian_cfg.max_iters=1"], "c.py")
    with pytest.raises(ConfigError, match="'oops' is not of the form key=value"):
        parse_cfg_options(["oops"], "c.py")
    cfg = _config(param_scheduler=[dict(type="LinearLR"), dict(type="MultiStepLR")])
    with pytest.raises(ConfigError, match=r"c.py: --cfg-options param_scheduler.5.type: 'param_scheduler' has 2 "
                                          r"entries \(0 to 1\), so it has no entry 5"):
        merge_cfg_options(cfg, ["param_scheduler.5.type=StepLR"], "c.py")


def test_teacher_keys_resolve_against_the_config_folder(tmp_path, monkeypatch):
    (tmp_path / "teacher.py").write_text("model = dict(type='T', width=8, head=dict(n=3, k=1))\n")
    (tmp_path / "t.pth").write_bytes(b"w")
    monkeypatch.chdir(tmp_path.parent)
    source = str(tmp_path / "distill.py")
    model = Config(dict(model=dict(teacher=dict(config="teacher.py", checkpoint="t.pth", head=dict(n=5)),
                                   student=dict(type="S")))).model
    resolve_specs(model, ("student", "teacher"), source)
    assert model.teacher.config == str(tmp_path / "teacher.py") and model.teacher.checkpoint == str(tmp_path / "t.pth")
    assert model_config(model.teacher, "model.teacher") == dict(type="T", width=8, head=dict(n=5, k=1))
    missing = Config(dict(model=dict(teacher=dict(config="nope.py")))).model
    with pytest.raises(ConfigError, match="key 'model.teacher.config': config file not found: nope.py"):
        resolve_specs(missing, ("teacher",), source)
    kept = Config(dict(model=dict(teacher=dict(config="teacher.py", checkpoint="later.pth")))).model
    resolve_specs(kept, ("teacher",), source)
    assert kept.teacher.checkpoint == "later.pth"          # not there yet: left as given for the domain to judge
    assert package_config("other::x.py") is None
    mmdet = pytest.importorskip("mmdet")
    assert package_config("mmdet::retinanet/r.py") == Path(mmdet.__file__).parent / ".mim" / "configs" / "retinanet/r.py"


def test_model_index_answers_as_mmengine_parses_it():
    """The per-process index answers every lookup as mmengine's own function does (a pristine copy of its
    module, loaded aside): the same entry, or the same ValueError that makes mmengine fall back to the file
    under .mim/configs; and configs naming library bases still load."""
    import importlib.util
    import os.path as osp

    import mmdet
    import mmseg
    from mmengine.config import Config, utils

    from kdhub_openmmlab.metafiles import cfg_metainfo, install
    spec = importlib.util.spec_from_file_location("pristine_mmengine_config_utils", utils.__file__)
    pristine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pristine)
    install()
    assert utils._get_cfg_metainfo is cfg_metainfo
    lookups = [(mmdet, "retinanet/retinanet_r101_fpn_1x_coco"), (mmdet, "retinanet/retinanet_r101_fpn_1x_coco.py"),
               (mmdet, "dino/dino-4scale_r50_8xb2-12e_coco.py"), (mmseg, "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py"),
               (mmseg, "_base_/models/segformer_mit-b0")]
    for package, name in lookups:
        path = osp.dirname(package.__file__)
        try:
            expected = pristine._get_cfg_metainfo(path, name)
        except ValueError as exc:
            with pytest.raises(ValueError) as got:
                cfg_metainfo(path, name)
            assert str(got.value) == str(exc)
        else:
            assert cfg_metainfo(path, name) == expected
    cfg = Config.fromfile(str(osp.join(osp.dirname(mmdet.__file__), ".mim", "configs", "retinanet",
                                       "retinanet_r101_fpn_1x_coco.py")))
    assert cfg.model.backbone.depth == 101


def test_an_inline_teacher_is_read_the_same_way_in_every_mm_domain():
    """``teacher=dict(model=dict(type=...), checkpoint=...)`` and ``teacher=dict(type=..., checkpoint=...)`` give
    the same model config; anything else is an error naming the key and the two forms."""
    model = {"type": "EncoderDecoder", "backbone": {"type": "MixVisionTransformer"}}
    nested = model_config({"model": model, "checkpoint": "t.pth"}, "model.teacher")
    flat = model_config({**model, "checkpoint": "t.pth"}, "model.teacher")
    assert nested.to_dict() == flat.to_dict() == model
    with pytest.raises(ConfigError, match=r"model.teacher: next to model=dict\(...\) only checkpoint is read; got "
                                          r"backbone"):
        model_config({"model": model, "backbone": {}}, "model.teacher")
    with pytest.raises(ConfigError, match=r"model.teacher: give config='<model config .py>'.*model=dict\(type=...\)"):
        model_config({"checkpoint": "t.pth"}, "model.teacher")


def test_a_checkpoint_of_other_classes_is_refused_though_its_shapes_fit(tmp_path):
    """mmengine's checkpoints record their data set's classes (meta.dataset_meta): a teacher of other classes, or of
    the same in another order, has the same shapes but predicts other things."""
    from kdhub_openmmlab.checks import fit_weights

    model = torch.nn.Linear(4, 3)
    path = tmp_path / "t.pth"
    torch.save({"meta": {"dataset_meta": {"classes": ("cat", "dog", "bird")}}, "state_dict": model.state_dict()}, path)
    fit_weights(model, path, "model.teacher.checkpoint", classes=["cat", "dog", "bird"])
    fit_weights(model, path, "model.teacher.checkpoint")                       # nothing to compare with
    with pytest.raises(ConfigError, match=r"model.teacher.checkpoint: .*t.pth was trained on the classes \(cat, dog, "
                                          r"bird; 3 classes\), but this config's data set has \(bird, cat, dog; 3"):
        fit_weights(model, path, "model.teacher.checkpoint", classes=["bird", "cat", "dog"])
