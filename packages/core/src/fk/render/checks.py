"""Input checks shared by fk's render backends, with nvdiffrast's wording.

The messages mirror nvdiffrast's ("instance mode - pos must have shape [>0, >0, 4]"...) so
that code ported from nvdiffrast reads the same errors; they are raised as
:class:`fk.errors.ShapeError` (a ``ValueError``).
"""

from __future__ import annotations

from typing import Any

from fk.errors import ShapeError


def _shape_ok(t: Any, ndim: int, last: int | None) -> bool:
    shape = tuple(t.shape)
    return len(shape) == ndim and all(s > 0 for s in shape) and (last is None or shape[-1] == last)


def check_rasterize_inputs(pos: Any, tri: Any, resolution: Any, ranges: Any) -> tuple[int, int, bool]:
    """Validate ``rasterize``'s inputs; returns ``(height, width, range_mode)``."""
    import torch

    if not isinstance(pos, torch.Tensor) or not isinstance(tri, torch.Tensor):
        raise ShapeError("pos and tri must be torch tensors")
    try:
        height, width = (int(r) for r in resolution)
    except (TypeError, ValueError):
        raise ShapeError("resolution must be [>0, >0]") from None
    if height <= 0 or width <= 0:
        raise ShapeError("resolution must be [>0, >0]")
    range_mode = ranges is not None
    if range_mode:
        if not _shape_ok(pos, 2, 4):
            raise ShapeError("range mode - pos must have shape [>0, 4]")
        if not isinstance(ranges, torch.Tensor) or not _shape_ok(ranges, 2, 2):
            raise ShapeError("range mode - ranges must have shape [>0, 2]")
        if ranges.device.type != "cpu":
            raise ShapeError("range mode - ranges must reside on CPU")
    elif not _shape_ok(pos, 3, 4):
        raise ShapeError("instance mode - pos must have shape [>0, >0, 4]")
    if not _shape_ok(tri, 2, 3):
        raise ShapeError("tri must have shape [>0, 3]")
    if pos.dtype not in (torch.float32, torch.float64):
        raise ShapeError(f"pos must be float32 (fk's CPU backend also takes float64), got {pos.dtype}")
    if tri.dtype not in (torch.int32, torch.int64):
        raise ShapeError(f"tri must be int32 (fk's CPU backend also takes int64), got {tri.dtype}")
    if range_mode:
        starts, counts = ranges[:, 0].long(), ranges[:, 1].long()
        if bool((starts < 0).any() or (counts < 0).any() or ((starts + counts) > tri.shape[0]).any()):
            raise ShapeError(f"range mode - ranges must lie within tri's {tri.shape[0]} triangles")
    return height, width, range_mode


def check_interpolate_inputs(attr: Any, rast: Any, tri: Any) -> None:
    if attr.ndim not in (2, 3) or any(s <= 0 for s in attr.shape):
        raise ShapeError("attr must have shape [>0, >0, >0] or [>0, >0]")
    if not _shape_ok(rast, 4, 4):
        raise ShapeError("rast must have shape [>0, >0, >0, 4]")
    if not _shape_ok(tri, 2, 3):
        raise ShapeError("tri must have shape [>0, 3]")
    if attr.ndim == 3 and attr.shape[0] not in (1, rast.shape[0]):
        raise ShapeError("attr minibatch size must be 1 or match rast's minibatch size")


def check_texture_inputs(tex: Any, uv: Any) -> None:
    if not _shape_ok(tex, 4, None):
        raise ShapeError("tex must have shape [>0, >0, >0, >0]")
    if not _shape_ok(uv, 4, 2):
        raise ShapeError("uv must have shape [>0, >0, >0, 2]")
    if tex.shape[0] not in (1, uv.shape[0]):
        raise ShapeError("minibatch size mismatch between inputs tex, uv")
