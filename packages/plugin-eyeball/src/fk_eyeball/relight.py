"""Relit preview of an export: its meshes and maps rendered by fk's rasteriser under a light it never saw.

The shading is training's (:mod:`fk_eyeball.brdf`): Burley diffuse + GGX from a point light, here **not**
at the camera, plus the ambient SH term without occlusion, displayed with gamma 2.2. Per pixel the
nearest surface (head or eyeball cap) gives position, the normal from ``normal.png`` (object space),
albedo, specular and roughness from the maps (bilinear; gutter texels are first filled from the nearest
island texel, as viewers pad textures); the eyeballs use CoRA's fixed specular 0.2 / roughness 0.05.

The views and the light are derived from the export alone (:func:`preview_setup`): cameras orbit the
head's bounding-box centre on the side the eyes face, the eye axis giving the image's x direction.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fk_eyeball.brdf import EYE_ROUGHNESS, EYE_SPECULAR, point_light, sh_ambient, to_display

GAMMA = 2.2


@dataclass
class PreviewSetup:
    """Views ``cam2world (V, 4, 4)`` (OpenCV), intrinsics ``K (3, 3)``, ``size (h, w)``, and the new light:
    ``light_pos (3,)``, ``light_rgb (3,)`` (colour x intensity), ambient ``sh (3, 9)``."""

    cam2world: np.ndarray
    K: np.ndarray
    size: tuple[int, int]
    light_pos: np.ndarray
    light_rgb: np.ndarray
    sh: np.ndarray
    names: list[str]


def _look_at(eye: np.ndarray, target: np.ndarray, right_hint: np.ndarray) -> np.ndarray:
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = right_hint - fwd * (right_hint @ fwd)
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(fwd, right), fwd, eye
    return m


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * (axis @ v) * (1 - np.cos(angle))


def preview_setup(
    head_vertices: np.ndarray,
    eye_centres: np.ndarray | None,
    size: int = 512,
    azimuths=(-35.0, 0.0, 35.0),
    elevation: float = 8.0,
) -> PreviewSetup:
    """Cameras and the new light from the head mesh and the two eyeball centres (rows: leye, reye).

    Without eyeballs (a Step-1 export) the face is taken to look along +z with +x to the image right.
    """
    lo, hi = head_vertices.min(0), head_vertices.max(0)
    centre = (lo + hi) / 2
    if eye_centres is None:
        eye_centres = np.array([centre - [0.1, 0, 0], centre + [0.1, 0, 0]]) + [0, 0, (hi - lo)[2]]
    right = eye_centres[1] - eye_centres[0]  # leye is on the image left
    right /= np.linalg.norm(right)
    front = eye_centres.mean(0) - centre
    front -= right * (front @ right)
    front /= np.linalg.norm(front)
    up = np.cross(front, right)  # world "up" of the face: x right, y down, z forward => up = front x right
    focal = 1.6 * size
    extent = float((hi - lo).max())
    dist = focal / size * extent * 1.05
    target = centre + 0.25 * extent * front  # aim at the face, not the middle of the skull
    views, names = [], []
    for az in azimuths:
        d = _rotate(_rotate(front, up, np.radians(az)), right, -np.radians(elevation))
        views.append(_look_at(target + dist * d, target, right))
        names.append(f"az{az:+.0f}")
    light_pos = target + dist * (0.55 * front - 0.6 * right + 0.55 * up)
    d2 = float(((light_pos - target) ** 2).sum())
    light_rgb = d2 * np.array([1.0, 0.93, 0.8]) * 1.1  # ~1.1 x white-ish at the face
    shape = np.array([3.0, -0.9, 0.4, 0.2, 0.0, 0.0, -0.2, 0.0, 0.1])  # brighter from above (Y_1^-1 = -c y)
    sh = np.stack([shape * c for c in (0.85, 0.95, 1.1)])
    K = np.array([[focal, 0, size / 2 - 0.5], [0, focal, size / 2 - 0.5], [0, 0, 1.0]])
    return PreviewSetup(np.stack(views), K, (size, size), light_pos, light_rgb, sh, names)


def _load_png(path: Path) -> np.ndarray:
    from fk.io.image import load_image

    return load_image(path).astype(np.float64) / 255.0


def load_export_parts(export_dir: str | Path) -> list[dict]:
    """The exported head and eyeball caps as render parts (``vertices``, ``faces``, ``uvs``, ``uv_faces``,
    ``maps (S, S, 8)``: linear albedo, specular, roughness, object-space normal)."""
    from fk.geometry.uv import texel_map
    from fk.io.mesh import read_obj

    from fk_eyeball.export import EXPORT_FOLDER
    from fk_eyeball.export_avatar import fill_outside

    d = Path(export_dir)
    mesh = read_obj(d / "mesh_uv.obj")
    albedo = _load_png(d / "diffuse.png") ** GAMMA
    spec = _load_png(d / "specular.png")[..., :1]
    rough = _load_png(d / "roughness.png")[..., :1]
    normal = _load_png(d / "normal.png") * 2 - 1
    maps = np.concatenate([albedo, spec, rough, normal], -1)
    covered = texel_map(mesh.uvs, mesh.uv_faces, maps.shape[0]).covered
    parts = [{"vertices": mesh.vertices, "faces": mesh.faces, "uvs": mesh.uvs, "uv_faces": mesh.uv_faces,
              "maps": fill_outside(maps, covered), "name": "head"}]  # fmt: skip
    for eye in ("leye", "reye"):
        f = d / EXPORT_FOLDER[eye]
        if not (f / "mesh_uv.obj").is_file():  # a Step-1 export has no eyeballs
            continue
        m = read_obj(f / "mesh_uv.obj")
        alb = _load_png(f / "diffuse.png")  # upstream saves the eyeball albedo linear
        s = alb.shape[0]
        eye_maps = np.concatenate(
            [
                alb,
                np.full((s, s, 1), EYE_SPECULAR),
                np.full((s, s, 1), EYE_ROUGHNESS),
                _load_png(f / "normal.png") * 2 - 1,
            ],
            -1,
        )
        covered = texel_map(m.uvs, m.uv_faces, s).covered
        parts.append({"vertices": m.vertices, "faces": m.faces, "uvs": m.uvs, "uv_faces": m.uv_faces,
                      "maps": fill_outside(eye_maps, covered), "name": eye})  # fmt: skip
    return parts


def render_parts(parts: list[dict], cam2world: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> dict:
    """G-buffer of the nearest surface per pixel: ``mask (H, W)``, ``position``, ``normal``, ``albedo``
    ``(H, W, 3)``, ``specular``, ``roughness`` ``(H, W, 1)``, ``part (H, W)`` (index, -1 empty).

    A part has ``vertices``/``faces`` (world) and either ``uvs``/``uv_faces``/``maps (S, S, 8)`` or
    per-vertex ``albedo``, ``specular``, ``roughness``, ``normal``.
    """
    import fk.render as dr
    from fk.cameras import Pose
    from fk.render.mesh import projection_from_intrinsics

    h, w = size
    pose = Pose.from_cam2world(cam2world)
    eye = np.asarray(cam2world)[:3, 3]
    span = max(np.linalg.norm(p["vertices"] - eye, axis=1).max() for p in parts)
    proj = projection_from_intrinsics(
        torch.as_tensor(K, dtype=torch.float64)[None], size, near=span * 1e-3, far=span * 2
    )
    ctx = dr.get_context("cpu")
    depth = torch.full((h, w), float("inf"), dtype=torch.float64)
    buf = torch.zeros((h, w, 12), dtype=torch.float64)  # position 3, normal 3, albedo 3, spec, rough, part
    buf[..., 11] = -1
    for index, part in enumerate(parts):
        verts = np.asarray(part["vertices"], np.float64)
        cam = torch.as_tensor(pose.apply(verts), dtype=torch.float64)
        homo = torch.cat([cam, torch.ones_like(cam[:, :1])], 1)
        pos = (homo @ proj[0].T)[None].contiguous()
        tri = torch.as_tensor(np.asarray(part["faces"]), dtype=torch.int32).contiguous()
        rast, _ = dr.rasterize(ctx, pos, tri, (h, w))
        world = torch.as_tensor(verts)[None].contiguous()
        attrs, _ = dr.interpolate(torch.cat([world, cam[None, :, 2:3]], -1).contiguous(), rast, tri)
        if "maps" in part:
            uv_tri = torch.as_tensor(np.asarray(part["uv_faces"]), dtype=torch.int32).contiguous()
            uv, _ = dr.interpolate(
                torch.as_tensor(part["uvs"], dtype=torch.float64)[None].contiguous(), rast, uv_tri
            )
            tex = torch.flip(torch.as_tensor(part["maps"], dtype=torch.float64), dims=[0])[None].contiguous()
            m = dr.texture(tex, uv.contiguous(), filter_mode="linear", boundary_mode="clamp")[0]
            alb, spec, rough, nrm = m[..., :3], m[..., 3:4], m[..., 4:5], m[..., 5:8]
        else:
            per_vertex = np.concatenate(
                [part["albedo"], part["specular"], part["roughness"], part["normal"]], 1
            )
            m, _ = dr.interpolate(
                torch.as_tensor(per_vertex, dtype=torch.float64)[None].contiguous(), rast, tri
            )
            alb, spec, rough, nrm = m[0, ..., :3], m[0, ..., 3:4], m[0, ..., 4:5], m[0, ..., 5:8]
        hit = (rast[0, ..., 3] > 0) & (attrs[0, ..., 3] < depth)
        depth = torch.where(hit, attrs[0, ..., 3], depth)
        stack = torch.cat([attrs[0, ..., :3], nrm, alb, spec, rough, torch.full_like(spec, index)], -1)
        buf = torch.where(hit[..., None], stack, buf)
    buf = torch.flip(buf, dims=[0])  # nvdiffrast row 0 is the image's bottom
    normal = torch.nn.functional.normalize(buf[..., 3:6], dim=-1)
    return {
        "mask": buf[..., 11] >= 0, "position": buf[..., :3], "normal": normal, "albedo": buf[..., 6:9],
        "specular": buf[..., 9:10], "roughness": buf[..., 10:11], "part": buf[..., 11].long(),
    }  # fmt: skip


def shade(gbuffer: dict, view_pos: np.ndarray, setup: PreviewSetup) -> np.ndarray:
    """Display RGB ``(H, W, 3)`` in [0, 1] (black background) under ``setup``'s light."""
    g = gbuffer
    dt = torch.float64
    diff, spec = point_light(
        g["position"], g["normal"], torch.as_tensor(view_pos, dtype=dt), g["albedo"], g["specular"],
        g["roughness"],
        torch.as_tensor(setup.light_rgb, dtype=dt), light_pos=torch.as_tensor(setup.light_pos, dtype=dt),
    )  # fmt: skip
    amb = sh_ambient(g["normal"], g["albedo"], torch.as_tensor(setup.sh, dtype=dt))
    rgb = to_display(diff + spec + amb, GAMMA).clamp(0, 1) * g["mask"][..., None]
    return rgb.numpy()


