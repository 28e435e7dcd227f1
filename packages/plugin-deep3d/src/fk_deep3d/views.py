"""Pictures of a reconstruction: crop render, 3-panel strip, photo overlay, projected texture, swing.

All renders go through ``fk.render.mesh.render_mesh`` (OpenCV camera frame, pixel
intrinsics, image layout with row 0 at the top) with the crop's ``K_LANDMARKS``, the
same camera the fit used, and are laid over photos with ``fk.render.mesh.overlay``.
"""

from __future__ import annotations

import numpy as np

from fk.cameras.deep3d import CAMERA_DISTANCE, IMAGE_SIZE, K_LANDMARKS, opencv_from_deep3d_camera, to_camera
from fk.geometry.rotations import euler_to_matrix


def render_colors(vertices_cv: np.ndarray, triangles: np.ndarray, colors: np.ndarray, K: np.ndarray,
                  size: tuple[int, int], renderer: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Render one mesh with vertex colours: (H, W, 3) float RGB in [0, 1] and (H, W) bool mask."""
    import torch

    from fk.render.mesh import render_mesh

    with torch.no_grad():
        out = render_mesh(torch.as_tensor(vertices_cv, dtype=torch.float32)[None], np.asarray(triangles),
                          torch.as_tensor(K, dtype=torch.float32), tuple(int(s) for s in size),
                          vertex_colors=torch.as_tensor(np.clip(colors, 0, 1), dtype=torch.float32)[None],
                          backend=renderer)
    return out.rgb[0].clamp(0, 1).numpy(), out.mask[0].numpy()


def opencv_vertices(recon) -> np.ndarray:
    """The reconstruction's Deep3D world vertices in the OpenCV camera frame of its crop: (N, 3)."""
    return opencv_from_deep3d_camera(to_camera(np.asarray(recon.vertices, np.float64)))


def draw_points(image: np.ndarray, points: np.ndarray, color: tuple[int, int, int], radius: int = 1) -> np.ndarray:
    """Small filled squares at (x, y) pixel positions (pixel centres at integers)."""
    out = image.copy()
    h, w = out.shape[:2]
    for x, y in np.rint(np.asarray(points)).astype(int):
        out[max(0, y - radius):min(h, y + radius + 1), max(0, x - radius):min(w, x + radius + 1)] = color
    return out


def crop_render(recon, renderer: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The reconstruction rendered into its 224 crop."""
    return render_colors(opencv_vertices(recon), recon.triangles, recon.colors, K_LANDMARKS,
                         (IMAGE_SIZE, IMAGE_SIZE), renderer)


def three_panel(recon, renderer: str = "auto") -> np.ndarray:
    """Deep3D's test strip (672×224): crop | render over crop | crop with landmarks.

    Detected landmarks (the crop's) in blue, the model's projected landmarks in red.
    """
    from fk.render.mesh import overlay

    crop = np.asarray(recon.crop.image)
    rgb, mask = crop_render(recon, renderer)
    panel3 = crop.copy()
    if recon.crop.landmarks is not None:
        panel3 = draw_points(panel3, recon.crop.landmarks, (0, 0, 255))
    panel3 = draw_points(panel3, recon.landmarks, (255, 0, 0))
    return np.concatenate([crop, overlay(crop, rgb, mask, alpha=1.0), panel3], axis=1)


def photo_camera(recon, photo: np.ndarray, max_side: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The photo (at most ``max_side`` pixels wide) and its pixel intrinsics for the reconstruction.

    The Deep3D crop is a similarity (scale and shift) of the photo, so the photo's intrinsics are
    ``source_from_crop @ K_LANDMARKS``; a shrunk photo scales them the same way.
    """
    from PIL import Image

    h, w = photo.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        photo = np.asarray(Image.fromarray(photo).resize((round(w * scale), round(h * scale)), Image.BILINEAR))
    # Pixel centres at integers: scaling about the centre of pixel (0, 0) with half-pixel care.
    shrink = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1.0]])
    k_photo = shrink @ recon.crop.source_from_crop @ K_LANDMARKS
    if not np.allclose(k_photo[2], [0.0, 0.0, 1.0], atol=1e-9):
        raise ValueError("the photo camera needs an affine crop (Deep3D's crops are)")
    return photo, k_photo


def photo_overlay(recon, photo: np.ndarray, alpha: float = 0.6, max_side: int = 1024,
                  renderer: str = "auto") -> np.ndarray:
    """The render laid over the original photo, rendered directly in photo pixels (see :func:`photo_camera`)."""
    from fk.render.mesh import overlay

    photo, k_photo = photo_camera(recon, photo, max_side)
    rgb, mask = render_colors(opencv_vertices(recon), recon.triangles, recon.colors, k_photo, photo.shape[:2],
                              renderer)
    return overlay(photo, rgb, mask, alpha)


