"""The ``kdhub`` launcher: plugins, list, configs, train, eval, demo, doctor."""
from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import List, Optional

from . import __version__, tensorboard
from .checkpoint import CheckpointError
from .config import (SCOPE_SEP, ConfigError, LoadedConfig, config_folder, install_hint, peek_task, resolve_config,
                     shipped_configs)
from .dist import LAUNCHERS, LaunchError
from .engine import NonFiniteLossError
from .logs import format_metrics, setup_console
from .plugins import DISABLE_ENV, get_plugins
from .registry import RegistryError, unknown_name_message
from .runs import check_work_dir
from .taps import TapPathError

USER_ERRORS = (ConfigError, RegistryError, CheckpointError, TapPathError, NonFiniteLossError, FileNotFoundError,
               LaunchError)


#: framework warnings that tell a kdhub user nothing (setuptools' notice about mmengine's use of pkg_resources,
#: mmseg's own deprecations and loss default): hidden unless --verbose or PYTHONWARNINGS asks for warnings
QUIET_WARNINGS = (r"pkg_resources is deprecated", r"``build_loss`` would be deprecated",
                  r"Default ``avg_non_ignore`` is False")


CONFIG_HELP = "a config file, or DOMAIN::NAME for one an installed plugin ships (see kdhub configs)"


class UsageError(Exception):
    """A launcher-level problem (unknown task, missing config) with the fix in the message."""


def _load(config: str, overrides: List[str]) -> LoadedConfig:
    """Load a config file, or one a plugin ships (``graph::demo.yaml``), through the plugin that owns it."""
    path = resolve_config(config)
    if not path.is_file():
        raise UsageError(f"config file not found: {config}")
    plugins = get_plugins()
    loaded = plugins.first_result("kdhub_load_config", USER_ERRORS, path=path, overrides=list(overrides or []))
    if loaded is None:
        task = peek_task(path)
        raise UsageError(_no_owner_message(path, task))
    return loaded


def _no_owner_message(path: Path, task: Optional[str]) -> str:
    plugins = get_plugins()
    tasks = plugins.registry.tables["tasks"]
    if task and task in tasks:
        return f"{path}: task {task!r} is installed but no plugin recognised this file's format"
    hint = install_hint(task, plugins) if task else None
    if hint:
        return f"{path}: task {task!r} {hint}"
    if task:
        return f"{path}: {unknown_name_message('task', task, tasks)}. Install the plugin that provides it."
    return (f"{path}: no installed plugin recognises this config and it has no 'task' key (nor do the files it "
            f"inherits through _base_); installed tasks: {', '.join(sorted(tasks)) or '(none)'}")


def _task(loaded: LoadedConfig):
    registry = get_plugins().registry
    if loaded.task not in registry.tables["tasks"]:
        raise UsageError(_no_owner_message(loaded.path, loaded.task))
    return registry.get("tasks", loaded.task)


def cmd_plugins(args) -> int:
    plugins = get_plugins()
    for info in plugins.info.values():
        status = "broken" if info.error else "disabled" if info.disabled else "ok"
        kind = "built-in" if info.builtin else info.distribution
        print(f"{info.name}  ({kind} {info.version})  [{status}]")
        if info.error:
            print(f"    error: {info.error}")
            if args.verbose and info.detail:
                print("    " + info.detail.replace("\n", "\n    "))
            continue
        for kind_, names in plugins.registry.by_plugin(info.name).items():
            if names:
                print(f"    {kind_}: {', '.join(names)}")
    if plugins.broken:
        print(f"\n{len(plugins.broken)} broken plugin(s); disable with {DISABLE_ENV}=name or fix the install.")
    return 0


def cmd_list(args) -> int:
    """Every registered name with its domain (the task that runs it; '-' for generic entries), the plugin
    that registered it and its help text. Reads the registry only: no plugin's framework is imported."""
    registry = get_plugins().registry
    for kind in registry.tables:
        print(f"{kind}:")
        entries = list(registry.entries(kind))
        if not entries:
            print("  (none)")
        for e in entries:
            print(f"  {e.name:<22} {e.domain or '-':<13} [{e.plugin}] {e.help}")
    return 0


