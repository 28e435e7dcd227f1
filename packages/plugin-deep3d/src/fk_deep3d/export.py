"""``export:deep3d``: every file a reconstruction is published as, one format per switch.

Per face (``<key>`` is the item key, files land in the step's folder):

=============  ===================================================================
``mat``        ``<key>.mat``: Deep3D's keys ``id exp tex angle gamma trans`` (1×n float32)
               and ``lm68`` (1×68×2, x right, y down in the 224 crop: row = 223 − v)
``obj``        ``<key>.obj``: the posed face in Deep3D's world frame (dm, y up), lit
               vertex colours, vertex order of the model kept; with the photo (``texture``
               on) also the model's UVs and ``<key>.mtl`` + ``<key>_texture.png`` (1024²):
               the photo projected into the UV layout from the fitted camera, mirrored and
               smoothly filled where the camera did not see (``views.photo_texture``)
``glb``        ``<key>.glb``: the same mesh (and texture) as binary glTF
``png``        ``<key>.png``: crop | render over crop | landmarks (blue detected, red model)
``label``      ``<key>_label.json``: ``{"<key>.png": [25 floats]}``, EG3D's camera label
``npy``        ``<key>.npy``: LPFF's pickled coefficient dict (id exp tex angle gamma trans lm68)
``overlay``    ``<key>_overlay.png``: the render over the original photo
``swing``      ``<key>_swing/NN.png``: the unposed mesh swinging in yaw, ±60°, distinct frames
``input``      ``<key>_input.jpg``: the photo, at most 1024 px (for pages)
=============  ===================================================================

The ``files`` output maps each format to its path relative to the run folder
(``swing``: a list of paths); ``label`` is the 25-float label.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fk.errors import InputError
from fk.io.coeffs import deep3d_coeff_dict as coeff_dict, lpff_coeff_npy

FORMATS = ("mat", "obj", "glb", "png", "label", "npy", "overlay", "swing", "input")
# PNG pictures at zlib level 1: 3-4x faster to encode than the default 6, the same pixels, ~10-25 % larger
FAST_PNG = {"compress_level": 1}


def deep3d_coeff_dict(recon) -> dict[str, np.ndarray]:
    """Deep3D's saved coefficient dict for a reconstruction (:func:`fk.io.coeffs.deep3d_coeff_dict`)."""
    return coeff_dict(recon.coeffs, recon.landmarks)


def recon_mesh(recon, uvs: np.ndarray | None = None, uv_faces: np.ndarray | None = None,
               texture: np.ndarray | None = None):
    """The posed mesh with lit vertex colours; with ``uvs``, ``uv_faces`` and a ``texture``, textured."""
    from fk.io.mesh import Mesh

    faces = np.asarray(recon.triangles, np.int64)
    return Mesh(vertices=np.asarray(recon.vertices, np.float64), faces=faces,
                vertex_colors=np.clip(np.asarray(recon.colors, np.float64), 0.0, 1.0), name="face",
                uvs=uvs, uv_faces=uv_faces, texture=texture)


class Deep3DExporter:
    def __init__(self, formats: list[str] | None = None, texture: bool = True, swing_frames: int = 12,
                 swing_size: int = 256, renderer: str = "auto"):
        formats = list(formats or ["mat", "obj", "png", "label", "npy", "overlay"])
        unknown = [f for f in formats if f not in FORMATS]
        if unknown:
            raise InputError(f"export:deep3d: unknown format(s) {', '.join(unknown)}",
                             hint=f"formats may be any of {', '.join(FORMATS)}")
        self.formats = formats
        self.texture = bool(texture)
        self.frames = int(swing_frames)
        self.size = int(swing_size)
        self.renderer = renderer or "auto"

    def warm(self) -> None:
        """Before the first item (the engine calls this once per process): the photo texture's compiled
        kernel, when meshes with a texture are written."""
        if self.texture and {"obj", "glb"} & set(self.formats):
            from fk.render.cpu.uv_texture import warm

            warm()

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        from fk_deep3d import views
        from fk.cameras.deep3d import eg3d_label_from_deep3d

        recon = inputs["recon"]
        key = ctx.key
        renderer = ctx.options.get("renderer", self.renderer) if self.renderer == "auto" else self.renderer
        files: dict[str, Any] = {}

        def rel(path: Path) -> str:
            return Path(os.path.relpath(path, ctx.run_dir)).as_posix()

        label = eg3d_label_from_deep3d(recon.coeffs["angle"], recon.coeffs["trans"])
        if "mat" in self.formats:
            from fk.io.matfile import savemat_bytes  # no "Created on" time: same numbers, same bytes

            files["mat"] = rel(ctx.write_bytes(f"{key}.mat", savemat_bytes(deep3d_coeff_dict(recon))))
        if "npy" in self.formats:
            files["npy"] = rel(ctx.write_bytes(f"{key}.npy", lpff_coeff_npy(recon.coeffs, recon.landmarks)))
        if "label" in self.formats:
            files["label"] = rel(ctx.write_json(f"{key}_label.json", {f"{key}.png": label.tolist()}))
        if "png" in self.formats:
            files["png"] = rel(ctx.save_image(f"{key}.png", views.three_panel(recon, renderer), **FAST_PNG))
        photo = None
        meshes = [f for f in ("obj", "glb") if f in self.formats]
        if "overlay" in self.formats or "input" in self.formats or (meshes and self.texture):
            photo = self._photo(inputs.get("image"), recon, ctx)
        if meshes:
            mesh = recon_mesh(recon)
            if self.texture and photo is not None and recon.uvs is not None:
                texture = views.photo_texture(recon, photo, renderer=renderer).texture
                mesh = recon_mesh(recon, recon.uvs, recon.uv_faces, texture)
            for fmt in meshes:
                files[fmt] = rel(ctx.write_mesh(f"{key}.{fmt}", mesh))
        if "overlay" in self.formats and photo is not None:
            files["overlay"] = rel(ctx.save_image(
                f"{key}_overlay.png", views.photo_overlay(recon, photo, renderer=renderer), **FAST_PNG))
        if "input" in self.formats and photo is not None:
            from PIL import Image

            small = Image.fromarray(photo)
            small.thumbnail((1024, 1024))
            files["input"] = rel(ctx.save_image(f"{key}_input.jpg", np.asarray(small), quality=90))
        if "swing" in self.formats:
            frames = views.swing(recon, self.frames, self.size, renderer=renderer)
            files["swing"] = [rel(ctx.save_image(f"{key}_swing/{i:02d}.png", f, **FAST_PNG))
                              for i, f in enumerate(frames)]
        return {"files": files, "label": label}

    @staticmethod
    def _photo(image: Any, recon, ctx) -> np.ndarray | None:
        from fk.io import as_rgb

        if image is None:
            face = getattr(recon.crop, "face", None)
            image = getattr(face, "source", None) or ctx.source
        if image is None:
            ctx.log("no original photo given: overlay skipped")
            return None
        return as_rgb(image)
