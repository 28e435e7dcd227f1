"""``crop:uvfit-preprocess``: FFHQ-UV's step 1 (ffhquv.md §1.1), saved safely.

Given the photo and a detected face (68 landmarks), it aligns as upstream's ``align_img`` does with
``crop:deep3d`` (through the registry) against HiFi3D++'s ``topo_assets/similarity_Lm3D_all.mat`` when
installed (``lm3d: auto``), else against Deep3D's standard 3-D points (labelled). A ready 224² crop
(``crop`` input) is taken as it is. Per face it writes ``processed_data/<name>.npz`` with upstream's
fields and shapes (instead of a torch pickle ``.pt``):

=================  =================  =================================================================
``img``            (1, 3, 224, 224)   aligned RGB in [0, 1]
``skin_mask``      (1, 1, 224, 224)   Deep3D's YCbCr GMM skin posterior (``fk.models.skin``)
``parse_mask``     (1, 1, 224, 224)   face minus eyes and inner mouth: BiSeNet's when ``79999_iter.pth`` is
                                      installed, else the **landmark polygon** (labelled)
``lm``             (1, 68, 2)         landmarks in 224 px, **y up**, by upstream's ``resize_n_crop`` formula
``M``              (1, 2, 3)          similarity from the aligned 5 points to ArcFace's 112² template
``trans_params``   (5,)               Deep3D's [w0, h0, s, tx, ty]
=================  =================  =================================================================

As upstream, the skin and parse masks are computed on the whole photo, stored as 8-bit images and
brought into the 224² frame by the image's own resize (Pillow bicubic) and crop. Without the photo
(a bare ``crop`` input) they are computed on the crop (labelled). Also written:
``processed_data/<name>.json`` (detector, alignment, mask methods, face box) and the vis strip
``processed_data_vis/<name>.png`` (crop | skin mask | parse overlay | landmarks). Upstream's checks are
kept: only the **largest face** of a photo is fitted (``largest_only``; the others are filtered out,
recorded in the manifest) and a face box of at most 70 x 70 px is rejected as too small.
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
CROP = 224
# The fallback polygon's brows are raised by this fraction of the brow-to-chin height: BiSeNet's face
# reaches the hairline (IoU with upstream's committed masks 0.81-0.94 at 0.4, 0.63-0.66 at the brows).
PARSE_FOREHEAD = 0.4
PARSE_POLYGON = (
    "landmark polygon (no BiSeNet): jaw line closed over the brows raised by 0.4 of the brow-to-chin "
    "height, minus eyes and inner mouth"
)
PARSE_BISENET = "BiSeNet face parsing (79999_iter.pth): face minus eyes and inner mouth, as upstream"
ALIGN_STANDARD = (
    "Deep3D's standard 3-D points (HiFi3D++'s topo_assets/similarity_Lm3D_all.mat not installed: the "
    "face's scale and position in the crop differ from upstream's, by 0.7-2.5 % and 11-21 px on its examples)"
)
PARSING_ASSET = "ffhquv/checkpoints/parsing_model/79999_iter.pth"
LM3D_ASSET = "ffhquv/topo_assets/similarity_Lm3D_all.mat"


def five_points(lm68: np.ndarray) -> np.ndarray:
    """Upstream's 5 points (0-based ids): eye centres mean(36, 39), mean(42, 45), nose 30, mouth 48, 54."""
    from fk.landmarks import five_from_68

    return five_from_68(np.asarray(lm68, np.float64))


