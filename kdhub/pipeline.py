"""The pipeline every domain runs: teacher -> baseline -> student sub-runs of one work dir.

``kdhub train`` of a distillation config does the same in every domain. It trains the teacher when no
checkpoint is given (``teacher/``), the student alone when a baseline is asked for (``baseline/``), and the
distilled student (``student/``); ``summary.json`` then compares the three on the test split. A domain
supplies only :class:`Stages`: how to train, test and export one model with its own engine.

The sub-run protocol lives here once. A finished sub-run leaves ``result.json``, written atomically by rank 0
after the model is exported; ``--resume`` reuses it, and an unfinished sub-run is handed back to the domain,
whose engine continues it from its last checkpoint. Without ``--resume``, a work dir that already holds a run
(:func:`refuse_existing_run`, before anything is written) stops the launch with an error rather than mixing two
runs. A given teacher is tested once per work dir (``teacher_test.json``). The teacher a run distils from is
recorded (``teacher_used.json``): ``--resume`` with another teacher is refused rather than reusing results of the
first.

Before any of it, :meth:`Stages.check` verifies everything the run will need (teacher checkpoints, data,
tap paths, the teacher/student pairing) while nothing is written yet: bad input stops the launch with one
error naming the file or key, and leaves the work dir as it was.
"""
from __future__ import annotations

import abc
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import dist
from .checkpoint import atomic_write_text
from .config import ConfigError
from .logs import get_logger
from .runs import SUMMARY_FILE, RunContext, plain, cuda_usage
from .task import ModelResult
from .timing import median_seconds

ROLES = ("teacher", "baseline", "student")
RESULT_FILE = "result.json"
TEACHER_TEST_FILE = "teacher_test.json"
#: which teacher checkpoint the run distils from (its path and size), so --resume cannot mix two teachers
TEACHER_USED_FILE = "teacher_used.json"
#: demo rows: (role in the summary, label in the table)
DEMO_ROLES: Sequence[Tuple[str, str]] = (("teacher", "teacher"), ("baseline", "baseline"), ("student", "distilled"))


class Stages(abc.ABC):
    """What a domain supplies to the :class:`Pipeline`: train, test and export one model.

    ``train`` returns a JSON-able dict with at least ``test`` (test metrics), ``export`` (the exported
    model's path) and ``params`` (parameter count); anything else it returns is kept in ``result.json``.
    """

    #: also train the student alone (the config's ``baseline`` switch)
    baseline: bool = False
    #: train the distilled student (False: the teacher and the baseline only)
    distil: bool = True
    #: mixed precision (``kdhub train --amp``; set by ``Task.train`` before :meth:`check`): mmengine's
    #: AmpOptimWrapper for the OpenMMLab domains, SpeechBrain's ``precision`` (bf16) for speech, bf16 autocast
    #: for graph
    amp: bool = False

    def check(self) -> None:
        """Verify, before anything is written or trained, everything the run will need: each given teacher
        checkpoint reads with ``weights_only=True`` and fits the teacher strictly, every data file exists and
        parses, every tap path resolves, and the pairing is supported. Raise :class:`~kdhub.config.ConfigError`
        (or ``CheckpointError``) naming the file or key and the fix. ``Task.train`` calls it first."""

    @abc.abstractmethod
    def teacher_checkpoint(self) -> Optional[Path]:
        """The teacher checkpoint the config gives, or None to train the teacher in ``teacher/``."""

    @abc.abstractmethod
    def train(self, role: str, work_dir: Path) -> Dict[str, Any]:
        """Train the ``role`` model in ``work_dir`` (continuing an unfinished run there on resume), test it and
        export it (rank 0 writes)."""

    @abc.abstractmethod
    def test_teacher(self, checkpoint: Path) -> Dict[str, float]:
        """Test metrics of a given teacher checkpoint."""

    def use_teacher(self, checkpoint: Path) -> None:
        """Distil from ``checkpoint``: the teacher the pipeline trained, or the given one (default: nothing to
        do, for a domain whose student stage reads the checkpoint from the config)."""

    def started(self, work_dir: Path) -> bool:
        """Whether ``work_dir`` already holds (part of) a run (:func:`holds_checkpoints`). An engine that keeps its
        checkpoints elsewhere overrides this."""
        return holds_checkpoints(work_dir)

    def inference(self, role: str, result: Mapping[str, Any]) -> Optional[Callable[[], Any]]:
        """One inference of the exported ``role`` model on a typical input, for the demo's latency column
        (None: no latency)."""
        return None


