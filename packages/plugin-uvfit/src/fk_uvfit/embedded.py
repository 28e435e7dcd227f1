"""``export:uvfit``: FFHQ-UV's per-photo files from a fit of the face model that is installed.

The embedded path (no gated file): ``fit:deep3d`` fits BFM09 or fk's demo head; this step makes the
UV texture by **projecting the photo** into the model's UV layout (``fk.render.uv_projection``:
visibility, mirrored fill, smooth fill) -- labelled "projected texture, no GAN" -- and writes, in
``<out>/<item>/``, the files upstream's RGB fitting writes (ffhquv.md §3.3):

``stage3_mesh_id.obj`` ``stage3_mesh_exp.obj`` ``stage3_mesh.mtl`` ``stage3_uv.png`` (``uv_size``²)
``stage3_coeffs.npz`` ``stage3_vis.png`` ``L_ball.obj`` ``R_ball.obj`` ``eye_ball_tex.mtl``
``eye_ball_tex.png``, plus fk's ``L_ball_exp.obj``/``R_ball_exp.obj`` (eyeballs for the expression
mesh), ``<item>.glb`` (head with expression and both eyeballs, textured), ``stage3_uv_source.png``
(where each texel came from), ``view_yaw*.png`` (three renders) and ``uvfit.json`` (labels, coverage,
seconds per stage).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from fk.errors import InputError

TEXTURE_LABEL = "projected texture, no GAN"
EYEBALL_LABEL = "procedural eyeballs (no FFHQ-UV template): generated UV sphere and iris texture"
TEMPLATE_EYEBALL_LABEL = (
    "FFHQ-UV template eyeballs: anchor similarity fit + depth/height refinement (upstream)"
)
BLOCKS = ("id", "exp", "tex", "angle", "gamma", "trans")


def eyeball_templates() -> dict[str, Any] | None:
    """FFHQ-UV's template eyeballs (and texture, or None) when both OBJs are installed, else None."""
    from fk.assets import asset_path

    from fk_uvfit.assets import ASSETS, EYE_LEFT, EYE_RIGHT, EYE_TEX

    where = {a.name: asset_path(a.path) for a in ASSETS if a.name in (EYE_LEFT, EYE_RIGHT, EYE_TEX)}
    if not (where[EYE_LEFT].is_file() and where[EYE_RIGHT].is_file()):
        return None
    return {
        "L": where[EYE_LEFT],
        "R": where[EYE_RIGHT],
        "texture": where[EYE_TEX] if where[EYE_TEX].is_file() else None,
    }


def model_uv_layout(model) -> tuple[np.ndarray, np.ndarray, str]:
    """(uvs (T, 2), uv_faces (F, 3), how): the model's UVs, else a cylindrical unwrap of its mean shape."""
    if model.uvs is not None:
        return model.uvs.cpu().double().numpy(), model.uv_faces.cpu().numpy(), "model"
    from fk.geometry.uv import cylindrical_uv

    return (
        cylindrical_uv(model.mean_vertices().cpu().double().numpy()),
        model.triangles.cpu().numpy(),
        "cylindrical",
    )


