"""The no-weights demo: photo -> face fit -> depth -> MPI -> novel views (fk gmpi mpi-from-photo)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fk.cameras import gmpi as cams
from fk_gmpi.mpi import render_mpi
from fk_gmpi.photo import mpi_from_photo


def test_frontal_view_gives_the_photo_back_and_depth_follows_the_surface():
    rng = np.random.default_rng(0)
    size = 32
    image = rng.random((size, size, 3))
    K = cams.intrinsics(12.6, size, size)
    yy, xx = np.mgrid[:size, :size]
    mask = (xx - 15.5) ** 2 + (yy - 15.5) ** 2 < 100
    depth = np.where(mask, 0.95 + 0.0005 * ((xx - 15.5) ** 2 + (yy - 15.5) ** 2), 0.0)
    rgba, dhw, near, far = mpi_from_photo(image, depth, mask, K, n_planes=16, pad=8, smooth=0)
    assert rgba.shape == (16, 4, 48, 48)
    assert near < depth[mask].min()
    assert far > depth[mask].max()
    np.testing.assert_allclose(rgba[-1, 3], 1.0)
    out = render_mpi(
        rgba[None], dhw, torch.eye(4, dtype=torch.float64)[None, None], torch.from_numpy(K), (size, size)
    )
    np.testing.assert_allclose(out.rgb[0, 0].permute(1, 2, 0).numpy(), image, atol=1e-6)
    np.testing.assert_allclose(out.alpha[0, 0, 0], 1.0, atol=1e-6)
    # expected depth lands on the plane just behind the surface: within one plane gap
    gap = np.diff(dhw[:, 0].numpy()).max()
    d = out.depth[0, 0, 0].numpy()
    assert np.all(d[mask] >= depth[mask] - 1e-9)
    assert np.all(d[mask] <= depth[mask] + gap)
    np.testing.assert_allclose(d[~mask], far, rtol=1e-6)


@pytest.mark.slow
def test_mpi_from_photo_command_on_the_astronaut(tmp_path):
    from fk.cli.main import main

    out = tmp_path / "demo"
    rc = main(
        [
            "gmpi",
            "mpi-from-photo",
            "--out",
            str(out),
            "--frames",
            "4",
            "--planes",
            "8",
            "--size",
            "64",
            "--iterations",
            "2",
        ]
    )
    assert rc == 0
    item = out / "mpi" / "astronaut_00"
    assert sorted(p.name for p in (item / "frames").iterdir()) == ["000.png", "001.png", "002.png", "003.png"]
    assert len(list((item / "depth").iterdir())) == 4
    assert len(list((item / "planes").iterdir())) == 8
    video = next(item.glob("video.*"))
    assert video.suffix in (".mp4", ".gif")
    assert video.stat().st_size > 1000
    page = (out / "index.html").read_text()
    assert "Not a GMPI generation" in page
    assert "astronaut_00" in page
    from PIL import Image

    frames = [np.asarray(Image.open(item / "frames" / f"{i:03d}.png")) for i in range(4)]
    assert frames[0].shape == (64, 64, 3)
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 2  # the views differ
    assert json.loads((out / "failures.json").read_text()) == []
