"""fk_gmpi.mpi: the MPI renderer against a float64 per-pixel ray-plane reference and analytic scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fk.cameras import gmpi as cams
from fk_gmpi.mpi import plane_dhw, render_mpi, texel_xyz


def _reference(rgba, dhw, c2w, K, size):
    """Independent float64 loop: per pixel, per plane: intersect, bilinear texel lookup, composite."""
    n, _, th, tw = rgba.shape
    h, w = size
    kinv = np.linalg.inv(K)
    rgb = np.zeros((3, h, w))
    depth = np.zeros((h, w))
    acc = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            d_cam = kinv @ np.array([j, i, 1.0])
            d_cam /= np.linalg.norm(d_cam)
            d = c2w[:3, :3] @ d_cam
            e = c2w[:3, 3]
            trans = 1.0
            for p in range(n):
                z, ph, pw = dhw[p]
                t = (z - e[2]) / d[2]
                if t <= 0:
                    continue
                x, y = e[0] + t * d[0], e[1] + t * d[1]
                # texel index space: -w/2 -> column 0, +w/2 -> column tw - 1
                cx = (x / pw + 0.5) * (tw - 1)
                cy = (y / ph + 0.5) * (th - 1)
                val = np.zeros(4)
                x0, y0 = int(np.floor(cx)), int(np.floor(cy))
                for yy in (y0, y0 + 1):
                    for xx in (x0, x0 + 1):
                        wgt = (1 - abs(cx - xx)) * (1 - abs(cy - yy))
                        if 0 <= xx < tw and 0 <= yy < th and wgt > 0:
                            val += wgt * rgba[p, :, yy, xx]
                a = val[3]
                wi = a * trans
                rgb[:, i, j] += wi * val[:3]
                depth[i, j] += wi * t * d_cam[2]
                acc[i, j] += wi
                trans *= 1 - a + 1e-10
    return rgb, depth, acc


def test_matches_float64_reference_for_random_mpi_and_oblique_cameras():
    rng = np.random.default_rng(0)
    setup = cams.camera_setup("FFHQ")
    dhw = plane_dhw(setup, 4).astype(np.float64)
    rgba = rng.random((4, 4, 9, 11))
    rgba[-1, 3] = 1.0
    c2w = cams.c2w_from_yaw_pitch([0.35, -0.2], [0.1, -0.2], setup)
    K = cams.intrinsics(setup.fov_deg, 12, 10)
    out = render_mpi(
        torch.from_numpy(rgba)[None],
        torch.from_numpy(dhw),
        torch.from_numpy(c2w)[None],
        torch.from_numpy(K),
        (12, 10),
    )
    assert out.rgb.shape == (1, 2, 3, 12, 10)
    assert out.depth.shape == (1, 2, 1, 12, 10)
    for v in range(2):
        ref_rgb, ref_depth, ref_acc = _reference(rgba, dhw, c2w[v], K, (12, 10))
        np.testing.assert_allclose(out.rgb[0, v].numpy(), ref_rgb, atol=1e-10)
        np.testing.assert_allclose(out.depth[0, v, 0].numpy(), ref_depth, atol=1e-10)
        np.testing.assert_allclose(out.alpha[0, v, 0].numpy(), ref_acc, atol=1e-10)


def test_single_opaque_plane_renders_the_exact_warp_of_a_linear_texture():
    # bilinear sampling reproduces a texture linear in (x, y) exactly: colour = that function at the hit
    z, ph, pw = 2.0, 3.0, 4.0
    dhw = torch.tensor([[z, ph, pw]], dtype=torch.float64)
    xyz = texel_xyz(dhw, 33, 41)[0]
    rgba = torch.stack(
        [
            0.5 + 0.1 * xyz[..., 0],
            0.5 + 0.2 * xyz[..., 1],
            0.3 + 0 * xyz[..., 0],
            torch.ones_like(xyz[..., 0]),
        ],
        0,
    )[None, None]
    c2w = torch.from_numpy(
        cams.c2w_from_yaw_pitch([0.3], [0.15], cams.CameraSetup(20, 1.5, 2.5, 2.0, 2.0, 0.1, 0.1, 2))
    )
    K = torch.from_numpy(cams.intrinsics(20.0, 16, 16))
    out = render_mpi(rgba, dhw, c2w[None], K, (16, 16))
    # analytic hit points
    rays = torch.linalg.inv(K) @ torch.stack(
        torch.meshgrid(
            torch.arange(16.0, dtype=torch.float64), torch.arange(16.0, dtype=torch.float64), indexing="xy"
        )
        + (torch.ones(16, 16, dtype=torch.float64),),
        0,
    ).reshape(3, -1)
    rays = rays / rays.norm(dim=0)
    world = c2w[0, :3, :3] @ rays
    eye = c2w[0, :3, 3]
    t = (z - eye[2]) / world[2]
    hx, hy = eye[0] + t * world[0], eye[1] + t * world[1]
    np.testing.assert_allclose(out.rgb[0, 0, 0].reshape(-1), 0.5 + 0.1 * hx, atol=1e-12)
    np.testing.assert_allclose(out.rgb[0, 0, 1].reshape(-1), 0.5 + 0.2 * hy, atol=1e-12)
    np.testing.assert_allclose(out.depth[0, 0, 0].reshape(-1), t * rays[2], atol=1e-12)
    np.testing.assert_allclose(out.alpha, 1.0)


def test_frontal_camera_sees_plane_depth_and_half_alpha_composites():
    dhw = torch.tensor([[1.0, 1.0, 1.0], [2.0, 4.0, 4.0]], dtype=torch.float64)
    rgba = torch.zeros(1, 2, 4, 8, 8, dtype=torch.float64)
    rgba[0, 0, 0], rgba[0, 0, 3] = 1.0, 0.5  # red, half transparent, near
    rgba[0, 1, 2], rgba[0, 1, 3] = 1.0, 1.0  # blue, opaque, far
    K = torch.from_numpy(cams.intrinsics(10.0, 6, 6))
    out = render_mpi(rgba, dhw, torch.eye(4, dtype=torch.float64)[None, None], K, (6, 6))
    np.testing.assert_allclose(out.rgb[0, 0, :, 3, 3], [0.5, 0, 0.5 + 1e-10 * 1.0], atol=1e-12)
    np.testing.assert_allclose(out.depth[0, 0, 0], 0.5 * 1.0 + 0.5 * 2.0, atol=1e-9)
    np.testing.assert_allclose(out.alpha, 1.0, atol=1e-9)
    # a camera beyond the near plane: it contributes nothing (behind the eye)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[2, 3] = 1.5
    out = render_mpi(rgba, dhw, c2w[None, None], K, (6, 6))
    np.testing.assert_allclose(out.rgb[0, 0, 2], 1.0)
    np.testing.assert_allclose(out.depth[0, 0, 0], 0.5, atol=1e-12)


def test_off_plane_rays_are_transparent():
    dhw = torch.tensor([[1.0, 0.05, 0.05]])
    rgba = torch.ones(1, 1, 4, 4, 4)
    out = render_mpi(
        rgba, dhw, torch.eye(4)[None, None], torch.from_numpy(cams.intrinsics(40, 9, 9)).float(), (9, 9)
    )
    assert out.alpha[0, 0, 0, 4, 4] == pytest.approx(1.0)
    assert out.alpha[0, 0, 0, 0, 0] == 0.0


def test_batched_views_equal_single_renders_and_gradients_flow():
    torch.manual_seed(0)
    setup = cams.camera_setup("FFHQ")
    dhw = torch.from_numpy(plane_dhw(setup, 6))
    rgba = torch.rand(2, 6, 4, 16, 16, requires_grad=True)
    c2w = torch.from_numpy(cams.c2w_from_yaw_pitch([0.2, -0.3, 0.0], [0.0, 0.1, -0.1], setup)).float()
    c2w = torch.stack([c2w, c2w.flip(0)])
    K = torch.from_numpy(cams.intrinsics(setup.fov_deg, 20, 20)).float()
    out = render_mpi(rgba, dhw, c2w, K, (20, 20))
    for b in range(2):
        for v in range(3):
            single = render_mpi(rgba[b : b + 1], dhw, c2w[b : b + 1, v : v + 1], K, (20, 20))
            torch.testing.assert_close(out.rgb[b, v], single.rgb[0, 0])
            torch.testing.assert_close(out.depth[b, v], single.depth[0, 0])
    (out.rgb.sum() + out.depth.sum()).backward()
    assert rgba.grad is not None
    assert rgba.grad.abs().sum() > 0
    assert out.rgb.dtype == torch.float32


def test_gradcheck_float64():
    torch.manual_seed(1)
    dhw = torch.tensor([[1.0, 0.6, 0.6], [1.2, 0.8, 0.8]], dtype=torch.float64)
    rgba = torch.rand(1, 2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    c2w = torch.from_numpy(cams.c2w_from_yaw_pitch([0.1], [0.05], cams.camera_setup("FFHQ")))[None]
    K = torch.from_numpy(cams.intrinsics(12.6, 4, 4))
    assert torch.autograd.gradcheck(lambda x: render_mpi(x, dhw, c2w, K, (4, 4)).rgb, (rgba,))


def test_plane_table_matches_gmpi_extents():
    t = plane_dhw(cams.camera_setup("FFHQ256"), 32)
    assert t.shape == (32, 3)
    assert t.dtype == np.float32
    np.testing.assert_allclose(
        t[:-1, 1:], 0.2473, atol=1e-3
    )  # confined: the frontal frustum on the far plane
    np.testing.assert_allclose(t[-1, 1:], [0.4146, 0.4945], atol=1e-3)  # union of frusta x 1.001
    wide = cams.CameraSetup(12.6, 0.95, 1.12, 1.0, 1.0, 1.2, 0.1, 2)
    with pytest.raises(ValueError, match="too wide"):
        plane_dhw(wide, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rgba = torch.rand(1, 3, 4, 8, 8)
    dhw = torch.tensor([[1.0, 1, 1], [1.1, 1, 1], [1.2, 2, 2]])
    K = torch.from_numpy(cams.intrinsics(20, 8, 8)).float()
    c2w = torch.eye(4)[None, None]
    cpu = render_mpi(rgba, dhw, c2w, K, (8, 8))
    gpu = render_mpi(rgba.cuda(), dhw.cuda(), c2w.cuda(), K.cuda(), (8, 8))
    torch.testing.assert_close(gpu.rgb.cpu(), cpu.rgb, atol=1e-5, rtol=1e-5)
