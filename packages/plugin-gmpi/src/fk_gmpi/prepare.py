"""GMPI's data preparation with GMPI's file layout (gmpi.md §1.1-1.2).

Two stages, as GMPI's scripts (``data_preprocess/prepare_landmarks_*.py`` and the Deep3D fork's
``estimate_pose_*.py``):

1. **Landmarks.** Images in sorted order (FFHQ: the names inside a StyleGAN2 ``dataset_tool`` zip
   with an image extension PIL knows; MetFaces: ``*.png`` of a folder). ``detect:mtcnn`` (fk's
   torch port of ipazc/mtcnn, the package GMPI uses) finds the faces; the first face's 5 keypoints
   (left eye, right eye, nose, mouth left, mouth right) go to
   ``detections/results/<name without extension>.txt`` as ``x<TAB>y`` lines of integers (mtcnn 0.1.1
   truncates with ``int()``); the first face in the mtcnn package's order (confidence), as GMPI's
   ``result[0]``. An image with no face is appended to ``detections/fail_list.txt``
   (FFHQ: the zip-internal path; MetFaces: the basename). Quirks kept: the list is opened for
   writing when the *first* image fails and appended otherwise, and a list holding one blank line
   is written when nothing failed; MetFaces' ``--xflip`` pass (which writes ``<name>_xflip.png``
   mirrors and detects nothing) leaves that blank line in front of the second pass's failures.
   Without ``detect:mtcnn`` installed, ``detect:dlib``'s 68 points are reduced to the same 5
   (eye centres = mean of corners 36/39 and 42/45, nose 30, mouth corners 48/54), labelled in
   ``fk_prepare.json`` and on the console.
2. **Deep3D coefficients.** For every image not in the fail list: the 5 points are read back from
   their file, ``crop:deep3d`` (Deep3D's ``align_img``, which flips y internally exactly as the
   fork's ``H - 1 - y``) makes the 224² crop, ``reconstruct:deep3d`` (R-Net, ``epoch_20.pth``)
   regresses the 257 coefficients and ``export:deep3d`` writes Deep3D's ``.mat`` (``id exp tex angle
   gamma trans lm68``) to ``epoch_20_000000/<zip sub-folder>/<name>.mat``. Without ``epoch_20.pth``,
   ``fit:deep3d`` (fk's analysis-by-synthesis fit, landmarks from ``detect:dlib`` on the crop) is
   used instead: a labelled fallback (``fk_prepare.json``), not R-Net's numbers.

Every component is reached through the registry, never through another plugin's modules.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from fk import atomic
from fk.engine.context import ItemContext
from fk.errors import FkError, InputError
from fk.types import Face

MTCNN_ORDER = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
DLIB_FALLBACK_NOTE = (
    "not detect:mtcnn: 5 points from detect:dlib's 68 landmarks (eye centres, nose "
    "tip, mouth corners), not MTCNN's; files keep GMPI's format"
)
FIT_FALLBACK_NOTE = (
    "deep3d/epoch_20.pth is missing: coefficients from fk's fit:deep3d (analysis-by-synthesis), "
    "not Deep3D's R-Net; angle/trans are comparable, the numbers are not GMPI's"
)


def zip_image_names(path: Path) -> list[str]:
    """Sorted names inside a StyleGAN2 dataset zip whose extension PIL knows (GMPI's filter)."""
    from PIL import Image

    Image.init()
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"{path}: not a readable zip ({exc})", hint="pass a StyleGAN2 dataset_tool zip"
        ) from exc
    return sorted(n for n in names if os.path.splitext(n)[1].lower() in Image.EXTENSION)


