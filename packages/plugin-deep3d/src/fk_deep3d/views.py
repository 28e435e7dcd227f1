"""Pictures of a reconstruction: crop render, 3-panel strip, photo overlay, photo texture, swing.

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
    """Render one mesh with vertex colours: (H, W, 3) float RGB in [0, 1] and (H, W) bool mask; or, for
    ``vertices_cv (B, N, 3)`` (B poses of one mesh, one call), (B, H, W, 3) and (B, H, W)."""
    import torch

    from fk.render.mesh import render_mesh

    verts = torch.as_tensor(vertices_cv, dtype=torch.float32)
    single = verts.ndim == 2
    with torch.no_grad():
        out = render_mesh(verts[None] if single else verts, np.asarray(triangles),
                          torch.as_tensor(K, dtype=torch.float32), tuple(int(s) for s in size),
                          vertex_colors=torch.as_tensor(np.clip(colors, 0, 1), dtype=torch.float32)[None],
                          backend=renderer)
    rgb, mask = out.rgb.clamp(0, 1).numpy(), out.mask.numpy()
    return (rgb[0], mask[0]) if single else (rgb, mask)


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


def photo_texture(recon, photo: np.ndarray, uv_size: int = 1024, max_side: int = 2048,
                  renderer: str = "auto"):
    """The photo projected into the model's UV layout (``recon.uvs``/``recon.uv_faces``): a
    :class:`fk.render.uv_projection.UVProjection` (texture, confidence, where each texel came from).

    The camera is the fit's own (:func:`photo_camera`); texels the camera saw badly take their mirror
    image's colour across the unposed model's x = 0 plane, and the rest is filled smoothly.
    """
    from fk.render.uv_projection import project_photo_to_uv

    photo, k_photo = photo_camera(recon, photo, max_side)
    return project_photo_to_uv(photo, opencv_vertices(recon), recon.triangles, recon.uvs, recon.uv_faces, k_photo,
                               uv_size, symmetry_vertices=canonical_vertices(recon), backend=renderer)


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
    cams = []
    for yaw in np.deg2rad(swing_deg) * eased:
        rot = euler_to_matrix(np.array([0.0, yaw, 0.0]), "xyz")
        cams.append(opencv_from_deep3d_camera(to_camera((verts - centre) @ rot.T)))  # camera at (0, 0, 10)
    # all frames in one render call: the same pixels as one call per frame, less per-call overhead
    rgb, mask = render_colors(np.stack(cams), recon.triangles, recon.colors, K, (size, size), renderer)
    bg = np.full((size, size, 3), 0.93, np.float32)
    return [(np.where(m[..., None], c, bg) * 255 + 0.5).astype(np.uint8)
            for c, m in zip(rgb, mask, strict=True)]