def arcface_matrix(lm68_topdown: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity taking the crop's 5 points onto ArcFace's template (skimage's rule)."""
    from fk.geometry.alignment import umeyama

    s, r, t = umeyama(five_points(lm68_topdown), ARCFACE_TEMPLATE)
    return np.concatenate([s * np.asarray(r), np.asarray(t)[:, None]], axis=1)


def landmark_parse_mask(
    lm68: np.ndarray, size: tuple[int, int], forehead: float = PARSE_FOREHEAD
) -> np.ndarray:
    """(H, W) float32 {0, 1}: the landmark face polygon (brows raised by ``forehead``) minus both eyes and
    the inner mouth."""
    from PIL import Image, ImageDraw

    from fk_uvfit.masks import landmark_face_mask

    face = landmark_face_mask(lm68, size, forehead=forehead) > 0.5
    holes = Image.new("L", (size[1], size[0]), 0)
    draw = ImageDraw.Draw(holes)
    for ids in (range(36, 42), range(42, 48), range(60, 68)):
        draw.polygon([tuple(p) for p in np.asarray(lm68, np.float64)[list(ids)].tolist()], fill=255)
    return (face & (np.asarray(holes) == 0)).astype(np.float32)


def _asset(relpath: str) -> Path | None:
    from fk.assets import asset_path

    p = Path(asset_path(relpath))
    return p if p.is_file() else None


class Preprocessor:
    def __init__(
        self,
        largest_only: bool = True,
        min_face: int = MIN_FACE,
        parsing: str = "auto",
        parsing_weights: str | None = None,
        lm3d: str = "auto",
        device: str = "cpu",
    ):
        from fk.errors import AssetMissingError

        self.largest_only = bool(largest_only)
        self.min_face = int(min_face)
        if parsing not in ("auto", "bisenet", "landmarks"):
            raise InputError(
                f"crop:uvfit-preprocess: parsing must be auto, bisenet or landmarks, got {parsing!r}"
            )
        weights = Path(parsing_weights).expanduser() if parsing_weights else _asset(PARSING_ASSET)
        if parsing == "bisenet" and (weights is None or not weights.is_file()):
            raise AssetMissingError(
                f"BiSeNet weights not found ({weights or '$FK_HOME/assets/' + PARSING_ASSET})",
                hint="see `fk doctor` (ffhquv-parsing), or use parsing: landmarks",
            )
        self.parsing_weights = weights if parsing != "landmarks" and weights is not None else None
        if lm3d == "auto":
            found = _asset(LM3D_ASSET)
            self.lm3d = str(found) if found else None
        elif lm3d in ("", "deep3d", None):
            self.lm3d = None
        else:
            if not Path(lm3d).expanduser().is_file():
                raise InputError(
                    f"{lm3d}: no such file", hint="lm3d: a similarity_Lm3D_all.mat path, auto or deep3d"
                )
            self.lm3d = str(Path(lm3d).expanduser())
        self.device = str(device)
        self._net = None
        self._cropper = None

    def parse_net(self):
        """The BiSeNet network, loaded once (weights-only) when its weights are there; else None."""
        if self._net is None and self.parsing_weights is not None:
            from fk.nets.bisenet import load_bisenet

            self._net = load_bisenet(self.parsing_weights).to(self.device)
        return self._net

    def _crop(self, inputs: dict[str, Any], ctx):
        """``crop:deep3d`` from the registry (Deep3D's align_img) with upstream's 3-D reference points."""
        if self._cropper is None:
            from fk.plugins import get_plugin_manager

            factory = get_plugin_manager().component("crop:deep3d").load_factory()
            self._cropper = factory(save=False, lm3d=self.lm3d)
        return self._cropper({"image": inputs["image"], "face": inputs["face"]}, ctx)["crop"]

    def _check_face(self, face, ctx) -> None:
        if face is None:
            return
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

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        from fk.types import Crop, Face

        crop = inputs.get("crop")
        if crop is None:
            if inputs.get("image") is None or inputs.get("face") is None:
                raise InputError(f"{ctx.key}: crop:uvfit-preprocess needs image and face (or a 224² crop)",
                                 hint="wire in: {image: inputs.photos, face: detect.faces}")  # fmt: skip
            face = inputs["face"]
            self._check_face(face if isinstance(face, Face) else None, ctx)
            crop = self._crop(inputs, ctx)
        elif (
            not isinstance(crop, Crop)
            or np.asarray(crop.image).shape != (CROP, CROP, 3)
            or crop.landmarks is None
        ):
            raise InputError(
                f"{ctx.key}: crop:uvfit-preprocess needs a 224² crop with 68 landmarks",
                hint="wire image and face from detect:dlib instead, or use crop:deep3d before it",
            )
        else:
            self._check_face(crop.face, ctx)
        photo = None
        if inputs.get("image") is not None:
            from fk.io import as_rgb

            photo = as_rgb(inputs["image"])
        data, labels = processed_fields(crop, photo, self.parse_net())
        img = np.asarray(crop.image)
        skin, parse = data["skin_mask"][0, 0], data["parse_mask"][0, 0]
        buf = io.BytesIO()
        np.savez(buf, **data)
        key = ctx.key
        npz = ctx.write_bytes(f"processed_data/{key}.npz", buf.getvalue())
        face = crop.face
        meta = {
            **labels,
            "detector": getattr(face, "detector", ""),
            "box": None if face is None else np.asarray(face.box, float).tolist(),
            "landmarks": "68 (dlib)" if getattr(face, "detector", "") == "dlib" else "68",
        }
        if self.parsing_weights is not None and labels["parse_mask"] == PARSE_BISENET:
            meta["parsing_weights"] = str(self.parsing_weights)
        js = ctx.write_json(f"processed_data/{key}.json", meta)
        top_down = np.stack([data["lm"][0, :, 0], CROP - 1 - data["lm"][0, :, 1]], 1)
        vis = ctx.save_image(f"processed_data_vis/{key}.png", vis_strip(img, skin, parse, top_down))

        def rel(p: Path) -> str:
            return Path(os.path.relpath(p, ctx.run_dir)).as_posix()

        return {"crop": crop, "processed": {"npz": rel(npz), "json": rel(js), "vis": rel(vis)}}


def follow_crop(mask: np.ndarray, crop) -> np.ndarray:
    """(224, 224) float32 in [0, 1]: an 8-bit photo-sized mask resized and cropped exactly as the photo was
    (``crop:deep3d``'s ``params['resized']`` and ``['box']``: Pillow bicubic, then the box, zero outside)."""
    from PIL import Image

    size = tuple(int(v) for v in crop.params["resized"])
    box = tuple(int(v) for v in crop.params["box"])
    out = Image.fromarray(mask).resize(size, Image.Resampling.BICUBIC).crop(box)
    return np.asarray(out, np.float32) / 255.0


def processed_arrays(crop, photo: np.ndarray | None = None, parse_net=None) -> dict[str, np.ndarray]:
    """Upstream's processed-data fields (the module docstring): :func:`processed_fields` without labels."""
    return processed_fields(crop, photo, parse_net)[0]


def processed_fields(crop, photo: np.ndarray | None = None, parse_net=None) -> tuple[dict, dict]:
    """Upstream's processed-data fields (see the module docstring) and how each was made.

    ``photo``: the (H, W, 3) uint8 photo the crop was cut from (masks as upstream, on the photo); without it
    the masks are computed on the crop. ``parse_net``: a loaded BiSeNet (else the landmark polygon).
    """
    from fk.cameras.deep3d import deep3d_points_from_source
    from fk.models.skin import skin_mask_uint8, skin_probability

    img = np.asarray(crop.image)
    params = getattr(crop, "params", None) or {}
    tp = params.get("trans_params")
    on_photo = photo is not None and "resized" in params and "box" in params
    src = getattr(getattr(crop, "face", None), "landmarks", None)
    labels = {"alignment": _alignment_label(params, getattr(crop, "method", ""))}
    if tp is not None and src is not None and np.shape(src) == (68, 2):
        h0 = float(tp[1])
        # upstream's detector gives float32 y-up points; its resize_n_crop maps them into the crop
        src_up = np.stack([src[:, 0], h0 - 1 - np.asarray(src[:, 1], np.float64)], 1).astype(np.float32)
        lm_up = deep3d_points_from_source(src_up.astype(np.float64), tp)
        labels["lm"] = "upstream's resize_n_crop landmark formula, y up"
    else:
        lm_up = np.stack([crop.landmarks[:, 0], CROP - 1 - np.asarray(crop.landmarks[:, 1])], 1)
        labels["lm"] = "the crop's landmarks, y up (no source landmarks)"
    lm_top = np.stack([lm_up[:, 0], CROP - 1 - lm_up[:, 1]], 1)
    if on_photo:
        skin = follow_crop(skin_mask_uint8(photo), crop)
        labels["skin_mask"] = "on the photo, 8-bit, resized and cropped with it (upstream)"
    else:
        skin = skin_probability(img.astype(np.float64)).astype(np.float32)
        labels["skin_mask"] = "on the 224² crop (no photo given)"
    if parse_net is not None:
        import cv2
        from fk.nets.bisenet import parse_labels

        from fk_uvfit.masks import ffhquv_parse_mask

        device = str(next(parse_net.parameters()).device)
        if on_photo:  # upstream resizes with OpenCV: the same labels to the last near-tie
            parse = follow_crop(ffhquv_parse_mask(parse_labels(parse_net, photo, device, cv2.resize)), crop)
            labels["parse_mask"] = PARSE_BISENET
        else:
            parse = ffhquv_parse_mask(parse_labels(parse_net, img, device, cv2.resize)) / np.float32(255)
            labels["parse_mask"] = PARSE_BISENET + " (on the 224² crop: no photo given)"
    else:
        parse = landmark_parse_mask(lm_top, img.shape[:2])
        labels["parse_mask"] = PARSE_POLYGON
    data = {
        "img": (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None],
        "skin_mask": skin.astype(np.float32)[None, None],
        "parse_mask": parse.astype(np.float32)[None, None],
        "lm": lm_up.astype(np.float32)[None],
        "M": arcface_matrix(lm_top).astype(np.float32)[None],
        "trans_params": np.asarray(tp if tp is not None else [np.nan] * 5, np.float32),
    }
    return data, labels


def _alignment_label(params: dict, method: str) -> str:
    if "trans_params" not in params:
        return f"{method or 'an unknown'} crop, not Deep3D's align_img (upstream's alignment)"
    lm3d = params.get("lm3d", "deep3d-standard")
    if lm3d == "deep3d-standard":
        return ALIGN_STANDARD
    return f"Deep3D's align_img against {lm3d} (upstream: topo_assets/similarity_Lm3D_all.mat)"


def vis_strip(img: np.ndarray, skin: np.ndarray, parse: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """(224, 896, 3): crop | skin mask | parse mask over the crop | landmarks (as upstream's vis PNG)."""
    from fk_uvfit.views import draw_points

    skin3 = np.repeat(np.clip(skin * 255, 0, 255).astype(np.uint8)[..., None], 3, -1)
    over = img.astype(np.float64).copy()
    alpha = np.clip(parse, 0, 1)[..., None] * 0.5
    over = (1 - alpha) * over + alpha * np.array([60.0, 200.0, 90.0])
    return np.concatenate([img, skin3, over.astype(np.uint8), draw_points(img, lm, (0, 0, 255))], axis=1)


def load_processed(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``processed_data/<name>.npz`` (no pickles: ``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