def holds_checkpoints(work_dir: Path) -> bool:
    """Whether ``work_dir`` holds a latest-checkpoint record (the core's :class:`~kdhub.runs.RunContext` and
    mmengine both write ``last_checkpoint``) or a non-empty ``checkpoints/`` folder."""
    folder = Path(work_dir) / "checkpoints"
    return (Path(work_dir) / "last_checkpoint").is_file() or (folder.is_dir() and any(folder.iterdir()))


def refuse_existing_run(work_dir: Path, stages: Any) -> None:
    """Without ``--resume``: refuse ``work_dir`` when it or a folder in it holds a run (a finished sub-run's
    ``result.json``, a tested teacher's ``teacher_test.json``, a ``summary.json``, or checkpoints as
    :meth:`Stages.started` finds them; :func:`holds_checkpoints` for a run that is not a :class:`Stages`). Called
    before anything is written, so a refused launch leaves the earlier run exactly as it was: its config copy,
    log and results. Under a launcher only the first process looks (the others could see its first files);
    its error ends the launch."""
    from .logs import launch_rank
    work_dir = Path(work_dir)
    if not work_dir.is_dir() or launch_rank() != 0:
        return
    started = getattr(stages, "started", holds_checkpoints)
    for folder in (work_dir, *sorted(p for p in work_dir.rglob("*") if p.is_dir())):
        kept = [name for name in (RESULT_FILE, TEACHER_TEST_FILE, SUMMARY_FILE) if (folder / name).is_file()]
        if kept or started(folder):
            what = f"its {kept[0]}" if kept else "checkpoints"
            raise ConfigError(f"{folder} already holds a run ({what}); pass --resume to continue it or choose "
                              f"another --work-dir")


