"""The core pipeline: teacher -> baseline -> student sub-runs, reuse on resume, refusal without it, summary."""
import json

import pytest

from kdhub.config import ConfigError
from kdhub.pipeline import Pipeline, Stages, demo_rows
from kdhub.runs import RunContext, RunInfo


class Recorder:
    """Stands in for the plugin manager: records the lifecycle calls."""

    def __init__(self):
        self.calls = []

    def notify(self, name, **kwargs):
        self.calls.append(name)


class Steps(Stages):
    """A domain whose 'training' writes a checkpoint file and whose metric is the number of the call."""

    def __init__(self, given=None, baseline=False):
        self.given, self.baseline, self.log, self.used = given, baseline, [], None

    def teacher_checkpoint(self):
        return self.given

    def train(self, role, work_dir):
        self.log.append(("train", role))
        (work_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (work_dir / "checkpoints" / "epoch_1.pth").write_text(role)
        export = work_dir / "model.pth"
        export.write_text(role)
        return {"test": {"acc": float(len(self.log))}, "export": export, "params": {"teacher": 9}.get(role, 3)}

    def test_teacher(self, checkpoint):
        self.log.append(("test", checkpoint.name))
        return {"acc": 99.0}

    def use_teacher(self, checkpoint):
        self.used = checkpoint


def run(tmp_path, steps, resume=False):
    ctx = RunContext(RunInfo("probe", "m", tmp_path), plugins=Recorder())
    pipeline = Pipeline(ctx, resume)
    results = pipeline.run(steps)
    return results, pipeline.finish(results)


def test_teacher_trained_then_baseline_then_student_and_the_summary(tmp_path):
    steps = Steps(baseline=True)
    results, summary = run(tmp_path, steps)
    assert steps.log == [("train", "teacher"), ("train", "baseline"), ("train", "student")]
    assert steps.used == tmp_path / "teacher" / "model.pth"           # the student distils the trained teacher
    assert {r: summary[r]["acc"] for r in ("teacher", "baseline", "student")} == \
        {"teacher": 1.0, "baseline": 2.0, "student": 3.0}
    assert summary["params"] == {"teacher": 9, "baseline": 3, "student": 3}
    assert summary["student_checkpoint"] == str(tmp_path / "student" / "model.pth")
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["student"] == {"acc": 3.0} and on_disk["teacher_checkpoint"] == str(tmp_path / "teacher" / "model.pth")
    for role in ("teacher", "baseline", "student"):
        assert json.loads((tmp_path / role / "result.json").read_text())["export"] == str(tmp_path / role / "model.pth")


def test_resume_reuses_finished_sub_runs_and_continues_the_unfinished_one(tmp_path):
    run(tmp_path, Steps(baseline=True))
    (tmp_path / "student" / "result.json").unlink()             # the student was interrupted
    again = Steps(baseline=True)
    _, summary = run(tmp_path, again, resume=True)
    assert again.log == [("train", "student")]                   # teacher and baseline come from result.json
    assert again.used == tmp_path / "teacher" / "model.pth" and summary["baseline"] == {"acc": 2.0}


def test_a_work_dir_holding_a_run_is_refused_without_resume(tmp_path):
    run(tmp_path, Steps())
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        run(tmp_path, Steps())


def test_a_given_teacher_is_tested_once_and_no_baseline_unless_asked(tmp_path):
    ckpt = tmp_path / "given.pth"
    ckpt.write_text("t")
    steps = Steps(given=ckpt)
    _, summary = run(tmp_path / "w", steps)
    assert steps.log == [("test", "given.pth"), ("train", "student")] and steps.used == ckpt
    assert summary["teacher"] == {"acc": 99.0} and "baseline" not in summary
    again = Steps(given=ckpt)
    run(tmp_path / "w", again, resume=True)
    assert again.log == []                                       # teacher_test.json and student/result.json reused
    assert again.used == ckpt                                    # ... and the student stage still gets the teacher


def test_a_finished_sub_run_whose_export_is_gone_is_continued_not_reused(tmp_path):
    run(tmp_path, Steps())
    (tmp_path / "student" / "model.pth").unlink()
    again = Steps()
    run(tmp_path, again, resume=True)
    assert again.log == [("train", "student")] and (tmp_path / "student" / "model.pth").is_file()


def test_results_name_the_export_by_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results, _ = run(tmp_path.relative_to(tmp_path), Steps())     # a relative --work-dir, as users give it
    assert results["student"]["export"] == str(tmp_path / "student" / "model.pth")


def test_demo_rows_take_metric_params_and_the_baselines_student_size(tmp_path):
    _, summary = run(tmp_path, Steps(baseline=True))
    rows = demo_rows(summary, "acc")
    assert [(r.role, r.metric, r.params, r.latency_ms) for r in rows] == \
        [("teacher", 1.0, 9, None), ("baseline", 2.0, 3, None), ("distilled", 3.0, 3, None)]


def test_a_task_without_run_class_or_train_is_refused_at_definition():
    from kdhub.task import Task

    with pytest.raises(TypeError, match="must set run_class"):
        class Incomplete(Task):
            def evaluate(self, loaded, checkpoint):
                return {}


def test_a_finished_sub_run_without_checkpoints_is_still_refused_without_resume(tmp_path):
    """Its ``result.json`` alone marks a finished sub-run (an engine may keep no checkpoints once done)."""
    run(tmp_path, Steps())
    import shutil
    for role in ("teacher", "student"):
        shutil.rmtree(tmp_path / role / "checkpoints")
    again = Steps()
    with pytest.raises(ConfigError, match="teacher already holds a run"):
        run(tmp_path, again)
    assert again.log == [] and json.loads((tmp_path / "teacher" / "result.json").read_text())["test"] == {"acc": 1.0}


def test_a_refused_launch_leaves_the_earlier_run_as_it_was(tmp_path):
    """``Task.train`` refuses a work dir holding a run before it writes anything: the earlier run's config copy,
    log and results keep their bytes, and no lifecycle hook is called."""
    from kdhub.config import LoadedConfig
    from kdhub.task import Task

    class Run(Steps):
        def __init__(self, loaded, work_dir, resume, launcher):
            super().__init__()
            self.ctx = RunContext(RunInfo("probe", "m", work_dir), plugins=Recorder())
            self.resume = resume

        def run(self):
            pipeline = Pipeline(self.ctx, self.resume)
            return pipeline.finish(pipeline.run(self))

    class Probe(Task):
        run_class = Run

        def evaluate(self, loaded, checkpoint):
            return {}

    work = tmp_path / "w"
    Probe().train(LoadedConfig("probe", {"lr": 1}, tmp_path / "a.json"), work)
    before = {p: p.read_bytes() for p in work.rglob("*") if p.is_file()}
    assert work / "config.json" in before and work / "train.log" in before
    with pytest.raises(ConfigError, match="already holds a run .*pass --resume"):
        Probe().train(LoadedConfig("probe", {"lr": 2}, tmp_path / "a.json"), work)
    assert {p: p.read_bytes() for p in work.rglob("*") if p.is_file()} == before
    Probe().train(LoadedConfig("probe", {"lr": 2}, tmp_path / "a.json"), work, resume=True)


def test_a_reused_sub_run_is_said_in_the_log(tmp_path, caplog):
    run(tmp_path, Steps())
    with caplog.at_level("INFO", logger="kdhub"):
        run(tmp_path, Steps(), resume=True)
    said = [r.getMessage() for r in caplog.records if "reusing its result.json" in r.getMessage()]
    assert said == [f"teacher: {tmp_path / 'teacher'} finished before, reusing its result.json (--resume continues "
                    f"unfinished sub-runs only; delete that file to train teacher again)",
                    f"student: {tmp_path / 'student'} finished before, reusing its result.json (--resume continues "
                    f"unfinished sub-runs only; delete that file to train student again)"]


def test_resume_with_another_teacher_is_refused_not_answered_with_the_first_ones_results(tmp_path):
    first, second = tmp_path / "a.pth", tmp_path / "b.pth"
    first.write_text("teacher a")
    second.write_text("teacher b, retrained")
    run(tmp_path / "w", Steps(given=first))
    again = Steps(given=second)
    with pytest.raises(ConfigError, match=f"distils from the teacher {first} \\(9 bytes\\); the config now gives "
                                          f"{second} \\(20 bytes\\). --resume continues a run with its teacher"):
        run(tmp_path / "w", again, resume=True)
    assert again.log == []
    third = Steps(given=first)                                    # the same teacher resumes as before
    run(tmp_path / "w", third, resume=True)
    assert third.log == []
    trained = Steps()                                             # a teacher trained here is not the given one
    with pytest.raises(ConfigError, match=f"the config now gives a teacher trained in {tmp_path / 'w' / 'teacher'}"):
        run(tmp_path / "w", trained, resume=True)
    assert trained.log == []                                      # refused before training it
