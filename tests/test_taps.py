"""Feature taps: nested paths, indices, errors with suggestions, cleanup, wrapper unwrapping, values
consumed on read and kept per device."""
import pytest
import torch
from torch import nn

from kdhub.taps import FeatureTaps, TapNotFiredError, TapPathError, resolve, unwrap


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                      nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU()))
        self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.backbone(x).mean((2, 3))
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def test_nested_sequential_and_modulelist_paths():
    net = Net()
    x = torch.randn(2, 3, 5, 5)
    with FeatureTaps(net, ["backbone.2.0", "blocks.1", ""]) as taps:
        out = net(x)
        assert taps["backbone.2.0"].shape == (2, 8, 5, 5)
        assert taps["blocks.1"].shape == (2, 8)
        assert torch.equal(taps[""], out)
        expected = net.blocks[1](net.blocks[0](net.backbone(x).mean((2, 3))))
        assert torch.allclose(taps["blocks.1"], expected)


def test_input_mode_captures_first_argument():
    net = Net()
    with FeatureTaps(net, ["head"], mode="input") as taps:
        net(torch.randn(2, 3, 5, 5))
        assert taps["head"].shape == (2, 8)


def test_wrong_path_lists_closest_valid_names():
    with pytest.raises(TapPathError) as err:
        FeatureTaps(Net(), ["blocks.7"])
    msg = str(err.value)
    assert "blocks.7" in msg and "blocks.1" in msg
    with pytest.raises(TapPathError, match="backbone"):
        resolve(Net(), "backbone.9.9")


def test_hooks_removed_on_close():
    net = Net()
    taps = FeatureTaps(net, ["head", "blocks.0"])
    assert len(net.head._forward_hooks) == 1
    taps.close()
    assert len(net.head._forward_hooks) == 0 and len(net.blocks[0]._forward_hooks) == 0
    net(torch.randn(1, 3, 5, 5))
    assert taps.features == {}


def test_dataparallel_unwrapped():
    net = Net()
    wrapped = nn.DataParallel(net)
    assert unwrap(wrapped) is net
    with FeatureTaps(wrapped, ["blocks.2"]) as taps:
        wrapped(torch.randn(2, 3, 5, 5))
        assert taps["blocks.2"].shape == (2, 8)


def test_detach_for_teacher_features():
    net = Net()
    with FeatureTaps(net, ["head"], detach=True) as taps:
        net(torch.randn(2, 3, 5, 5))
        assert not taps["head"].requires_grad


class Skippy(nn.Module):
    """``b`` runs only when asked: a module that may be skipped in a step."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

    def forward(self, x, skip_b=False):
        x = self.a(x)
        return x if skip_b else self.b(x)


def linear(layer, x):
    """What ``layer`` computes, without calling it (which would fire its tap)."""
    return torch.nn.functional.linear(x, layer.weight, layer.bias)


def test_skipped_module_is_an_error_naming_the_path_not_a_stale_value():
    net = Skippy()
    with FeatureTaps(net, ["a", "b"]) as taps:
        net(torch.ones(1, 2))
        taps["a"], taps["b"]
        x = torch.randn(1, 2)
        net(x, skip_b=True)
        assert torch.equal(taps["a"], linear(net.a, x))
        with pytest.raises(TapNotFiredError, match="tap 'b'") as err:
            taps["b"]
        assert isinstance(err.value, TapPathError)  # the launcher reports it as a user error


def test_a_value_is_consumed_by_reading_it():
    net = Skippy()
    with FeatureTaps(net, ["b"]) as taps:
        x = torch.randn(3, 2)
        net(x)
        assert torch.equal(taps["b"], linear(net.b, linear(net.a, x)))
        with pytest.raises(TapNotFiredError, match="'b'"):
            taps["b"]
        with pytest.raises(TapPathError, match="'c'.*tapped paths: b"):
            taps["c"]


def test_two_forwards_then_one_read_gives_the_second():
    net = Skippy()
    with FeatureTaps(net, ["a", "b"]) as taps:
        first, second = torch.randn(1, 2), torch.randn(1, 2)
        net(first)
        net(second)
        assert torch.equal(taps.pop_all()["b"], linear(net.b, linear(net.a, second)))
        assert taps.features == {}


def test_values_are_kept_per_device():
    """Replicas on different devices (DataParallel) do not overwrite each other's capture."""
    net = nn.Sequential(nn.Identity())  # runs on any device, so one model can see both
    with FeatureTaps(net, ["0"]) as taps:
        on_cpu, on_meta = torch.ones(2), torch.empty(2, device="meta")
        net(on_cpu)
        net(on_meta)
        assert set(taps.features["0"]) == {torch.device("cpu"), torch.device("meta")}
        assert taps.pop("0", device=torch.device("meta")) is on_meta
        assert taps["0"] is on_cpu  # the only one left
        net((on_meta, on_cpu))  # a tuple output is stored under the device of its first tensor
        assert set(taps.features["0"]) == {torch.device("meta")}


