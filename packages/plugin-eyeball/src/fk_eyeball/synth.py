"""A synthetic CoRA subject with known answers (``fk eyeball synth``).

The scene: fk's demo head (``fk.models.demo``, units **decimetres**: 1 unit = 100 mm), subdivided twice,
with almond eye openings carved around two eyeball spheres (radius 13 mm, known centres). Frames are
rendered with fk's CPU renderer from ~24 phone-like cameras in front of the face, lit by a point light at
the camera (1/d² fall-off, Lambert) plus ambient, gamma 2.2, background black, at 720x960 times ``scale``.

Written in CoRA's layout (cora.md §2): ``image/``, ``mask/``, ``hair_mask/``, ``transforms.json``,
``config.yaml``, ``mesh_uv.obj`` (the head-plus-eyeballs surface as CoRA's Step 1 would export it),
``coord.npy`` (texel -> position), ``diffuse.png`` and the painted label images
``diffuse_{l,r}eye_mask.png`` / ``diffuse_{l,r}eye_landmark.png``. The answers go to ``truth/``:
``truth/leye_mask/``, ``truth/reye_mask/`` (which eyeball is visible in each pixel) and ``truth/truth.json``
(centres, radius, the 6 contour landmarks per eye, the painted landmarks' 3D points, units).

Naming follows CoRA's internal convention: ``leye`` is the eye on the **image left** of a frontal view
(iBUG 36-41; the subject's right eye, world -x here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FULL_SIZE = (960, 720)  # (H, W) of CoRA's frames
FULL_FOCAL = 1108.0  # px at 720x960: the face fills the portrait frame at 3 dm
EYE_RADIUS = 0.13  # dm (13 mm)
EYE_CENTERS = {"leye": (-0.31, 0.29, 0.028), "reye": (0.31, 0.29, 0.028)}
HALF_WIDTH, UPPER, LOWER = 0.12, 0.055, 0.045  # almond opening around each eyeball centre (dm)
LID = 0.012  # lids lie this far in front of the eyeball outside the opening (dm)
TARGET = np.array([0.0, 0.12, 0.0])
DISTANCE = 3.0
UNITS = "dm (1 unit = 100 mm)"
LIGHT, AMBIENT = 7.5, 0.12  # render_frames' point light at the camera (Lambert, 1/d²) and ambient
TRAIN_CONFIG = {  # CoRA's training keys (cora.md §4) for a short CPU run on this subject
    "backbone": "volsdf",
    "network": {"num_levels": 8, "level_dim": 2, "geo_feat_dim": 8, "neighbor_eps": 0.005},
    "brdf": {"type": "blender", "min_roughness": 0.1, "max_roughness": 0.9},
    "renderer": {"render_n_samples": 128, "sample_batch_size": 4096, "max_num_ray": 65536,
                 "chunk_size": 4096, "grid_resolution": 32},
    "train": {"max_steps": 300, "warmup_steps": 0, "milestones": [200], "save_freq": 100, "val_freq": 100,
              "vis_freq": 100, "mesh_render": False, "mesh_render_iter": 0, "init_level": 8,
              "level_grow_iter": 1000},
    "loss": {"w_l1": 1.0, "w_mask": 0.1, "w_eikonal": 0.1, "w_sdf_mask": 0.1, "w_reg_diff": 0.01,
             "w_abdmm": 0.1, "w_abdmm_refine": 0.1, "w_eps_n": 0.001, "w_eps_n_smooth": 0.01, "w_ldm": 10.0,
             "w_lpips": 0.1},
}  # fmt: skip


@dataclass
class Scene:
    head_vertices: np.ndarray  # (N, 3) the carved head (without eyeballs)
    union_vertices: np.ndarray  # (N, 3) the head pushed onto the eyeballs where they show (mesh_uv.obj)
    faces: np.ndarray
    uvs: np.ndarray
    uv_faces: np.ndarray
    head_albedo: np.ndarray  # (N, 3) linear
    hair: np.ndarray  # (N,) in [0, 1]
    sphere_vertices: np.ndarray  # (M, 3) unit ico-sphere
    sphere_faces: np.ndarray
    centers: dict[str, np.ndarray]
    radius: float


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def almond_distance(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Signed vertical distance into the almond opening (> 0 inside), offsets from the eyeball centre."""
    c = np.cos(np.pi / 2 * np.clip(dx / HALF_WIDTH, -1.6, 1.6))
    return np.minimum(UPPER * c - dy, dy + LOWER * c)


