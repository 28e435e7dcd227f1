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


# -- training (fk gmpi train) --------------------------------------------------------------------------
# A tiny GMPI run: 4 planes, 2 views per z, shading from iteration 2 ramping over 4 calls, so every
# branch of the loop (R1, worst view, shading, numbered and latest checkpoints, samples) runs in seconds.
TRAIN_TEST_CONFIG = {
    "GMPI": {
        "TRAIN": {"total_iters": 7, "sample_interval": 3, "model_save_interval": 4,
                  "n_view_per_z_in_train": 2,
                  "aug_with_lighting_start_iter": 2, "aug_with_lighting_grow_n_iters": 4},
        "MPI": {"n_gen_planes": 4},
    }
}


@pytest.fixture(scope="session")
def tiny_train_data(tmp_path_factory):
    """fk's demo head at 8 known poses, 16² (GMPI's FFHQ layout), and a tiny 16² StyleGAN2-ADA pickle."""
    from fk.testing.stylegan2 import write_stylegan2_pickle
    from fk_gmpi.train_data import make_demo_dataset

    root = tmp_path_factory.mktemp("gmpi_train_data")
    make_demo_dataset(root, resolution=16, n_images=8, seed=0)
    pkl = root / "tiny.pkl"
    write_stylegan2_pickle(pkl, resolution=16, z_dim=32, w_dim=32, channel_base=256, channel_max=16,
                           mapping_layers=2, seed=0)
    return root, pkl


@pytest.fixture
def one_thread():
    """One torch thread (exact float order; 2 shared cores run faster so), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