def cmd_configs(args) -> int:
    """The configs each installed plugin ships (all scopes, or those named), one per line as ``kdhub train``
    takes it (``graph::demo.yaml``) with the first line of the file's own description; bases (configs
    without a task, only inherited by others) come last, marked. Imports no framework."""
    plugins = get_plugins()
    registry = plugins.registry
    scopes = args.scopes or registry.names("configs")
    if args.scopes:
        roots = {scope: config_folder(scope, plugins) for scope in scopes}  # every unknown name fails before output
    else:  # all of them: one plugin's missing folder is reported, the others are listed
        roots, missing = {}, []
        for scope in scopes:
            try:
                roots[scope] = config_folder(scope, plugins)
            except (ConfigError, RegistryError) as exc:
                missing.append(str(exc))
        for message in missing:
            print(f"kdhub: error: {message}", file=sys.stderr)
    if not scopes:
        print("no installed plugin ships configs")
    for i, (scope, root) in enumerate(roots.items()):
        entry = registry.tables["configs"][scope]
        configs = shipped_configs(root)
        task = f", task {entry.domain}" if entry.domain != scope else ""
        count = f"{len(configs)} config" + ("" if len(configs) == 1 else "s")
        print(("\n" if i else "") + f"{scope}: {count} in {root} (plugin {entry.plugin}{task})")
        width = max([len(scope + SCOPE_SEP + c.name) for c in configs] + [0])
        for c in configs:
            text = ("" if c.runnable else "[base] ") + (c.description or "(no description)")
            print(f"  {scope + SCOPE_SEP + c.name:<{width}}  {text}")
    return 1 if not args.scopes and len(roots) < len(scopes) else 0


def cmd_train(args) -> int:
    loaded = _load(args.config, args.cfg_options)
    task = _task(loaded)
    work_dir = Path(args.work_dir or loaded.work_dir or Path("work_dirs") / loaded.path.stem)
    from . import dist
    try:
        summary = task.train(loaded, work_dir, resume=args.resume, launcher=args.launcher, **_amp(task, args))
    except BaseException:
        dist.shutdown(ok=False)
        raise
    main_rank, launched = dist.is_main(), dist.is_distributed()
    dist.shutdown()
    if main_rank and summary:
        print(f"summary: {work_dir / 'summary.json'}")
        for role in ("teacher", "baseline", "student"):
            if role in summary:
                print(f"  {role}: " + format_metrics(summary[role], sep=", "))
    if launched:
        # Every file is written and closed and the group is destroyed: leave without the interpreter's teardown,
        # in which gloo's threads can still abort a finished worker ("terminate called without an active
        # exception", seen on rank 1 of a two-process detection run), which torchrun reports as a failed run.
        tensorboard.close_all()
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(0)
    return 0


def _amp(task, args) -> dict:
    """``amp=True`` for ``--amp``, nothing otherwise: a third-party task's own ``train()`` may predate the
    option, and then ``--amp`` is refused by name rather than by a TypeError."""
    if not args.amp:
        return {}
    if "amp" not in inspect.signature(task.train).parameters:
        raise UsageError(f"task {type(task).__name__} does not support --amp (its train() takes no amp argument)")
    return {"amp": True}


def cmd_eval(args) -> int:
    from .hub import fetch
    loaded = _load(args.config, args.cfg_options)
    checkpoint = fetch(args.checkpoint, "checkpoint")  # a path as given, or a URL downloaded once into the cache
    if checkpoint.is_dir():
        raise UsageError(f"checkpoint {checkpoint} is a folder; give the checkpoint file (e.g. a run's exported "
                         f"model, or one of its checkpoints)")
    metrics = _task(loaded).evaluate(loaded, checkpoint)
    for k, v in metrics.items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    return 0


def cmd_demo(args) -> int:
    from .logs import run_log
    from .report import demo_record, table_lines, write_demo_json, write_report
    registry = get_plugins().registry
    demos = [e for e in registry.entries("tasks") if e.demo]
    domains = sorted({e.domain for e in demos})
    wanted = args.domains or domains
    if not domains:
        raise UsageError("no domain plugin with a demo is installed; install one, e.g. pip install -e plugins/graph")
    unknown = [d for d in wanted if d not in domains]
    if unknown:
        hint = install_hint(unknown[0], get_plugins())
        raise UsageError(f"demo domain {unknown[0]!r} {hint}" if hint else
                         unknown_name_message("demo domain", unknown[0], domains) + ".")
    work_root = Path(args.work_dir)
    check_work_dir(work_root)
    results, wall_times, started = [], {}, time.perf_counter()
    reused = [d for d in wanted if (work_root / d).is_dir() and any((work_root / d).iterdir())]
    for domain in wanted:
        for entry in demos:
            if entry.domain == domain:
                begun = time.perf_counter()
                with run_log(work_root / domain):
                    res = entry.obj.demo(work_root / domain)
                wall_times[domain] = wall_times.get(domain, 0.0) + time.perf_counter() - begun
                if res is not None:
                    results.append(res)
                    print("\n".join(table_lines(res)) + "\n")
    report = write_report(results, work_root)
    if args.json:
        record = demo_record(results, wall_times, time.perf_counter() - started, reused)
        print(f"record: {write_demo_json(record, Path(args.json))}")
    chart = work_root / "report.png"  # absent when matplotlib is not installed
    print(f"report: {report}" + (f" (plot: {chart})" if chart.is_file() else ""))
    return 0


