"""The nvdiffrast backend: forwards fk.render's ops to ``nvdiffrast.torch`` (CUDA).

Inputs are validated with fk's checks first (same messages on every backend), then passed
through unchanged; nvdiffrast needs float32 ``pos``, int32 ``tri`` and CUDA tensors.
"""

from __future__ import annotations

from typing import Any

from fk.render.checks import check_rasterize_inputs


def _nv() -> Any:
    import nvdiffrast.torch as nv

    return nv


def make_native_context(device: Any = None) -> Any:
    return _nv().RasterizeCudaContext(device=device)


def make_context(device: Any = None) -> Any:
    from fk.render.context import RasterizeCudaContext

    return RasterizeCudaContext(device=device)


def _native(glctx: Any) -> Any:
    return getattr(glctx, "native", glctx)


def rasterize(glctx: Any, pos: Any, tri: Any, resolution: Any, ranges: Any = None, grad_db: bool = True):
    check_rasterize_inputs(pos, tri, resolution, ranges)
    return _nv().rasterize(_native(glctx), pos, tri, resolution, ranges=ranges, grad_db=grad_db)


def interpolate(attr: Any, rast: Any, tri: Any, rast_db: Any = None, diff_attrs: Any = None):
    return _nv().interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=diff_attrs)


def texture(tex: Any, uv: Any, **kwargs: Any):
    return _nv().texture(tex, uv, **kwargs)


def antialias(color: Any, rast: Any, pos: Any, tri: Any, topology_hash: Any = None, pos_gradient_boost: float = 1.0):
    return _nv().antialias(color, rast, pos, tri, topology_hash=topology_hash, pos_gradient_boost=pos_gradient_boost)


def texture_construct_mip(tex: Any, max_mip_level: Any = None, cube_mode: bool = False):
    return _nv().texture_construct_mip(tex, max_mip_level=max_mip_level, cube_mode=cube_mode)


def antialias_construct_topology_hash(tri: Any):
    return _nv().antialias_construct_topology_hash(tri)
