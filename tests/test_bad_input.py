"""The bad-input matrix: ``kdhub train`` of every domain's demo config, as a subprocess, against ten kinds of bad
input. Each must stop with exit status 2 and at most five lines on stderr naming the offending file or key,
never suggest ``weights_only=False``, train nothing and leave the work dir absent.

Every case is built from real files: teacher checkpoints are the domain's teacher (or, for "another
architecture", its student) saved in the domain's own format; data sets are small copies the domain's
own generators write, then damaged.
"""
from __future__ import annotations

import importlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch

from core_helpers import run_kdhub

CASES = ("missing_teacher", "corrupt_teacher", "truncated_teacher", "other_teacher", "missing_data",
         "corrupt_media", "missing_field", "unknown_key", "wrong_type", "unwritable_work_dir")
TEACHER_CASES = CASES[:4]
DATA_CASES = ("missing_data", "corrupt_media", "missing_field")
DOMAINS = ("graph", "speech", "segmentation", "detection")


class Kit:
    """One domain's demo config and how to make each bad input for it (overrides, and what the error names).

    ``setting`` (from :data:`SETTINGS`): the plugin package, the teacher checkpoint's key, the demo config
    (``"module:ATTRIBUTE[/file name]"``), the config loader, and the unknown-key and wrong-type overrides with
    the key the error must name."""

    def __init__(self, tmp: Path, setting: dict):
        self.tmp = tmp
        self.package, self.teacher_key = setting["package"], setting["teacher_key"]
        self.unknown_key, self.wrong_type = setting["unknown_key"], setting["wrong_type"]
        self.setting = setting

    def config(self) -> Path:
        module, _, attr = self.setting["demo"].partition(":")
        attr, _, name = attr.partition("/")
        path = getattr(importlib.import_module(module), attr)
        return path / name if name else path

    def load(self):
        """The demo config as the plugin's own loader reads it."""
        module, _, attr = self.setting["load"].partition(":")
        return getattr(importlib.import_module(module), attr)(self.config(), [])

    def save_teacher(self, path: Path, other: bool) -> None:
        """The domain's teacher checkpoint (``other``: the student's weights in its place)."""
        raise NotImplementedError

    def data(self, case: str) -> Tuple[List[str], str]:
        """Overrides that make ``case`` (a data case) and the file the error must name."""
        raise NotImplementedError

    def teacher(self, name: str = "teacher.pth", other: bool = False) -> Path:
        path = self.tmp / name
        if not path.exists():
            self.save_teacher(path, other)
        return path


class GraphKit(Kit):
    def save_teacher(self, path, other):
        from kdhub_graph.models import build_teacher
        cfg = self.load()
        arch = {k: cfg["teacher"][k] for k in ("model", "hidden", "layers", "dropout", "aggr", "heads", "attn_dropout")}
        arch["model"] = "gcn" if other else arch["model"]  # a GCN teacher where the config says GraphSAGE
        c = cfg["data"]["csbm"]
        gnn = build_teacher(arch, c["features"], c["classes"])
        torch.save({"model": gnn.state_dict(), "arch": arch, "in_channels": c["features"],
                    "num_classes": c["classes"]}, path)

    def data(self, case):
        path = self.tmp / "graph.npz"
        if case == "corrupt_media":  # a graph has no images or audio: its data file is the npz
            path.write_bytes(os.urandom(4096))
        elif case == "missing_field":
            np.savez(path, adj_data=np.ones(2), adj_indices=np.array([1, 0]), adj_indptr=np.array([0, 1, 2]),
                     adj_shape=np.array([2, 2]), attr_data=np.ones(2), attr_indices=np.array([0, 0]),
                     attr_indptr=np.array([0, 1, 2]), attr_shape=np.array([2, 1]))  # no 'labels'
        return ["data.source=npz", f"data.path={path}"], str(path)


