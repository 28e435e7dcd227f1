"""R-Net: torchvision-compatible names, exact load of a released-layout checkpoint, clear errors."""

from __future__ import annotations

import pytest
import torch
from fk.errors import InputError
from fk.nets.reconnet import COEFF_SLICES, HEAD_SIZES, HIFI3DPP, ReconNet, load_reconnet, split_coeffs


def _random_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    net = ReconNet()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.02)
        for name, b in net.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                b.normal_(0, 0.1)
    # The released file also holds optimiser and scheduler state beside net_recon.
    torch.save({"net_recon": net.state_dict(), "opt_00": {"state": {}, "param_groups": []},
                "sched_00": {"last_epoch": 20}, "epoch": 20}, path)
    return net.eval()


def test_state_dict_names_follow_torchvision_resnet50():
    keys = ReconNet().state_dict()
    # torchvision ResNet-50 has 320 entries; R-Net drops fc.weight/fc.bias and adds 7 heads × 2.
    backbone = [k for k in keys if k.startswith("backbone.")]
    assert len(backbone) == 318
    assert len([k for k in keys if k.startswith("final_layers.")]) == 14
    for name in ("backbone.conv1.weight", "backbone.bn1.num_batches_tracked",
                 "backbone.layer1.0.downsample.0.weight", "backbone.layer1.0.downsample.1.running_var",
                 "backbone.layer3.5.conv3.weight", "backbone.layer4.2.bn3.bias",
                 "backbone.layer2.0.conv2.weight"):
        assert name in keys, name
    assert "backbone.layer1.1.downsample.0.weight" not in keys
    assert tuple(keys["final_layers.0.weight"].shape) == (80, 2048, 1, 1)
    assert tuple(keys["final_layers.6.weight"].shape) == (1, 2048, 1, 1)
    # ResNet v1.5: stride 2 on the 3x3 conv of the first block of layers 2-4.
    assert ReconNet().backbone.layer2[0].conv2.stride == (2, 2)
    assert ReconNet().backbone.layer2[0].conv1.stride == (1, 1)


def test_untrained_heads_output_zero():
    out = ReconNet().eval()(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 257)
    assert torch.count_nonzero(out) == 0


def test_load_is_exact_and_split_is_right(tmp_path):
    ckpt = tmp_path / "epoch_20.pth"
    ref = _random_checkpoint(ckpt)
    net = load_reconnet(ckpt)
    for k, v in ref.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, expect = net(x), ref(x)
    assert out.shape == (2, 257)
    assert torch.equal(out, expect)
    # Each head's output lands in its own slice: recompute the heads from the pooled feature.
    with torch.no_grad():
        feat = ref.backbone(x)
        heads = [h(feat).flatten(1) for h in ref.final_layers]
    parts = split_coeffs(out)
    assert [p.shape[1] for p in parts.values()] == [80, 64, 80, 3, 27, 3]
    assert torch.allclose(parts["id"], heads[0]) and torch.allclose(parts["gamma"], heads[4])
    assert torch.allclose(parts["trans"][:, :2], heads[5]) and torch.allclose(parts["trans"][:, 2], heads[6][:, 0])
    assert sum(HEAD_SIZES) == 257 == COEFF_SLICES["trans"].stop


def test_ddp_prefixed_checkpoint_loads(tmp_path):
    net = ReconNet()
    torch.save({"net_recon": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "c.pth")
    load_reconnet(tmp_path / "c.pth")


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(InputError, match="epoch_20.pth: Deep3D checkpoint not found"):
        load_reconnet(tmp_path / "epoch_20.pth")


def test_truncated_checkpoint_names_file(tmp_path):
    ckpt = tmp_path / "epoch_20.pth"
    _random_checkpoint(ckpt)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match=r"epoch_20\.pth: this Deep3D checkpoint is truncated or not a torch file") as info:
        load_reconnet(ckpt)
    assert "\n" not in str(info.value)


def test_arbitrary_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"net_recon": Evil()}, path)
    with pytest.raises(InputError, match="evil.pth: this Deep3D checkpoint holds Python objects or code") as info:
        load_reconnet(path)
    assert "weights_only" not in str(info.value) + str(info.value.hint)


def test_wrong_layout_lists_keys(tmp_path):
    state = ReconNet().state_dict()
    state.pop("final_layers.3.bias")
    state["fc.weight"] = torch.zeros(1000, 2048)
    torch.save({"net_recon": state}, tmp_path / "wrong.pth")
    with pytest.raises(InputError, match=r"wrong.pth: .*1 missing keys \(first: final_layers.3.bias\).*fc.weight"):
        load_reconnet(tmp_path / "wrong.pth")
    state = ReconNet().state_dict()
    state["final_layers.0.weight"] = torch.zeros(81, 2048, 1, 1)
    torch.save({"net_recon": state}, tmp_path / "shape.pth")
    with pytest.raises(InputError, match=r"shape.pth: wrong tensor shapes.*final_layers.0.weight"):
        load_reconnet(tmp_path / "shape.pth")


def test_hifi3dpp_layout_has_ffhquv_heads_and_a_relu_on_exp(tmp_path):
    """FFHQ-UV's R-Net (ffhquv.md §1.3): 532/45/439/3/27/2/1 = 1049, exp through a ReLU; loads strictly."""
    torch.manual_seed(0)
    net = ReconNet(HIFI3DPP)
    with torch.no_grad():
        for head in net.final_layers:
            head.bias.normal_(0, 1.0)
    path = tmp_path / "epoch_latest.pth"
    torch.save({"net_recon": net.state_dict()}, path)
    loaded = load_reconnet(path, layout=HIFI3DPP)
    out = loaded(torch.rand(2, 3, 224, 224))
    assert out.shape == (2, 1049)
    parts = split_coeffs(out, HIFI3DPP)
    assert {k: v.shape[-1] for k, v in parts.items()} == {"id": 532, "exp": 45, "tex": 439, "angle": 3,
                                                          "gamma": 27, "trans": 3}
    assert parts["exp"].min() >= 0 and (parts["exp"] == 0).any()  # negative biases clipped by the ReLU
    assert parts["id"].min() < 0  # the other heads are linear
    with pytest.raises(InputError, match=r"epoch_latest.pth: wrong tensor shapes for the Deep3D \(BFM09\) R-Net"):
        load_reconnet(path)  # a HiFi3D++ file is not a Deep3D one
