"""MTCNN face detection with 5 landmarks, in torch, on the weights shipped by PyPI's ``mtcnn`` package.

GMPI detects its 5 landmarks with ipazc's ``mtcnn``. That package (MIT) ships P/R/O-Net weights as
``mtcnn/assets/weights/{pnet,rnet,onet}.lz4``: lz4-compressed ``joblib.dump`` lists of float32 arrays
in Keras layout (conv kernels HWIO, dense kernels (in, out), PReLU alphas). fk reads them with
:func:`fk.io.safe_pickle.load_joblib_arrays` (NumPy arrays only, nothing run) and does not import the
package (its ``__init__`` imports TensorFlow).

The cascade follows ``mtcnn`` 1.0's pipeline and defaults step by step:

1. the image as float, ``(x - 127.5) / 128``;
2. scales ``0.6 * 0.709**k`` (``min_size / min_face_size``),
   ``round(-(log(min(H, W) / 12) / log(0.709) + 1))`` of them; each level resized with TensorFlow's
   AREA filter (exact box averaging over fractional pixel footprints) to ``(H * s, W * s)`` truncated
   to integers;
3. P-Net on every level; a cell whose face probability exceeds 0.6 proposes the 12x12 window at
   ``(2x + 1, 2y + 1)``..``(2x + 12, 2y + 12)`` moved by its regression times 11 px, divided by the scale;
4. per-level NMS (IoU > 0.5), then NMS over all levels (IoU > 0.7, by score), boxes made square;
   ``mtcnn``'s NMS drops a box overlapped by *any* higher-scored box, suppressed or not;
5. R-Net on 24x24 bilinear crops (TensorFlow's ``crop_and_resize`` with the box normalised by the image
   size, zero outside), offsets times (w + 1, h + 1), score > 0.7, NMS 0.7, square;
6. O-Net on 48x48 crops: offsets, landmarks ``x = (w + 1) * l + x0 - 1``, score > 0.8, NMS 0.7 on
   intersection over the *smaller* box; boxes clipped to ``[0, W-1] x [0, H-1]``.

Outputs are floats (the package rounds its JSON output to integers; ``output_type='numpy'`` gives these
floats). ``variant="0.1.1"`` runs :func:`detect_mtcnn_011` instead: GMPI's pinned release, integer
outputs (see the section at the end of this module).
The 5 points are in the package's order: left eye, right eye, nose, mouth left, mouth right
(image left/right). ``bench/conformance_mtcnn.py`` compares with the package running TensorFlow.
"""

from __future__ import annotations

import importlib.util
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from fk.errors import AssetMissingError, InputError
from fk.types import Face

from fk_align.detection import DetectorRunner, clip_box

WEIGHT_FILES = {"pnet": "pnet.lz4", "rnet": "rnet.lz4", "onet": "onet.lz4"}
KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


# -- weights ---------------------------------------------------------------------------------------------


def mtcnn_weights_dir() -> Path:
    """``mtcnn/assets/weights`` of the installed ``mtcnn`` package, found without importing it."""
    spec = importlib.util.find_spec("mtcnn")
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "assets" / "weights"
        if all((path / f).exists() for f in WEIGHT_FILES.values()):
            return path
    raise AssetMissingError(
        "MTCNN weights not found (the PyPI package mtcnn ships them in mtcnn/assets/weights)",
        hint="pip install mtcnn   (TensorFlow is not needed: fk only reads its weight files)",
    )


def load_mtcnn_weights(path: str | Path) -> list[np.ndarray]:
    """One ``.lz4`` weight file as its list of float32 arrays (restricted unpickling, nothing run)."""
    import lz4.frame
    from fk.io.safe_pickle import load_joblib_arrays

    path = Path(path)
    try:
        data = lz4.frame.decompress(path.read_bytes())
    except FileNotFoundError:
        raise AssetMissingError(f"{path}: no such MTCNN weight file", hint="pip install mtcnn") from None
    except RuntimeError as exc:
        raise InputError(f"{path}: not an lz4 frame ({exc})", hint="reinstall the mtcnn package") from exc
    arrays = load_joblib_arrays(data, path)
    if not isinstance(arrays, list) or not all(isinstance(a, np.ndarray) for a in arrays):
        raise InputError(f"{path}: expected a list of arrays, got {type(arrays).__name__}")
    return arrays


