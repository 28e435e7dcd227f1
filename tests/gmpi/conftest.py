"""Shared fixtures for the GMPI tests: astronaut faces, a faceless image, a StyleGAN2 zip."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image


def face_images(size: int = 256) -> list[np.ndarray]:
    """Three FFHQ-like crops of scikit-image's astronaut (plain, mirrored, tight) and a faceless gradient."""
    from skimage import data

    photo = data.astronaut()
    face = photo[10:250, 120:360]  # roughly FFHQ's framing of her face
    plain = np.asarray(Image.fromarray(face).resize((size, size), Image.LANCZOS))
    tight = np.asarray(Image.fromarray(photo[30:230, 140:340]).resize((size, size), Image.LANCZOS))
    yy, xx = np.mgrid[:size, :size]
    faceless = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.uint8)
    return [plain, plain[:, ::-1].copy(), faceless, tight]


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def stylegan2_zip(tmp_path):
    """A 4-image StyleGAN2 dataset_tool zip (00000/img0000000N.png + dataset.json); image 2 has no face."""
    path = tmp_path / "ffhq256x256.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, img in enumerate(face_images()):
            zf.writestr(f"00000/img{i:08d}.png", _png(img))
        zf.writestr("dataset.json", '{"labels": null}')
    return path


@pytest.fixture
def metfaces_dir(tmp_path):
    """A MetFaces-like folder of 4 PNGs; b.png has no face."""
    folder = tmp_path / "metfaces1024x1024_xflip"
    folder.mkdir()
    for name, img in zip(["a", "d", "b", "c"], face_images(192), strict=False):
        Image.fromarray(img).save(folder / f"{name}.png")
    return folder