class SpeechKit(Kit):
    def save_teacher(self, path, other):
        cfg = self.load()
        torch.save(cfg["student_model" if other else "teacher_model"].state_dict(), path)

    def data(self, case):
        import soundfile as sf
        folder = self.tmp / "librimix"
        folder.mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        rows = []
        for i in range(2):
            names = {}
            for col in ("mix_wav", "s1_wav", "s2_wav"):
                names[col] = folder / f"{i}_{col}.wav"
                sf.write(names[col], rng.uniform(-0.1, 0.1, 4000).astype("float32"), 8000)
            rows.append(names)
        bad = folder / "train.csv"
        columns = ["ID", "duration", "mix_wav", "s1_wav"] + ([] if case == "missing_field" else ["s2_wav"])
        for split in ("train", "valid", "test"):
            with open(folder / f"{split}.csv", "w") as f:
                f.write(",".join(columns) + "\n")
                for i, names in enumerate(rows):
                    f.write(",".join([str(i), "0.5"] + [str(names[c]) for c in columns[2:]]) + "\n")
        named = str(bad)
        if case == "corrupt_media":
            rows[1]["s1_wav"].write_bytes(os.urandom(3000))
            named = str(rows[1]["s1_wav"])
        elif case == "missing_data":
            bad.unlink()
        return ["data.source=csv"] + [f"data.{s}_csv={folder / s}.csv" for s in ("train", "valid", "test")], named


class SegmentationKit(Kit):
    def save_teacher(self, path, other):
        from mmengine.registry import init_default_scope
        from mmseg.registry import MODELS
        from kdhub_segmentation.model import model_config
        cfg = self.load()
        init_default_scope("mmseg")
        model = MODELS.build(model_config(cfg.model.student if other else cfg.model.teacher, "model"))
        torch.save({"meta": {}, "state_dict": model.state_dict()}, path)

    def data(self, case):
        from kdhub_segmentation.synth import SynthSegSpec, ensure_embedded
        root = self.tmp / "seg-data"
        if case == "missing_data":
            return [f"{self.teacher_key}={self.teacher()}", f"train_dataloader.dataset.data_root={root}"], str(root)
        shutil.copytree(ensure_embedded(SynthSegSpec(train=4, val=2, test=2, seed=0), self.tmp / "gen"), root)
        image = sorted((root / "img_dir" / "train").glob("*.png"))[1]
        if case == "corrupt_media":
            image.write_bytes(os.urandom(2000))
        else:  # an image without its label map
            (root / "ann_dir" / "train" / image.name).unlink()
        return [f"{self.teacher_key}={self.teacher()}", f"train_dataloader.dataset.data_root={root}"], str(image.name)


class DetectionKit(Kit):
    def save_teacher(self, path, other):
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
        from kdhub_detection.config import load
        register_all_modules(init_default_scope=True)
        cfg = self.load()
        spec = cfg.model.student if other else load(Path(cfg.model.teacher.config), []).model
        torch.save({"meta": {}, "state_dict": MODELS.build(spec).state_dict()}, path)

    def data(self, case):
        from kdhub_detection.synth import SynthSpec, ensure_embedded, split_paths
        small = SynthSpec(image_size=128, train=4, val=2, test=2, seed=0)
        generated = ensure_embedded(small, self.tmp / "gen")
        root = self.tmp / "det-data"
        folder = root / "detection" / generated.name
        shutil.copytree(generated, folder)
        paths = split_paths(folder, "train")
        named = paths["ann_file"]
        if case == "missing_data":
            Path(paths["ann_file"]).unlink()
        elif case == "corrupt_media":
            image = sorted(Path(paths["img"]).glob("*.png"))[1]
            image.write_bytes(os.urandom(2000))
            named = str(image)
        else:  # an annotation without its box
            coco = json.loads(Path(paths["ann_file"]).read_text())
            del coco["annotations"][0]["bbox"]
            Path(paths["ann_file"]).write_text(json.dumps(coco))
        spec = [f"train_dataloader.dataset.spec.{k}={getattr(small, k)}" for k in ("train", "val", "test")]
        return [f"{self.teacher_key}={self.teacher()}", f"train_dataloader.dataset.root={root / 'detection'}"] + spec, \
            named