def read_zip_image(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    from PIL import Image

    with zf.open(name) as fh:
        return np.asarray(Image.open(io.BytesIO(fh.read())).convert("RGB"))


def five_from_68(lm: np.ndarray) -> np.ndarray:
    """Deep3D's / MTCNN's 5 points from iBUG 68 (0-based): eye centres, nose 30, mouth 48, 54."""
    lm = np.asarray(lm, dtype=np.float64)
    return np.stack([(lm[36] + lm[39]) / 2, (lm[42] + lm[45]) / 2, lm[30], lm[48], lm[54]])


def face_for_five_points(points5: np.ndarray, image_size: tuple[int, int]) -> Face:
    """A :class:`Face` whose 68-point array reduces to exactly ``points5`` under the 5-of-68 rule.

    ``crop:deep3d`` takes 68 landmarks and uses only their 5-point reduction (Deep3D's align_img),
    so the two eye corners of each eye, the nose tip and the mouth corners carry the 5 points and
    the other 59 entries repeat the nose (unused by the crop).
    """
    p = np.asarray(points5, dtype=np.float64)
    lm = np.repeat(p[2:3], 68, axis=0)
    lm[36] = lm[39] = p[0]
    lm[42] = lm[45] = p[1]
    lm[48], lm[54] = p[3], p[4]
    box = np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])
    return Face(box=box, score=1.0, landmarks=lm, image_size=image_size, detector="five-points")


def format_gmpi_points(points5: np.ndarray) -> str:
    """GMPI's txt: ``x<TAB>y`` per line, integers as mtcnn 0.1.1's ``int()`` leaves them."""
    return "".join(f"{int(x)}\t{int(y)}\n" for x, y in np.asarray(points5, dtype=np.float64))


def read_gmpi_points(path: Path) -> np.ndarray:
    try:
        pts = np.loadtxt(path, dtype=np.float32).reshape(-1, 2)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a GMPI landmark file ({exc})", hint="5 lines of 'x<TAB>y'") from exc
    if pts.shape != (5, 2):
        raise InputError(f"{path}: expected 5 points, got {pts.shape[0]}", hint="5 lines of 'x<TAB>y'")
    return pts.astype(np.float64)


class Progress:
    """A rich bar on a terminal, plain lines (every ~5 %) otherwise, on stderr."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = total, label, 0
        self.bar = None
        if sys.stderr.isatty():
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(transient=False)
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)
        self.every = max(1, total // 20)

    def step(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.advance(self.task)
        elif self.done % self.every == 0 or self.done == self.total:
            print(f"{self.label}: {self.done}/{self.total}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@dataclass
class Components:
    """Runners taken from the registry (``stage:name``), built once."""

    detector: Any
    detector_ref: str
    crop: Any
    coeffs: Any
    coeffs_ref: str
    export: Any
    crop_landmarks: Any = None  # detect:dlib for the fit fallback
    notes: list[str] = field(default_factory=list)


def load_components(
    device: str = "cpu",
    fit_iterations: int = 40,
    checkpoint: str | None = None,
    detector: str = "auto",
    coefficients: bool = True,
) -> Components:
    from fk.assets import asset_path
    from fk.plugins import get_plugin_manager

    pm = get_plugin_manager()
    comps = pm.components
    notes: list[str] = []

    def build(ref: str, **params: Any) -> Any:
        comp = pm.component(ref)
        allowed = {p.name for p in comp.params}
        return comp.load_factory()(**{k: v for k, v in params.items() if k in allowed})

    det = None
    if detector == "auto":
        if "detect:mtcnn" in comps:
            try:
                det, detector = build("detect:mtcnn", order="confidence"), "detect:mtcnn"
            except Exception as exc:  # noqa: BLE001 - e.g. the mtcnn package (its weight files) is missing
                notes.append(f"detect:mtcnn unavailable ({type(exc).__name__}: {exc})")
        if det is None:
            detector = "detect:dlib"
    if det is None:
        det = build(detector, order="confidence")  # mtcnn: the package's order, whose first face GMPI takes
    if detector != "detect:mtcnn":
        notes.append(DLIB_FALLBACK_NOTE if detector == "detect:dlib" else f"{detector}'s points, not MTCNN's")
    crop = build("crop:deep3d", save=False)
    export = build("export:deep3d", formats=["mat"])
    ckpt = Path(checkpoint) if checkpoint else asset_path("deep3d/epoch_20.pth")
    if not coefficients:
        coeffs_ref, coeffs, crop_lm = "", None, None
    elif ckpt.exists():
        coeffs_ref = "reconstruct:deep3d"
        coeffs = build(coeffs_ref, checkpoint=str(ckpt), device=device, iterations=0)
        crop_lm = None
    else:
        coeffs_ref = "fit:deep3d"
        coeffs = build(coeffs_ref, device=device, iterations=fit_iterations, init="mean")
        crop_lm = build("detect:dlib", upsample=1)
        notes.append(FIT_FALLBACK_NOTE)
    return Components(det, detector, crop, coeffs, coeffs_ref, export, crop_lm, notes)


def _ctx(out: Path, step_dir: Path, key: str, source: Path | None = None) -> ItemContext:
    step_dir.mkdir(parents=True, exist_ok=True)
    return ItemContext(
        key=key,
        source=source,
        step_id="gmpi-prepare",
        run_dir=out,
        step_dir=step_dir,
        options={"device": "cpu"},
    )


def detect_five(comps: Components, image: np.ndarray, out: Path, key: str) -> np.ndarray | None:
    """The first face's 5 points (MTCNN order), or None when no face is found."""
    try:
        faces = comps.detector({"image": image}, _ctx(out, out / ".fk" / "scratch", key))["faces"]
    except FkError:
        return None
    if not faces:
        return None
    keypoints = getattr(faces[0], "keypoints", None)  # detect:mtcnn's own 5 points
    if keypoints is not None:
        return np.asarray(keypoints, dtype=np.float64)
    lm = np.asarray(faces[0].landmarks, dtype=np.float64)
    return lm if lm.shape == (5, 2) else five_from_68(lm)


