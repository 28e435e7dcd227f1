"""Shared data for the align tests: the astronaut photo, its dlib face, synthetic blob images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def astro_path() -> Path:
    from fk.testing import astronaut_path

    return astronaut_path()


@pytest.fixture(scope="session")
def astro_rgb(astro_path: Path) -> np.ndarray:
    from fk.io import load_image

    return load_image(astro_path)


@pytest.fixture(scope="session")
def astro_face(astro_path: Path):
    """The astronaut's face from detect:dlib (the largest of dlib's detections)."""
    from fk_align.dlib_detect import DlibDetector

    return DlibDetector(upsample=1).find_faces(astro_path)[0]


@pytest.fixture(scope="session")
def astro2x_path(astro_rgb: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The astronaut upscaled to 1024^2 (bicubic), large enough for LPFF's 512 px low-res reject."""
    from PIL import Image

    path = tmp_path_factory.mktemp("astro2x") / "astronaut2x.png"
    Image.fromarray(astro_rgb).resize((1024, 1024), Image.Resampling.BICUBIC).save(path)
    return path


def blob_image(shape: tuple[int, int], points: np.ndarray, sigma: float) -> np.ndarray:
    """A black RGB image with a white Gaussian blob centred on each (x, y) point (pixel centres)."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    img = np.zeros((h, w))
    for x, y in points:
        img = np.maximum(img, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)))
    return np.repeat(np.rint(img * 255).astype(np.uint8)[:, :, None], 3, axis=2)


def blob_centroid(image: np.ndarray, near: np.ndarray, radius: float) -> np.ndarray:
    """Intensity-weighted centre (x, y) of the blob within ``radius`` px of ``near``."""
    g = image[..., 0].astype(np.float64) if image.ndim == 3 else image.astype(np.float64)
    h, w = g.shape
    yy, xx = np.mgrid[:h, :w]
    window = ((xx - near[0]) ** 2 + (yy - near[1]) ** 2) <= radius**2
    wts = g * window
    return np.array([(wts * xx).sum() / wts.sum(), (wts * yy).sum() / wts.sum()])
