"""fk's renderer: nvdiffrast's API (``import fk.render as dr``) on pluggable backends.

The functions here have nvdiffrast's signatures, dtypes and layouts; they are thin
wrappers that import the chosen backend on first call, so ``import fk.render``
imports neither torch nor numba (the CLI imports plugins at start-up).

Convention (as nvdiffrast documents it):
- ``pos`` is clip space ``[minibatch, num_vertices, 4]`` (instanced mode) or
  ``[num_vertices, 4]`` with CPU ``ranges [minibatch, 2]`` = (first triangle, count) (range mode);
  ``tri`` is int32 ``[num_triangles, 3]``; ``resolution`` is ``(height, width)``.
- ``rasterize`` returns ``rast [minibatch, height, width, 4]`` = ``(u, v, z/w, triangle_id + 1)``,
  all zeros where no triangle covers the pixel, and ``rast_db`` = ``(du/dX, du/dY, dv/dX, dv/dY)``
  in pixel units. The first vertex of a triangle has ``(u, v) = (1, 0)``, the second ``(0, 1)``,
  the third ``(0, 0)``; ``(u, v)`` are perspective-correct.
- Pixel ``(row, col)`` is sampled at its centre, NDC ``x = 2 (col + 0.5) / width - 1``,
  ``y = 2 (row + 0.5) / height - 1``: **row 0 is the bottom** of the image.
- No back-face culling; the depth test keeps the smallest ``z/w`` (ties: the lower triangle index);
  pixels whose ``z/w`` falls outside ``[-1, 1]`` or behind the camera (``w <= 0``) are not drawn.
- ``rasterize``'s gradients flow to ``pos`` through ``(u, v)`` and ``rast_db`` only (not through
  visibility; ``z/w`` and ids carry none), and through ``interpolate``/``texture`` to their
  attributes; visibility (silhouette) gradients come from ``antialias``, as in nvdiffrast.

See ``docs/rendering.md`` for the backends, the edge rule and benchmark figures.
"""

from __future__ import annotations

from typing import Any

from fk.render.context import (
    RasterizeCpuContext,
    RasterizeCudaContext,
    RasterizeGLContext,
    RenderContext,
    backend_module_for,
    backend_module_of,
    describe_backends,
    get_context,
    remember_backend,
)

__all__ = [
    "RasterizeCpuContext", "RasterizeCudaContext", "RasterizeGLContext", "RenderContext",
    "get_context", "describe_backends", "rasterize", "interpolate", "texture", "antialias",
    "texture_construct_mip", "antialias_construct_topology_hash", "get_log_level", "set_log_level",
    "rasterize_reference",
]

_log_level = 1  # nvdiffrast's default: warnings and errors


def rasterize(glctx: Any, pos: Any, tri: Any, resolution: Any, ranges: Any = None, grad_db: bool = True):
    """Rasterise triangles; returns ``(rast, rast_db)``, both ``[minibatch, height, width, 4]``.

    Same signature and conventions as ``nvdiffrast.torch.rasterize`` (see the module docstring).
    The work runs on ``glctx``'s backend, and the outputs remember it: ``interpolate``, ``texture``
    and ``antialias`` given them (or tensors derived through them) run on the same backend.
    """
    module = backend_module_for(glctx)
    rast, rast_db = module.rasterize(glctx, pos, tri, resolution, ranges=ranges, grad_db=grad_db)
    remember_backend(module, rast, rast_db)
    return rast, rast_db


def interpolate(attr: Any, rast: Any, tri: Any, rast_db: Any = None, diff_attrs: Any = None):
    """Interpolate vertex attributes at the rasterised pixels; returns ``(out, out_da)``.

    ``attr`` is ``[num_vertices, A]`` (shared by every image) or ``[minibatch|1, num_vertices, A]``;
    ``out`` is ``[minibatch, height, width, A]`` (zeros where ``rast`` is empty); ``out_da`` holds
    ``(dA/dX, dA/dY)`` per attribute named in ``diff_attrs`` (``'all'`` or a list of indices),
    ``[minibatch, height, width, 2 * len(diff_attrs)]``, or a ``[..., 0]`` tensor when not asked.
    Runs on the backend whose context rasterised ``rast`` (by device when ``rast`` came from elsewhere:
    CUDA tensors to nvdiffrast when it is available, everything else to fk's torch implementation).
    """
    module = backend_module_of("interpolate", rast, rast_db, attr)
    out, out_da = module.interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=diff_attrs)
    remember_backend(module, out, out_da)
    return out, out_da


