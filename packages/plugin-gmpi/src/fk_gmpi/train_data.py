"""GMPI's training datasets (gmpi.md §1.3; ``gmpi/datasets.py``) and fk's embedded demo dataset.

Each item is ``(image (3, R, R) in [-1, 1], flat w2c (16,) or (9,))``: ToTensor + Normalize(0.5, 0.5); a
stored size other than R is an error, as GMPI asserts (no resize happens in GMPI's runs). ``--data-root DIR``
holds GMPI's ``runtime_dataset`` layout (the names are the last components of the config's ``DATASET`` paths):

- FFHQ{R}: ``DIR/ffhq{R}x{R}.zip`` (StyleGAN2 ``dataset_tool`` zip; image names with a PIL extension,
  sorted) and ``DIR/ffhq{R}_deep3dface_coeffs/<zip path with .png -> .mat>`` (Deep3D ``angle``, ``trans``),
  names listed in ``ffhq{R}_deep3dface_coeffs/fail_list.txt`` skipped; the camera is GMPI's
  ``compute_w2c_mat_from_estimated_pose_ffhq`` with ``normalize_trans`` (``fk.cameras.gmpi``).
- MetFaces: ``DIR/metfaces1024x1024_xflip/*.png`` (sorted) and
  ``DIR/metfaces_xflip_deep3dface_coeffs/coeffs/<name>.mat`` (+ ``fail_list.txt`` beside ``coeffs/``).
- AFHQCat: ``DIR/afhq_v2_train_cat_512/dataset.json`` (EG3D labels; first 16 = cam2world) and the images
  it names; camera = ``compute_w2c_mat_from_estimated_pose_afhq`` with ``normalize_trans``.

``fk gmpi prepare-ffhq --out P`` writes ``P/epoch_20_000000/00000/*.mat`` and ``P/detections/fail_list.txt``:
move them to ``ffhq{R}_deep3dface_coeffs/`` as GMPI's TRAIN_EVAL.md does (README "GMPI end to end").

Every file is checked when the dataset is built, so a missing coefficient file stops the run before
training with one line naming it. The demo (:func:`make_demo_dataset`) writes the FFHQ layout, so it goes
through the same reader.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from fk.cameras import gmpi as cams
from fk.errors import InputError

DEMO_DATASET = "demo"


def _read_fail_list(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {line.strip() for line in path.read_text().splitlines()}


def _to_tensor(img: np.ndarray, size: int, source: str) -> torch.Tensor:
    if img.ndim != 3 or img.shape[:2] != (size, size):
        raise InputError(
            f"{source}: image is {img.shape[1] if img.ndim > 1 else '?'}x{img.shape[0]}, training "
            f"runs at {size}x{size}",
            hint="use the dataset zip/folder of the training resolution",
        )
    x = torch.from_numpy(np.array(img[..., :3])).permute(2, 0, 1).float() / 255.0
    return (x - 0.5) / 0.5


def _decode(data: bytes, source: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(
            f"{source}: not a readable image ({exc})", hint="replace or remove the file"
        ) from exc


def _flat(w2c: np.ndarray, dim: int) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(w2c, dtype=np.float32))
    return (m[:3, :3] if dim == 9 else m).reshape(-1)


def read_deep3d_pose(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``angle`` (3,) and ``trans`` (3,) of a Deep3D ``.mat``; one-line errors naming the file."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
        return (
            np.asarray(mat["angle"], dtype=np.float64).reshape(3),
            np.asarray(mat["trans"], dtype=np.float64).reshape(3),
        )
    except FileNotFoundError:
        raise InputError(
            f"{path}: missing Deep3D coefficient file",
            hint="run `fk gmpi prepare-ffhq`/`prepare-metfaces` and move epoch_20_000000/ here, "
            "or list the image in fail_list.txt",
        ) from None
    except Exception as exc:  # noqa: BLE001 - scipy's MatReadError, KeyError, ValueError...: one line
        raise InputError(
            f"{path}: not a Deep3D coefficient .mat with angle and trans ({exc})",
            hint="regenerate it with `fk gmpi prepare-ffhq`/`prepare-metfaces`",
        ) from exc


class Deep3dPoseDataset(torch.utils.data.Dataset):
    """Images (zip members or files) with Deep3D poses -> (image, flat GMPI w2c)."""

    def __init__(
        self,
        images: list[tuple[str, str]],
        zip_path: Path | None,
        setup: cams.CameraSetup,
        resolution: int,
        flat_dim: int = 16,
    ):
        self.items = images  # (image name or path, .mat path)
        self.zip_path, self.zip = zip_path, None
        self.resolution, self.flat_dim = resolution, flat_dim
        poses = [read_deep3d_pose(Path(mat)) for _, mat in images]  # every file checked up front
        if not poses:
            raise InputError(f"{zip_path or 'dataset'}: no image to train on", hint="check --data-root")
        angles = np.stack([a for a, _ in poses])
        trans = np.stack([t for _, t in poses])
        self.w2c = cams.w2c_from_deep3d_pose(
            angles, trans, setup.sphere_center_z, setup.sphere_r, normalize_trans=True
        )

    def __len__(self) -> int:
        return len(self.items)

    def _bytes(self, name: str) -> bytes:
        if self.zip_path is None:
            return Path(name).read_bytes()
        if self.zip is None:
            self.zip = zipfile.ZipFile(self.zip_path)
        return self.zip.read(name)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        name = self.items[i][0]
        where = f"{self.zip_path}:{name}" if self.zip_path else name
        img = _decode(self._bytes(name), where)
        return _to_tensor(img, self.resolution, where), _flat(self.w2c[i], self.flat_dim)


class Eg3dLabelDataset(torch.utils.data.Dataset):
    """AFHQCat: images and EG3D ``dataset.json`` labels -> (image, flat GMPI w2c)."""

    def __init__(self, folder: Path, setup: cams.CameraSetup, resolution: int, flat_dim: int = 16):
        labels_file = folder / "dataset.json"
        if not labels_file.exists():
            raise InputError(
                f"{labels_file}: missing", hint="use EG3D's processed afhq_v2_train_cat_512 folder"
            )
        labels = cams.read_eg3d_dataset_json(labels_file)
        self.names = list(labels)  # GMPI keeps the json's order
        for n in self.names:
            if not (folder / n).is_file():
                raise InputError(
                    f"{folder / n}: listed in dataset.json but missing",
                    hint="restore the image or remove its label",
                )
        c2w = np.stack([labels[n][:16].reshape(4, 4) for n in self.names])
        self.w2c = cams.w2c_from_eg3d_cam2world(
            c2w, setup.sphere_center_z, setup.sphere_r, normalize_trans=True
        )
        self.folder, self.resolution, self.flat_dim = folder, resolution, flat_dim

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.folder / self.names[i]
        return _to_tensor(_decode(path.read_bytes(), str(path)), self.resolution, str(path)), _flat(
            self.w2c[i], self.flat_dim
        )


def _require(path: Path, what: str, fix: str) -> Path:
    if not path.exists():
        raise InputError(f"{path}: missing {what}", hint=fix)
    return path


def build_dataset(
    dataset: str,
    data_root: Path,
    resolution: int,
    setup: cams.CameraSetup,
    flat_dim: int = 16,
    paths: dict | None = None,
) -> torch.utils.data.Dataset:
    """GMPI's dataset for ``dataset`` under ``data_root`` (GMPI's ``runtime_dataset`` layout).

    ``paths``: the config's ``DATASET`` section (default: GMPI's); each path's last component is looked up
    under ``data_root`` (FFHQ's ``{}`` filled with the resolution, as ``modify_curriculums`` does).
    """
    from fk_gmpi.prepare import zip_image_names

    root = Path(data_root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder", hint="--data-root is GMPI's runtime_dataset folder")
    if paths is None:
        from fk_gmpi.train_config import GMPI_YML

        paths = GMPI_YML["DATASET"]

    def under_root(kind: str, key: str) -> Path:
        return root / Path(str(paths[kind][key]).format(resolution, resolution)).name

    if dataset.startswith("FFHQ") or dataset == DEMO_DATASET:
        zpath = _require(
            under_root("FFHQ", "TRAIN_DATAROOT"),
            "dataset zip",
            "make it with StyleGAN2's dataset_tool.py (GMPI's TRAIN_EVAL.md)",
        )
        coeffs = _require(
            under_root("FFHQ", "POSE_DATAROOT"),
            "Deep3D coefficient folder",
            "run `fk gmpi prepare-ffhq` and move epoch_20_000000/ there (README)",
        )
        failed = _read_fail_list(coeffs / "fail_list.txt")
        names = [n for n in zip_image_names(zpath) if n not in failed]
        items = [(n, str(coeffs / (n.replace("png", "mat")))) for n in names]  # GMPI's replace("png", "mat")
        return Deep3dPoseDataset(items, zpath, setup, resolution, flat_dim)
    if dataset == "MetFaces":
        folder = _require(
            under_root("MetFaces", "TRAIN_DATAROOT"),
            "MetFaces image folder",
            "the 1024² MetFaces PNGs plus their _xflip mirrors (`fk gmpi prepare-metfaces --xflip`)",
        )
        coeffs = _require(
            under_root("MetFaces", "POSE_DATAROOT"),
            "Deep3D coefficient folder",
            "run `fk gmpi prepare-metfaces` and move epoch_20_000000/ to coeffs/ there (README)",
        )
        failed = _read_fail_list(coeffs / "fail_list.txt")
        pngs = sorted(p for p in os.listdir(folder) if p.endswith("png"))
        items = [
            (str(folder / p), str(coeffs / "coeffs" / p.replace("png", "mat")))
            for p in pngs
            if p not in failed
        ]
        return Deep3dPoseDataset(items, None, setup, resolution, flat_dim)
    if dataset == "AFHQCat":
        folder = _require(
            under_root("AFHQCat", "TRAIN_DATAROOT"),
            "AFHQCat folder",
            "EG3D's processed AFHQv2 cats (dataset.json + images), renamed afhq_v2_train_cat_512",
        )
        return Eg3dLabelDataset(folder, setup, resolution, flat_dim)
    raise InputError(f"unknown dataset {dataset!r}", hint="FFHQ256|FFHQ512|FFHQ1024|AFHQCat|MetFaces or demo")


# ----------------------------------------------------------------------------------------- the demo
def make_demo_dataset(root: Path, resolution: int = 32, n_images: int = 64, seed: int = 0) -> dict:
    """Render fk's demo head at known poses into GMPI's FFHQ layout under ``root``.

    Poses: Deep3D angles with pitch ~ TN(0, 0.127) and yaw ~ TN(0, 0.289) (FFHQ's camera spread, 2 sigma),
    no roll, small translations; the images are the demo head under Deep3D's camera (focal 1015 at 224,
    scaled to ``resolution``), lit by its default ambient light plus a fixed directional SH term, on a
    grey background. Writes ``ffhq{R}x{R}.zip`` (``00000/img%08d.png``), ``ffhq{R}_deep3dface_coeffs/
    00000/img%08d.mat`` (``angle``, ``trans`` and the head's other coefficients) and ``demo_depth.npz``
    (the rendered z-depth in GMPI world units, i.e. Deep3D's / 10, 0 off the head, and the masks).
    """
    import scipy.io
    from fk.cameras.deep3d import CENTER, FOCAL, IMAGE_SIZE, opencv_from_deep3d_camera
    from fk.models.demo import build_demo_head
    from fk.render.mesh import render_mesh
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    setup = cams.camera_setup("FFHQ256")
    pitch = cams.truncated_normal(n_images, 0.0, setup.v_stddev, 2, rng)
    yaw = cams.truncated_normal(n_images, 0.0, setup.h_stddev, 2, rng)
    angles = np.stack([pitch, -yaw, np.zeros(n_images)], -1)  # GMPI's yaw = -angle[1]
    trans = np.concatenate([rng.normal(0, 0.03, (n_images, 2)), rng.normal(0, 0.1, (n_images, 1))], -1)
    model = build_demo_head()
    coeffs = model.zero_coeffs(n_images)
    parts = model.split_coeffs(coeffs)
    parts["angle"] = torch.as_tensor(angles, dtype=coeffs.dtype)
    parts["trans"] = torch.as_tensor(trans, dtype=coeffs.dtype)
    gamma = torch.zeros(n_images, 27)
    gamma[:, [2, 11, 20]] = 0.25  # a light from the upper front (SH band 1 y), same on every image
    gamma[:, [3, 12, 21]] = 0.15
    parts["gamma"] = gamma
    coeffs = model.join_coeffs(parts)
    with torch.no_grad():
        out = model(coeffs)
        v = opencv_from_deep3d_camera(out["vertices_cam"])
        s = resolution / IMAGE_SIZE
        K = torch.tensor([[FOCAL * s, 0, CENTER * s - 0.5], [0, FOCAL * s, CENTER * s - 0.5], [0, 0, 1.0]])
        r = render_mesh(
            v,
            model.triangles,
            K,
            (resolution, resolution),
            vertex_colors=out["colors"].clamp(0, 1),
            backend="cpu",
        )
    mask = r.mask.numpy()
    rgb = np.where(mask[..., None], r.rgb.numpy(), 0.5)
    images = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    coeff_dir = root / f"ffhq{resolution}_deep3dface_coeffs" / "00000"
    coeff_dir.mkdir(parents=True, exist_ok=True)
    zpath = root / f"ffhq{resolution}x{resolution}.zip"
    np_parts = {k: val.numpy() for k, val in model.split_coeffs(coeffs).items()}
    with zipfile.ZipFile(zpath, "w") as zf:
        for i in range(n_images):
            buf = io.BytesIO()
            Image.fromarray(images[i]).save(buf, format="PNG")
            zf.writestr(f"00000/img{i:08d}.png", buf.getvalue())
            scipy.io.savemat(
                str(coeff_dir / f"img{i:08d}.mat"), {k: val[i : i + 1] for k, val in np_parts.items()}
            )
        zf.writestr("dataset.json", json.dumps({"labels": None}))
    np.savez_compressed(
        root / "demo_depth.npz", depth=r.depth.numpy() / 10.0, mask=mask, angles=angles, trans=trans
    )
    (root / f"ffhq{resolution}_deep3dface_coeffs" / "fail_list.txt").write_text("\n")
    return {"zip": str(zpath), "images": n_images, "resolution": resolution, "preview": images[:16]}
