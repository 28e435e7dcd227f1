"""``crop:uvfit-preprocess``: FFHQ-UV's step 1 (ffhquv.md §1.1) on a Deep3D crop, saved safely.

Takes the 224² crop of ``crop:deep3d`` (Deep3D's alignment, 102 px/dm) and writes, per face,
``processed_data/<name>.npz`` with upstream's fields and shapes (instead of a torch pickle ``.pt``):

=================  =================  =================================================================
``img``            (1, 3, 224, 224)   aligned RGB in [0, 1]
``skin_mask``      (1, 1, 224, 224)   Deep3D's YCbCr GMM skin posterior (``fk.models.skin``)
``parse_mask``     (1, 1, 224, 224)   face minus eyes and inner mouth; BiSeNet's when its weights and
                                      network are available, else the **landmark polygon** (labelled)
``lm``             (1, 68, 2)         landmarks in 224 px, **y up** (y' = 223 - y), as upstream stores them
``M``              (1, 2, 3)          similarity from the aligned 5 points to ArcFace's 112² template
``trans_params``   (5,)               Deep3D's [w0, h0, s, tx, ty]
=================  =================  =================================================================

plus ``processed_data/<name>.json`` (detector, parse-mask method, face box) and the vis strip
``processed_data_vis/<name>.png`` (crop | skin mask | parse overlay | landmarks). Upstream's checks
are kept: only the **largest face** of a photo is fitted (``largest_only``; the others are filtered
out, recorded in the manifest) and a face box of at most 70 x 70 px is rejected as too small.
Known difference: upstream aligns against HiFi3D++'s ``similarity_Lm3D_all.mat``; ``crop:deep3d``
uses Deep3D's (BFM) standard 3-D landmarks, so crops differ by a few pixels of scale and shift.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from fk.errors import InputError, ItemFiltered

# ArcFace's 112² template (insightface), top-down pixels: L-eye, R-eye, nose, mouth-L, mouth-R.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
MIN_FACE = 70  # px: upstream rejects box areas <= 70 x 70
PARSE_POLYGON = "landmark polygon (no BiSeNet): jaw line closed over the brows, minus eyes and inner mouth"


def five_points(lm68: np.ndarray) -> np.ndarray:
    """Upstream's 5 points (0-based ids): eye centres mean(36, 39), mean(42, 45), nose 30, mouth 48, 54."""
    lm = np.asarray(lm68, np.float64)
    return np.stack([lm[[36, 39]].mean(0), lm[[42, 45]].mean(0), lm[30], lm[48], lm[54]])


def arcface_matrix(lm68_topdown: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity taking the crop's 5 points onto ArcFace's template (skimage's rule)."""
    from fk.geometry.alignment import umeyama

    s, r, t = umeyama(five_points(lm68_topdown), ARCFACE_TEMPLATE)
    return np.concatenate([s * np.asarray(r), np.asarray(t)[:, None]], axis=1)


def landmark_parse_mask(lm68: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 {0, 1}: the landmark face polygon minus both eyes and the inner mouth."""
    from PIL import Image, ImageDraw

    from fk_uvfit.masks import landmark_face_mask

    face = landmark_face_mask(lm68, size) > 0.5
    holes = Image.new("L", (size[1], size[0]), 0)
    draw = ImageDraw.Draw(holes)
    for ids in (range(36, 42), range(42, 48), range(60, 68)):
        draw.polygon([tuple(p) for p in np.asarray(lm68, np.float64)[list(ids)].tolist()], fill=255)
    return (face & (np.asarray(holes) == 0)).astype(np.float32)


class Preprocessor:
    def __init__(self, largest_only: bool = True, min_face: int = MIN_FACE):
        self.largest_only = bool(largest_only)
        self.min_face = int(min_face)

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        from fk.types import Crop

        crop = inputs["crop"]
        if (
            not isinstance(crop, Crop)
            or np.asarray(crop.image).shape != (224, 224, 3)
            or crop.landmarks is None
        ):
            raise InputError(
                f"{ctx.key}: crop:uvfit-preprocess needs a 224² crop with 68 landmarks",
                hint="use detect:dlib then crop:deep3d before it",
            )
        face = crop.face
        if face is not None:
            if self.largest_only and face.index != 0:
                raise ItemFiltered(
                    f"not the largest face of its photo (face {face.index}); FFHQ-UV fits one face",
                    details={"face_index": face.index},
                )
            x0, y0, x1, y1 = np.asarray(face.box, np.float64)
            if (x1 - x0) * (y1 - y0) <= self.min_face * self.min_face:
                raise InputError(
                    f"{ctx.key}: face detected is too small ({x1 - x0:.0f} x {y1 - y0:.0f} px; "
                    f"FFHQ-UV needs more than {self.min_face} x {self.min_face})",
                    hint="use a larger photo of the face",
                )
        img = np.asarray(crop.image)
        lm = np.asarray(crop.landmarks, np.float64)
        data = processed_arrays(crop)
        skin, parse = data["skin_mask"][0, 0], data["parse_mask"][0, 0]
        buf = io.BytesIO()
        np.savez(buf, **data)
        key = ctx.key
        npz = ctx.write_bytes(f"processed_data/{key}.npz", buf.getvalue())
        meta = {
            "parse_mask": PARSE_POLYGON,
            "detector": getattr(face, "detector", ""),
            "box": None if face is None else np.asarray(face.box, float).tolist(),
            "alignment": "crop:deep3d (Deep3D's BFM 3-D landmarks)",
            "landmarks": "68 (dlib)",
        }
        js = ctx.write_json(f"processed_data/{key}.json", meta)
        vis = ctx.save_image(f"processed_data_vis/{key}.png", vis_strip(img, skin, parse, lm))

        def rel(p: Path) -> str:
            return Path(os.path.relpath(p, ctx.run_dir)).as_posix()

        return {"crop": crop, "processed": {"npz": rel(npz), "json": rel(js), "vis": rel(vis)}}


def processed_arrays(crop) -> dict[str, np.ndarray]:
    """Upstream's processed-data fields from a 224² crop with 68 landmarks (see the module docstring)."""
    from fk.models.skin import skin_probability

    img = np.asarray(crop.image)
    lm = np.asarray(crop.landmarks, np.float64)
    skin = skin_probability(img.astype(np.float64))
    parse = landmark_parse_mask(lm, img.shape[:2])
    return {
        "img": (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None],
        "skin_mask": skin.astype(np.float32)[None, None],
        "parse_mask": parse[None, None],
        "lm": np.stack([lm[:, 0], 223.0 - lm[:, 1]], 1).astype(np.float32)[None],
        "M": arcface_matrix(lm).astype(np.float32)[None],
        "trans_params": np.asarray(crop.params.get("trans_params", [np.nan] * 5), np.float32),
    }


def vis_strip(img: np.ndarray, skin: np.ndarray, parse: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """(224, 896, 3): crop | skin mask | parse mask over the crop | landmarks (as upstream's vis PNG)."""
    from fk_uvfit.views import draw_points

    skin3 = np.repeat(np.clip(skin * 255, 0, 255).astype(np.uint8)[..., None], 3, -1)
    over = img.astype(np.float64).copy()
    over[parse > 0.5] = 0.5 * over[parse > 0.5] + 0.5 * np.array([60.0, 200.0, 90.0])
    return np.concatenate([img, skin3, over.astype(np.uint8), draw_points(img, lm, (0, 0, 255))], axis=1)


def load_processed(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``processed_data/<name>.npz`` (no pickles: ``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
