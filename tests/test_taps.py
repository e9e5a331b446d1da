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