class UVFitExporter:
    """Per item: projected UV texture, upstream's file set, eyeballs, GLB, yaw renders."""

    def __init__(
        self,
        uv_size: int = 1024,
        yaws: list[float] | None = None,
        view_size: int = 384,
        glb: bool = True,
        mirror: bool = True,
        face_mask: bool = True,
        renderer: str = "auto",
        threads: int = 1,
    ):
        self.threads = int(threads if threads is not None else 1)
        self.uv_size = int(uv_size)
        self.yaws = [float(y) for y in (yaws if yaws is not None else [-35.0, 0.0, 35.0])]
        self.view_size = int(view_size)
        self.glb = bool(glb)
        self.mirror = bool(mirror)
        self.face_mask = bool(face_mask)
        self.renderer = renderer or "auto"
        self._models: dict[str, Any] = {}

    def _model(self, name: str):
        if name not in self._models:
            import fk.models

            self._models[name] = fk.models.load_face_model(name)
        return self._models[name]

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        import torch

        before = torch.get_num_threads()
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        try:
            return self._run(inputs, ctx)
        finally:
            torch.set_num_threads(before)

    def _run(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        import torch
        from fk.cameras.deep3d import K_LANDMARKS, opencv_from_deep3d_camera, to_camera
        from fk.io import as_rgb
        from fk.types import Reconstruction

        from fk_uvfit import eyeballs as eb
        from fk_uvfit import files as F
        from fk_uvfit.views import TexturedMesh, draw_points, render_textured, yaw_views

        recon = inputs["recon"]
        if not isinstance(recon, Reconstruction):
            raise InputError(
                f"export:uvfit expects a reconstruction, got {type(recon).__name__}",
                hint="wire `recon: <fit step>.recon` with use: fit:deep3d",
            )
        renderer = ctx.options.get("renderer", "auto") if self.renderer == "auto" else self.renderer
        key = ctx.key
        seconds: dict[str, float] = {}
        files: dict[str, Any] = {}

        def rel(path: Path) -> str:
            return Path(os.path.relpath(path, ctx.run_dir)).as_posix()

        t0 = time.perf_counter()
        photo = self._photo(inputs.get("image"), recon, ctx)
        model = self._model(recon.model)
        uvs, uv_faces, layout = model_uv_layout(model)
        faces = model.triangles.cpu().numpy()
        crop = recon.crop
        coeffs = {k: np.asarray(recon.coeffs[k], np.float64).reshape(1, -1) for k in BLOCKS}
        with torch.no_grad():
            ident = torch.as_tensor(coeffs["id"], dtype=model.dtype)
            expr = torch.as_tensor(coeffs["exp"], dtype=model.dtype)
            shape_id = model.shape(ident, torch.zeros_like(expr))[0].double().numpy()
            shape_exp = model.shape(ident, expr)[0].double().numpy()
        full = (recon.extra or {}).get("uvfit") or {}
        proj = None
        if full.get("path") == "full":
            # fit:uvfit already wrote upstream's stage 1-3 files: take its texture and list its files
            texture = as_rgb(Path(ctx.run_dir) / full["files"]["stage3_uv"])
            names = {
                "stage3_uv": "uv",
                "stage3_mesh_id": "mesh_id",
                "stage3_mesh_exp": "mesh_exp",
                "stage3_coeffs": "coeffs",
                "stage3_vis": "vis",
            }
            files.update({names.get(k, k): v for k, v in full["files"].items()})
            label = full.get("label", "")
            seconds["texture"] = 0.0
        else:
            label = TEXTURE_LABEL
            texture, proj = self._project(photo, recon, model, uvs, uv_faces, faces, renderer, key)
            seconds["project"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            files["uv"] = rel(ctx.save_image(f"{key}/stage3_uv.png", texture))
            files["uv_source"] = rel(ctx.save_image(f"{key}/stage3_uv_source.png", proj.source_image()))
            ctx.write_text(f"{key}/stage3_mesh.mtl", F.mtl_text("stage3_uv.png"))
            for tag, shape in (("id", shape_id), ("exp", shape_exp)):
                files[f"mesh_{tag}"] = rel(
                    ctx.write_text(
                        f"{key}/stage3_mesh_{tag}.obj", F.head_obj_text(shape, uvs, faces, uv_faces)
                    )
                )
            buf = _npz_bytes(F.coeffs_npz(recon.coeffs, list(BLOCKS), recon.landmarks))
            files["coeffs"] = rel(ctx.write_bytes(f"{key}/stage3_coeffs.npz", buf))
            seconds["meshes"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        keypoints = model.keypoints.cpu().numpy()
        # upstream's eyeball fit uses HiFi3D++'s vertex ids: only for the real 20,481-vertex head
        hifi_head = recon.model == "hifi3dpp" and model.n_vertices == eb.HIFI3DPP_VERTICES
        templates = eyeball_templates() if hifi_head else None
        if templates is not None and templates["texture"] is not None:
            eye_tex = as_rgb(templates["texture"])
        else:
            eye_tex = eb.iris_texture()
        ctx.save_image(f"{key}/eye_ball_tex.png", eye_tex)
        ctx.write_text(f"{key}/eye_ball_tex.mtl", F.mtl_text("eye_ball_tex.png"))
        balls: dict[str, eb.Eyeball] = {}
        for tag, shape in (("", shape_id), ("_exp", shape_exp)):
            for side, ids in (("L", eb.LEFT_EYE), ("R", eb.RIGHT_EYE)):
                if templates is not None:  # upstream's fit; written as the OBJ stores the head (%f, float32)
                    ball = eb.fit_template(np.round(shape, 6).astype(np.float32), templates[side], side)
                else:
                    ball = eb.place_procedural(shape, keypoints, ids)
                balls[f"{side}{tag}"] = ball
                files[f"{side}_ball{tag}"] = rel(
                    ctx.write_text(
                        f"{key}/{side}_ball{tag}.obj",
                        F.eyeball_obj_text(ball.vertices, ball.uvs, ball.normals, ball.polygons),
                    )
                )
        eyeball_label = TEMPLATE_EYEBALL_LABEL if templates is not None else EYEBALL_LABEL
        seconds["eyeballs"] = time.perf_counter() - t0

        head = TexturedMesh(shape_exp, faces, uvs, uv_faces, texture)
        eye_meshes = []
        for side in ("L_exp", "R_exp"):
            f3, t3 = balls[side].triangles()
            eye_meshes.append(TexturedMesh(balls[side].vertices, f3, balls[side].uvs, t3, eye_tex))
        if self.glb:
            t0 = time.perf_counter()
            from fk.io.mesh import Mesh, write_glb_scene

            meshes = [Mesh(head.vertices, faces, uvs=uvs, uv_faces=uv_faces, texture=texture, name="head")]
            for side, m in zip(("L_ball", "R_ball"), eye_meshes, strict=True):
                meshes.append(
                    Mesh(m.vertices, m.faces, uvs=m.uvs, uv_faces=m.uv_faces, texture=eye_tex, name=side)
                )
            files["glb"] = rel(ctx.write_with(f"{key}/{key}.glb", lambda p: write_glb_scene(p, meshes)))
            seconds["glb"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        views = yaw_views([head, *eye_meshes], self.yaws, self.view_size, renderer)
        files["views"] = [
            rel(ctx.save_image(f"{key}/view_yaw{int(round(y)):+d}.png", v))
            for y, v in zip(self.yaws, views, strict=True)
        ]
        crop_img = np.asarray(crop.image)
        posed = TexturedMesh(
            opencv_from_deep3d_camera(to_camera(np.asarray(recon.vertices))),
            faces,
            uvs,
            uv_faces,
            texture,
        )
        rgb, mask = render_textured([posed], [posed.vertices], K_LANDMARKS, crop_img.shape[:2], renderer)
        render = np.where(mask[..., None], np.clip(np.rint(rgb * 255), 0, 255), crop_img).astype(np.uint8)
        marks = crop_img.copy()
        if crop.landmarks is not None:
            marks = draw_points(marks, crop.landmarks, (0, 0, 255))
        marks = draw_points(marks, recon.landmarks, (255, 0, 0))
        from PIL import Image

        uv_small = np.asarray(Image.fromarray(texture).resize(crop_img.shape[1::-1], Image.BOX))
        if "vis" not in files:  # the full path wrote upstream's stage3_vis.png
            files["vis"] = rel(
                ctx.save_image(
                    f"{key}/stage3_vis.png", np.concatenate([crop_img, render, marks, uv_small], axis=1)
                )
            )
        small = Image.fromarray(photo)
        small.thumbnail((1024, 1024))
        files["input"] = rel(ctx.save_image(f"{key}/input.jpg", np.asarray(small), quality=90))
        seconds["views"] = time.perf_counter() - t0

        info = {
            "path": full.get("path", "embedded"),
            "texture": label,
            "model": recon.model,
            "uv_layout": layout,
            "uv_size": self.uv_size,
            "eyeballs": eyeball_label,
            "coverage": {k: round(v, 4) for k, v in proj.stats.items()} if proj is not None else None,
            "landmark_rmse": recon.extra.get("landmark_rmse"),
            "seconds": {
                **{f"fit_{k}": round(float(v), 3) for k, v in (recon.extra.get("seconds") or {}).items()},
                **{k: round(v, 3) for k, v in seconds.items()},
            },
        }
        if full.get("path") == "full":
            info.update(
                {
                    k: full[k]
                    for k in ("texgan_variant", "loss_weights", "notices", "stage1_uv_unwrap", "final_loss")
                    if k in full
                }
            )
        elif full.get("why"):
            info["why_embedded"] = full["why"]
        files["info"] = rel(ctx.write_json(f"{key}/uvfit.json", info))
        cover = (
            f"{proj.stats['photo']:.0%} photo, {proj.stats['mirrored']:.0%} mirrored, "
            f"{proj.stats['filled']:.0%} filled; "
            if proj is not None
            else ""
        )
        ctx.log(f"{label}: {cover}" + ", ".join(f"{k} {v:.2f}s" for k, v in seconds.items()))
        return {"files": files, "info": info}

    def _project(self, photo, recon, model, uvs, uv_faces, faces, renderer, key):
        """The embedded texture: the photo projected into the model's UV layout."""
        from fk.cameras.deep3d import K_LANDMARKS, opencv_from_deep3d_camera, to_camera
        from fk.render.uv_projection import project_photo_to_uv

        crop = recon.crop
        k_photo = crop.source_from_crop @ K_LANDMARKS
        if not np.allclose(k_photo[2], [0.0, 0.0, 1.0], atol=1e-9):
            raise InputError(
                f"{key}: export:uvfit needs an affine crop (crop:deep3d)", hint="use crop:deep3d"
            )
        posed_cv = opencv_from_deep3d_camera(to_camera(np.asarray(recon.vertices, np.float64)))
        symmetric = model.mean_vertices().cpu().double().numpy() if self.mirror else None
        mask = None
        if self.face_mask and crop.landmarks is not None:
            from fk_uvfit.masks import landmark_face_mask

            mask = landmark_face_mask(
                crop.to_source(crop.landmarks), photo.shape[:2], forehead=0.7, shrink=0.03, feather=0.02
            )
        proj = project_photo_to_uv(
            photo,
            posed_cv,
            faces,
            uvs,
            uv_faces,
            k_photo,
            self.uv_size,
            symmetry_vertices=symmetric,
            mask=mask,
            backend=renderer,
        )
        return proj.texture, proj

    @staticmethod
    def _photo(image: Any, recon, ctx) -> np.ndarray:
        from fk.io import as_rgb

        if image is None:
            face = getattr(recon.crop, "face", None)
            image = getattr(face, "source", None) or ctx.source
        if image is None:
            raise InputError(
                f"{ctx.key}: export:uvfit needs the original photo", hint="wire `image: inputs.photos`"
            )
        return as_rgb(image)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
