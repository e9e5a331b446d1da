"""Config validation and overrides: errors name the file, the key and the valid choices."""
import pytest

from kdhub.config import ConfigError, Field, apply_overrides, parse_value, peek_task, require_file, validate
from core_helpers import run_kdhub

SCHEMA = {"task": Field(str), "model": {"hidden": Field(int, 64), "norm": Field(str, "none", choices=("none", "batch"))},
          "lr": Field(float, 0.01)}


def test_defaults_filled_and_ints_accepted_as_floats():
    out = validate({"task": "g", "lr": 1}, SCHEMA, "c.yaml")
    assert out == {"task": "g", "model": {"hidden": 64, "norm": "none"}, "lr": 1.0}


@pytest.mark.parametrize("cfg, msg", [
    ({"task": "g", "model": {"hiden": 3}}, "c.yaml: unknown key 'model.hiden' (did you mean 'model.hidden'?)"),
    ({"task": "g", "model": {"hidden": "big"}}, "c.yaml: key 'model.hidden' must be int, got str 'big'"),
    ({"task": "g", "model": {"norm": "layer"}}, "valid choices: batch, none"),
    ({"model": {}}, "c.yaml: missing required key 'task'"),
    ({"task": "g", "lr": True}, "key 'lr' must be float"),
])
def test_errors_name_file_key_and_choices(cfg, msg):
    with pytest.raises(ConfigError) as err:
        validate(cfg, SCHEMA, "c.yaml")
    assert msg in str(err.value)


def test_overrides_parse_types_and_nest():
    cfg = apply_overrides({"a": {"b": 1}}, ["a.b=2.5", "a.c=[1, 2]", "d=true", "e=hello", "f=null"], "x")
    assert cfg == {"a": {"b": 2.5, "c": [1, 2]}, "d": True, "e": "hello", "f": None}
    with pytest.raises(ConfigError, match="not of the form key=value"):
        apply_overrides({}, ["oops"], "x")
    with pytest.raises(ConfigError, match="'a.b' is a int"):
        apply_overrides({"a": {"b": 1}}, ["a.b.c=1"], "x")
    assert parse_value("1e-3") == 1e-3
    assert parse_value("none") == "none" and parse_value("None") is None


def test_peek_task_reads_yaml_py_and_json(tmp_path):
    (tmp_path / "a.yaml").write_text("# c\ntask: graph\nmodel:\n  task: nested\n")
    (tmp_path / "b.py").write_text("_base_ = []\ntask = 'detection'\n")
    (tmp_path / "c.json").write_text('{"task": "toy"}')
    assert [peek_task(tmp_path / n) for n in ("a.yaml", "b.py", "c.json")] == ["graph", "detection", "toy"]


def test_require_file_resolves_relative_to_config(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"x")
    assert require_file("w.pth", "teacher.checkpoint", str(tmp_path / "c.yaml")) == tmp_path / "w.pth"
    with pytest.raises(ConfigError, match="key 'teacher.checkpoint': file not found: missing.pth"):
        require_file("missing.pth", "teacher.checkpoint", str(tmp_path / "c.yaml"))


def test_task_is_inherited_through_base_as_mmengine_does(tmp_path):
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "root.py").write_text("task = 'detection'\nmodel = dict(type='X')\n")
    (tmp_path / "shipped" / "middle.py").write_text("_base_ = './root.py'\nmodel = dict(depth=2)\n")
    (tmp_path / "mine.py").write_text("_base_ = ['mmdet::retinanet/x.py', './shipped/middle.py']\nlr = 0.1\n")
    (tmp_path / "loop_a.py").write_text("_base_ = ['./loop_b.py']\n")
    (tmp_path / "loop_b.py").write_text("_base_ = ['./loop_a.py']\n")
    (tmp_path / "plain.yaml").write_text("_base_: ./shipped/root.py\nlr: 0.1\n")
    assert peek_task(tmp_path / "mine.py") == "detection"      # two levels up, past a library's config
    assert peek_task(tmp_path / "loop_a.py") is None            # a cycle ends, without a task
    assert peek_task(tmp_path / "plain.yaml") is None           # YAML configs state their task themselves


@pytest.mark.parametrize("content, message", [
    (b'{"task": "graph", "method": "glnn"}', "task 'graph' reads its configs in its own format (plugin 'graph'), "
                                             "not as kdhub JSON; start from one it ships (kdhub configs graph)"),
    (b'{"task": ["graph"]}', "key 'task' must be the name of a task (a string), got ['graph']"),
    (b'{"task": "toy", "note": "caf\xe9"}', "not UTF-8 text (byte 28); save the config as UTF-8"),
])
def test_a_json_config_the_core_cannot_hand_on_is_refused_by_name(tmp_path, content, message):
    """The core's JSON loader: a task that reads its own format (graph: YAML), a task that is not a name, a file
    that is not UTF-8: each a clear error naming the file, never a traceback from the task."""
    path = tmp_path / "c.json"
    path.write_bytes(content)
    proc = run_kdhub(["train", path, "--work-dir", tmp_path / "w"], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"kdhub: error: {path}: {message}"
    assert not (tmp_path / "w").exists()


def test_a_field_with_a_minimum_names_the_key_and_the_bound():
    schema = {"training": {"batch_size": Field(int, 8, min=1), "lr": Field(float, 1e-3)}}
    assert validate({"training": {"batch_size": 1, "lr": -1.0}}, schema, "c.yaml")["training"]["batch_size"] == 1
    with pytest.raises(ConfigError, match=r"^c.yaml: key 'training.batch_size' must be at least 1, got 0$"):
        validate({"training": {"batch_size": 0}}, schema, "c.yaml")


@pytest.mark.parametrize("text, value", [
    ("[[masknet.a,masknet.dual_mdl.0]]", [["masknet.a", "masknet.dual_mdl.0"]]),
    ("[a, 1, 2.5, [b, c]]", ["a", 1, 2.5, ["b", "c"]]),
    ("(x,y)", ["x", "y"]),
    ('[["a", "b"]]', [["a", "b"]]),
    ("[a,b]c", "[a,b]c"),
    ("[a]]", "[a]]"),
])
def test_bracketed_bare_words_are_lists_of_strings_as_mmengine_and_yaml_read_them(text, value):
    assert parse_value(text) == value
