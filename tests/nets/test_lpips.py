"""LPIPS-VGG16 (fk.nets.lpips): torchvision's and the lpips package's file layouts load strictly and safely;
the distance follows its definition (zero for equal images, symmetric, linear in the lin weights,
one value per image) and has gradients."""

from __future__ import annotations

import os

import pytest
import torch
from fk.errors import InputError
from fk.nets.lpips import LPIPS, load_lpips


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """A torchvision-named VGG16 state dict (features + a small stand-in classifier entry, ignored) and an
    lpips-named linear-layer file, both random."""
    tmp = tmp_path_factory.mktemp("lpips")
    torch.manual_seed(0)
    net = LPIPS()
    vgg = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("features.")}
    vgg["classifier.6.bias"] = torch.zeros(1000)  # torchvision's file carries the classifier too
    lin = {k: v.abs().clone() for k, v in net.state_dict().items() if k.startswith("lin")}
    torch.save(vgg, tmp / "vgg16-397923af.pth")
    torch.save(lin, tmp / "vgg.pth")
    return tmp / "vgg16-397923af.pth", tmp / "vgg.pth", vgg, lin


def test_loads_torchvision_and_lpips_names(weight_files):
    vgg_path, lin_path, vgg, lin = weight_files
    net = load_lpips(vgg_path, lin_path)
    assert sorted(k for k in vgg if k.startswith("features.")) == sorted(
        k for k in net.state_dict() if k.startswith("features.")
    )
    assert [int(k.split(".")[1]) for k in vgg if k.endswith("weight") and k.startswith("features.")] == [
        0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28,
    ]  # fmt: skip
    torch.testing.assert_close(net.lin4.model[1].weight, lin["lin4.model.1.weight"])
    assert not any(p.requires_grad for p in net.parameters())


def test_distance_definition(weight_files):
    net = load_lpips(*weight_files[:2])
    torch.manual_seed(1)
    a, b = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    d = net(a, b)
    assert d.shape == (2,)
    assert (d > 0).all()
    torch.testing.assert_close(net(a, a), torch.zeros(2))
    torch.testing.assert_close(net(b, a), d)
    with torch.no_grad():
        for i in range(5):
            getattr(net, f"lin{i}").model[1].weight.mul_(2)
    torch.testing.assert_close(net(a, b), 2 * d)
    x = a.clone().requires_grad_(True)
    net(x, b).sum().backward()
    assert x.grad.abs().sum() > 0


def test_refuses_pickled_code_and_wrong_layouts(weight_files, tmp_path):
    vgg_path, lin_path, vgg, _ = weight_files

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "evil.pth"
    torch.save({"features.0.weight": Evil()}, evil)
    with pytest.raises(InputError, match="refuses"):
        load_lpips(evil, lin_path)
    assert not (tmp_path / "pwned").exists()
    short = tmp_path / "short.pth"
    torch.save({k: v for k, v in vgg.items() if k != "features.28.bias"}, short)
    with pytest.raises(InputError, match=r"1 missing.*features\.28\.bias"):
        load_lpips(short, lin_path)
    with pytest.raises(InputError, match="not found"):
        load_lpips(tmp_path / "absent.pth", lin_path)