def render_relit(parts: list[dict], setup: PreviewSetup) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(rgb (H, W, 3) in [0, 1], mask (H, W))]`` per view."""
    out = []
    for c2w in setup.cam2world:
        g = render_parts(parts, c2w, setup.K, setup.size)
        out.append((shade(g, c2w[:3, 3], setup), g["mask"].numpy()))
    return out


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (peak 1) over the pixels in ``mask``."""
    mse = float(((a - b) ** 2)[mask].mean())
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def eye_centres(parts: list[dict]) -> np.ndarray | None:
    """``(2, 3)`` mean points of the leye and reye caps of :func:`load_export_parts`, None without them."""
    caps = {p["name"]: p["vertices"].mean(0) for p in parts if p["name"] in ("leye", "reye")}
    return np.stack([caps["leye"], caps["reye"]]) if len(caps) == 2 else None


def write_preview(
    export_dir: str | Path, out: str | Path, size: int = 512, truth_parts: list[dict] | None = None
) -> list[Path]:
    """Render the export under the new light into ``out``: ``relit_<view>.png`` and ``index.html``; with
    ``truth_parts`` also ``truth_<view>.png``, ``diff_<view>.png`` (|difference| x 4) and the PSNR per view.
    Returns the written files; the PSNRs are in ``out/psnr.json`` when a truth is given."""
    import json

    from fk.io.image import save_image

    from fk_eyeball.export import to_uint8

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = load_export_parts(export_dir)
    setup = preview_setup(parts[0]["vertices"], eye_centres(parts), size)
    relit = render_relit(parts, setup)
    truth = render_relit(truth_parts, setup) if truth_parts is not None else None
    files: list[Path] = []
    rows, scores = [], {}
    for i, name in enumerate(setup.names):
        cells = []
        files.append(save_image(out / f"relit_{name}.png", to_uint8(relit[i][0])))
        cells.append(f'<figure><img src="relit_{name}.png"><figcaption>export, relit</figcaption></figure>')
        if truth is not None:
            union = relit[i][1] | truth[i][1]
            scores[name] = psnr(relit[i][0], truth[i][0], union)
            files.append(save_image(out / f"truth_{name}.png", to_uint8(truth[i][0])))
            files.append(
                save_image(out / f"diff_{name}.png", to_uint8(np.abs(relit[i][0] - truth[i][0]) * 4))
            )
            cells.append(
                f'<figure><img src="truth_{name}.png"><figcaption>truth, same light</figcaption></figure>'
            )
            cells.append(
                f'<figure><img src="diff_{name}.png"><figcaption>|difference| x 4, PSNR {scores[name]:.2f} dB'
                "</figcaption></figure>"
            )
        rows.append(f"<h2>view {html.escape(name)}</h2><div class=row>{''.join(cells)}</div>")
    light = ", ".join(f"{x:.3g}" for x in setup.light_pos)
    page = (
        "<!doctype html><meta charset=utf-8><title>fk eyeball export: relit preview</title>"
        "<style>body{font-family:sans-serif;background:#222;color:#ddd}.row{display:flex;gap:8px}"
        "img{width:320px;image-rendering:pixelated}figure{margin:0}</style>"
        f"<h1>Relit preview of {html.escape(str(Path(export_dir)))}</h1>"
        f"<p>Point light at ({light}) (not at the camera) + SH ambient, CoRA's Burley/GGX shading, "
        "gamma 2.2; "
        "head from mesh_uv.obj and its maps, eyeballs from right/ and left/.</p>" + "".join(rows)
    )
    (out / "index.html").write_text(page)
    files.append(out / "index.html")
    if truth is not None:
        (out / "psnr.json").write_text(json.dumps(scores, indent=1))
        files.append(out / "psnr.json")
    return files