# -- the three networks ----------------------------------------------------------------------------------


def _pool_same(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """Max pooling with TensorFlow's 'same' padding (extra padding at the end, -inf)."""
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad order: last dim first
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    if any(pads):
        x = F.pad(x, pads, value=float("-inf"))
    return F.max_pool2d(x, k, s)


def _prelu(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return F.prelu(x, alpha)  # max(0, x) + alpha * min(0, x), one alpha per channel


class _KerasNet:
    """Conv/PReLU/pool stacks with Keras weights, evaluated in NCHW torch."""

    def __init__(self, arrays: list[np.ndarray], spec: list[str], name: str):
        self.name = name
        it = iter(arrays)
        self.layers: list[tuple[str, Any]] = []
        try:
            for kind in spec:
                if kind == "conv":
                    k, b = next(it), next(it)
                    if k.ndim != 4 or b.shape != (k.shape[3],):
                        raise ValueError(f"conv kernel {k.shape}, bias {b.shape}")
                    w = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
                    self.layers.append(("conv", (w, torch.from_numpy(b))))
                elif kind == "prelu":
                    a = next(it)
                    self.layers.append(("prelu", torch.from_numpy(a.reshape(-1))))
                elif kind == "dense":
                    k, b = next(it), next(it)
                    if k.ndim != 2 or b.shape != (k.shape[1],):
                        raise ValueError(f"dense kernel {k.shape}, bias {b.shape}")
                    self.layers.append(
                        ("dense", (torch.from_numpy(np.ascontiguousarray(k.T)), torch.from_numpy(b)))
                    )
                else:
                    self.layers.append((kind, None))
            if next(it, None) is not None:
                raise ValueError("more arrays than layers")
        except (StopIteration, ValueError) as exc:
            raise InputError(
                f"MTCNN {name} weights do not fit its architecture ({exc or 'too few arrays'})"
            ) from None

    def run(self, x: torch.Tensor) -> torch.Tensor:
        for kind, p in self.layers:
            if kind == "conv":
                x = F.conv2d(x, p[0], p[1])
            elif kind == "prelu":
                x = _prelu(x, p)
            elif kind == "pool2same":
                x = _pool_same(x, 2, 2)
            elif kind == "pool3same":
                x = _pool_same(x, 3, 2)
            elif kind == "pool3valid":
                x = F.max_pool2d(x, 3, 2)
            elif kind == "flatten":
                x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)  # Keras Permute((2,1,3)) + Flatten of NHWC
            elif kind == "dense":
                x = F.linear(x, p[0], p[1])
        return x


class _Cascade:
    def __init__(self, weights_dir: Path):
        arrays = {k: load_mtcnn_weights(weights_dir / f) for k, f in WEIGHT_FILES.items()}
        p, r, o = arrays["pnet"], arrays["rnet"], arrays["onet"]
        if len(p) != 13 or len(r) != 16 or len(o) != 21:
            raise InputError(f"MTCNN weights: expected 13/16/21 arrays, got {len(p)}/{len(r)}/{len(o)}")
        self.pnet = _KerasNet(p[:9], "conv prelu pool2same conv prelu conv prelu".split(), "P-Net")
        self.pnet_heads = [self._conv(p[9], p[10]), self._conv(p[11], p[12])]
        rnet = "conv prelu pool3same conv prelu pool3valid conv prelu flatten dense prelu"
        self.rnet = _KerasNet(r[:12], rnet.split(), "R-Net")
        self.rnet_heads = [self._dense(r[12], r[13]), self._dense(r[14], r[15])]
        onet = (
            "conv prelu pool3same conv prelu pool3valid conv prelu pool2same conv prelu flatten dense prelu"
        )
        self.onet = _KerasNet(o[:15], onet.split(), "O-Net")
        self.onet_heads = [self._dense(o[15], o[16]), self._dense(o[17], o[18]), self._dense(o[19], o[20])]

    @staticmethod
    def _conv(k: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))), torch.from_numpy(b)

    @staticmethod
    def _dense(k: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(k.T)), torch.from_numpy(b)

    def run_pnet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.pnet.run(x)
        reg = F.conv2d(t, *self.pnet_heads[0])
        prob = torch.softmax(F.conv2d(t, *self.pnet_heads[1]), dim=1)
        return reg, prob

    def run_rnet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.rnet.run(x)
        return F.linear(t, *self.rnet_heads[0]), torch.softmax(F.linear(t, *self.rnet_heads[1]), dim=1)

    def run_onet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t = self.onet.run(x)
        reg = F.linear(t, *self.onet_heads[0])
        lms = F.linear(t, *self.onet_heads[1])
        return reg, lms, torch.softmax(F.linear(t, *self.onet_heads[2]), dim=1)