@dataclass
class LandmarkPass:
    """Stage 1 over a list of (name as listed in fail_list, txt stem relative to results/, image loader)."""

    out: Path
    comps: Components
    fail_list_exists: bool = False
    failed: list[str] = field(default_factory=list)

    def run(self, items: list[tuple[str, str, Any]]) -> None:
        det_dir = self.out / "detections"
        res_dir = det_dir / "results"
        res_dir.mkdir(parents=True, exist_ok=True)
        fail_path = det_dir / "fail_list.txt"
        bar = Progress(len(items), "landmarks")
        try:
            for i, (listed, stem, load) in enumerate(items):
                pts = detect_five(self.comps, load(), self.out, Path(stem).name)
                if pts is not None:
                    atomic.write_text(res_dir / f"{stem}.txt", format_gmpi_points(pts))
                else:
                    # GMPI opens the list with "w" when image 0 fails, else appends (to what is there)
                    prev = fail_path.read_text() if (i > 0 and fail_path.exists()) else ""
                    atomic.write_text(fail_path, prev + f"{listed}\n")
                    self.failed.append(listed)
                bar.step()
        finally:
            bar.close()
        if not fail_path.exists():
            atomic.write_text(fail_path, "\n")


def read_fail_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines()} if path.exists() else set()


def coefficient_pass(
    out: Path, comps: Components, items: list[tuple[str, str, Any]], coeff_root: Path
) -> list[dict[str, str]]:
    """Stage 2: one Deep3D .mat per image not in fail_list; returns failures [{item, error}]."""
    failed = read_fail_list(out / "detections" / "fail_list.txt")
    todo = [it for it in items if it[0] not in failed]
    problems: list[dict[str, str]] = []
    bar = Progress(len(todo), f"coefficients ({comps.coeffs_ref})")
    try:
        for listed, stem, load in todo:
            try:
                write_coefficients(out, comps, stem, load(), coeff_root)
            except FkError as exc:
                problems.append({"item": listed, "error": str(exc)})
                print(f"{listed}: {exc}", file=sys.stderr)
            bar.step()
    finally:
        bar.close()
    return problems


def write_coefficients(out: Path, comps: Components, stem: str, image: np.ndarray, coeff_root: Path) -> Path:
    pts = read_gmpi_points(out / "detections" / "results" / f"{stem}.txt")
    h, w = image.shape[:2]
    key = Path(stem).name
    ctx = _ctx(out, out / ".fk" / "scratch", key)
    crop = comps.crop({"image": image, "face": face_for_five_points(pts, (h, w))}, ctx)["crop"]
    if comps.crop_landmarks is not None:
        # the fit needs 68 landmarks: dlib on the 224 crop (the crop itself is the 5-point one)
        try:
            faces = comps.crop_landmarks({"image": crop.image}, ctx)["faces"]
        except FkError as exc:
            raise InputError(
                f"{stem}: detect:dlib finds no 68 landmarks on the Deep3D crop for the fallback fit",
                hint="install deep3d/epoch_20.pth for R-Net (fk doctor)",
            ) from exc
        crop = replace(crop, landmarks=np.asarray(faces[0].landmarks, dtype=np.float64))
    recon = comps.coeffs({"crop": crop}, ctx)["recon"]
    sub = Path(stem).parent
    mat_ctx = _ctx(out, coeff_root / "epoch_20_000000" / sub, key)
    files = comps.export({"recon": recon}, mat_ctx)["files"]
    return out / files["mat"]