def cmd_doctor(args) -> int:
    """What kdhub and each installed plugin require (their own metadata) against what is installed, then what
    versions cannot tell: CUDA and NCCL, and each plugin's own probes (``kdhub_doctor``)."""
    from .stack import check_stack, gpu_probes
    checks = check_stack()
    bad = [c for c in checks if not c.ok]
    shown = [c for c in checks if c.direct or not c.ok]  # a dependency's own needs only when unmet
    rows = [(c.package, str(c.specifier) or "any", c.installed or "-", c.state, ", ".join(c.needed_by)) for c in shown]
    widths = [max([len(r[i]) for r in rows] + [1]) for i in range(4)]
    for pkg, spec, have, state, users in rows:
        print(f"{pkg:<{widths[0]}}  requires {spec:<{widths[1]}}  installed {have:<{widths[2]}}  "
              f"{state:<{widths[3]}}  (needed by {users})")
    plugins = get_plugins()
    for info in plugins.broken:
        print(f"plugin {info.name} ({info.distribution}) is broken: {info.error}")
    probes = {p.name: p for p in gpu_probes() + [p for found in plugins.call_each("kdhub_doctor") for p in found]}
    print()
    for probe in probes.values():
        print(f"{probe.name}: {'ok' if probe.ok else 'FAILED'}  {probe.detail}")
    failed = [p for p in probes.values() if not p.ok]
    if bad or failed:
        print("\nTo fix:")
        for c in bad:
            print(f"  {c.fix}")
        for p in failed:
            print(f"  {p.name}: {p.fix}")
        return 1
    passed = "1 run-time check passes" if len(probes) == 1 else f"{len(probes)} run-time checks pass"
    print(f"\nall {len(checks)} requirements of kdhub and its installed plugins are met, and {passed}"
          + (" (but some plugins are broken)" if plugins.broken else ""))
    return 1 if plugins.broken else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kdhub", description="Knowledge distillation across domains.")
    p.add_argument("--version", action="version", version=f"kdhub {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("plugins", help="installed plugins, versions and what each registers")
    s.add_argument("-v", "--verbose", action="store_true", help="show full tracebacks of broken plugins")
    s.set_defaults(func=cmd_plugins)
    sub.add_parser("list", help="tasks, methods (distillers), losses, data sets and config folders") \
        .set_defaults(func=cmd_list)
    s = sub.add_parser("configs", help="the configs installed plugins ship, by name (SCOPE::NAME) and description")
    s.add_argument("scopes", nargs="*", metavar="DOMAIN", help="only these (a domain, or another plugin's scope)")
    s.set_defaults(func=cmd_configs)
    s = sub.add_parser("train", help="train from a config (any installed domain's format)")
    s.add_argument("config", help=CONFIG_HELP)
    s.add_argument("--work-dir", help="where checkpoints and summary.json go (default: the config's own work_dir "
                                      "where its format has one, as mmengine's; else work_dirs/<config name>)")
    s.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")
    s.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the work dir")
    s.add_argument("--launcher", choices=LAUNCHERS, default="none", help="'pytorch' under torchrun, 'slurm' under srun, 'mpi' under mpirun (DDP)")
    s.add_argument("--amp", action="store_true",
                   help="mixed precision: mmengine's AmpOptimWrapper (mm domains, CUDA only), SpeechBrain's "
                        "precision bf16 (speech), bf16 autocast (graph)")
    s.add_argument("--tensorboard", action="store_true",
                   help=f"write TensorBoard event files in each (sub-)run's work dir (same as {tensorboard.ENV}=1; "
                        f"needs the tensorboard extra)")
    _verbose(s)
    s.set_defaults(func=cmd_train)
    s = sub.add_parser("eval", help="evaluate a student checkpoint")
    s.add_argument("config", help=CONFIG_HELP)
    s.add_argument("checkpoint", help="a checkpoint file, or its http(s):// URL (downloaded once into torch.hub's "
                                      "cache)")
    s.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    _verbose(s)
    s.set_defaults(func=cmd_eval)
    s = sub.add_parser("demo", help="teacher vs baseline vs distilled student on embedded data")
    s.add_argument("domains", nargs="*", metavar="DOMAIN")
    s.add_argument("--work-dir", default="work_dirs/demo")
    s.add_argument("--json", metavar="PATH", help="also write the run's record here: each domain's rows and wall "
                                                  "time, the commit and the machine (make demo: results/demo.json)")
    _verbose(s)
    s.set_defaults(func=cmd_demo)
    sub.add_parser("doctor", help="check installed versions against what kdhub and its plugins require") \
        .set_defaults(func=cmd_doctor)
    return p


def _verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="on a bad-input error, also print the full traceback")


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_console(getattr(args, "verbose", False))
    if getattr(args, "tensorboard", False):
        os.environ[tensorboard.ENV] = "1"  # the built-in observer reads it, here and in launched workers
    if not (getattr(args, "verbose", False) or sys.warnoptions):
        for message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
    try:
        return args.func(args)
    except (UsageError,) + USER_ERRORS as exc:
        if getattr(args, "verbose", False) or os.environ.get("KDHUB_DEBUG"):
            traceback.print_exc()
        print(f"kdhub: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdhub: interrupted; checkpoints written so far are complete (--resume continues)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
