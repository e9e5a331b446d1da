"""Feature taps: nested paths, indices, errors with suggestions, cleanup, wrapper unwrapping."""
import pytest
import torch
from torch import nn

from kdhub.taps import FeatureTaps, TapPathError, resolve, unwrap


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