def projected_texture(recon, photo: np.ndarray, max_side: int = 1024, margin: int = 8,
                      min_facing: float = 0.3, renderer: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texture the mesh with the photo as the camera saw it.

    Returns ``uvs (2N, 2)``, ``uv_faces (F, 3)``, ``texture (H, W, 3) uint8`` and ``seen (N,)``.
    UV ``i < N`` is where vertex ``i`` projects in the photo (OBJ convention: v up, texel centres at
    ``(i + 0.5) / size``); the texture is the photo cropped to the face. A vertex the camera could not
    see (its depth behind the rendered surface), or saw at a grazing angle (the cosine between its normal
    and the view ray below ``min_facing``), takes the UV of its mirror image across the model's x = 0
    plane when that one faces the camera better and was seen (UV ``N + i``), else keeps its own
    projection, i.e. the colour of the surface in front of it. The choice is made per triangle (by two
    of its three corners), so no triangle's UVs span both sources. ``seen`` marks the vertices the
    camera saw.
    """
    import torch
    from scipy.spatial import cKDTree

    from fk.io.mesh import vertex_normals
    from fk.render.mesh import render_mesh

    photo, k_photo = photo_camera(recon, photo, max_side)
    verts = opencv_vertices(recon)
    pix = verts[:, :2] / verts[:, 2:3] * np.diag(k_photo)[:2] + k_photo[:2, 2]
    with torch.no_grad():
        out = render_mesh(torch.as_tensor(verts, dtype=torch.float32)[None], np.asarray(recon.triangles),
                          torch.as_tensor(k_photo, dtype=torch.float32), photo.shape[:2], backend=renderer)
    depth, mask = out.depth[0].numpy(), out.mask[0].numpy()
    h, w = photo.shape[:2]
    col, row = np.clip(np.rint(pix[:, 0]).astype(int), 0, w - 1), np.clip(np.rint(pix[:, 1]).astype(int), 0, h - 1)
    extent = np.ptp(verts, axis=0).max()
    seen = mask[row, col] & (verts[:, 2] <= depth[row, col] + 0.01 * extent)
    # How squarely each vertex faces the camera: texels seen at grazing angles are smeared, so those
    # too take their mirror image's texel when it was seen squarely.
    normals = vertex_normals(verts, np.asarray(recon.triangles))
    facing = np.einsum("ij,ij->i", normals, -verts / np.linalg.norm(verts, axis=1, keepdims=True))
    if seen.any() and np.median(facing[seen]) < 0:  # the mesh winds the other way
        facing = -facing
    good = seen & (facing > min_facing)
    faces = np.asarray(recon.triangles, np.int64)
    n = len(verts)
    mirrored = pix.copy()
    take_face = np.zeros(len(faces), bool)
    if good.any() and not good.all():
        canon = canonical_vertices(recon)
        dist, mirror = cKDTree(canon).query(canon * [-1.0, 1.0, 1.0])
        take = ~good & good[mirror] & (dist < 0.01 * extent) & (facing[mirror] > facing)
        mirrored = pix[mirror]
        # Decide per triangle, so no triangle stretches across the texture between the two sources.
        take_face = take[faces].sum(1) >= 2
    box = pix[seen] if seen.any() else pix
    x0, y0 = (max(0, int(np.floor(v)) - margin) for v in box.min(0))
    x1, y1 = min(w, int(np.ceil(box[:, 0].max())) + margin + 1), min(h, int(np.ceil(box[:, 1].max())) + margin + 1)
    texture = np.ascontiguousarray(photo[y0:y1, x0:x1])
    both = np.concatenate([pix, mirrored])
    uvs = np.stack([(both[:, 0] - x0 + 0.5) / (x1 - x0), 1.0 - (both[:, 1] - y0 + 0.5) / (y1 - y0)], axis=1)
    uv_faces = faces + n * take_face[:, None]
    return np.clip(uvs, 0.0, 1.0), uv_faces, texture, seen


def canonical_vertices(recon) -> np.ndarray:
    """Undo the pose: v = Mᵀ (v_world − t), the face in the model frame (dm)."""
    m = euler_to_matrix(np.asarray(recon.coeffs["angle"], np.float64).reshape(3), "xyz")
    t = np.asarray(recon.coeffs["trans"], np.float64).reshape(3)
    return (np.asarray(recon.vertices, np.float64) - t) @ m


def swing(recon, frames: int = 12, size: int = 256, swing_deg: float = 60.0,
          renderer: str = "auto") -> list[np.ndarray]:
    """Frames of the unposed mesh swinging in yaw from −``swing_deg`` to +``swing_deg``.

    Every frame is a distinct angle, eased (cosine-spaced) towards the ends; played forwards then
    backwards (the demo page does) the swing loops without a jump. A face mesh has no back, so this is a
    swing, not a full turn.
    """
    verts = canonical_vertices(recon)
    centre = verts.mean(0)
    radius = np.linalg.norm(verts - centre, axis=1).max()
    focal = 0.42 * size * CAMERA_DISTANCE / max(radius, 1e-6)
    K = np.array([[focal, 0, size / 2 - 0.5], [0, focal, size / 2 - 0.5], [0, 0, 1.0]])
    eased = -np.cos(np.linspace(0.0, np.pi, max(int(frames), 1))) if frames > 1 else np.zeros(1)
    out = []
    for yaw in np.deg2rad(swing_deg) * eased:
        rot = euler_to_matrix(np.array([0.0, yaw, 0.0]), "xyz")
        cam = opencv_from_deep3d_camera(to_camera((verts - centre) @ rot.T))  # camera at (0, 0, 10)
        rgb, mask = render_colors(cam, recon.triangles, recon.colors, K, (size, size), renderer)
        bg = np.full((size, size, 3), 0.93, np.float32)
        out.append((np.where(mask[..., None], rgb, bg) * 255 + 0.5).astype(np.uint8))
    return out