def texture(tex: Any, uv: Any, uv_da: Any = None, mip_level_bias: Any = None, mip: Any = None,
            filter_mode: str = "auto", boundary_mode: str = "wrap", max_mip_level: Any = None):
    """Sample ``tex [minibatch|1, th, tw, C]`` at ``uv [minibatch, H, W, 2]``; returns ``[minibatch, H, W, C]``.

    Texture coordinates: ``(0, 0)`` is the corner of texel row 0, column 0 and ``(1, 1)`` the opposite
    corner; texel centres at ``(i + 0.5) / tw``. fk's CPU implementation supports ``nearest`` and
    ``linear`` (``auto`` means ``linear``: it builds no mipmaps) with ``wrap``, ``clamp`` and ``zero``
    boundaries; mipmap filters and cube maps raise ``NotImplementedError``. Runs on the backend that
    produced ``uv`` (through ``interpolate``) or ``tex``, else by device, as ``interpolate``.
    """
    module = backend_module_of("texture", uv, uv_da, tex)
    out = module.texture(tex, uv, uv_da=uv_da, mip_level_bias=mip_level_bias, mip=mip, filter_mode=filter_mode,
                         boundary_mode=boundary_mode, max_mip_level=max_mip_level)
    remember_backend(module, out)
    return out


def antialias(color: Any, rast: Any, pos: Any, tri: Any, topology_hash: Any = None, pos_gradient_boost: float = 1.0):
    """Silhouette antialiasing; returns a tensor shaped like ``color [minibatch, height, width, C]``.

    Pixels on either side of a silhouette edge (an edge of the front surface with nothing, or a
    surface facing the other way, on its far side) are blended by where the edge crosses the
    segment between the two pixel centres; gradients reach ``color`` and, through that crossing,
    ``pos`` (visibility gradients), scaled by ``pos_gradient_boost``. ``pos`` and ``tri`` are the
    ones given to ``rasterize`` (``pos [V, 4]`` for range mode). See :mod:`fk.render.cpu.antialias`.
    Runs on the backend whose context rasterised ``rast``, else by device, as ``interpolate``.
    """
    module = backend_module_of("antialias", rast, color)
    out = module.antialias(color, rast, pos, tri, topology_hash=topology_hash, pos_gradient_boost=pos_gradient_boost)
    remember_backend(module, out)
    return out


def texture_construct_mip(tex: Any, max_mip_level: Any = None, cube_mode: bool = False):
    """nvdiffrast's mip-stack builder; fk's CPU implementation has no mipmaps (raises ``NotImplementedError``)."""
    module = backend_module_of("texture_construct_mip", tex)
    return module.texture_construct_mip(tex, max_mip_level=max_mip_level, cube_mode=cube_mode)


def antialias_construct_topology_hash(tri: Any):
    """The edge -> triangles map ``antialias`` uses; build once per ``tri`` and pass as ``topology_hash``."""
    return backend_module_of("antialias_construct_topology_hash", tri).antialias_construct_topology_hash(tri)


def get_log_level() -> int:
    """nvdiffrast's log level (0 info, 1 warnings, 2 errors); fk only records it."""
    return _log_level


def set_log_level(level: int) -> None:
    global _log_level
    _log_level = int(level)


def rasterize_reference(pos: Any, tri: Any, resolution: Any, ranges: Any = None):
    """The slow, obviously-correct rasteriser the fast CPU path is tested against (see ``fk.render.reference``)."""
    from fk.render.reference import rasterize_reference as _ref

    return _ref(pos, tri, resolution, ranges=ranges)
