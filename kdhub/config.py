"""Config plumbing shared by every domain: loaded-config record, ``--cfg-options`` parsing, validation.

Domains keep their native formats (their plugin's ``kdhub_load_config`` reads them); what they share is
how a config says which task it is for, how ``k=v`` overrides are parsed, how a config shipped by a plugin
is named (``graph::glnn_cora_sage.yaml``, :func:`resolve_config`), and errors that name the file, the key
and the valid choices instead of a traceback from deep inside a framework.
"""
from __future__ import annotations

import ast
import difflib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .registry import RegistryError, unknown_name_message

if TYPE_CHECKING:
    from .plugins import Plugins

REQUIRED = object()

#: Tasks of the first-party domain plugins, so an unknown task can name the package to install.
KNOWN_TASK_PACKAGES = {
    "detection": "kdhub-detection",
    "segmentation": "kdhub-segmentation",
    "graph": "kdhub-graph",
    "speech": "kdhub-speech",
}


#: ``SCOPE::file`` names a config a plugin ships (:func:`resolve_config`)
SCOPE_SEP = "::"
#: the files of a plugin's config folder that are configs (those ``kdhub configs`` lists)
CONFIG_SUFFIXES = (".py", ".yaml", ".yml", ".json")


class ConfigError(ValueError):
    """A config problem, phrased for the user: file, key, what is wrong and how to fix it."""


def install_hint(domain: str, plugins: "Plugins") -> Optional[str]:
    """For a first-party domain whose plugin is missing: the package that provides it and how to install it
    (or that it is installed but broken), to follow "task 'x'" or "domain 'x'"; None for any other name."""
    if domain not in KNOWN_TASK_PACKAGES:
        return None
    pkg = KNOWN_TASK_PACKAGES[domain]
    mine = [i for i in plugins.info.values() if i.distribution == pkg or i.name == domain]
    if any(i.disabled for i in mine):
        from .plugins import DISABLE_ENV
        return f"belongs to {pkg}, which is installed but disabled by {DISABLE_ENV}; take it out of that variable"
    broken = [i for i in mine if i.error]
    if broken:
        return f"belongs to {pkg}, which is installed but broken: {broken[0].error}"
    return (f"is provided by the {pkg} package, which is not installed. Install it: pip install {pkg} "
            f"(from a checkout: pip install -e plugins/{domain})")


@dataclass
class LoadedConfig:
    """A config as loaded by the plugin that recognised it."""

    task: str
    cfg: Any  # the domain's native object (dict, mmengine Config, hyperpyyaml text + overrides ...)
    path: Path
    method: str = ""
    overrides: List[str] = field(default_factory=list)
    #: the work dir the config itself names (an mmengine config's ``work_dir``), used when ``--work-dir`` is not
    #: given, as mmengine's ``tools/train.py`` does; None: ``work_dirs/<config name>``
    work_dir: Optional[str] = None


_TASK_LINE = re.compile(r"""^task\s*[:=]\s*["']?([A-Za-z0-9_.\-/]+)["']?\s*(?:#.*)?$""", re.M)


def peek_task(path: Path) -> Optional[str]:
    """The value of a top-level ``task`` key, read without executing the file.

    Works for YAML/hyperpyyaml (``task: graph``), mmengine ``.py`` (``task = 'graph'``) and JSON. A ``.py``
    config without one inherits it as mmengine does, from the files its ``_base_`` names (relative to it).
    """
    path = Path(path)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        except json.JSONDecodeError:
            return None
        return data.get("task") if isinstance(data, dict) else None
    for file in inherited_files(path):
        m = _TASK_LINE.search(file.read_text(encoding="utf-8", errors="replace"))
        if m:
            return m.group(1)
    return None


def inherited_files(path: Path) -> List[Path]:
    """``path`` and, for an mmengine ``.py`` config, the local files it inherits through ``_base_`` (relative to
    the file naming them; depth first, each once). A library's configs (``mmdet::...``) are left out."""
    out: List[Path] = []
    todo = [Path(path)]
    while todo:
        file = todo.pop(0)
        if file.resolve() in {p.resolve() for p in out} or not file.is_file():
            continue
        out.append(file)
        if file.suffix == ".py":
            todo = _bases(file) + todo
    return out