def finish(out: Path, info: dict[str, Any], stage: LandmarkPass, comps: Components, problems: list,
           skip_coeffs: bool, t0: float) -> dict[str, Any]:
    """Record what was done in ``fk_prepare.json`` (detector, coefficient source, notes) and clean up."""
    info.update({"no_face": stage.failed, "detector": comps.detector_ref,
                 "coefficients": None if skip_coeffs else comps.coeffs_ref, "coefficient_failures": problems,
                 "notes": comps.notes, "seconds": round(time.time() - t0, 1)})
    atomic.write_json(out / "fk_prepare.json", info)
    shutil.rmtree(out / ".fk" / "scratch", ignore_errors=True)
    return info


def prepare_ffhq(zip_path: Path, out: Path, comps: Components, skip_coeffs: bool = False) -> dict[str, Any]:
    """``fk gmpi prepare-ffhq``: detections/ and epoch_20_000000/ for every image of the zip."""
    t0 = time.time()
    names = zip_image_names(zip_path)
    if not names:
        raise InputError(f"{zip_path}: no image inside", hint="pass a StyleGAN2 dataset_tool zip")
    out.mkdir(parents=True, exist_ok=True)
    (out / "detections" / "fail_list.txt").unlink(missing_ok=True)  # GMPI starts from an empty save dir
    with zipfile.ZipFile(zip_path) as zf:
        items = [(n, os.path.splitext(n)[0], (lambda n=n: read_zip_image(zf, n))) for n in names]
        stage = LandmarkPass(out, comps)
        stage.run(items)
        problems = [] if skip_coeffs else coefficient_pass(out, comps, items, out)
    info = {"dataset": "FFHQ", "source": str(zip_path), "images": len(names)}
    return finish(out, info, stage, comps, problems, skip_coeffs, t0)


def _png_list(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"), key=lambda p: str(p))


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def prepare_metfaces(
    data_dir: Path, out: Path, comps: Components, xflip: bool = False, skip_coeffs: bool = False
) -> dict[str, Any]:
    """``fk gmpi prepare-metfaces``: optional mirrors, then detections/ and epoch_20_000000/.

    With ``xflip`` the images and their ``<name>_xflip.png`` mirrors are gathered in
    ``OUT/<data-dir name>/`` (originals hard-linked), never written beside the originals.
    """
    from PIL import Image, ImageOps

    t0 = time.time()
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: not a folder", hint="pass the MetFaces image folder")
    originals = [p for p in _png_list(data_dir) if not p.stem.endswith("_xflip") or not xflip]
    if not originals:
        raise InputError(f"{data_dir}: no *.png image", hint="pass the MetFaces image folder (1024² PNGs)")
    out.mkdir(parents=True, exist_ok=True)
    det_dir = out / "detections"
    (det_dir / "fail_list.txt").unlink(missing_ok=True)
    folder = data_dir
    if xflip:
        folder = out / data_dir.name
        bar = Progress(len(originals), "mirrors")
        for p in originals:
            _link_or_copy(p, folder / p.name)
            mirror = folder / f"{p.stem}_xflip.png"
            if not mirror.exists():
                img = ImageOps.mirror(Image.open(p).convert("RGB"))
                with atomic.atomic_open(mirror, "wb") as fh:
                    img.save(fh, format="PNG")
            bar.step()
        bar.close()
        # GMPI's --xflip pass detects nothing, so it leaves a fail_list.txt holding one blank line
        det_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_text(det_dir / "fail_list.txt", "\n")
    paths = _png_list(folder)

    def loader(p: Path):
        return lambda: np.asarray(Image.open(p).convert("RGB"))

    items = [(p.name, p.stem, loader(p)) for p in paths]
    stage = LandmarkPass(out, comps)
    stage.run(items)
    problems = [] if skip_coeffs else coefficient_pass(out, comps, items, out)
    info = {"dataset": "MetFaces", "source": str(data_dir), "images_folder": str(folder),
            "images": len(paths), "xflip": xflip}
    return finish(out, info, stage, comps, problems, skip_coeffs, t0)

