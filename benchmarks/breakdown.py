"""Cost breakdown of a distillation step, shared by the domains' benchmarks: interleaved timing of its parts,
their shares of the full step, and the step's peak memory measured in a fresh process.

A step is broken into parts that each run alone (the teacher's forward, the student's own train step, the
method's modules, its losses, its selection or matching); the full step is timed in the same loop, so load on
the machine hits every variant alike. What the full step costs beyond the sum of its parts is the machinery
(taps, hooks, data movement, bookkeeping); it is reported as measured, so noise can make it slightly negative.
The floor is the sum of the parts, the method's own modules included: a distillation step cannot cost less
than the work the method asks for.

Peak memory: each variant runs in a fresh interpreter (``python breakdown.py --peak SPEC``), so nothing that
an earlier variant allocated, nor the setup's own peak, counts. After the setup and a warm-up step the
process's resident-set high-water mark (``VmHWM`` in ``/proc/self/status``) is reset by writing ``5`` to
``/proc/self/clear_refs``, and the peak of each measured step is read as ``VmHWM`` minus the resident set
before it. glibc keeps freed heap memory mapped, which would hide a step's allocations behind the warm-up's;
the child therefore runs with a fixed mmap threshold (large blocks are mapped and unmapped by each
allocation, as the default does for the first 32 MB blocks) and trims the heap before each step. On CUDA the
peak is ``torch.cuda.max_memory_allocated`` above the memory allocated before the step.

    python benchmarks/breakdown.py --peak '{"target": "module:factory", "kwargs": {}, "path": ["dir"]}'

``factory(**kwargs)`` does the setup and returns the step, a callable without arguments.
"""
from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence

HERE = Path(__file__).resolve().parent
MB = 1e6
#: glibc settings of the measuring child: blocks from 64 KiB up are mmap-ed, so freeing them unmaps them
CHILD_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}
PEAK_MARK = "PEAK_JSON "


def interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int, inner: int = 1,
                warmup: int = 1, samples_out: Optional[Dict[str, list]] = None) -> Dict[str, float]:
    """Median seconds of each of ``fns`` over ``repeats`` rounds; in each round every function is timed
    (the median of ``inner`` calls, :func:`kdhub.timing.median_seconds`) in an order rotated by one per
    round, so drift in the machine's load hits every part alike. ``warmup`` untimed rounds come first.
    ``samples_out`` (optional) receives every round's time of each function, to pool several measurements."""
    from kdhub.timing import median_seconds

    items = list(fns.items())
    for _ in range(warmup):
        for _, fn in items:
            fn()
    samples: Dict[str, list] = {name: [] for name, _ in items}
    for i in range(max(1, repeats)):
        k = i % len(items)
        for name, fn in items[k:] + items[:k]:
            samples[name].append(median_seconds(fn, repeats=inner, warmup=0))
    if samples_out is not None:
        for name, v in samples.items():
            samples_out.setdefault(name, []).extend(v)
    return {name: statistics.median(v) for name, v in samples.items()}


def minor_faults(fns: Mapping[str, Callable[[], Any]], calls: int = 5) -> Dict[str, float]:
    """Minor page faults per call of each of ``fns``, each called ``calls`` times in turn (after the timing, in
    the same process). A step whose peak is tens of MB faults its pages in again whenever glibc has returned
    the freed heap top to the system (its trim threshold follows the largest block freed, at most 64 MB): a cost
    of the allocator, not of the method's arithmetic, that the timed parts pay only when they too free that much."""
    import resource

    out = {}
    for name, fn in fns.items():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(calls):
            fn()
        out[name] = round((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls, 1)
    return out


def steady_heap() -> Dict[str, int]:
    """Tell glibc to keep its heap for the rest of the process (``mallopt``): blocks below 32 MB (its largest
    allowed mmap threshold) come from the heap, and the freed heap top is never trimmed, so a step's pages stay
    mapped from one step to the next, as a caching allocator keeps them. Returns the settings. It cannot be
    undone: measure the default allocator first."""
    libc = ctypes.CDLL("libc.so.6")
    settings = {"M_MMAP_THRESHOLD": 32 * 1024 * 1024, "M_TRIM_THRESHOLD": 1 << 30}
    for code, value in ((-3, settings["M_MMAP_THRESHOLD"]), (-1, settings["M_TRIM_THRESHOLD"])):
        if libc.mallopt(code, value) != 1:
            raise RuntimeError(f"mallopt({code}, {value}) failed")
    return settings


def shares(full_s: float, parts: Mapping[str, float]) -> Dict[str, Any]:
    """Each part's share of the full step, machinery (full minus the sum of the parts) and the overhead above
    the floor (machinery / sum of the parts). Times in any unit; the result's ``*_s`` values are in it."""
    floor = sum(parts.values())
    machinery = full_s - floor
    out = {name: t / full_s for name, t in parts.items()}
    out["machinery"] = machinery / full_s
    return {"full_s": full_s, "floor_s": floor, "machinery_s": machinery, "shares": out,
            "overhead_above_floor": machinery / floor}


def report(full_s: float, parts: Mapping[str, float], digits: int = 4,
           overhead: Optional[float] = None) -> Dict[str, Any]:
    """:func:`shares` for a JSON report: milliseconds of the full step, the floor and every part, rounded. With
    ``overhead`` (the overhead formed within each round, :func:`paired`) that is the reported
    ``overhead_above_floor`` and the one from these medians is kept as ``overhead_of_medians``."""
    s = shares(full_s, parts)
    out = {"full_ms": round(full_s * 1e3, 3), "floor_ms": round(s["floor_s"] * 1e3, 3),
           "machinery_ms": round(s["machinery_s"] * 1e3, 3),
           "parts_ms": {k: round(v * 1e3, 3) for k, v in parts.items()},
           "shares": {k: round(v, digits) for k, v in s["shares"].items()},
           "overhead_above_floor": round(s["overhead_above_floor"], digits)}
    if overhead is not None:
        out["overhead_of_medians"], out["overhead_above_floor"] = out["overhead_above_floor"], overhead
    return out


def round_median(samples: Mapping[str, list], value: Callable[[Dict[str, float]], float]) -> float:
    """The median over the timed rounds of :func:`interleaved` (``samples``: its ``samples_out``, rounds of several
    blocks pooled) of ``value`` of each round's times (name -> seconds). The functions of one round run within
    seconds of each other on one setup, so a ratio formed within a round compares like with like; a ratio of
    pooled medians can pair one block's step with another block's parts."""
    rounds = range(len(next(iter(samples.values()))))
    return statistics.median(value({k: v[i] for k, v in samples.items()}) for i in rounds)


def paired(samples: Mapping[str, list], step: str, floor: Iterable[str], parts: Iterable[str]) -> Dict[str, float]:
    """The step ratio (``step`` over the sum of ``floor``'s functions) and the overhead above the floor (``step``
    over the sum of ``parts``, less one), each formed within every round (:func:`round_median`)."""
    floor, parts = list(floor), list(parts)
    return {"step_ratio": round(round_median(samples, lambda r: r[step] / sum(r[k] for k in floor)), 4),
            "overhead_above_floor": round(round_median(samples, lambda r: r[step] / sum(r[k] for k in parts) - 1), 4)}


def block_report(blocks: Sequence[Mapping[str, list]], step: str, floor: Sequence[str],
                 parts: Mapping[str, str]) -> Dict[str, Any]:
    """The report of ``step`` timed in ``blocks`` (each a new setup's :func:`interleaved` samples, their rounds
    pooled): :func:`report` of the pooled medians (``parts``: sample name -> the name it is reported under) with
    the overhead formed within each round; the step ratio (``step`` over the sum of ``floor``) formed within each
    round and, as ``step_ratio_of_medians``, from the pooled medians; and, for more than one block, each block's
    own step ratio and overhead (:func:`paired`)."""
    pooled = {k: [x for b in blocks for x in b[k]] for k in blocks[0]}
    med = {k: statistics.median(v) for k, v in pooled.items()}
    per_round = paired(pooled, step, floor, parts)
    out = report(med[step], {name: med[k] for k, name in parts.items()}, overhead=per_round["overhead_above_floor"])
    out["step_ratio"] = per_round["step_ratio"]
    out["step_ratio_of_medians"] = round(med[step] / sum(med[k] for k in floor), 4)
    if len(blocks) > 1:
        each = [paired(b, step, floor, parts) for b in blocks]
        out["overhead_per_block"] = [e["overhead_above_floor"] for e in each]
        out["step_ratio_per_block"] = [e["step_ratio"] for e in each]
    return out


# peak memory -------------------------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_hwm() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def hwm_resettable() -> bool:
    """Whether this kernel lets a process reset its RSS high-water mark (Linux >= 4.0)."""
    try:
        _status_kb("VmHWM")
        _reset_hwm()
        return _status_kb("VmHWM") <= _status_kb("VmRSS") + 1024
    except (OSError, RuntimeError):
        return False


def measure_peak(step: Callable[[], Any], repeats: int = 3, warmup: int = 1, device: str = "cpu") -> Dict[str, Any]:
    """In this process: the peak memory of ``step()`` above the state before it (MB), per measured call, after
    ``warmup`` calls (which create the optimiser's state and the allocators' caches)."""
    for _ in range(warmup):
        step()
    cuda = device.startswith("cuda")
    deltas, before = [], []
    for _ in range(max(1, repeats)):
        _trim()
        if cuda:
            import torch
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            base = _status_kb("VmRSS") * 1024
            _reset_hwm()
            step()
            peak = _status_kb("VmHWM") * 1024
        before.append(base / MB)
        deltas.append((peak - base) / MB)
    return {"peak_delta_mb": round(statistics.median(deltas), 2),
            "peak_delta_mb_per_step": [round(d, 2) for d in deltas],
            "before_step_mb": round(statistics.median(before), 2),
            "measure": "torch.cuda.max_memory_allocated" if cuda else "VmHWM - VmRSS (RSS high-water mark reset)"}


def peak_rss_mb(target: str, kwargs: Optional[Mapping[str, Any]] = None, repeats: int = 3, warmup: int = 1,
                path: Iterable[str] = (), device: str = "cpu", env: Optional[Mapping[str, str]] = None,
                timeout: float = 900) -> Dict[str, Any]:
    """Peak memory of one step of ``target`` ("module:factory") in a fresh interpreter: see the module's doc.
    ``path``: folders put on ``sys.path`` (the benchmarks folder always is)."""
    spec = {"target": target, "kwargs": dict(kwargs or {}), "repeats": repeats, "warmup": warmup,
            "path": [str(p) for p in path], "device": device}
    child_env = {**os.environ, **CHILD_MALLOC_ENV, **(env or {})}
    proc = subprocess.run([sys.executable, str(HERE / "breakdown.py"), "--peak", json.dumps(spec)],
                          env=child_env, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(PEAK_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"peak measurement of {target} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(PEAK_MARK):])


def peak_ratio(distill: Mapping[str, Any], floor: Mapping[str, Any]) -> float:
    """The distillation step's peak over the floor's (both :func:`peak_rss_mb` results)."""
    return round(distill["peak_delta_mb"] / floor["peak_delta_mb"], 4)


def _child(spec: Mapping[str, Any]) -> None:
    sys.path[:0] = [str(HERE)] + list(spec["path"])
    module, name = spec["target"].split(":")
    step = getattr(importlib.import_module(module), name)(**spec["kwargs"])
    result = measure_peak(step, spec["repeats"], spec["warmup"], spec["device"])
    result["hwm_reset_works"] = hwm_resettable()
    print(PEAK_MARK + json.dumps(result), flush=True)


# the teacher's graph -----------------------------------------------------------------------------------------
class TeacherGraphProbe:
    """Forward hooks on every module of a teacher that count the calls whose output is part of an autograd
    graph (a ``grad_fn`` or ``requires_grad``). Zero such calls means no teacher activation is saved for a
    backward pass, so none can be alive during the student's backward."""

    def __init__(self, teacher):
        import torch

        self.calls = self.in_graph = self.grad_enabled = 0

        def tensors(value):
            if isinstance(value, torch.Tensor):
                yield value
            elif isinstance(value, (list, tuple)):
                for v in value:
                    yield from tensors(v)
            elif isinstance(value, dict):
                for v in value.values():
                    yield from tensors(v)

        def hook(_module, _args, output):
            self.calls += 1
            self.grad_enabled += int(torch.is_grad_enabled())
            self.in_graph += int(any(t.grad_fn is not None or t.requires_grad for t in tensors(output)))

        self._handles = [m.register_forward_hook(hook) for m in teacher.modules()]

    def result(self) -> Dict[str, Any]:
        return {"teacher_module_calls": self.calls, "teacher_outputs_in_autograd_graph": self.in_graph,
                "teacher_calls_with_grad_enabled": self.grad_enabled,
                "teacher_activations_alive_in_student_backward": self.in_graph > 0}

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--peak":
        _child(json.loads(sys.argv[2]))
    else:
        raise SystemExit(__doc__)