def _bases(path: Path) -> List[Path]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_base_" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            names = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
            return [base for n in names if isinstance(n, str) for base in _base_file(path, n)]
    return []


def _base_file(path: Path, name: str) -> List[Path]:
    """The file a ``_base_`` entry of ``path`` names: a path relative to it, or a config a kdhub plugin ships
    (``detection::x.py``); nothing for a library's config (``mmdet::...``) or a shipped name that is not there."""
    if SCOPE_SEP not in name:
        return [path.parent / name]
    from .plugins import get_plugins
    if name.partition(SCOPE_SEP)[0] not in get_plugins().registry.tables["configs"]:
        return []
    try:
        return [resolve_config(name)]
    except ConfigError:
        return []


def parse_value(text: str) -> Any:
    """Parse an override value: numbers, booleans, ``None``/``null``, lists, dicts, or else a string
    (so ``method=none`` stays the string 'none', as in mmengine's ``--cfg-options``). A bracketed list of bare
    words, nested or not (``[[masknet.a,masknet.b]]``), is a list of strings, as mmengine's ``DictAction`` and
    YAML's flow style read it."""
    stripped = text.strip()
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if stripped in ("None", "null", "~"):
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError):
            pass
    if len(stripped) >= 2 and stripped[0] + stripped[-1] in ("[]", "()") and _balanced(stripped):
        inner = stripped[1:-1].strip()
        return [parse_value(item.strip()) for item in _split_top_level(inner)] if inner else []
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for i, char in enumerate(text):
        depth += (char in "[(") - (char in "])")
        if depth < 0 or (depth == 0 and i < len(text) - 1):
            return False
    return depth == 0