@cache
def _cascade(weights_dir: str) -> _Cascade:
    return _Cascade(Path(weights_dir))


# -- image operations (TensorFlow's definitions) ----------------------------------------------------------


def integral_image(img: torch.Tensor) -> torch.Tensor:
    """[C, H + 1, W + 1] float64 running sums of a [C, H, W] image (zero first row and column)."""
    x = img.double().cumsum(1).cumsum(2)
    return F.pad(x, [1, 0, 1, 0])


def _integral_at(integral: torch.Tensor, t: torch.Tensor, dim: int) -> torch.Tensor:
    """The integral sampled at fractional positions ``t`` along ``dim``: it is linear between
    samples; past the end it continues with the last pixel's slope (TensorFlow clamps indices)."""
    n = integral.shape[dim] - 1
    i = t.floor().clamp(0, n - 1).long()
    shape = [1] * integral.ndim
    shape[dim] = -1
    lo, hi = integral.index_select(dim, i), integral.index_select(dim, i + 1)
    return lo + (t - i).reshape(shape) * (hi - lo)


def resize_area(
    img: torch.Tensor, size: tuple[int, int], integral: torch.Tensor | None = None
) -> torch.Tensor:
    """TensorFlow's ``tf.image.resize(..., method=AREA)`` of a [C, H, W] image to ``size`` (h, w): the
    mean over each output pixel's exact footprint, from the integral image (pass ``integral`` to
    reuse one across pyramid levels)."""
    c, h, w = img.shape
    if integral is None:
        integral = integral_image(img)
    sy, sx = h / size[0], w / size[1]
    s = _integral_at(integral, torch.arange(size[0] + 1, dtype=torch.float64) * sy, 1)
    s = _integral_at(s, torch.arange(size[1] + 1, dtype=torch.float64) * sx, 2)
    box = s[:, 1:, 1:] - s[:, :-1, 1:] - s[:, 1:, :-1] + s[:, :-1, :-1]
    return (box / (sy * sx)).to(img.dtype)


