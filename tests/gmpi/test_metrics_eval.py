"""``fk gmpi eval`` end to end on a tiny generated GMPI checkpoint and a generated Inception weight file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fk_gmpi.testing import write_gmpi_checkpoint
from PIL import Image


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from fk.testing.inception import write_fid_inception_weights

    root = tmp_path_factory.mktemp("gmpi_eval")
    write_gmpi_checkpoint(root / "ck", "depth", resolution=16, n_planes=4)
    weights = write_fid_inception_weights(root / "inception.pth")
    real = root / "real"
    real.mkdir()
    from skimage import data

    face = Image.fromarray(data.astronaut()[10:250, 120:360])
    for i, size in enumerate((16, 16, 24, 16)):  # one at another size: resized, and noted
        img = face.resize((size, size), Image.LANCZOS)
        (img.transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else img).save(real / f"{i:02d}.png")
    return root, weights, real


def _eval(root, weights, real, out, *extra):
    from fk.cli.main import main

    return main(
        [
            "gmpi",
            "eval",
            "--ckpt",
            str(root / "ck"),
            "--dataset",
            "FFHQ256",
            "--data-root",
            str(real),
            "--inception",
            str(weights),
            "--out",
            str(out),
            "--planes",
            "6",
            "--num-fake",
            "3",
            "--num-real",
            "3",
            "--num-pairs",
            "1",
            "--num-geometry",
            "1",
            "--kid-subsets",
            "3",
            "--fit-iterations",
            "1",
            "--fid-trace-sqrt",
            "eigh",
            *extra,
        ]
    )


def test_eval_writes_every_metric_family_and_a_page(setup, tmp_path):
    root, weights, real = setup
    out = tmp_path / "ev"
    assert _eval(root, weights, real, out) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["settings"]["planes"] == 6
    assert m["settings"]["weights"] == "ema"
    assert m["variant"] == "depth"
    assert m["real"]["images"] == 3
    assert m["real"]["available"] == 4
    assert m["fake"]["images"] == 3
    # 3 images against 2048 dimensions: the symmetric form (scipy's sqrtm of a rank-2 product takes minutes)
    assert np.isfinite(m["fid"])
    assert m["fid"] > 0
    assert m["fid_trace_sqrt"] == "eigh"
    assert m["kid"]["subset_size"] == 3
    assert m["kid"]["subsets"] == 3
    assert any("KID subsets of 3" in n for n in m["notes"])
    ident = m["identity"]
    assert ident["count"] == 1
    assert -1.0 <= ident["mean"] <= 1.0
    assert ident["embedding"].startswith("dlib")
    # a random 16-pixel generator shows no face: the render is skipped and counted, never fatal
    assert m["depth"]["count"] == 0
    assert m["pose"]["count"] == 0
    assert m["pose"]["unit"] == "rad^2"
    assert m["geometry"]["skipped"][0]["image"] == 0
    assert m["depth"]["coefficients"] in ("reconstruct:deep3d", "fit:deep3d")
    page = (out / "index.html").read_text()
    assert "FID" in page
    assert "samples/fake/000000.png" in page
    assert "samples/identity/000000.png" in page
    assert len(list((out / "samples" / "fake").glob("*.png"))) == 3
    assert len(list((out / "samples" / "real").glob("*.png"))) == 3
    assert Image.open(out / "samples" / "identity" / "000000.png").size == (32, 16)  # the two views
    cache = list((out / "cache").glob("real_FFHQ256_n3_*.npy"))
    assert len(cache) == 1
    assert np.load(cache[0]).shape == (3, 2048)
    assert not (out / ".fk").exists() or not any((out / ".fk").rglob("*.png"))

    # a second run reads the real features from the cache and reproduces the numbers
    assert _eval(root, weights, real, out, "--metrics", "fid,kid") == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["real"]["cached"] is True
    assert again["fid"] == pytest.approx(m["fid"], rel=1e-9)
    assert again["kid"]["mean"] == pytest.approx(m["kid"]["mean"], rel=1e-9)
    assert "identity" not in again


def test_eval_without_inception_weights_exits_4_naming_where_they_go(setup, tmp_path, monkeypatch, capsys):
    from fk.cli.main import main

    root, _, real = setup
    monkeypatch.setenv("FK_HOME", str(tmp_path / "home"))
    out = tmp_path / "o"
    rc = main(
        [
            "gmpi",
            "eval",
            "--ckpt",
            str(root / "ck"),
            "--dataset",
            "FFHQ256",
            "--data-root",
            str(real),
            "--out",
            str(out),
        ]
    )
    assert rc == 4
    err = capsys.readouterr().err.replace("\n", "")
    assert "inception/pt_inception-2015-12-05-6726825d.pth" in err
    assert "pytorch-fid" in err
    assert not out.exists()


def test_eval_refuses_bad_options(setup, tmp_path):
    from fk.cli.main import main

    root, weights, real = setup
    base = ["gmpi", "eval", "--ckpt", str(root / "ck"), "--out", str(tmp_path / "o")]
    assert main([*base, "--dataset", "CelebA"]) == 2
    assert (
        main(
            [
                *base,
                "--dataset",
                "FFHQ256",
                "--metrics",
                "fid,lpips",
                "--inception",
                str(weights),
                "--data-root",
                str(real),
            ]
        )
        == 2
    )
    assert main([*base, "--dataset", "FFHQ256", "--inception", str(weights)]) == 2  # FID without --data-root
    assert not (tmp_path / "o").exists()


def test_doctor_names_the_inception_weights(tmp_path, monkeypatch, capsys):
    from fk.cli.main import main

    monkeypatch.setenv("FK_HOME", str(tmp_path / "home"))
    assert main(["doctor", "--json"]) == 0
    assets = {a["name"]: a for a in json.loads(capsys.readouterr().out)["assets"]}
    inc = assets["inception/pt_inception-2015-12-05-6726825d.pth"]
    assert inc["plugin"] == "gmpi"
    assert not inc["present"]
    assert str(tmp_path / "home") in inc["path"]


def test_identity_uses_arcface_when_its_weights_are_given(setup, tmp_path):
    import torch
    from fk.cli.main import main
    from fk.nets.arcface import IResNet50

    root, _, _ = setup
    torch.manual_seed(0)
    torch.save(IResNet50().state_dict(), tmp_path / "arcface_r50.pth")
    out = tmp_path / "id"
    rc = main(
        [
            "gmpi",
            "eval",
            "--ckpt",
            str(root / "ck"),
            "--dataset",
            "FFHQ256",
            "--out",
            str(out),
            "--metrics",
            "identity",
            "--num-pairs",
            "2",
            "--planes",
            "6",
            "--identity",
            "arcface",
            "--arcface",
            str(tmp_path / "arcface_r50.pth"),
        ]
    )
    assert rc == 0
    ident = json.loads((out / "metrics.json").read_text())["identity"]
    assert ident["embedding"].startswith("ArcFace")
    assert ident["count"] == 2
    assert -1.0 <= ident["mean"] <= 1.0
    assert ident["views_without_face"] == 4
    assert "fid" not in json.loads((out / "metrics.json").read_text())


def test_identity_arcface_without_weights_exits_4(setup, tmp_path, monkeypatch, capsys):
    from fk.cli.main import main

    root, _, _ = setup
    monkeypatch.setenv("FK_HOME", str(tmp_path / "home"))
    rc = main(
        [
            "gmpi",
            "eval",
            "--ckpt",
            str(root / "ck"),
            "--dataset",
            "FFHQ256",
            "--out",
            str(tmp_path / "o"),
            "--metrics",
            "identity",
            "--identity",
            "arcface",
        ]
    )
    assert rc == 4
    assert "deep3d/arcface_r50.pth" in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "o").exists()
