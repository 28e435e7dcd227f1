"""FFHQ-UV's ``cropface630resize1024`` variant (ffhquv.md §1.7): a texture GAN that makes only the face.

Facts (upstream ``RGB_Fitting/network/texgan_cropface630resize1024.py``,
``model/ours_fit_model_cropface630resize1024.py``, ``utils/mesh_utils.py``, ``utils/laplacian_pyramid.py``):

- the decoder ``texgan_cropface630resize1024_ffhq_uv_interpolate.pth`` (same architecture as
  ``texgan_ffhq_uv.pth``) was trained on the 630 x 630 face crop of FFHQ-UV-Interpolate's 1024² maps,
  resized to 1024;
- **what the fit renders** (differentiable in the GAN output): ``template_base_uv.png`` resized to 1664²
  (PIL bicubic), the 1024² GAN output pasted at rows 187-1210, cols 317-1340; blended with the template
  colour-matched to that map (YUV, inside ``minor_valid_whole_mask`` > 0.5; the match is a constant of the
  step, computed from the detached map) by the minor mask box-blurred 49 x 49; the ``hair_mask`` region
  covered with the raw template (box blur 23, keep = 1, box blur 23); bilinear resize to 1024
  (``align_corners=False``);
- **what is saved and shown** (``stage{2,3}_uv.png``, ``stage{2,3}_vis.png``, the meshes' texture): that
  1024² map blended once more, non-differentiably, with the template resized to 1024 and colour-matched
  inside ``major_valid_whole_mask``: a 5-level Laplacian pyramid blend by the major mask box-blurred
  31·r (r = size/1024, kernel made odd), clipped to [0, 255], then the hair region covered with the raw
  template (box blur 15·r, keep = 1, box blur 15·r);
- ``stage{2,3}_uv_no_blend.png``: the GAN output itself.

Colour matching (``match_color_in_yuv``): both maps to YUV (scikit-image's BT.601 matrix), the template
normalised by its mean/std inside the mask, then scaled to the map's std / 1.5 and shifted to its mean,
back to RGB, clipped to [0, 255]. Box blurs, the pyramid's 5-tap binomial filter and the mask pyramid's
5 x 5 Gaussian (sigma 1) are OpenCV's, with its default border (reflect-101), as upstream.

fk's additions: a decoder of another resolution than 1024 (a texture GAN you trained, csbhr/FFHQ-UV issue
#43; tests' tiny decoders) is resized to 1024 (bilinear) before the paste; every 1664² constant is made
once per run on the fit's device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from fk.errors import InputError

WORK_SIZE = 1664  # upstream's canvas for the paste and the differentiable blend
FACE_SIZE = 1024  # the GAN output pasted into it
PASTE_ROW, PASTE_COL = 187, 317  # rows 187:1211, cols 317:1341
MINOR_BLUR = 49
HAIR_BLUR_FIT = 23
MAJOR_BLUR, HAIR_BLUR_SAVE = 31, 15  # times size / 1024, made odd
PYRAMID_LEVELS = 5
OUTPUT_SIZE = 1024
TOPO_FILES = {
    "template": "template_base_uv.png",
    "minor": "minor_valid_whole_mask.png",
    "major": "major_valid_whole_mask.png",
    "hair": "hair_mask.png",
}

YUV_FROM_RGB = np.array(
    [[0.299, 0.587, 0.114], [-0.14714119, -0.28886916, 0.43601035], [0.61497538, -0.51496512, -0.10001026]]
)  # scikit-image's rgb2yuv (BT.601), which upstream calls
RGB_FROM_YUV = np.linalg.inv(YUV_FROM_RGB)


def read_rgb(path: str | Path, size: int, scale: float = 1.0) -> np.ndarray:
    """Upstream's ``read_img``: RGB, PIL resize to ``size``² (bicubic), float32 times ``scale``/1 (0-255
    when 1, 0-1 for masks with ``1 / 255``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            img = im.convert("RGB").resize((size, size), Image.BICUBIC)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(
            f"{path}: not a readable image ({type(exc).__name__})",
            hint="use FFHQ-UV's topo_assets PNG (see `fk doctor`)",
        ) from None
    return np.asarray(img, np.float32) * np.float32(scale)


def to_unit(img: np.ndarray) -> np.ndarray:
    """0-255 -> [0, 1] float32 the way upstream's ``np2tensor`` does (float32 times float32(1/255))."""
    return np.asarray(img, np.float32) * np.float32(1.0 / 255.0)


def box_blur(img: np.ndarray, k: int) -> np.ndarray:
    """OpenCV's normalised box filter (``cv2.blur``), reflect-101 border."""
    import cv2

    return cv2.blur(img, (k, k))