def _split_top_level(text: str) -> List[str]:
    """``text`` split at the commas outside brackets."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char in "[(") - (char in "])")
        if char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    return items + [text[start:]]


def parse_overrides(overrides: Sequence[str], source: str = "--cfg-options") -> List[Tuple[str, Any]]:
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{source}: {item!r} is not of the form key=value (e.g. train.epochs=10)")
        key, value = item.split("=", 1)
        out.append((key.strip(), parse_value(value)))
    return out


def apply_overrides(cfg: Dict[str, Any], overrides: Sequence[str], source: str) -> Dict[str, Any]:
    """Set dotted ``key=value`` pairs in a nested dict; the schema check afterwards catches bad keys."""
    for key, value in parse_overrides(overrides):
        node = cfg
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(
                    f"{source}: --cfg-options {key}: '{'.'.join(parts[:i + 1])}' is a "
                    f"{type(nxt).__name__}, not a section, so it has no key '{parts[i + 1]}'"
                )
            node = nxt
        node[parts[-1]] = value
    return cfg


@dataclass
class Field:
    """One config key: expected type(s), default, allowed choices, the smallest and largest allowed numbers (``min``,
    e.g. 1 for a batch size or a number of epochs; ``max``, e.g. 1 for a dropout probability; a bounded number must
    also be finite) and a short help text."""

    type: Any = object
    default: Any = REQUIRED
    choices: Optional[Sequence[Any]] = None
    help: str = ""
    min: Optional[float] = None
    max: Optional[float] = None


Schema = Mapping[str, Any]  # key -> Field or nested Schema


def _type_name(t: Any) -> str:
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {type(None): "null"}.get(t, getattr(t, "__name__", str(t)))


def _coerce(value: Any, want: Any) -> Tuple[bool, Any]:
    wants = want if isinstance(want, tuple) else (want,)
    if object in wants:
        return True, value
    if isinstance(value, bool) and bool not in wants:
        return False, value
    if isinstance(value, wants):
        return True, value
    if float in wants and isinstance(value, int):
        return True, float(value)
    if str in wants and isinstance(value, (int, float)):  # data.root=2024: read as a number, meant as text
        return True, str(value)
    if list in wants and isinstance(value, tuple):
        return True, list(value)
    return False, value


def validate(cfg: Mapping[str, Any], schema: Schema, source: str, prefix: str = "") -> Dict[str, Any]:
    """Check ``cfg`` against ``schema``: unknown keys, missing keys, wrong types, invalid choices.

    Returns a new dict with defaults filled in. Every error names ``source`` (the file), the dotted key
    and what would be valid.
    """
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{source}: '{prefix.rstrip('.') or '<top level>'}' must be a mapping of keys, "
                          f"got {type(cfg).__name__}")
    out: Dict[str, Any] = {}
    for key in cfg:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=2, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr(prefix + c) for c in close)}?)" if close else ""
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'{hint}; valid keys: "
                              f"{', '.join(prefix + k for k in schema)}")
    for key, spec in schema.items():
        dotted = prefix + key
        if isinstance(spec, Mapping):
            out[key] = validate(cfg.get(key) or {}, spec, source, dotted + ".")
            continue
        if key not in cfg:
            if spec.default is REQUIRED:
                help_ = f" ({spec.help})" if spec.help else ""
                raise ConfigError(f"{source}: missing required key '{dotted}'{help_}")
            out[key] = spec.default
            continue
        ok, value = _coerce(cfg[key], spec.type)
        if not ok:
            raise ConfigError(f"{source}: key '{dotted}' must be {_type_name(spec.type)}, "
                              f"got {type(cfg[key]).__name__} {cfg[key]!r}")
        if spec.choices is not None and value not in spec.choices:
            raise ConfigError(f"{source}: {unknown_name_message('value for ' + repr(dotted), value, spec.choices)}")
        bounded = isinstance(value, (int, float)) and (spec.min is not None or spec.max is not None)
        if bounded and not math.isfinite(value):
            raise ConfigError(f"{source}: key '{dotted}' must be a finite number, got {value!r}")
        if bounded and spec.min is not None and value < spec.min:
            raise ConfigError(f"{source}: key '{dotted}' must be at least {spec.min:g}, got {value!r}")
        if bounded and spec.max is not None and value > spec.max:
            raise ConfigError(f"{source}: key '{dotted}' must be at most {spec.max:g}, got {value!r}")
        out[key] = value
    return out


def resolve_path(path: str, source: str) -> Path:
    """A path named in a config: as given (absolute, or relative to the working directory) if it exists, else
    relative to the config file's folder or, for a value an mmengine config inherits, to the folder of a file
    it inherits through ``_base_``."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    for file in inherited_files(Path(source)) or [Path(source)]:
        if (file.parent / p).exists():
            return file.parent / p
    return p


def require_file(path: Optional[str], key: str, source: str, hint: str = "") -> Path:
    """Resolve a file named in a config (see :func:`resolve_path`) or say which key is wrong."""
    if not path:
        raise ConfigError(f"{source}: key '{key}' is empty; {hint or 'give the path of an existing file'}")
    p = resolve_path(path, source)
    if not p.is_file():
        raise ConfigError(f"{source}: key '{key}': file not found: {path}" + (f"; {hint}" if hint else ""))
    return p


@dataclass
class ShippedConfig:
    """One config of a plugin's config folder, as ``kdhub configs`` lists it."""

    name: str  # relative to the folder, '/'-separated: what follows ``SCOPE::``
    path: Path
    description: str  # the first line of the file's own description (see config_description)
    runnable: bool  # it names a task (itself or through _base_); False: a base, only inherited by others