def sphere_front_z(x, y, center, radius=EYE_RADIUS):
    """z of the sphere's front surface above (x, y); NaN outside its disc."""
    d2 = (x - center[0]) ** 2 + (y - center[1]) ** 2
    with np.errstate(invalid="ignore"):
        return np.where(d2 < radius**2, center[2] + np.sqrt(np.maximum(radius**2 - d2, 0)), np.nan)


def contour_landmarks(center, radius=EYE_RADIUS) -> np.ndarray:
    """(6, 3) iBUG eye-contour points (image-left corner, upper x2, image-right corner, lower x2) on the sphere."""
    w = HALF_WIDTH
    c3 = np.cos(np.pi / 6)
    offsets = np.array([[-w, 0.0], [-w / 3, UPPER * c3], [w / 3, UPPER * c3], [w, 0.0], [w / 3, -LOWER * c3],
                        [-w / 3, -LOWER * c3]])  # fmt: skip
    x, y = center[0] + offsets[:, 0], center[1] + offsets[:, 1]
    return np.stack([x, y, sphere_front_z(x, y, center, radius)], axis=1)


def build_scene(subdivisions: int = 2) -> Scene:
    from fk.geometry.mesh_ops import ico_sphere, subdivide_midpoint
    from fk.models.demo import demo_head_arrays

    a = demo_head_arrays()
    v0 = a["mean_shape"].reshape(-1, 3)
    v, f, t, tf = subdivide_midpoint(v0, a["triangles"], a["uvs"], a["uv_faces"], levels=subdivisions)
    alb0 = a["mean_albedo"].reshape(-1, 3)
    _, _, alb_sub, _ = subdivide_midpoint(
        v0, a["triangles"], alb0[:, :2], a["triangles"], levels=subdivisions
    )
    _, _, alb_b, _ = subdivide_midpoint(v0, a["triangles"], alb0[:, 2:], a["triangles"], levels=subdivisions)
    albedo = np.concatenate([alb_sub, alb_b], axis=1)
    head = v.copy()
    union = v.copy()
    front = v[:, 2] > -0.3
    skin = np.array([0.80, 0.60, 0.50])
    for c in EYE_CENTERS.values():
        c = np.asarray(c)
        dx, dy = v[:, 0] - c[0], v[:, 1] - c[1]
        zs = sphere_front_z(v[:, 0], v[:, 1], c)
        inside = front & np.isfinite(zs)
        s = almond_distance(dx, dy)
        a_in = _smoothstep(-0.016, 0.016, s)
        cover = np.where(inside, np.maximum(v[:, 2], zs + LID), v[:, 2])
        carved = np.where(inside, (1 - a_in) * cover + a_in * (zs - 0.03), v[:, 2])
        head[:, 2] = np.where(inside, carved, head[:, 2])
        # paint: skin over the eye region (the demo head paints a sclera there), a dark lash line
        near = np.exp(-0.5 * ((dx / 0.14) ** 2 + (dy / 0.09) ** 2)) * front
        albedo = albedo * (1 - near[:, None]) + skin * near[:, None]
        lash = np.exp(-0.5 * ((s + 0.004) / 0.003) ** 2) * (np.abs(dx) < HALF_WIDTH * 1.1) * front
        lash *= np.where(dy > 0, 1.0, 0.5)
        albedo = albedo * (1 - 0.85 * lash[:, None]) + 0.05 * 0.85 * lash[:, None]
    union[:, 2] = head[:, 2]
    for c in EYE_CENTERS.values():
        zs = sphere_front_z(v[:, 0], v[:, 1], np.asarray(c))
        show = front & np.isfinite(zs) & (zs > union[:, 2])
        union[show, 2] = zs[show]
    y = v[:, 1]
    hair = np.where(front, _smoothstep(0.82, 0.95, y + 0.1 * np.abs(v[:, 0])), _smoothstep(0.2, 0.5, y))
    albedo = albedo * (1 - hair[:, None]) + np.array([0.22, 0.16, 0.12]) * hair[:, None]
    sv, sf = ico_sphere(5)
    return Scene(
        head,
        union,
        f,
        t,
        tf,
        albedo,
        hair,
        sv,
        sf,
        {k: np.asarray(c, np.float64) for k, c in EYE_CENTERS.items()},
        EYE_RADIUS,
    )