KITS = {"graph": GraphKit, "speech": SpeechKit, "segmentation": SegmentationKit, "detection": DetectionKit}
MM_KEYS = dict(teacher_key="model.teacher.checkpoint", unknown_key=("model.teacher.chekpoint=t.pth", "chekpoint"),
               wrong_type=("train_dataloader.batch_size=two", "train_dataloader.batch_size"))
SETTINGS = {
    "graph": dict(package="kdhub_graph", teacher_key="teacher.checkpoint", demo="kdhub_graph.config:CONFIG_DIR/demo.yaml",
                  load="kdhub_graph.config:load", unknown_key=("student.hiden=64", "student.hiden"),
                  wrong_type=("student.hidden=wide", "student.hidden")),
    "speech": dict(package="kdhub_speech", teacher_key="teacher_checkpoint", demo="kdhub_speech.task:CONFIG_DIR/demo.yaml",
                   load="kdhub_speech.config:load", unknown_key=("training.epoch=3", "training.epoch"),
                   wrong_type=("training.batch_size=two", "training.batch_size")),
    "segmentation": dict(MM_KEYS, package="kdhub_segmentation", demo="kdhub_segmentation.task:DEMO_CONFIG",
                         load="kdhub_segmentation.config:load"),
    "detection": dict(MM_KEYS, package="kdhub_detection", demo="kdhub_detection.task:DEMO_CONFIG",
                      load="kdhub_detection.config:load"),
}


def _immutable(folder: Path, on: bool) -> bool:
    """Make ``folder`` refuse new entries even for root (``chattr +i``); False where that is not possible."""
    if os.geteuid() != 0:
        folder.chmod(0o555 if on else 0o755)
        return True
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", "+i" if on else "-i", str(folder)], capture_output=True).returncode == 0