def crop_and_resize(img: torch.Tensor, boxes: np.ndarray, size: int) -> torch.Tensor:
    """TensorFlow's ``tf.image.crop_and_resize`` (bilinear, extrapolation 0) of a [C, H, W] image.

    ``boxes`` are (y1, x1, y2, x2) normalised so that 1 is the last pixel index ``H - 1``.
    Returns [N, C, size, size].
    """
    c, h, w = img.shape
    b = torch.from_numpy(np.asarray(boxes, dtype=np.float32).astype(np.float64))
    t = torch.arange(size, dtype=torch.float64) / (size - 1)
    ys = b[:, 0:1] * (h - 1) + t[None] * ((b[:, 2:3] - b[:, 0:1]) * (h - 1))  # [N, size]
    xs = b[:, 1:2] * (w - 1) + t[None] * ((b[:, 3:4] - b[:, 1:2]) * (w - 1))
    vy = (ys >= 0) & (ys <= h - 1)
    vx = (xs >= 0) & (xs <= w - 1)
    y0 = ys.floor().clamp(0, h - 1)
    x0 = xs.floor().clamp(0, w - 1)
    y1 = ys.ceil().clamp(0, h - 1)
    x1 = xs.ceil().clamp(0, w - 1)
    ly = (ys - ys.floor()).to(img.dtype)[:, None, :, None]
    lx = (xs - xs.floor()).to(img.dtype)[:, None, None, :]
    flat = img.reshape(c, h * w)

    def gather(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        idx = (yy.long()[:, :, None] * w + xx.long()[:, None, :]).reshape(yy.shape[0], -1)  # [N, s*s]
        return flat[:, idx].permute(1, 0, 2).reshape(yy.shape[0], c, size, size)

    tl, tr, bl, br = gather(y0, x0), gather(y0, x1), gather(y1, x0), gather(y1, x1)
    top = tl + (tr - tl) * lx
    bottom = bl + (br - bl) * lx
    out = top + (bottom - top) * ly
    valid = (vy[:, :, None] & vx[:, None, :])[:, None]
    return torch.where(valid, out, torch.zeros((), dtype=out.dtype))


# -- boxes (mtcnn's numpy steps) -------------------------------------------------------------------------


def _iou(boxes: np.ndarray, method: str) -> np.ndarray:
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lo = np.maximum(boxes[None, :, :2], boxes[:, None, :2])
    hi = np.minimum(boxes[None, :, 2:], boxes[:, None, 2:])
    inter = np.prod(np.maximum(0.0, hi - lo), axis=-1)
    if method == "union":
        return inter / (area[:, None] + area[None, :] - inter)
    return inter / np.minimum(area[:, None], area[None, :])


def _sort_desc(rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return rows[np.argsort(scores)[::-1]]


def nms(rows: np.ndarray, threshold: float, method: str = "union", initial_sort: bool = True) -> np.ndarray:
    """mtcnn's NMS on rows [img, x1, y1, x2, y2, score, ...]: a box survives unless a box *before* it
    (higher score) overlaps it more than ``threshold``, whether or not that box itself survives."""
    if len(rows) == 0:
        return rows
    if initial_sort:
        rows = _sort_desc(rows, rows[:, 5])
    overlap = _iou(rows[:, 1:5], method) > threshold
    keep = ~np.triu(overlap, k=1).any(axis=0)
    return rows[keep]


def square(rows: np.ndarray) -> np.ndarray:
    rows = rows.copy()
    w = rows[:, 3] - rows[:, 1]
    h = rows[:, 4] - rows[:, 2]
    side = np.maximum(w, h)
    rows[:, 1] = rows[:, 1] + w * 0.5 - side * 0.5
    rows[:, 2] = rows[:, 2] + h * 0.5 - side * 0.5
    rows[:, 3] = rows[:, 1] + side
    rows[:, 4] = rows[:, 2] + side
    return rows


def _adjust(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    rows = rows.copy()
    w = rows[:, 3] - rows[:, 1] + 1
    h = rows[:, 4] - rows[:, 2] + 1
    rows[:, 1:5] += offsets * np.stack([w, h, w, h], axis=-1)
    return rows


def scale_pyramid(
    height: int, width: int, min_face_size: float = 20, scale_factor: float = 0.709, min_size: float = 12
) -> np.ndarray:
    count = round(-(np.log(min(width, height) / min_size) / np.log(scale_factor) + 1))
    return (min_size / min_face_size) * scale_factor ** np.arange(count)


def detect_mtcnn(
    rgb: np.ndarray,
    weights_dir: str | Path | None = None,
    min_face_size: float = 20,
    scale_factor: float = 0.709,
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8),
    nms_thresholds: tuple[float, float, float, float] = (0.5, 0.7, 0.7, 0.7),
) -> np.ndarray:
    """MTCNN on one (H, W, 3) uint8 RGB image.

    Returns:
        ``[K, 15]`` float64 rows ``x1, y1, x2, y2, score, lx[5], ly[5]`` in the package's output order
        (after the last NMS, most confident first); K may be 0.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"MTCNN: expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    net = _cascade(str(weights_dir or mtcnn_weights_dir()))
    h, w = rgb.shape[:2]
    img = torch.from_numpy((rgb.astype(np.float64) - 127.5) / 128).permute(2, 0, 1).float()
    empty = np.empty((0, 15))
    with torch.no_grad():
        # Stage 1: P-Net over the pyramid.
        per_scale = []
        integral = integral_image(img)
        for s in scale_pyramid(h, w, min_face_size, scale_factor):
            size = (int(h * s), int(w * s))
            if min(size) < 12:
                continue
            reg, prob = net.run_pnet(resize_area(img, size, integral)[None])
            conf = prob[0, 1].numpy()
            ys, xs = np.where(conf > thresholds[0])
            if len(ys) == 0:
                continue
            r = reg[0][:, ys, xs].numpy().T.astype(np.float64)
            x1 = (2 * xs + 1) + r[:, 0] * 11
            y1 = (2 * ys + 1) + r[:, 1] * 11
            x2 = (2 * xs + 12) + r[:, 2] * 11
            y2 = (2 * ys + 12) + r[:, 3] * 11
            rows = np.stack([np.zeros_like(x1), x1, y1, x2, y2, conf[ys, xs].astype(np.float64)], axis=1)
            rows = _sort_desc(rows, rows[:, 5])
            rows[:, 1:5] /= s
            per_scale.append(nms(rows, nms_thresholds[0], "union", initial_sort=False))
        if not per_scale:
            return empty
        rows = square(nms(np.concatenate(per_scale), nms_thresholds[1], "union"))
        if len(rows) == 0:
            return empty

        # Stage 2: R-Net.
        norm = np.array([h, w, h, w], dtype=np.float64)
        reg, prob = net.run_rnet(crop_and_resize(img, rows[:, [2, 1, 4, 3]] / norm, 24))
        rows[:, 5] = prob[:, 1].numpy()
        rows = _adjust(rows, reg.numpy().astype(np.float64))
        rows = rows[rows[:, 5] > thresholds[1]]
        rows = square(nms(rows, nms_thresholds[2], "union"))
        if len(rows) == 0:
            return empty

        # Stage 3: O-Net.
        reg, lms, prob = net.run_onet(crop_and_resize(img, rows[:, [2, 1, 4, 3]] / norm, 48))
        lms = lms.numpy().astype(np.float64)
        bw = rows[:, 3:4] - rows[:, 1:2] + 1
        bh = rows[:, 4:5] - rows[:, 2:3] + 1
        lx = bw * lms[:, 0:5] + rows[:, 1:2] - 1
        ly = bh * lms[:, 5:10] + rows[:, 2:3] - 1
        rows[:, 5] = prob[:, 1].numpy()
        rows = _adjust(rows, reg.numpy().astype(np.float64))
        rows = np.concatenate([rows, lx, ly], axis=1)
        rows = rows[rows[:, 5] > thresholds[2]]
        rows = nms(rows, nms_thresholds[3], "min")
    rows = rows.copy()
    rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, w - 1)
    rows[:, [2, 4]] = np.clip(rows[:, [2, 4]], 0, h - 1)
    return rows[:, 1:]


class MtcnnDetector(DetectorRunner):
    """``detect:mtcnn``: the MTCNN cascade (GMPI's detector) with 5 keypoints per face.

    ``Face.landmarks`` is None (no 68 points); ``Face.keypoints`` holds the 5 points in MTCNN's order.
    ``order='confidence'`` keeps the package's order (GMPI uses its first face); the default sorts
    largest first like every fk detector.
    """

    name = "mtcnn"

    def __init__(
        self,
        min_face_size: float = 20,
        scale_factor: float = 0.709,
        threshold_pnet: float = 0.6,
        threshold_rnet: float = 0.7,
        threshold_onet: float | None = None,
        variant: str = "1.0",
        order: str = "area",
        threads: int = 0,
        weights_dir: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if variant not in ("1.0", "0.1.1"):
            raise InputError(f"detect:mtcnn: variant must be '1.0' or '0.1.1', got {variant!r}")
        if threshold_onet is None:
            threshold_onet = 0.8 if variant == "1.0" else 0.7
        self.variant = variant
        if order not in ("area", "confidence"):
            raise InputError(f"detect:mtcnn: order must be 'area' or 'confidence', got {order!r}")
        self.min_face_size = float(min_face_size)
        self.scale_factor = float(scale_factor)
        self.thresholds = (float(threshold_pnet), float(threshold_rnet), float(threshold_onet))
        self.order = order
        self.threads = int(threads or 0)
        self.weights_dir = str(weights_dir) if weights_dir else str(mtcnn_weights_dir())
        _cascade(self.weights_dir)  # load (and validate) the weights now, not on the first image

    def detect(self, rgb: np.ndarray) -> list[Face]:
        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            detect = detect_mtcnn if self.variant == "1.0" else detect_mtcnn_011
            rows = detect(rgb, self.weights_dir, self.min_face_size, self.scale_factor, self.thresholds)
        finally:
            torch.set_num_threads(previous)
        faces = [
            Face(
                box=clip_box(row[:4], rgb.shape[:2]),
                score=float(row[4]),
                landmarks=None,
                keypoints=np.stack([row[5:10], row[10:15]], axis=1),
                image_size=(int(rgb.shape[0]), int(rgb.shape[1])),
                detector=self.name,
                index=i,
            )
            for i, row in enumerate(rows)
        ]
        return faces

    def _find(self, rgb: np.ndarray, source: Path | None) -> list[Face]:
        faces = super()._find(rgb, source)
        if self.order == "confidence":
            faces.sort(key=lambda f: -f.score)
            for i, f in enumerate(faces):
                f.index = i
                f.key_suffix = f"{i + 1:02d}" if self.naming == "lpff" else f"{i:02d}"
        return faces

    def no_face_hint(self) -> str:
        return "MTCNN finds faces from min_face_size (20 px) up; check the photo shows a face"


# -- mtcnn 0.1.1, the version GMPI pins -------------------------------------------------------------------
# Same weights (1.0's conv kernels are 0.1.1's spatially transposed: 0.1.1 feeds transposed images, so the
# nets above on upright images compute the same sums), different pipeline: OpenCV INTER_AREA resizing of
# the uint8 photo (sizes rounded up), integer (np.fix) boxes cut out with MATLAB-style 1-based padding,
# greedy NMS with +1 areas, regression before/after NMS as below, thresholds 0.6/0.7/0.7, and the output
# truncated to integers (GMPI's detections/*.txt hold these integers).


def _nms_greedy(boxes: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """mtcnn 0.1.1's NMS: repeatedly keep the best-scored box, drop those overlapping it by more than
    ``threshold`` (areas counted with +1); returns the kept indices, best first."""
    if boxes.size == 0:
        return np.empty((0,), dtype=np.int64)
    x1, y1, x2, y2, s = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(s)
    pick = []
    while order.size > 0:
        i = order[-1]
        pick.append(i)
        rest = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        if method == "min":
            o = inter / np.minimum(area[i], area[rest])
        else:
            o = inter / (area[i] + area[rest] - inter)
        order = order[np.where(o <= threshold)]
    return np.asarray(pick, dtype=np.int64)


def _rerec(b: np.ndarray) -> np.ndarray:
    b = b.copy()
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    side = np.maximum(w, h)
    b[:, 0] = b[:, 0] + w * 0.5 - side * 0.5
    b[:, 1] = b[:, 1] + h * 0.5 - side * 0.5
    b[:, 2:4] = b[:, 0:2] + np.transpose(np.tile(side, (2, 1)))
    return b


def _bbreg(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    b = b.copy()
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    b[:, 0:4] = np.stack(
        [b[:, 0] + reg[:, 0] * w, b[:, 1] + reg[:, 1] * h, b[:, 2] + reg[:, 2] * w, b[:, 3] + reg[:, 3] * h],
        axis=1,
    )
    return b


def _cut_patches(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray | None:
    """0.1.1's crops: integer boxes (1-based, inclusive) zero-padded where they leave the image,
    resized with OpenCV INTER_AREA; [N, 3, size, size] normalised, or None where 0.1.1 gives up."""
    import cv2

    h, w = img.shape[:2]
    tmpw = (boxes[:, 2] - boxes[:, 0] + 1).astype(np.int32)
    tmph = (boxes[:, 3] - boxes[:, 1] + 1).astype(np.int32)
    dx, dy = np.ones_like(tmpw), np.ones_like(tmph)
    edx, edy = tmpw.copy(), tmph.copy()
    x, y = boxes[:, 0].astype(np.int32), boxes[:, 1].astype(np.int32)
    ex, ey = boxes[:, 2].astype(np.int32), boxes[:, 3].astype(np.int32)
    m = ex > w
    edx[m] = -ex[m] + w + tmpw[m]
    ex[m] = w
    m = ey > h
    edy[m] = -ey[m] + h + tmph[m]
    ey[m] = h
    m = x < 1
    dx[m] = 2 - x[m]
    x[m] = 1
    m = y < 1
    dy[m] = 2 - y[m]
    y[m] = 1
    out = np.zeros((len(boxes), size, size, 3))
    for k in range(len(boxes)):
        tmp = np.zeros((int(tmph[k]), int(tmpw[k]), 3))
        try:
            tmp[dy[k] - 1 : edy[k], dx[k] - 1 : edx[k], :] = img[y[k] - 1 : ey[k], x[k] - 1 : ex[k], :]
        except ValueError:
            return None  # a box entirely off the image: 0.1.1 raises here
        if tmp.shape[0] > 0 and tmp.shape[1] > 0:
            out[k] = cv2.resize(tmp, (size, size), interpolation=cv2.INTER_AREA)
        elif tmp.shape[0] or tmp.shape[1]:
            return None
    out = (out - 127.5) * 0.0078125
    return out.transpose(0, 3, 1, 2)


def detect_mtcnn_011(
    rgb: np.ndarray,
    weights_dir: str | Path | None = None,
    min_face_size: float = 20,
    scale_factor: float = 0.709,
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
) -> np.ndarray:
    """mtcnn 0.1.1's ``detect_faces`` (GMPI's pinned version) on one (H, W, 3) uint8 RGB image.

    Returns:
        ``[K, 15]`` rows ``x, y, x + width, y + height, score, lx[5], ly[5]`` exactly as 0.1.1 reports
        them (integers from ``int()`` truncation, ``x, y >= 0``; the far corner is not clipped), in its
        order (most confident first).
    """
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"MTCNN: expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    net = _cascade(str(weights_dir or mtcnn_weights_dir()))
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    empty = np.empty((0, 15))
    m = 12 / min_face_size
    scales, layer, k = [], min(h, w) * m, 0
    while layer >= 12:
        scales.append(m * np.power(scale_factor, k))
        layer *= scale_factor
        k += 1
    boxes = np.empty((0, 9))
    with torch.no_grad():
        for s in scales:
            im = cv2.resize(rgb, (int(np.ceil(w * s)), int(np.ceil(h * s))), interpolation=cv2.INTER_AREA)
            x = torch.from_numpy((im - 127.5) * 0.0078125).permute(2, 0, 1)[None].float()
            reg, prob = net.run_pnet(x)
            imap = prob[0, 1].numpy().T  # 0.1.1 scans the transposed map: columns first
            regs = [reg[0, c].numpy().T for c in range(4)]
            cols, rows = np.where(imap >= thresholds[0])
            if cols.shape[0] == 1:  # 0.1.1 flips its regression maps when exactly one cell fires
                regs = [np.flipud(r) for r in regs]
            score = imap[cols, rows]
            rg = np.stack([r[cols, rows] for r in regs], axis=1) if len(cols) else np.empty((0, 4))
            bb = np.stack([cols, rows], axis=1)
            q1 = np.fix((2 * bb + 1) / s)
            q2 = np.fix((2 * bb + 12) / s)
            cand = np.hstack([q1, q2, score[:, None], rg])
            pick = _nms_greedy(cand, 0.5, "union")
            if cand.size > 0 and pick.size > 0:
                boxes = np.append(boxes, cand[pick], axis=0)
        if boxes.shape[0] == 0:
            return empty
        boxes = boxes[_nms_greedy(boxes, 0.7, "union")]
        regw = boxes[:, 2] - boxes[:, 0]
        regh = boxes[:, 3] - boxes[:, 1]
        boxes = np.stack(
            [
                boxes[:, 0] + boxes[:, 5] * regw,
                boxes[:, 1] + boxes[:, 6] * regh,
                boxes[:, 2] + boxes[:, 7] * regw,
                boxes[:, 3] + boxes[:, 8] * regh,
                boxes[:, 4],
            ],
            axis=1,
        )
        boxes = _rerec(boxes)
        boxes[:, 0:4] = np.fix(boxes[:, 0:4]).astype(np.int32)

        patches = _cut_patches(rgb, boxes, 24)
        if patches is None:
            return empty
        reg, prob = net.run_rnet(torch.from_numpy(patches).float())
        score, reg = prob[:, 1].numpy(), reg.numpy()
        keep = score > thresholds[1]
        boxes = np.hstack([boxes[keep, 0:4], score[keep, None]])
        mv = reg[keep]
        if boxes.shape[0] == 0:
            return empty
        pick = _nms_greedy(boxes, 0.7, "union")
        boxes = _rerec(_bbreg(boxes[pick], mv[pick]))

        boxes = np.fix(boxes).astype(np.int32)
        patches = _cut_patches(rgb, boxes, 48)
        if patches is None:
            return empty
        reg, lms, prob = net.run_onet(torch.from_numpy(patches).float())
        score, reg, lms = prob[:, 1].numpy(), reg.numpy(), lms.numpy().astype(np.float64)
        keep = score > thresholds[2]
        pts = lms[keep]
        boxes = np.hstack([boxes[keep, 0:4], score[keep, None]])
        mv = reg[keep]
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        pts[:, 0:5] = bw[:, None] * pts[:, 0:5] + boxes[:, 0:1] - 1
        pts[:, 5:10] = bh[:, None] * pts[:, 5:10] + boxes[:, 1:2] - 1
        if boxes.shape[0] == 0:
            return empty
        boxes = _bbreg(boxes, mv)
        pick = _nms_greedy(boxes, 0.7, "min")
        boxes, pts = boxes[pick], pts[pick]
    out = []
    for b, p in zip(boxes, pts, strict=True):
        x0, y0 = max(0, int(b[0])), max(0, int(b[1]))
        out.append(
            [
                x0,
                y0,
                x0 + int(b[2] - x0),
                y0 + int(b[3] - y0),
                float(b[4]),
                *[int(v) for v in p[0:5]],
                *[int(v) for v in p[5:10]],
            ]
        )
    return np.asarray(out, dtype=np.float64).reshape(-1, 15)
