"""BiSeNet (face-parsing.PyTorch): the released file's key layout loads strictly; malicious files refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fk.errors import InputError
from fk.nets import bisenet
from fk.testing.bisenet import original_layout, write_bisenet_checkpoint


class _Evil:
    def __reduce__(self):
        return (open, ("evil_ran", "w"))


@pytest.mark.parametrize(("legacy", "counters"), [(False, True), (True, True), (True, False)])
def test_a_checkpoint_in_the_original_layout_loads_every_tensor(tmp_path, legacy, counters):
    path = tmp_path / "79999_iter.pth"
    state = write_bisenet_checkpoint(path, legacy=legacy, batch_counters=counters)
    net = bisenet.load_bisenet(path)
    got = net.state_dict()
    assert [k for k, _ in original_layout()] == list(got)  # same names, same order
    for key, value in state.items():
        assert torch.equal(got[key], value), key
    assert not net.training


def test_missing_or_misshapen_tensors_are_named_errors(tmp_path):
    state = write_bisenet_checkpoint(tmp_path / "ok.pth")
    bad = dict(state)
    bad.pop("ffm.conv1.weight")
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="bad.pth: not face-parsing.PyTorch's 19-class BiSeNet"):
        bisenet.load_bisenet(tmp_path / "bad.pth")
    bad = dict(state)
    bad["conv_out.conv_out.weight"] = torch.zeros(18, 256, 1, 1)  # 18 classes
    torch.save(bad, tmp_path / "18.pth")
    with pytest.raises(InputError, match="18.pth: not face-parsing"):
        bisenet.load_bisenet(tmp_path / "18.pth")
    torch.save({"module": state}, tmp_path / "wrapped.pth")
    with pytest.raises(InputError, match="wrapped.pth: not face-parsing"):
        bisenet.load_bisenet(tmp_path / "wrapped.pth")


def test_a_malicious_file_is_refused_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused = "this BiSeNet weight file holds Python objects or code, not only tensors: fk refuses it"
    torch.save({"x": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(InputError, match=f"evil.pth: {refused}") as err:
        bisenet.load_bisenet(tmp_path / "evil.pth")
    assert "79999_iter.pth" in err.value.hint
    assert "\n" not in str(err.value)
    torch.save({"x": _Evil()}, tmp_path / "evil_legacy.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(InputError, match=f"evil_legacy.pth: {refused}"):
        bisenet.load_bisenet(tmp_path / "evil_legacy.pth")
    assert not (tmp_path / "evil_ran").exists()


def test_parse_labels_follows_get_seg_img(tmp_path):
    """512² input, truncated to uint8, ImageNet normalisation; logits resized back to the photo, argmax."""
    seen = {}

    class Probe(torch.nn.Module):  # class 10 where the input is bright, else 1
        def forward(self, x):
            seen["x"] = x
            bright = (x.mean(1, keepdim=True) > 0).float()
            out = torch.zeros(1, 19, *x.shape[2:])
            out[:, 10:11] = bright
            out[:, 1:2] = 1 - bright
            return out

    rgb = np.zeros((300, 200, 3), np.float32)
    rgb[:, 100:] = 250.7  # right half bright; the float value truncates to 250
    labels = bisenet.parse_labels(Probe(), rgb)
    assert labels.shape == (300, 200)
    assert labels.dtype == np.int64
    assert (labels[:, :95] == 1).all()
    assert (labels[:, 105:] == 10).all()
    x = seen["x"]
    assert x.shape == (1, 3, 512, 512)
    expect = (250.0 / 255.0 - np.array(bisenet.MEAN)) / np.array(bisenet.STD)
    np.testing.assert_allclose(x[0, :, 0, -1].numpy(), expect, rtol=1e-5)
    calls = []

    def nearest(a, size):  # a stand-in for cv2.resize: f(HxWxC, (width, height))
        calls.append((a.shape, size))
        rows = (np.arange(size[1]) * a.shape[0] // size[1])[:, None]
        return a[rows, (np.arange(size[0]) * a.shape[1] // size[0])[None]]

    again = bisenet.parse_labels(Probe(), rgb, resize=nearest)
    assert calls == [((300, 200, 3), (512, 512)), ((512, 512, 19), (200, 300))]
    assert again.dtype == np.int64
    assert (again[:, :95] == 1).all()
    assert (again[:, 105:] == 10).all()
    np.testing.assert_allclose(seen["x"][0, :, 0, -1].numpy(), expect, rtol=1e-5)  # truncated, normalised
    with pytest.raises(ValueError, match=r"expected \(H, W, 3\)"):
        bisenet.parse_labels(Probe(), rgb[..., 0])


def test_real_network_runs_on_a_photo(tmp_path):
    write_bisenet_checkpoint(tmp_path / "w.pth", seed=3)
    net = bisenet.load_bisenet(tmp_path / "w.pth")
    from fk.io import load_image
    from fk.testing import astronaut_path

    labels = bisenet.parse_labels(net, load_image(astronaut_path())[:128, :96])
    assert labels.shape == (128, 96)
    assert labels.min() >= 0
    assert labels.max() < 19