def resolve_config(name, source: Optional[str] = None, key: Optional[str] = None) -> Path:
    """The file a config name means.

    ``SCOPE::file`` names a config shipped by an installed plugin (:meth:`kdhub.registry.Registry.add_configs`;
    each first-party domain ships its configs under its name: ``graph::glnn_cora_sage.yaml``). It is looked up
    in the plugin's installed package, not in a checkout, and no framework is imported for it; ``file`` may
    leave out its suffix when that is unambiguous. Any other name is a path, returned as given or, with
    ``source`` (the config that names it), found as :func:`resolve_path` finds it; the caller checks that it
    exists. A shipped name that cannot be found raises :class:`ConfigError` naming the scope, the folder
    searched and the closest names (prefixed with ``source`` and ``key`` when given).
    """
    scope, sep, rest = str(name).partition(SCOPE_SEP)
    if not sep:
        return resolve_path(str(name), source) if source else Path(name)
    where = f"{source}: key '{key}': " if source and key else ""
    from .plugins import get_plugins

    plugins = get_plugins()
    try:
        root = config_folder(scope, plugins)
    except (ConfigError, RegistryError) as exc:
        raise ConfigError(f"{where}{name}: {exc}") from None
    names = config_names(root)
    found = [n for n in names if n == rest] or [n for n in names if Path(n).with_suffix("").as_posix() == rest]
    if len(found) > 1:
        raise ConfigError(f"{where}{name} is ambiguous: {' and '.join(scope + SCOPE_SEP + n for n in found)}; "
                          f"give the file's suffix")
    if not found:
        raise ConfigError(where + unknown_name_message(
            f"{scope} config", rest, names, f"searched {root}; kdhub configs {scope} lists its {len(names)} configs"))
    return root / found[0]


def config_folder(scope: str, plugins: "Plugins") -> Path:
    """The folder of the configs shipped under ``scope``, or a :class:`ConfigError` saying why there is none:
    the domain's plugin is not installed (which package to install), ships no configs, its declared folder is
    missing from the install, or no such scope."""
    registry = plugins.registry
    if scope in registry.tables["configs"]:
        entry = registry.tables["configs"][scope]
        root = entry.obj.path()
        if not root.is_dir():
            raise ConfigError(f"plugin {entry.plugin!r} ships its {scope} configs in {entry.obj}, but {root} is not "
                              f"installed; reinstall the plugin (its package data lacks the configs)")
        return root
    if scope in registry.tables["tasks"]:
        raise ConfigError(f"domain {scope!r} (plugin {registry.tables['tasks'][scope].plugin!r}) ships no configs "
                          f"by name; give a config file's path")
    hint = install_hint(scope, plugins)
    if hint:
        raise ConfigError(f"domain {scope!r} {hint}")
    raise ConfigError(unknown_name_message("config scope", scope, registry.tables["configs"]) +
                      f" (SCOPE{SCOPE_SEP}file names a config shipped by an installed kdhub plugin; an OpenMMLab "
                      f"library's configs, mmdet{SCOPE_SEP}..., are named inside a config: in _base_ or a "
                      f"model's config key)")


def config_names(root: Path) -> List[str]:
    """The configs in a plugin's config folder, sub-folders included (``_base_/x.py``), as ``/``-separated
    paths relative to it, sorted; Python package files and caches are not configs."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix in CONFIG_SUFFIXES and p.name != "__init__.py"
                  and not any(part.startswith((".", "__pycache__")) for part in p.relative_to(root).parts))


def shipped_configs(root: Path) -> List[ShippedConfig]:
    """Every config of the folder ``root`` with its description; runnable ones first, then bases."""
    out = [ShippedConfig(n, root / n, config_description(root / n), peek_task(root / n) is not None)
           for n in config_names(root)]
    return sorted(out, key=lambda c: (not c.runnable, c.name))


_CODING = re.compile(r"^#.*coding[:=]")


def config_description(path: Path) -> str:
    """A config's one-line description, from the file itself: for a ``.py`` config its module docstring's
    first line if it has one, else the first line of the comment block it starts with (``#`` comments:
    mmengine ``.py``, YAML and hyperpyyaml); "" when it has neither (JSON has no comments)."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    if Path(path).suffix == ".py":
        try:
            doc = ast.get_docstring(ast.parse(text))
        except SyntaxError:
            doc = None
        if doc and doc.strip():
            return doc.strip().splitlines()[0].strip()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#!") or _CODING.match(line):
            continue
        if not line.startswith("#"):
            break
        if line.lstrip("#").strip():
            return line.lstrip("#").strip()
    return ""
