"""What a person looks at: the demo page (links, escaping, the faces that failed), the projected
texture on the exported mesh, and the yaw swing."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch

from fk.engine.context import ItemContext

HOSTILE = ["a#1", "o'neil", "R&D <lab>", "space name"]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.frames: list[list[str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        import json

        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.urls.append(a[key])
        if "data-frames" in a:
            self.frames.append(json.loads(a["data-frames"]))

    def handle_data(self, data):
        self.text.append(data)


def test_demo_page_links_survive_hostile_names_and_list_failed_photos(tmp_path):
    from PIL import Image

    from fk_deep3d.page import DemoPage

    run = tmp_path / "run"
    files = {}
    for stem in HOSTILE:
        key = f"{stem}_00"
        rels = {"overlay": f"faces/{key}_overlay.png", "swing": [f"faces/{key}_swing/{i:02d}.png" for i in range(3)],
                "obj": f"faces/{key}.obj"}
        for rel in [rels["overlay"], rels["obj"], *rels["swing"]]:
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4)).save(run / rel, format="PNG")
        files[key] = rels
    failures = [{"item": "no <face> & co", "step": "detect", "error": "x.jpg: no face found by detect:dlib"}]
    ctx = ItemContext(key="_run", source=None, step_id="page", run_dir=run, step_dir=run, failures=failures)
    page = run / DemoPage("t")({"files": files}, ctx)["page"]
    parser = _Links()
    parser.feed(page.read_text())
    urls = parser.urls + [u for frames in parser.frames for u in frames]
    assert len(parser.frames) == len(HOSTILE) and len(urls) == 3 * len(HOSTILE) + 3 * len(HOSTILE)
    for u in urls:  # a browser percent-decodes the path: each one names a real file
        assert "#" not in u and "'" not in u and "&" not in u
        assert (page.parent / unquote(u)).is_file(), u
    text = "".join(parser.text)
    for stem in HOSTILE:
        assert f"{stem}_00" in text  # shown as the name, escaped once
    assert "no <face> & co" in text and "no face found by detect:dlib" in text


def _demo_recon(yaw: float = 0.3):
    import fk.models
    from fk.types import Crop
    from fk_deep3d.runners import reconstruction

    model = fk.models.load_face_model("demo")
    coeffs = model.join_coeffs({"angle": torch.tensor([[0.05, yaw, 0.0]])})
    with torch.no_grad():
        out = model(coeffs)
    crop = Crop(image=np.zeros((224, 224, 3), np.uint8),
                crop_from_source=np.array([[1.5, 0, 40.0], [0, 1.5, 20.0], [0, 0, 1]]),
                landmarks=out["landmarks_2d"][0].numpy(), method="deep3d")
    recon = reconstruction(model, coeffs, out, crop, {})
    rng = np.random.default_rng(0)
    recon.colors = rng.uniform(0.1, 0.9, size=(len(recon.vertices), 3))  # texture errors show
    return recon


def test_photo_texture_reproduces_the_photo_from_the_fitted_camera():
    """Render a colourful head into a photo with the fit's camera; the exported texture, rendered back
    through the same camera, gives the photo again where the camera saw the surface squarely."""
    from fk.render.mesh import render_mesh
    from fk_deep3d import views

    recon = _demo_recon()
    photo = np.full((420, 400, 3), 30, np.uint8)
    _, k_photo = views.photo_camera(recon, photo)
    verts = views.opencv_vertices(recon)
    rgb, mask = views.render_colors(verts, recon.triangles, recon.colors, k_photo, photo.shape[:2], "cpu")
    photo = np.where(mask[..., None], np.rint(rgb * 255), photo).astype(np.uint8)

    proj = views.photo_texture(recon, photo, uv_size=512, renderer="cpu")
    assert 0.2 < proj.stats["photo"] < 0.9 and proj.stats["mirrored"] > 0  # a turned head: one side mirrored
    with torch.no_grad():
        back = render_mesh(torch.as_tensor(verts, dtype=torch.float32)[None], recon.triangles,
                           torch.as_tensor(k_photo, dtype=torch.float32), photo.shape[:2],
                           uvs=torch.as_tensor(recon.uvs), uv_faces=recon.uv_faces, texture=proj.texture,
                           backend="cpu")
    normals = __import__("fk.io.mesh", fromlist=["vertex_normals"]).vertex_normals(verts, recon.triangles)
    facing = -(normals * verts / np.linalg.norm(verts, axis=1, keepdims=True)).sum(1)
    tri = back.triangle_id[0].numpy()
    square = np.abs(facing[recon.triangles]).min(1) > 0.5  # seen squarely: all three corners
    m = back.mask[0].numpy() & square[np.clip(tri, 0, None)]
    assert m.sum() > 0.3 * back.mask[0].numpy().sum()
    err = back.rgb[0].numpy()[m] * 255 - photo[m].astype(float)
    psnr = 10 * np.log10(255**2 / np.mean(err**2))
    assert psnr > 25, psnr


def test_exported_meshes_carry_the_projected_texture(tmp_path):
    from fk.io.mesh import load_mesh
    from fk_deep3d.export import Deep3DExporter

    recon = _demo_recon()
    photo = np.random.default_rng(1).integers(0, 255, (420, 400, 3), dtype=np.uint8)
    ctx = ItemContext(key="p_00", source=None, step_id="export", run_dir=tmp_path, step_dir=tmp_path / "faces")
    files = Deep3DExporter(formats=["obj", "glb"], renderer="cpu")({"recon": recon, "image": photo}, ctx)["files"]
    names = sorted(p.name for p in (tmp_path / "faces").iterdir())
    assert names == ["p_00.glb", "p_00.mtl", "p_00.obj", "p_00_texture.png"]
    for fmt in ("obj", "glb"):
        mesh = load_mesh(tmp_path / files[fmt])
        assert mesh.texture is not None and mesh.texture.shape == (1024, 1024, 3), fmt
    obj = load_mesh(tmp_path / files["obj"])
    np.testing.assert_array_equal(obj.uv_faces, recon.uv_faces)  # the model's own layout
    np.testing.assert_allclose(obj.uvs, recon.uvs, atol=1e-6)
    plain = Deep3DExporter(formats=["obj"], texture=False, renderer="cpu")
    ctx2 = ItemContext(key="q_00", source=None, step_id="export", run_dir=tmp_path, step_dir=tmp_path / "plain")
    plain({"recon": recon, "image": photo}, ctx2)
    assert load_mesh(tmp_path / "plain" / "q_00.obj").texture is None


@pytest.mark.parametrize("frames", [2, 5, 12])
def test_swing_frames_are_all_distinct_and_end_mirrored(frames):
    from fk_deep3d import views

    recon = _demo_recon(yaw=0.0)
    recon.colors = np.full_like(recon.colors, 0.7)  # a symmetric head, lit evenly
    out = views.swing(recon, frames=frames, size=48, renderer="cpu")
    assert len(out) == frames
    flat = [f.tobytes() for f in out]
    assert len(set(flat)) == frames
    # −60° and +60° are mirror images of each other (the demo head is symmetric).
    first, last = out[0].astype(float), out[-1][:, ::-1].astype(float)
    assert np.mean(np.abs(first - last) > 40) < 0.05


def test_swing_renders_its_frames_in_one_call_with_each_frame_s_own_pixels():
    """The batched render gives every frame exactly what rendering that pose alone gives."""
    from fk_deep3d import views
    from fk.cameras.deep3d import CAMERA_DISTANCE, opencv_from_deep3d_camera, to_camera
    from fk.geometry.rotations import euler_to_matrix

    recon = _demo_recon(yaw=20.0)
    size, frames = 64, 4
    out = views.swing(recon, frames=frames, size=size, renderer="cpu")
    verts = views.canonical_vertices(recon)
    centre = verts.mean(0)
    focal = 0.42 * size * CAMERA_DISTANCE / np.linalg.norm(verts - centre, axis=1).max()
    K = np.array([[focal, 0, size / 2 - 0.5], [0, focal, size / 2 - 0.5], [0, 0, 1.0]])
    for frame, yaw in zip(out, np.deg2rad(60.0) * -np.cos(np.linspace(0.0, np.pi, frames)), strict=True):
        rot = euler_to_matrix(np.array([0.0, yaw, 0.0]), "xyz")
        cam = opencv_from_deep3d_camera(to_camera((verts - centre) @ rot.T))
        rgb, mask = views.render_colors(cam, recon.triangles, recon.colors, K, (size, size), "cpu")
        alone = (np.where(mask[..., None], rgb, np.float32(0.93)) * 255 + 0.5).astype(np.uint8)
        np.testing.assert_array_equal(frame, alone)
        assert mask.mean() > 0.2