def eyeball_albedo(directions: np.ndarray) -> np.ndarray:
    """(M, 3) linear albedo of an eyeball looking along +z: sclera, a brown iris, a dark pupil."""
    ang = np.degrees(np.arccos(np.clip(directions[:, 2], -1, 1)))
    sclera = np.array([0.80, 0.78, 0.74])
    iris = np.array([0.22, 0.13, 0.07])
    pupil = np.array([0.02, 0.02, 0.02])
    w_iris = _smoothstep(28.0, 25.0, ang)[:, None]
    w_pupil = _smoothstep(11.0, 9.0, ang)[:, None]
    return (sclera * (1 - w_iris) + iris * w_iris) * (1 - w_pupil) + pupil * w_pupil


def phone_cameras(n: int = 24, seed: int = 0) -> np.ndarray:
    """(n, 4, 4) OpenCV cam2world of a hand-held sweep in front of the face (azimuth ±50°, elevation -15..25°)."""
    rng = np.random.default_rng(seed)
    cols = 6
    rows = int(np.ceil(n / cols))
    az = np.radians(np.linspace(-50, 50, cols))
    el = np.radians(np.linspace(-15, 25, rows))
    out = []
    for i in range(n):
        a = az[i % cols] + rng.normal(0, 0.02)
        e = el[i // cols] + rng.normal(0, 0.02)
        dist = DISTANCE * (1 + rng.normal(0, 0.03))
        centre = TARGET + dist * np.array([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])
        look = TARGET + rng.normal(0, 0.03, 3)
        fwd = look - centre
        fwd /= np.linalg.norm(fwd)
        roll = rng.normal(0, np.radians(3))
        up = np.array([np.sin(roll), np.cos(roll), 0.0])
        right = np.cross(fwd, up)
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, down, fwd, centre
        out.append(m)
    return np.stack(out)


def render_frames(
    scene: Scene,
    cam2world: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    ambient: float = AMBIENT,
    light: float = LIGHT,
):
    """Render every frame: yields (rgb uint8 (H, W, 3), object (H, W) int8: -1 empty, 0 head, 1 leye, 2 reye, hair)."""
    import torch
    from fk.cameras import Pose
    from fk.io.mesh import vertex_normals
    from fk.render.mesh import render_mesh

    parts_v = [scene.head_vertices]
    parts_f = [scene.faces]
    parts_a = [scene.head_albedo]
    parts_n = [vertex_normals(scene.head_vertices, scene.faces)]
    parts_h = [scene.hair]
    offset = len(scene.head_vertices)
    for c in scene.centers.values():
        parts_v.append(c + scene.radius * scene.sphere_vertices)
        parts_f.append(scene.sphere_faces + offset)
        parts_a.append(eyeball_albedo(scene.sphere_vertices))
        parts_n.append(scene.sphere_vertices)
        parts_h.append(np.zeros(len(scene.sphere_vertices)))
        offset += len(scene.sphere_vertices)
    verts = np.concatenate(parts_v)
    faces = np.concatenate(parts_f)
    attrs = np.concatenate(
        [np.concatenate(parts_a), np.concatenate(parts_n), verts, np.concatenate(parts_h)[:, None]], axis=1
    )
    n_head = len(scene.faces)
    n_sphere = len(scene.sphere_faces)
    faces_t = torch.as_tensor(faces, dtype=torch.int32)
    attr_t = torch.as_tensor(attrs, dtype=torch.float32)[None]
    for c2w in cam2world:
        pose = Pose.from_cam2world(c2w)
        cam = pose.apply(verts)
        r = render_mesh(
            torch.as_tensor(cam, dtype=torch.float32)[None],
            faces_t,
            torch.as_tensor(K, dtype=torch.float32)[None],
            size,
            vertex_colors=attr_t,
        )
        a = r.rgb[0].numpy().astype(np.float64)
        tid = r.triangle_id[0].numpy()
        alb, nrm, pos, hair = a[..., :3], a[..., 3:6], a[..., 6:9], a[..., 9]
        nrm /= np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-12)
        to_cam = c2w[:3, 3] - pos
        d2 = (to_cam**2).sum(-1)
        cosine = np.clip((nrm * to_cam).sum(-1) / np.sqrt(np.maximum(d2, 1e-12)), 0, 1)
        radiance = alb * (ambient + light * cosine / np.maximum(d2, 1e-6))[..., None]
        rgb = np.clip(radiance, 0, 1) ** (1 / 2.2)
        obj = np.full(tid.shape, -1, np.int8)
        obj[tid >= 0] = 0
        obj[(tid >= n_head) & (tid < n_head + n_sphere)] = 1
        obj[tid >= n_head + n_sphere] = 2
        rgb[obj < 0] = 0
        yield np.floor(rgb * 255 + 0.5).astype(np.uint8), obj, np.where(obj == 0, hair, 0.0)