def keep_inside(mask: np.ndarray, k: int) -> np.ndarray:
    """Upstream's hair cover: box blur k, keep where it is still >= 1 (an erosion), box blur k again."""
    return box_blur((box_blur(mask, k) >= 1.0).astype(np.float32), k)


def odd_kernel(base: int, size: int) -> int:
    k = int(base * float(size) / 1024.0)
    return k if k % 2 == 1 else k - 1


def match_color_yuv(src: np.ndarray, dst: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``src`` (H, W, 3) 0-255 recoloured like ``dst`` (H, W, 3) 0-255 inside ``valid`` (H, W) bool:
    upstream's ``match_color_in_yuv`` (see the module docstring), in the inputs' dtype. Upstream runs it
    on float32 maps, whose numpy mean/std over a million texels carry float32 rounding (up to about
    1/255 of the map's range at 1664²); fk keeps that arithmetic so the blends give upstream's numbers."""
    s = src @ YUV_FROM_RGB.T.astype(src.dtype)
    d = dst @ YUV_FROM_RGB.T.astype(dst.dtype)
    mu_d, std_d = np.mean(d[valid], axis=0, keepdims=True), np.std(d[valid], axis=0, keepdims=True)
    mu_s, std_s = np.mean(s[valid], axis=0, keepdims=True), np.std(s[valid], axis=0, keepdims=True)
    out = ((s - mu_s) / std_s / 1.5) * std_d + mu_d
    return np.clip(out @ RGB_FROM_YUV.T.astype(out.dtype), 0, 255)


def _binomial_filter(img: np.ndarray) -> np.ndarray:
    import cv2

    h = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    return cv2.filter2D(img, -1, np.outer(h, h))


def _double(img: np.ndarray) -> np.ndarray:
    """Twice the size by repeating every row and column (the pyramid's upsampling, float64 as upstream's)."""
    return np.repeat(np.repeat(img.astype(np.float64), 2, axis=0), 2, axis=1)


def laplacian_pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
    """Band-pass levels (finest first) and the coarsest residual: filter, keep even rows/columns; each
    band is the level minus its coarser level doubled (row/column repeat), cropped and filtered. The
    downsampled levels keep the input's dtype, the bands are float64 (upstream's dtypes)."""
    out, cur = [], img
    for _ in range(levels - 1):
        down = _binomial_filter(cur)[::2, ::2]
        up = _binomial_filter(_double(down)[: cur.shape[0], : cur.shape[1]])
        out.append(cur - up)
        cur = down
    out.append(cur)
    return out


def mask_pyramid(mask: np.ndarray, levels: int) -> list[np.ndarray]:
    """The mask at each level: keep even rows/columns, then a 5 x 5 Gaussian (sigma 1)."""
    import cv2

    out = [mask]
    for _ in range(levels - 1):
        out.append(cv2.GaussianBlur(out[-1][::2, ::2], (5, 5), 1))
    return out


def collapse_pyramid(levels: list[np.ndarray]) -> np.ndarray:
    cur = levels[-1]
    for band in reversed(levels[:-1]):
        cur = band + _binomial_filter(_double(cur)[: band.shape[0], : band.shape[1]])
    return cur


def pyramid_blend(template: np.ndarray, image: np.ndarray, mask: np.ndarray, levels: int = 5) -> np.ndarray:
    """``image`` where ``mask`` is 1, ``template`` where 0, blended band by band; clipped to [0, 255]."""
    bands = [
        a * np.clip(m, 0, 1) + b * (1 - np.clip(m, 0, 1))
        for a, b, m in zip(
            laplacian_pyramid(image, levels),
            laplacian_pyramid(template, levels),
            mask_pyramid(mask, levels),
            strict=True,
        )
    ]
    return np.clip(collapse_pyramid(bands), 0, 255)


def blend_for_saving(uv: np.ndarray, template: np.ndarray, hair: np.ndarray, major: np.ndarray) -> np.ndarray:
    """Upstream's ``mesh_utils.blend_uv_with_template`` on an (S, S, 3) 0-255 map: colour-matched template
    through a Laplacian pyramid by the blurred major mask, hair covered by the raw template; 0-255."""
    size = uv.shape[0]
    matched = match_color_yuv(template, uv, major[..., 0] > 0.5)
    blended = pyramid_blend(matched, uv, box_blur(major, odd_kernel(MAJOR_BLUR, size)), PYRAMID_LEVELS)
    keep = 1 - keep_inside(hair, odd_kernel(HAIR_BLUR_SAVE, size))  # upstream's linear_blend weight
    return np.clip(blended * keep + template * (1 - keep), 0, 255)


class FaceUVDecoder:
    """FFHQ-UV's default decoder (``texgan_ffhq_uv.pth``): the fit renders, saves and shows the GAN output."""

    variant = "ffhq_uv"

    def __init__(self, gen):
        self.gen = gen

    def to(self, device: str | torch.device) -> FaceUVDecoder:
        self.gen = self.gen.to(device)
        return self

    @property
    def mapping(self):
        return self.gen.mapping

    @property
    def z_dim(self) -> int:
        return self.gen.z_dim

    def raw(self, w: torch.Tensor) -> torch.Tensor:
        """The GAN output (B, 3, R, R) in [0, 1] (unclipped)."""
        from fk_uvfit.texgan import synth_uv

        return synth_uv(self.gen, w)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """The map the fit renders."""
        return self.raw(w)

    def for_saving(self, uv: torch.Tensor) -> torch.Tensor:
        """The map saved as ``stage{N}_uv.png`` and shown, from the fitted one."""
        return uv


class CropFaceDecoder(FaceUVDecoder):
    """The cropface630 texture decoder: ``decoder(w)`` is the map the fit renders (differentiable),
    :meth:`raw` the GAN output, :meth:`for_saving` the map that is saved and shown."""

    variant = "cropface630"

    def __init__(self, gen, topo: dict[str, Path], device: str | torch.device = "cpu"):
        super().__init__(gen)
        missing = [f"{name} ({p})" for name, p in topo.items() if not Path(p).is_file()]
        if missing:
            raise InputError(f"cropface630 variant: missing {'; '.join(missing)}", hint="see `fk doctor`")

        def read(key: str, size: int) -> np.ndarray:
            return read_rgb(topo[key], size, 1.0 if key == "template" else 1 / 255)

        big = {k: read(k, WORK_SIZE) for k in ("template", "minor", "hair")}
        small = {k: read(k, OUTPUT_SIZE) for k in ("template", "major", "hair")}
        self.template_np, self.major_np, self.hair_np = small["template"], small["major"], small["hair"]
        self.template_big_np = big["template"]
        self.valid_big_np = big["minor"][..., 0] > 0.5

        def chw(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]

        self.template_big = chw(to_unit(big["template"]))
        self.minor_weight = chw(box_blur(big["minor"], MINOR_BLUR))
        self.hair_weight = chw(keep_inside(big["hair"], HAIR_BLUR_FIT))
        self.to(device)

    def to(self, device: str | torch.device) -> CropFaceDecoder:
        super().to(device)
        for name in ("template_big", "minor_weight", "hair_weight"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def paste(self, face: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) face crop -> (B, 3, 1664, 1664) template, the crop at rows 187:1211, cols 317:1341."""
        if face.shape[-1] != FACE_SIZE:  # fk: other decoder resolutions are resized to upstream's 1024
            face = torch.nn.functional.interpolate(
                face, size=(FACE_SIZE, FACE_SIZE), mode="bilinear", align_corners=False
            )
        full = self.template_big.to(face.dtype).expand(face.shape[0], -1, -1, -1).clone()
        full[:, :, PASTE_ROW : PASTE_ROW + FACE_SIZE, PASTE_COL : PASTE_COL + FACE_SIZE] = face
        return full

    def blend(self, full: torch.Tensor) -> torch.Tensor:
        """The differentiable minor blend of a pasted (B, 3, 1664, 1664) map, resized to 1024."""
        # a constant of the step: upstream matches colours in numpy on the first map of the batch
        host = (full[0].detach() * 255.0).permute(1, 2, 0).cpu().numpy()
        matched = match_color_yuv(self.template_big_np, host, self.valid_big_np)
        matched = torch.from_numpy(to_unit(matched).transpose(2, 0, 1).copy()).to(full)[None]
        mixed = full * self.minor_weight + matched * (1 - self.minor_weight)
        covered = self.template_big * self.hair_weight + mixed * (1 - self.hair_weight)
        return torch.nn.functional.interpolate(
            covered, size=(OUTPUT_SIZE, OUTPUT_SIZE), mode="bilinear", align_corners=False
        )

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return self.blend(self.paste(self.raw(w)))

    def for_saving(self, uv: torch.Tensor) -> torch.Tensor:
        """The major blend of the first fitted map (1, 3, 1024, 1024) [0, 1], on ``uv``'s device."""
        host = (uv[0].detach().float() * 255.0).permute(1, 2, 0).cpu().numpy()
        out = to_unit(blend_for_saving(host, self.template_np, self.hair_np, self.major_np))
        return torch.from_numpy(out.transpose(2, 0, 1).copy()).to(uv)[None]


VARIANTS = ("ffhq_uv", "cropface630")


def as_decoder(gen):
    """A decoder (:class:`FaceUVDecoder`, :class:`CropFaceDecoder`) as is; a bare generator wrapped."""
    return gen if hasattr(gen, "for_saving") else FaceUVDecoder(gen)
