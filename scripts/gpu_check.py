"""The GPU path of every installed domain, in one short run: writes ``results/gpu_check.json``.

For each domain (graph, speech, segmentation, detection) it runs ``kdhub train`` of a shipped config, shortened
only through ``--cfg-options`` (fewer epochs or iterations, a smaller embedded set):

* ``single``: one process on CUDA;
* ``torchrun``: the same under ``torchrun --nproc_per_node 1 ... --launcher pytorch`` (the process group's
  NCCL side carries DDP's gradients, its gloo side the CPU control values);
* ``amp``: one process with ``--amp``.

Then the step-ratio measurements of ``benchmarks/`` on the GPU: a distillation step against the student's
step plus the teacher's forward, each the median of repeated synchronised calls, in this one process.

With ``--profiles``, each domain's cost breakdown as its benchmark's ``--profile-only`` measures it on the CPU
(the step's parts and their shares, overhead above the floor, step ratio, peak memory against the floor's; on
CUDA the peaks are ``torch.cuda.max_memory_allocated``), with ``--device cuda``, at the embedded set's tiny sizes
(``profile_tiny``) and the shipped recipes' (``profile_recipe``; graph has only the one), each as its own
process; the JSON each writes is kept whole in the record. ``--modes`` with no mode and ``--no-ratios`` leave
only the profiles:

    python scripts/gpu_check.py --modes --no-ratios --profiles --out results/gpu_profile.json

Every piece is recorded on its own (exit code, wall time, the summary's metrics and CUDA device, the tail of
the log on failure) and the JSON is rewritten after each, so a run cut short still leaves what it measured.
The mm domains start from a randomly initialised teacher checkpoint of the right architecture (this checks
the path, not the accuracy); speech and graph train their teachers in the run.

    bash scripts/gpu_check.sh            # or: python scripts/gpu_check.py --domains graph speech

The JSON names the checkout's commit; for a copy of the tree made elsewhere, set ``KDHUB_COMMIT`` to the commit
the copy was made from.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from provenance import run_info  # noqa: E402  (benchmarks/provenance.py)

from kdhub.checkpoint import atomic_save, atomic_write_text  # noqa: E402

PLUGINS = ROOT / "plugins"
#: the speech runs' embedded set: small, so it can be generated elsewhere and carried (the voices it is
#: synthesised with are Debian programs a bare GPU machine may lack)
SPEECH_DATA = ["data.embedded.train=120", "data.embedded.valid=30", "data.embedded.test=30"]

def random_mm_teacher(scope: str, config: Path, out: Path) -> Path:
    """A randomly initialised checkpoint of the teacher model ``config`` describes (mmengine's layout)."""
    from mmengine.config import Config

    from kdhub_openmmlab.checks import build_model
    importlib.import_module("kdhub_detection.register" if scope == "mmdet" else "kdhub_segmentation.mm")
    torch.manual_seed(0)
    model = build_model(Config.fromfile(str(config)).model, scope)
    model.init_weights()
    atomic_save({"state_dict": model.state_dict(), "meta": {}}, out)
    return out

def domain_runs(work: Path, device: str) -> Dict[str, Dict[str, Any]]:
    """Per domain: the config and the options that shorten it."""
    det, seg = PLUGINS / "detection" / "configs", PLUGINS / "segmentation" / "configs"
    return {
        "graph": {"config": PLUGINS / "graph" / "configs" / "demo.yaml",
                  "options": [f"device={device}", "seeds=[0]", "teacher.epochs=40", "student.epochs=40"]},
        "speech": {"config": PLUGINS / "speech" / "configs" / "demo.yaml",
                   "options": [f"device={device}", "teacher_training.epochs=2", "training.epochs=2",
                               "training.limit=40", *SPEECH_DATA]},
        "segmentation": {"config": seg / "transkd_mit-t_to_mit-n_synth.py",
                         "teacher": lambda: random_mm_teacher("mmseg", seg / "segformer_mit-t_synth.py",
                                                              work / "seg_teacher.pth"),
                         "options": ["baseline=False", "train_cfg.max_iters=60", "train_cfg.val_interval=60"]},
        "detection": {"config": det / "gid_retinanet_r18w32_r18w16_synth.py",
                      "teacher": lambda: random_mm_teacher("mmdet", det / "retinanet_r18w32_synth.py",
                                                           work / "det_teacher.pth"),
                      "options": ["baseline=False", "train_cfg.max_epochs=1", "train_cfg.val_interval=1"]},
    }

def run_process(cmd: List[str], timeout: int) -> Tuple[int, str, float]:
    """``cmd`` as its own process group (so a timeout ends torchrun's workers or a benchmark's children too, not
    only the first process), from the checkout's root: its exit code (124 on timeout), its output and its wall
    time."""
    env = dict(os.environ, KDHUB_PROGRESS="0", PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, rc = f"timed out after {timeout} s\n" + proc.communicate()[0], 124
    return rc, log, round(time.perf_counter() - t0, 1)

def kdhub_train(mode: str, config: Path, options: List[str], work: Path, timeout: int,
                cuda: bool = True) -> Dict[str, Any]:
    """One ``kdhub train`` in ``mode`` (single, torchrun, amp) as its own process; its result and summary."""
    launch = [sys.executable, "-m", "kdhub"]
    extra = []
    if mode == "torchrun":
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m", "kdhub"]
        extra = ["--launcher", "pytorch"]
    elif mode == "amp":
        extra = ["--amp"]
    cmd = launch + ["train", str(config), "--work-dir", str(work), *extra, "--cfg-options", *options]
    rc, log, wall = run_process(cmd, timeout)
    out: Dict[str, Any] = {"ok": rc == 0, "rc": rc, "wall_s": wall,
                           "command": " ".join(["kdhub" if c == "-m" else c for c in cmd[len(launch) - 1:]])}
    summary = work / "summary.json"
    if rc == 0 and summary.is_file():
        s = json.loads(summary.read_text())
        out.update({k: s[k] for k in ("teacher", "baseline", "student", "model", "cuda") if k in s})
        out["ok"] = "cuda" in s or not cuda  # the run's main process did its work on the GPU
    else:
        out["log_tail"] = log[-3000:]
    return out

def step_ratios(domain: str, work: Path, device: str) -> Dict[str, Any]:
    """The domain's step-ratio measurement of ``benchmarks/`` on ``device``."""
    if domain == "graph":
        from graph_reproduce import distill_throughput
        return distill_throughput(100_000, 4096, repeats=3, device=device)
    if domain == "speech":
        from kdhub_speech.plugin import kdhub_load_config
        from speech_distill import step_times
        config = PLUGINS / "speech" / "configs" / "demo.yaml"
        cfg = kdhub_load_config(config, SPEECH_DATA).cfg
        torch.manual_seed(0)
        teacher = atomic_save(cfg["teacher_model"].state_dict(), work / "speech_teacher.pth")
        return step_times(teacher, work, repeats=5, device=device, config=config, overrides=SPEECH_DATA)
    if domain == "segmentation":
        from segmentation_distill import step_times
        return step_times(argparse.Namespace(timing_rounds=3, device=device))
    if domain == "detection":
        from detection_distill import step_times
        det = PLUGINS / "detection" / "configs"
        out = {}
        pairs = (("gid_retinanet", "gid_retinanet_r18w32_r18w16_synth.py", "retinanet_r18w32_synth.py"),
                 ("detrdistill_deformable_detr", "detrdistill_deformable_detr_r18w32_r18w16_synth.py",
                  "deformable_detr_r18w32_synth.py"))
        for name, cfg, teacher in pairs:
            ckpt = random_mm_teacher("mmdet", det / teacher, work / f"{name}_teacher.pth")
            out[name] = step_times(det / cfg, [f"model.teacher.checkpoint={ckpt}"], repeats=5, device=device)
        return out
    raise ValueError(domain)

#: the scales of ``--profiles``: the embedded set's tiny models and the shipped recipes' (graph: one size)
PROFILE_SCALES = ("tiny", "recipe")

def profile_command(domain: str, scale: str, out: Path, device: str, repeats: int) -> Optional[List[str]]:
    """The ``--profile-only`` command of ``domain``'s benchmark at ``scale``, writing ``out`` (None: the domain's
    benchmark has no such scale). The speech set is :data:`SPEECH_DATA`'s; on the CPU (a dry run of this script)
    the graph is 2,000 nodes instead of 100,000."""
    common = ["--profile-only", str(out), "--device", device]
    if domain == "graph":
        if scale != "tiny":
            return None
        nodes = ["--nodes", "2000", "--batch", "512"] if device == "cpu" else []
        return ["graph_reproduce.py", *common, "--profile-repeats", str(repeats), *nodes]
    if domain == "speech":
        return ["speech_distill.py", *common, "--timing-repeats", str(repeats),
                "--scale", "embedded" if scale == "tiny" else "recipe", "--cfg-options", *SPEECH_DATA]
    if domain == "segmentation":
        return ["segmentation_distill.py", *common, "--timing-rounds", str(repeats),
                "--scale", "synth" if scale == "tiny" else "recipe"]
    if domain == "detection":
        return ["detection_distill.py", *common, "--profile-repeats", str(repeats),
                "--scale", "synth" if scale == "tiny" else "recipe"]
    raise ValueError(domain)

def profile_piece(domain: str, scale: str, work: Path, device: str, repeats: int, timeout: int) -> Dict[str, Any]:
    """One domain's cost breakdown at one scale (:func:`profile_command`) as its own process: the JSON it wrote,
    or the tail of its output when it failed."""
    out = work / domain / f"profile_{scale}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    cmd = profile_command(domain, scale, out, device, repeats)
    rc, log, wall = run_process([sys.executable, str(ROOT / "benchmarks" / cmd[0]), *cmd[1:]], timeout)
    piece: Dict[str, Any] = {"ok": rc == 0 and out.is_file(), "rc": rc, "wall_s": wall,
                             "command": " ".join(["python", "benchmarks/" + cmd[0], *cmd[1:]])}
    if piece["ok"]:
        piece["result"] = json.loads(out.read_text())
    else:
        piece["log_tail"] = log[-3000:]
    return piece

def guarded(fn: Callable[[], Any]) -> Dict[str, Any]:
    """``fn()``'s result, or what went wrong: one piece failing does not stop the others."""
    t0 = time.perf_counter()
    try:
        return {"ok": True, "result": fn(), "wall_s": round(time.perf_counter() - t0, 1)}
    except Exception as exc:  # recorded in the JSON, which is the point of this script
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:],
                "wall_s": round(time.perf_counter() - t0, 1)}

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", nargs="+", default=["graph", "speech", "segmentation", "detection"])
    ap.add_argument("--modes", nargs="*", default=["single", "torchrun", "amp"],
                    help="kdhub train runs per domain (none: skip them)")
    ap.add_argument("--no-ratios", action="store_true", help="skip the step-ratio measurements")
    ap.add_argument("--profiles", action="store_true",
                    help="also each domain's cost breakdown (its benchmark's --profile-only) on the device")
    ap.add_argument("--profile-scales", nargs="+", default=list(PROFILE_SCALES), choices=PROFILE_SCALES)
    ap.add_argument("--profile-repeats", type=int, default=5, help="interleaved rounds of each --profiles run")
    ap.add_argument("--profile-timeout", type=int, default=300, help="seconds per --profiles run")
    ap.add_argument("--work-dir", default="work_dirs/gpu_check")
    ap.add_argument("--timeout", type=int, default=240, help="seconds per kdhub train")
    ap.add_argument("--out", default="results/gpu_check.json")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                    help="cpu: a dry run of the script itself on a machine without a GPU")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible; nothing to check (--device cpu for a dry run)", file=sys.stderr)
        return 2
    cuda = args.device == "cuda"
    work, out = Path(args.work_dir).resolve(), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    result: Dict[str, Any] = {
        "run": run_info(), "device": args.device,
        "machine": {"gpu": torch.cuda.get_device_name(0) if cuda else None, "torch": torch.__version__,
                    "cuda": torch.version.cuda, "nccl": ".".join(map(str, torch.cuda.nccl.version())) if cuda else None,
                    "cpus": os.cpu_count(), "platform": platform.platform()},
        "domains": {}}
    t0 = time.perf_counter()

    def save():
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        atomic_write_text(out, json.dumps(result, indent=2) + "\n")

    if os.environ.get("KDHUB_COMMIT"):  # a copied tree, whose .git (if any) need not be the tree's commit
        result["run"]["commit"] = os.environ["KDHUB_COMMIT"]
        result["run"]["uncommitted_changes"] = None
    runs = domain_runs(work, args.device)
    for domain in args.domains:
        spec, entry = runs[domain], result["domains"].setdefault(domain, {})
        options = list(spec["options"])
        if "teacher" in spec and args.modes:  # the runs start from it; the ratios and profiles make their own
            made = guarded(spec["teacher"])
            if not made["ok"]:
                entry["teacher"] = made
                save()
                continue
            options.append(f"model.teacher.checkpoint={made['result']}")
        for mode in args.modes:
            print(f"gpu_check: {domain} {mode}", flush=True)
            entry[mode] = kdhub_train(mode, spec["config"], options, work / domain / mode, args.timeout, cuda)
            save()
        if not args.no_ratios:
            print(f"gpu_check: {domain} step ratios", flush=True)
            entry["step_ratios"] = guarded(lambda: step_ratios(domain, work, args.device))
            save()
        for scale in args.profile_scales if args.profiles else ():
            if profile_command(domain, scale, work, args.device, 1) is not None:
                print(f"gpu_check: {domain} profile ({scale})", flush=True)
                entry[f"profile_{scale}"] = profile_piece(domain, scale, work, args.device, args.profile_repeats,
                                                          args.profile_timeout)
                save()
    pieces = [p for d in result["domains"].values() for p in d.values()]
    result["all_ok"] = all(p.get("ok") for p in pieces)
    save()
    print(json.dumps({d: {k: v.get("ok") for k, v in e.items()} for d, e in result["domains"].items()}, indent=1))
    return 0 if result["all_ok"] else 1

if __name__ == "__main__":
    sys.exit(main())