class Pipeline:
    """Runs a domain's :class:`Stages` as resumable sub-runs and writes the summary through ``ctx``."""

    def __init__(self, ctx: RunContext, resume: bool = False):
        self.ctx, self.resume = ctx, resume

    def stage(self, role: str, work_dir: Path, train: Callable[[Path], Dict[str, Any]],
              started: Callable[[Path], bool]) -> Dict[str, Any]:
        """One sub-run: reused when finished and ``--resume`` is given, refused when it would overwrite a run."""
        work_dir = Path(work_dir)
        done = work_dir / RESULT_FILE
        if self.resume and done.is_file():
            result = json.loads(done.read_text())
            if Path(result.get("export", "")).is_file():
                if dist.is_main():
                    get_logger().info(f"{role}: {work_dir} finished before, reusing its {RESULT_FILE} (--resume "
                                      f"continues unfinished sub-runs only; delete that file to train {role} again)")
                return result
            # the exported model is gone (or the work dir moved): continue the sub-run from its checkpoints
        if not self.resume and (started(work_dir) or done.is_file()):
            raise ConfigError(f"{work_dir} already holds a run; pass --resume to continue it or choose another "
                              f"--work-dir")
        started = time.perf_counter()
        result = dict(train(work_dir))
        result["wall_time_s"] = round(time.perf_counter() - started, 3)
        result["export"] = Path(result["export"]).resolve()  # valid from any working directory on --resume
        return self.record(done, result)

    def cached(self, path: Path, compute: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
        """``compute()`` once per work dir: kept in ``path`` and reused on ``--resume``."""
        if self.resume and path.is_file():
            return json.loads(path.read_text())
        return self.record(path, compute())

    @staticmethod
    def record(path: Path, result: Dict[str, Any]) -> Dict[str, Any]:
        """Write ``result`` atomically on rank 0; every rank returns rank 0's copy after the write."""
        result = plain(result)
        if dist.is_main():
            atomic_write_text(path, json.dumps(result, indent=2) + "\n")
        dist.barrier()
        return dist.gather_objects(result)[0]

    def run(self, stages: Stages, root: Optional[Path] = None) -> Dict[str, Dict[str, Any]]:
        """Teacher (trained, or the given one tested), baseline if asked for, then the distilled student, in
        ``root/{teacher,baseline,student}``; returns each role's result."""
        root = Path(root) if root is not None else self.ctx.work_dir
        results: Dict[str, Dict[str, Any]] = {}
        given = stages.teacher_checkpoint()
        if given is None:
            self.same_teacher(root, None, trained_in=root / "teacher")  # the run may have had a given teacher
            results["teacher"] = self.stage("teacher", root / "teacher", lambda d: stages.train("teacher", d),
                                            stages.started)
            self.same_teacher(root, Path(results["teacher"]["export"]))
            stages.use_teacher(Path(results["teacher"]["export"]))
        else:
            self.same_teacher(root, Path(given))
            test = self.cached(root / TEACHER_TEST_FILE, lambda: stages.test_teacher(Path(given)))
            results["teacher"] = {"test": test, "export": str(given)}
            stages.use_teacher(Path(given))  # also when its test is reused on --resume
        if stages.baseline:
            results["baseline"] = self.stage("baseline", root / "baseline", lambda d: stages.train("baseline", d),
                                             stages.started)
        if stages.distil:
            results["student"] = self.stage("student", root / "student", lambda d: stages.train("student", d),
                                            stages.started)
        return results

    def same_teacher(self, root: Path, checkpoint: Optional[Path], trained_in: Optional[Path] = None) -> None:
        """Record the teacher ``checkpoint`` (path and size) this run distils from or, on ``--resume``, refuse one
        that is not the teacher the run began with: its tested metrics and students would be reused. Called with
        ``checkpoint`` None before a teacher is trained in ``trained_in``, it refuses a run that had another."""
        record = Path(root) / TEACHER_USED_FILE
        before = json.loads(record.read_text()) if self.resume and record.is_file() else None
        if checkpoint is None:
            if before is not None and not Path(before["checkpoint"]).is_relative_to(Path(trained_in).resolve()):
                self._other_teacher(root, before, f"a teacher trained in {trained_in}")
            return
        used = {"checkpoint": str(Path(checkpoint).resolve()), "bytes": Path(checkpoint).stat().st_size}
        if before is None:
            self.record(record, used)
        elif before != used:
            self._other_teacher(root, before, f"{used['checkpoint']} ({used['bytes']} bytes)")

    @staticmethod
    def _other_teacher(root: Path, before: Mapping[str, Any], now: str) -> None:
        raise ConfigError(f"{root} distils from the teacher {before['checkpoint']} ({before['bytes']} bytes); the "
                          f"config now gives {now}. --resume continues a run with its teacher: give that one again, "
                          f"or use another --work-dir")

    def single(self, train: Callable[[Path], Dict[str, Any]], started: Callable[[Path], bool],
               keep: Sequence[str] = (), extra: Optional[Callable[[], Dict[str, Any]]] = None) -> Dict[str, Any]:
        """A plain (non-distillation) config: one model trained in the work dir itself, as a resumable sub-run.
        ``summary.json`` holds its test metrics under ``model``, its parameter count and exported checkpoint,
        the same in every domain, plus the result's ``keep`` keys and what ``extra()`` returns after training."""
        result = self.stage("model", self.ctx.work_dir, train, started)
        summary = {"task": self.ctx.info.task, "method": "supervised", "world_size": self.ctx.info.world_size,
                   "model": result["test"],
                   "params": {"model": result["params"]}, "checkpoint": result["export"],
                   "wall_time_s": result["wall_time_s"], **{k: result[k] for k in keep}, **(extra() if extra else {}),
                   **cuda_usage()}
        self.record(self.ctx.work_dir / SUMMARY_FILE, summary)
        return self.ctx.end(summary)

    def finish(self, results: Mapping[str, Mapping[str, Any]], params: Optional[Mapping[str, int]] = None,
               **extra: Any) -> Dict[str, Any]:
        """``summary.json`` of one pipeline run: each role's test metrics, parameter counts (from the results,
        completed by ``params``), the exported student and the training time of its sub-runs (so a run
        whose every sub-run is reused on ``--resume`` writes the same summary again)."""
        counts = {role: results[role]["params"] for role in ROLES if "params" in results.get(role, {})}
        counts.update(params or {})
        baseline = results.get("baseline")
        return self.ctx.finish(teacher=results["teacher"]["test"], student=results["student"]["test"],
                               baseline=baseline["test"] if baseline else None, params=counts,
                               student_checkpoint=results["student"].get("export"),
                               teacher_checkpoint=results["teacher"].get("export"),
                               **{"wall_time_s": round(sum(r.get("wall_time_s", 0.0) for r in results.values()), 3),
                                  **extra})


def demo_rows(summary: Mapping[str, Any], metric: str, stages: Optional[Stages] = None,
              results: Optional[Mapping[str, Mapping[str, Any]]] = None,
              roles: Sequence[Tuple[str, str]] = DEMO_ROLES, repeats: int = 10) -> List[ModelResult]:
    """A demo's table rows from a pipeline summary: each role's ``metric``, parameter count and (when
    ``stages`` can run the exported model) the median latency of one inference on this machine."""
    rows = []
    for role, label in roles:
        if role not in summary or summary[role] is None:
            continue
        value = summary[role][metric]
        run = stages.inference(role, (results or {}).get(role, {})) if stages is not None else None
        latency = median_seconds(run, repeats=repeats, warmup=2) * 1000 if run is not None else None
        std = summary[role].get(f"{metric}_std")
        params = summary.get("params", {})
        count = params.get(role, params.get("student", 0) if role == "baseline" else 0)  # a baseline is a student
        rows.append(ModelResult(label, value, int(count), latency, std))
    return rows

