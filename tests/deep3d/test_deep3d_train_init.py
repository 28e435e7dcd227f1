"""R-Net's ImageNet start (torchvision's resnet50-0676ba61.pth) and the ArcFace identity term in training."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from fk.cli.doctor import collect
from fk.errors import InputError
from fk.nets.reconnet import ReconNet
from fk.nets.resnet import load_imagenet_backbone
from fk.plugins import get_plugin_manager
from fk_deep3d.constants import IMAGENET_RESNET50_ASSET
from fk_deep3d.train import resolve_init_path


def torchvision_resnet50_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with torchvision ResNet-50's names and shapes, written from its architecture:
    stem conv 7x7/64, stages of [3, 4, 6, 3] bottlenecks of width 64..512 (x4 out), downsample on
    block 0 of each stage, fc 2048 -> 1000. Random values."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, out_ch: int, in_ch: int, k: int) -> None:
        state[f"{name}.weight"] = torch.randn(out_ch, in_ch, k, k, generator=g) * 0.05

    def bn(name: str, ch: int) -> None:
        state[f"{name}.weight"] = 1 + 0.1 * torch.randn(ch, generator=g)
        state[f"{name}.bias"] = 0.1 * torch.randn(ch, generator=g)
        state[f"{name}.running_mean"] = 0.1 * torch.randn(ch, generator=g)
        state[f"{name}.running_var"] = 1 + torch.rand(ch, generator=g)
        state[f"{name}.num_batches_tracked"] = torch.tensor(0)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    in_ch = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True), start=1):
        for i in range(blocks):
            p = f"layer{stage}.{i}"
            conv(f"{p}.conv1", width, in_ch, 1)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2", width, width, 3)
            bn(f"{p}.bn2", width)
            conv(f"{p}.conv3", width * 4, width, 1)
            bn(f"{p}.bn3", width * 4)
            if i == 0:
                conv(f"{p}.downsample.0", width * 4, in_ch, 1)
                bn(f"{p}.downsample.1", width * 4)
            in_ch = width * 4
    state["fc.weight"] = torch.randn(1000, 2048, generator=g) * 0.01
    state["fc.bias"] = torch.zeros(1000)
    return state


def test_torchvision_names_map_onto_the_backbone_and_fc_is_dropped(tmp_path):
    state = torchvision_resnet50_state()
    assert len(state) == 320  # torchvision's resnet50 state_dict() has 320 entries
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(state, path)
    net = ReconNet()
    load_imagenet_backbone(net.backbone, path)
    loaded = net.state_dict()
    for key, value in state.items():
        if key.startswith("fc."):
            assert f"backbone.{key}" not in loaded
        else:
            assert torch.equal(loaded[f"backbone.{key}"], value), key
    assert all(torch.count_nonzero(head.weight) == 0 for head in net.final_layers)  # heads stay zero
    # older torchvision files carry no num_batches_tracked: still accepted
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)
    load_imagenet_backbone(ReconNet().backbone, path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_wrong_truncated_or_malicious_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = torchvision_resnet50_state()
    wrong = tmp_path / "resnet18.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("layer4")}, wrong)
    with pytest.raises(InputError, match=r"resnet18\.pth: not torchvision's ResNet-50 state dict: .*missing keys"):
        load_imagenet_backbone(ReconNet().backbone, wrong)
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _RunsCode()}, evil, pickle_module=pickle)
    with pytest.raises(InputError, match=r"evil\.pth: this ImageNet ResNet-50 state dict holds Python objects or code"):
        load_imagenet_backbone(ReconNet().backbone, evil)
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(InputError, match="not found"):
        load_imagenet_backbone(ReconNet().backbone, tmp_path / "absent.pth")


def test_auto_uses_the_asset_when_present_and_doctor_says_where_it_goes(fk_home):
    assert resolve_init_path("auto") is None  # empty FK_HOME: random start
    assert resolve_init_path("none") is None
    target = fk_home / "assets" / IMAGENET_RESNET50_ASSET
    report = collect(get_plugin_manager())  # what `fk doctor --json` prints
    row = next(a for a in report["assets"] if a["name"] == IMAGENET_RESNET50_ASSET)
    assert not row["present"] and "resnet50-0676ba61.pth" in row["instructions"]
    assert row["path"] == str(target)
    target.parent.mkdir(parents=True)
    torch.save(torchvision_resnet50_state(), target)
    assert resolve_init_path("auto") == target


def _identity(tmp_path):
    from fk.nets.arcface import IResNet50, load_identity

    torch.manual_seed(0)
    path = tmp_path / "arcface_r50.pth"
    torch.save(IResNet50().state_dict(), path)
    return load_identity(path), path


def test_identity_term_compares_the_render_warped_by_predicted_landmarks(tmp_path):
    """Deep3D's feat term: ArcFace(render alone, warped by the predicted landmarks) against ArcFace(photo, warped
    by its own landmarks), weight 0.2, 1 - cos."""
    import fk.models
    from fk.cameras.deep3d import IMAGE_SIZE, K_LANDMARKS, opencv_from_deep3d_camera
    from fk.render.mesh import render_mesh
    from fk_deep3d.train import deep3d_loss

    identity, _ = _identity(tmp_path)
    model = fk.models.load_face_model("demo")
    coeffs = model.join_coeffs({"angle": torch.tensor([[0.1, -0.2, 0.05]]), "trans": torch.tensor([[0.1, 0.0, 0.2]])})
    with torch.no_grad():
        out = model(coeffs)
        r = render_mesh(opencv_from_deep3d_camera(out["vertices_cam"]), model.triangles,
                        torch.as_tensor(K_LANDMARKS, dtype=torch.float32), (IMAGE_SIZE, IMAGE_SIZE),
                        vertex_colors=out["colors"], backend="cpu")
    face = r.rgb * r.mask[..., None]  # black around the face, as Deep3D's pred_face
    lm = out["landmarks_2d"]
    batch = {"image": face.permute(0, 3, 1, 2), "mask": torch.ones(1, IMAGE_SIZE, IMAGE_SIZE), "landmarks": lm}
    _, terms = deep3d_loss(model, coeffs, batch, "cpu", identity=identity)
    assert terms["feat"] == pytest.approx(0.0, abs=1e-5)  # the photo is the render: same features

    noise = torch.rand(face.shape, generator=torch.Generator().manual_seed(1))
    photo = face + (1 - r.mask[..., None].float()) * noise  # same face, a busy background
    moved = lm + torch.tensor([3.0, -2.0])  # the photo's landmarks, elsewhere than the predicted ones
    batch = {"image": photo.permute(0, 3, 1, 2), "mask": batch["mask"], "landmarks": moved}
    _, terms = deep3d_loss(model, coeffs, batch, "cpu", identity=identity)
    with torch.no_grad():
        expected = 0.2 * (1 - torch.nn.functional.cosine_similarity(identity(face, lm), identity(photo, moved)))
    assert terms["feat"] == pytest.approx(float(expected), rel=1e-4)
    assert terms["feat"] > 1e-3
    _, without = deep3d_loss(model, coeffs, batch, "cpu")
    assert "feat" not in without and without["color"] == pytest.approx(terms["color"])


@pytest.mark.slow
def test_training_starts_from_imagenet_and_uses_arcface_assets(tmp_path, fk_home, make_dataset):
    """With both files in the asset folder, `fk deep3d train`'s defaults use them, as Deep3D's training does."""
    from fk_deep3d.constants import ARCFACE_ASSET
    from fk_deep3d.train import TrainConfig, train

    assets = fk_home / "assets"
    (assets / "deep3d").mkdir(parents=True)
    imagenet = torchvision_resnet50_state(seed=2)
    torch.save(imagenet, assets / IMAGENET_RESNET50_ASSET)
    _, arcface = _identity(tmp_path)
    arcface.rename(assets / ARCFACE_ASSET)
    make_dataset(tmp_path / "data", n=1)
    result = train(TrainConfig(data=tmp_path / "data", out=tmp_path / "ckpt", model="demo", batch_size=1,
                               max_steps=1, renderer="cpu", augment=False))
    assert "ImageNet ResNet-50" in result["init"] and str(assets / IMAGENET_RESNET50_ASSET) in result["init"]
    assert result["last_terms"]["feat"] > 0
    net = torch.load(tmp_path / "ckpt" / "latest.pth", weights_only=True)["net_recon"]
    # one Adam step (lr 1e-4) moves a weight by at most ~1e-4: the backbone is the ImageNet one
    assert torch.allclose(net["backbone.conv1.weight"], imagenet["conv1.weight"], atol=2e-4)
    assert torch.allclose(net["backbone.layer4.2.conv3.weight"], imagenet["layer4.2.conv3.weight"], atol=2e-4)