def _case(kit: Kit, case: str) -> Tuple[List[str], str]:
    if case == "missing_teacher":
        missing = kit.tmp / "no_such_teacher.pth"
        return [f"{kit.teacher_key}={missing}"], str(missing)
    if case == "corrupt_teacher":
        path = kit.tmp / "corrupt.pth"
        # garbage that opens like a pickle of protocol 197: torch's unpickler warns about it (with its own
        # weights_only advice, which kdhub must not pass on) before failing
        path.write_bytes(b"\x80\xc5" + random.Random(0).randbytes(4094))
        return [f"{kit.teacher_key}={path}"], str(path)
    if case == "truncated_teacher":
        real = kit.teacher().read_bytes()
        path = kit.tmp / "truncated.pth"
        path.write_bytes(real[: len(real) // 2])
        return [f"{kit.teacher_key}={path}"], str(path)
    if case == "other_teacher":
        path = kit.teacher("other.pth", other=True)
        return [f"{kit.teacher_key}={path}"], str(path)
    if case in DATA_CASES:
        return kit.data(case)
    if case in ("unknown_key", "wrong_type"):
        override, named = getattr(kit, case)
        return [override], named
    raise AssertionError(case)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_bad_input_fails_early_and_clearly(domain, case, tmp_path):
    kit = KITS[domain](tmp_path, SETTINGS[domain])
    pytest.importorskip(kit.package)
    work = tmp_path / "work"
    locked = None
    if case == "unwritable_work_dir":
        locked = tmp_path / "locked"
        locked.mkdir()
        if not _immutable(locked, True):
            pytest.skip("cannot make a folder unwritable here (running as root without chattr)")
        work, overrides, named = locked / "run", [], str(locked)
    else:
        overrides, named = _case(kit, case)
    env = {"KDHUB_DATA_DIR": str(tmp_path / "data")}
    try:
        proc = run_kdhub(["train", kit.config(), "--work-dir", work, *(["--cfg-options", *overrides] if overrides
                                                                       else [])], env=env, check=False)
    finally:
        if locked is not None:
            _immutable(locked, False)
    lines = proc.stderr.strip().splitlines()
    report = f"exit {proc.returncode}\nstderr:\n{proc.stderr}\nstdout (end):\n{proc.stdout[-2000:]}"
    assert proc.returncode == 2, report
    assert lines and len(lines) <= 5 and lines[-1].startswith("kdhub: error:"), report
    assert named in proc.stderr, f"the error does not name {named!r}\n{report}"
    assert "weights_only" not in proc.stderr, report
    assert not work.exists(), f"{work} was created\n{report}"       # nothing written, so nothing trained
    if locked is not None:
        assert list(locked.iterdir()) == []


@pytest.mark.parametrize("domain", ("segmentation", "detection"))
def test_a_user_config_inherits_the_task_through_base(domain, tmp_path):
    """A config that inherits a shipped one through ``_base_`` and does not repeat ``task`` is the shipped one's
    task: it gets as far as that domain's own checks (here: the teacher file it names does not exist)."""
    kit = KITS[domain](tmp_path, SETTINGS[domain])
    pytest.importorskip(kit.package)
    missing = tmp_path / "teacher_i_forgot.pth"
    mine = tmp_path / "my_config.py"
    mine.write_text(f"_base_ = [{str(kit.config())!r}]\nmodel = dict(teacher=dict(checkpoint={str(missing)!r}))\n")
    assert "task" not in mine.read_text()
    proc = run_kdhub(["train", mine, "--work-dir", tmp_path / "work"], env={"KDHUB_DATA_DIR": str(tmp_path / "data")},
                     check=False)
    assert proc.returncode == 2 and str(missing) in proc.stderr, proc.stderr
    assert "no 'task' key" not in proc.stderr and not (tmp_path / "work").exists()


MM_RUNTIME_CASES = {
    "optimizer_type": (["optim_wrapper.optimizer.type=Adamm"], "optim_wrapper.optimizer.type: unknown optimizer "
                                                              "'Adamm' (did you mean 'Adam'"),
    "scheduler_type": (["param_scheduler.0.type=MultiStepLRR"], "param_scheduler[0].type: unknown parameter scheduler "
                                                                "'MultiStepLRR' (did you mean 'MultiStepLR'"),
    "load_from": (["load_from=no_such_start.pth"], "key 'load_from': file not found: no_such_start.pth"),
    "optimizer_argument": (["optim_wrapper.optimizer.betas=[0.9]"], "optim_wrapper cannot be built"),
}


@pytest.mark.parametrize("case", sorted(MM_RUNTIME_CASES))
@pytest.mark.parametrize("domain", ("segmentation", "detection"))
def test_what_mmengine_builds_only_when_training_starts_is_checked_first(domain, case, tmp_path):
    """A wrong optimizer, scheduler type, optimizer argument or load_from file in an mm distillation config
    stops the launch before anything is written, naming the key, instead of a framework traceback after the
    teacher's sub-run has trained."""
    kit = KITS[domain](tmp_path, SETTINGS[domain])
    pytest.importorskip(kit.package)
    overrides, named = MM_RUNTIME_CASES[case]
    work = tmp_path / "work"
    proc = run_kdhub(["train", kit.config(), "--work-dir", work, "--cfg-options", *overrides],
                     env={"KDHUB_DATA_DIR": str(tmp_path / "data")}, check=False)
    report = f"exit {proc.returncode}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, report
    assert proc.stderr.strip().splitlines()[-1].startswith(f"kdhub: error: {kit.config()}: "), report
    assert named in proc.stderr, report
    assert not work.exists(), report


@pytest.mark.parametrize("domain", ("segmentation", "detection"))
def test_an_mm_configs_own_work_dir_is_used_without_work_dir(domain, tmp_path):
    """As mmengine's tools/train.py: without --work-dir, the config's work_dir (here given by --cfg-options, at a
    path under a file, so the launch stops at the work-dir check and names it)."""
    kit = KITS[domain](tmp_path, SETTINGS[domain])
    pytest.importorskip(kit.package)
    (tmp_path / "a_file").write_text("")
    proc = run_kdhub(["train", kit.config(), "--cfg-options", f"work_dir={tmp_path / 'a_file' / 'run'}"],
                     cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert f"--work-dir {tmp_path / 'a_file' / 'run'}: {tmp_path / 'a_file'} is a file" in proc.stderr, proc.stderr
    assert not (tmp_path / "work_dirs").exists()
