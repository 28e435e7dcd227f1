"""The FID Inception (fk.nets.inception): weight loading by name, refusal of pickled code, TF1 resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fk.errors import InputError
from fk.nets import INCEPTION_FILE
from fk.nets.inception import FidInceptionV3, inception_features, load_fid_inception, resize_bilinear_tf1
from fk.testing.inception import write_fid_inception_weights, write_malicious_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_fid_inception_weights(
        tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    )


def test_parameter_names_are_the_fid_files():
    names = set(FidInceptionV3().state_dict())
    # a sample of pytorch-fid's / torch-fidelity's keys, including the TF-specific blocks
    for key in (
        "Conv2d_1a_3x3.conv.weight",
        "Conv2d_1a_3x3.bn.running_var",
        "Mixed_5b.branch5x5_2.conv.weight",
        "Mixed_6e.branch7x7dbl_5.bn.bias",
        "Mixed_7c.branch3x3dbl_3b.conv.weight",
        "fc.weight",
        "fc.bias",
    ):
        assert key in names
    assert FidInceptionV3().fc.weight.shape == (1008, 2048)
    # torchvision inception_v3 without aux logits (23,834,568) with a 1008-way fc: + 8 x 2049
    assert sum(p.numel() for p in FidInceptionV3().parameters()) == 23_834_568 + 8 * 2049


def test_loader_reads_the_generated_file_and_gives_2048_features(weights):
    net = load_fid_inception(weights)
    state = torch.load(weights, weights_only=True)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    imgs = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    (feats,) = list(inception_features(net, [imgs]))
    assert feats.shape == (2, 2048)
    assert feats.dtype == np.float32
    assert np.all(feats >= 0)
    assert np.abs(feats[0] - feats[1]).max() > 0


def test_loader_accepts_a_file_without_batch_counters(weights, tmp_path):
    state = torch.load(weights, weights_only=True)
    slim = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(slim, tmp_path / "slim.pth")
    load_fid_inception(tmp_path / "slim.pth")


def test_loader_refuses_pickled_code_wrong_names_and_shapes(tmp_path, capfd):
    with pytest.raises(InputError, match="evil.pth: this FID Inception weight file holds Python obj") as err:
        load_fid_inception(write_malicious_weights(tmp_path / "evil.pth"))
    assert INCEPTION_FILE in err.value.hint
    assert "pwned" not in capfd.readouterr().out
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="missing"):
        load_fid_inception(tmp_path / "other.pth")
    state = FidInceptionV3().state_dict()
    state["fc.weight"] = torch.zeros(1000, 2048)
    torch.save(state, tmp_path / "imagenet_fc.pth")
    with pytest.raises(InputError, match="fc.weight"):
        load_fid_inception(tmp_path / "imagenet_fc.pth")
    with pytest.raises(InputError, match="absent.pth: no such FID Inception weight file"):
        load_fid_inception(tmp_path / "absent.pth")


def test_tf1_bilinear_resize_samples_without_half_pixel_offset():
    x = torch.tensor([[0.0, 10.0, 20.0, 30.0]]).reshape(1, 1, 1, 4)
    # TF1 (align_corners=False): output j samples input j * 4/3 -> 0, 1.333, 2.667
    out = resize_bilinear_tf1(x, 1, 3)[0, 0, 0]
    np.testing.assert_allclose(out.numpy(), [0.0, 13.333333, 26.666666], rtol=1e-6)
    # upsampling clamps at the last sample: 2 -> 4 samples input 0, 0.5, 1, 1.5 -> last = input[1]
    y = torch.tensor([[1.0, 3.0]]).reshape(1, 1, 2, 1).expand(1, 1, 2, 2)
    col = resize_bilinear_tf1(y.contiguous(), 4, 2)[0, 0, :, 0]
    np.testing.assert_allclose(col.numpy(), [1.0, 2.0, 3.0, 3.0])
    # same size is the identity; a constant stays constant
    z = torch.rand(2, 3, 7, 5)
    assert torch.equal(resize_bilinear_tf1(z, 7, 5), z)
    assert torch.allclose(resize_bilinear_tf1(torch.full((1, 3, 16, 16), 5.0), 299, 299), torch.tensor(5.0))


def test_forward_refuses_float_images(weights):
    net = load_fid_inception(weights)
    with pytest.raises(ValueError, match="uint8"):
        net(torch.zeros(1, 3, 8, 8))