def mask_png(mask: np.ndarray) -> np.ndarray:
    """(H, W) float in [0, 1] -> (H, W, 3) uint8 as CoRA's ``save_image`` writes it (floor(255 v + 0.5))."""
    v = np.clip(np.asarray(mask, np.float32) * np.float32(255) + np.float32(0.5), 0, 255).astype(np.uint8)
    return np.repeat(v[..., None], 3, axis=2)


def _paint_blob(img: np.ndarray, row: int, col: int, radius: int = 1) -> None:
    img[row - radius : row + radius + 1, col - radius : col + radius + 1] = (0, 255, 0)


def _point_in_uv(uvs, uv_faces, positions, faces, uv: np.ndarray) -> np.ndarray:
    """3D point of the mesh at one UV location (barycentric in the UV triangle that contains it)."""
    tri = uvs[uv_faces]  # (F, 3, 2)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, uv - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = np.abs(den) > 1e-14
    den = np.where(ok, den, 1)
    beta = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    gamma = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    alpha = 1 - beta - gamma
    inside = ok & (alpha >= -1e-12) & (beta >= -1e-12) & (gamma >= -1e-12)
    k = int(np.flatnonzero(inside)[0])
    p = positions[faces[k]]
    return alpha[k] * p[0] + beta[k] * p[1] + gamma[k] * p[2]


