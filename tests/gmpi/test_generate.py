"""fk gmpi generate on a tiny checkpoint written in GMPI's format; assets; the command group."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fk_gmpi.generate import parse_seeds
from fk_gmpi.testing import write_gmpi_checkpoint
from PIL import Image


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1,5,9-10") == [1, 5, 9, 10]
    with pytest.raises(Exception, match="seeds"):
        parse_seeds("a-b")


def test_generate_writes_frames_video_depth_planes_and_page(tmp_path):
    from fk.cli.main import main

    write_gmpi_checkpoint(tmp_path / "ck", "depth", resolution=16, n_planes=4)
    out = tmp_path / "gen"
    rc = main(
        [
            "gmpi",
            "generate",
            "--ckpt",
            str(tmp_path / "ck"),
            "--seeds",
            "0-1",
            "--frames",
            "4",
            "--planes",
            "6",
            "--size",
            "32",
            "--truncation",
            "0.7",
            "--trajectory",
            "sphere",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    for seed in ("seed0000", "seed0001"):
        d = out / seed
        assert sorted(p.name for p in (d / "frames").iterdir()) == [f"{i:03d}.png" for i in range(4)]
        assert len(list((d / "depth").iterdir())) == 4
        assert sorted(p.name for p in (d / "planes").iterdir()) == [f"{i:02d}.png" for i in range(6)]
        assert np.asarray(Image.open(d / "planes" / "00.png")).shape == (16, 16, 4)
        video = next(d.glob("video.*"))
        assert video.suffix in (".mp4", ".gif")
        assert video.stat().st_size > 500
        assert (d / "planes_alpha.png").exists()
        assert (d / "depth_video").with_suffix(video.suffix).exists()
        frame = np.asarray(Image.open(d / "frames" / "000.png"))
        assert frame.shape == (32, 32, 3)
        assert frame.std() > 1
    a = np.asarray(Image.open(out / "seed0000" / "frames" / "000.png")).astype(int)
    b = np.asarray(Image.open(out / "seed0001" / "frames" / "000.png")).astype(int)
    assert np.abs(a - b).mean() > 1  # different seeds, different faces
    page = (out / "index.html").read_text()
    assert "seed 0" in page
    assert "seed 1" in page
    assert "seed0000/video" in page
    summary = json.loads((out / "generate.json").read_text())
    assert summary["variant"] == "depth"
    assert summary["planes"] == 6
    assert summary["truncation"] == 0.7


def test_missing_pickle_asset_exits_4_naming_where_it_goes(tmp_path, monkeypatch, capsys):
    from fk.cli.main import main

    monkeypatch.setenv("FK_HOME", str(tmp_path / "home"))
    rc = main(["gmpi", "generate", "--ckpt", "FFHQ256", "--out", str(tmp_path / "o")])
    assert rc == 4
    err = capsys.readouterr().err
    assert "gmpi/stylegan2/ffhq-res256-mirror-paper256-noaug.pkl" in err.replace("\n", "")
    assert not (tmp_path / "o").exists()


def test_doctor_lists_the_five_stylegan2_pickles(tmp_path, monkeypatch, capsys):
    from fk.cli.main import main

    monkeypatch.setenv("FK_HOME", str(tmp_path / "home"))
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    gmpi = {a["name"]: a for a in report["assets"] if a["plugin"] == "gmpi" and "stylegan2" in a["name"]}
    assert sorted(gmpi) == [
        "gmpi/stylegan2/afhqcat.pkl",
        "gmpi/stylegan2/ffhq-res1024-mirror-stylegan2-noaug.pkl",
        "gmpi/stylegan2/ffhq-res256-mirror-paper256-noaug.pkl",
        "gmpi/stylegan2/ffhq-res512-mirror-stylegan2-noaug.pkl",
        "gmpi/stylegan2/metfaces.pkl",
    ]
    assert all(not a["present"] and str(tmp_path / "home") in a["path"] for a in gmpi.values())
    assert "nvlabs-fi-cdn.nvidia.com" in gmpi["gmpi/stylegan2/metfaces.pkl"]["instructions"]


def test_gmpi_help_lists_the_commands(capsys):
    from fk.cli.main import main

    main(["gmpi", "--help"])
    text = capsys.readouterr().out
    for cmd in ("prepare-ffhq", "prepare-metfaces", "generate", "mpi-from-photo"):
        assert cmd in text