class LayerDrop(nn.Module):
    """A block that training can skip (stochastic depth / LayerDrop), then a head."""

    def __init__(self):
        super().__init__()
        self.block, self.head, self.skip = nn.Linear(4, 4), nn.Linear(4, 3), False

    def forward(self, x):
        return self.head(x if self.training and self.skip else self.block(x))


def test_an_unread_evaluation_capture_never_stands_in_for_a_skipped_module_in_the_next_step():
    """An evaluation forward fills the taps and nobody reads them; in the next training step the tapped block is
    skipped. The step must fail naming the path, not compute the feature loss on the evaluation batch."""
    from kdhub import TapAlgorithm, build_terms

    torch.manual_seed(0)
    teacher, student = LayerDrop(), LayerDrop()
    algo = TapAlgorithm(student, teacher, build_terms([{"name": "feat", "student": "block", "teacher": "block",
                                                        "loss": {"type": "mse"}}]))
    algo.eval()
    with torch.no_grad():
        algo.student(torch.randn(2, 4) * 100)
    algo.train()
    student.skip = True
    with pytest.raises(TapNotFiredError, match="'block'"):
        algo.loss(torch.randn(2, 4), torch.tensor([0, 1]))


def test_detach_keeps_a_namedtuple_output():
    from collections import namedtuple

    Out = namedtuple("Out", "main aux")

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            y = self.lin(x)
            return Out(y, 2 * y)

    net = nn.Sequential(Two())
    with FeatureTaps(net, ["0"], detach=True) as taps:
        out = net(torch.randn(2, 3))
        got = taps["0"]
    assert type(got) is Out and not got.main.requires_grad and torch.equal(got.aux, out.aux)


def test_input_tap_of_a_module_called_by_keyword():
    class ByKeyword(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x=None, y=None):
            return self.lin(x if y is None else x + y)

    class Caller(nn.Module):
        def __init__(self, both: bool):
            super().__init__()
            self.inner, self.both = ByKeyword(), both

        def forward(self, x):
            return self.inner(x=x, y=x) if self.both else self.inner(x=x)

    x = torch.randn(2, 3)
    with FeatureTaps(Caller(False), ["inner"], mode="input") as taps:
        taps.model(x)
        assert torch.equal(taps["inner"], x)
    with FeatureTaps(Caller(True), ["inner"], mode="input") as taps, pytest.raises(TapPathError, match="'inner'.*x, y"):
        taps.model(x)


def test_a_failing_pop_all_reads_nothing():
    net = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    with FeatureTaps(net, ["0", "1"]) as taps:
        net[0](torch.randn(1, 3))  # only the first module runs
        with pytest.raises(TapNotFiredError, match="'1'.*still unread: 0"):
            taps.pop_all()
        assert taps["0"].shape == (1, 3)


def test_a_device_given_by_name():
    net = nn.Sequential(nn.Linear(3, 3))
    with FeatureTaps(net, ["0"]) as taps:
        net(torch.randn(1, 3))
        assert taps.pop("0", device="cpu").shape == (1, 3)