def write_subject(
    out: str | Path,
    scale: float = 0.5,
    n_frames: int = 24,
    uv_size: int = 1024,
    subdivisions: int = 2,
    progress=None,
) -> dict:
    """Write the synthetic subject to ``out``; returns the truth dict (also in ``truth/truth.json``)."""
    import yaml
    from fk.cameras import Intrinsics
    from fk.io.image import save_image
    from fk.io.mesh import Mesh, write_obj

    from fk_eyeball.dataset import write_transforms
    from fk_eyeball.uvmaps import uv_rasterize

    out = Path(out)
    h, w = int(round(FULL_SIZE[0] * scale)), int(round(FULL_SIZE[1] * scale))
    focal = FULL_FOCAL * w / FULL_SIZE[1]
    intr = Intrinsics(focal, focal, w / 2 - 0.5, h / 2 - 0.5, w, h)
    scene = build_scene(subdivisions)
    c2w = phone_cameras(n_frames)
    names = [f"{i + 1:05d}.png" for i in range(n_frames)]
    for folder in ("image", "mask", "hair_mask", "truth/leye_mask", "truth/reye_mask"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    frames = render_frames(scene, c2w, np.asarray(intr.matrix), (h, w))
    for i, (name, (rgb, obj, hair)) in enumerate(zip(names, frames, strict=True)):
        save_image(out / "image" / name, rgb)
        save_image(out / "mask" / name, mask_png(obj >= 0))
        save_image(out / "hair_mask" / name, mask_png(hair))
        save_image(out / "truth/leye_mask" / name, mask_png(obj == 1))
        save_image(out / "truth/reye_mask" / name, mask_png(obj == 2))
        if progress:
            progress(i + 1, n_frames)
    write_transforms(out / "transforms.json", intr, names, c2w)
    # Step-1 style export: the visible surface with its UV layout, texel -> position, baked diffuse
    write_obj(
        out / "mesh_uv.obj",
        Mesh(scene.union_vertices, scene.faces, uvs=scene.uvs, uv_faces=scene.uv_faces, name="mesh_uv"),
    )
    corners = np.concatenate(
        [scene.union_vertices[scene.faces], scene.head_vertices[scene.faces], scene.head_albedo[scene.faces]],
        axis=-1,
    )  # (F, 3, 9)
    maps, covered, _ = uv_rasterize(scene.uvs, scene.uv_faces, corners, uv_size)
    coord = maps[..., :3].copy()
    coord[~covered] = 0
    np.save(out / "coord.npy", coord.transpose(2, 0, 1)[None].astype(np.float32))
    head_pos = maps[..., 3:6]
    diffuse = np.clip(maps[..., 6:9], 0, 1) ** (1 / 2.2)
    diffuse = np.floor(np.minimum(diffuse, 0.98) * 255 + 0.5).astype(np.uint8)  # never pure white or green
    diffuse[~covered] = 0
    save_image(out / "diffuse.png", diffuse)
    truth = {
        "units": UNITS,
        "radius": scene.radius,
        "centers": {},
        "contour_landmarks": {},
        "painted_landmarks": {},
        "frames": names,
        "size": [h, w],
        "uv_size": uv_size,
    }
    for eye, c in scene.centers.items():
        zs = sphere_front_z(head_pos[..., 0], head_pos[..., 1], c)
        label = covered & (head_pos[..., 2] > -0.3) & np.isfinite(zs) & (zs > head_pos[..., 2])
        painted = diffuse.copy()
        painted[label] = 255
        save_image(out / f"diffuse_{eye}_mask.png", painted)
        # 4 painted landmarks per eye (3x3 blobs): the texels nearest the corners and lid midpoints
        targets = contour_landmarks(c)[[0, 1, 3, 4]]
        rows, cols = np.nonzero(label)
        pts = coord[rows, cols]
        ldm_img = diffuse.copy()
        painted_pts = []
        texels = sorted(
            (int(rows[k]), int(cols[k])) for k in (np.argmin(((pts - t) ** 2).sum(-1)) for t in targets)
        )
        for r_, c_ in texels:  # scan order, as the landmark picker reports them
            _paint_blob(ldm_img, r_, c_)
            uv = np.array([(c_ + 0.5) / uv_size, 1 - (r_ + 0.5) / uv_size])
            painted_pts.append(_point_in_uv(scene.uvs, scene.uv_faces, scene.union_vertices, scene.faces, uv))
        save_image(out / f"diffuse_{eye}_landmark.png", ldm_img)
        truth["centers"][eye] = c.tolist()
        truth["contour_landmarks"][eye] = contour_landmarks(c).tolist()
        truth["painted_landmarks"][eye] = np.asarray(painted_pts).tolist()
    config = {
        "device": "cpu",
        "workspace": "workspace",
        "name": "synthetic",
        "data": {
            "meta_path": str(out / "transforms.json"),
            "bound": 1.5,
            "dilate_ks": 0,
            "eyeball_min_size": 0.08,
            "eyeball_max_size": 0.16,
            "sh_scale": 1.0,
        },
        "light": {"intensity": round(LIGHT * np.pi, 6), "color": [1.0, 1.0, 1.0], "gamma": 2.2},
        **TRAIN_CONFIG,
    }
    (out / "config.yaml").write_text(
        "# synthetic subject written by `fk eyeball synth` (units: dm). The frames are Lambert:\n"
        f"# albedo*{LIGHT}*cos/d^2 + {AMBIENT}*albedo; CoRA's Burley term divides by pi, hence intensity\n"
        "# 7.5*pi. Training keys sized for a few minutes on a CPU (`fk eyeball train`).\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    (out / "truth" / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth
