"""``export:uvfit-page``: one static ``index.html`` over every photo's UV fit (no network).

Per photo: the input, the stage vis strip (crop, textured render over the crop, landmarks, UV map),
the textured head rendered by fk's renderer at three yaw angles, the UV texture and where its texels
came from, and links to the OBJ/MTL/GLB files. The texture's label (e.g. "projected texture, no GAN")
is shown on every face.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;background:#fafafa;color:#222}
h1{font-size:1.4rem} .face{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0}
.row{display:flex;gap:1rem;flex-wrap:wrap;align-items:flex-start} figure{margin:0}
figcaption{font-size:.85rem;color:#666} img{max-height:300px;border-radius:4px}
.label{display:inline-block;background:#fff3cd;border:1px solid #e0c36a;border-radius:4px;padding:.1rem .5rem}
.links a{margin-right:1rem} .meta{font-size:.85rem;color:#444}
"""


class UVFitPage:
    def __init__(self, title: str = "fk uvfit"):
        self.title = title or "fk uvfit"

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        files: dict[str, dict[str, Any]] = inputs.get("files") or {}
        infos: dict[str, dict[str, Any]] = inputs.get("info") or {}
        page_dir = ctx.path("index.html").parent

        def link(rel: str) -> str:
            return html.escape(
                Path(os.path.relpath(Path(ctx.run_dir) / rel, page_dir)).as_posix(), quote=True
            )

        esc = html.escape
        parts = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(self.title)}</title>",
            f"<style>{_STYLE}</style></head><body><h1>{esc(self.title)}</h1>",
            f"<p class='meta'>{len(files)} face(s). Meshes are in the face model's frame (decimetres, "
            "y up); open the three OBJs together, or the GLB.</p>",
        ]
        if not files:
            parts.append("<p>No face was fitted: see failures.json in the run folder.</p>")
        for key in sorted(files):
            f, info = files[key] or {}, infos.get(key) or {}
            cov = info.get("coverage") or {}
            where = (
                f"texels from the photo {cov.get('photo', 0):.0%}, mirrored {cov.get('mirrored', 0):.0%}, "
                f"smooth fill {cov.get('filled', 0):.0%}"
                if cov
                else f"{esc(info.get('path', ''))} path"
            )
            notes = "".join(f"<br>{esc(n)}" for n in info.get("notices") or [])
            if info.get("why_embedded"):
                notes += f"<br>embedded path: {esc(info['why_embedded'])}"
            parts.append(
                f"<div class='face'><h2>{esc(key)}</h2><p><span class='label'>{esc(info.get('texture', ''))}"
                f"</span> model: {esc(str(info.get('model', '')))} · UV layout: "
                f"{esc(str(info.get('uv_layout', '')))} · {where} · {esc(str(info.get('eyeballs', '')))}"
                f"<span class='meta'>{notes}</span></p><div class='row'>"
            )
            for view, yaw in zip(f.get("views", []), ("left", "front", "right"), strict=False):
                parts.append(
                    f"<figure><img src='{link(view)}' alt='textured head, {yaw}'>"
                    f"<figcaption>textured head ({Path(view).stem[5:]})</figcaption></figure>"
                )
            parts.append("</div><div class='row'>")
            for fmt, caption in (
                ("input", "input photo"),
                ("vis", "crop · textured render · landmarks (blue detected, red model) · UV"),
                ("stage1_vis", "stage 1 (R-Net): crop · skin · parse · landmarks · render"),
                ("stage2_vis", "stage 2 (latent search)"),
                ("uv", "stage3_uv.png"),
                ("uv_source", "texel source: green photo, blue mirrored, orange smooth fill"),
            ):
                if fmt in f:
                    parts.append(
                        f"<figure><img src='{link(f[fmt])}' alt='{fmt}'>"
                        f"<figcaption>{esc(caption)}</figcaption></figure>"
                    )
            parts.append("</div><p class='links'>")
            for fmt, label in (
                ("mesh_id", "stage3_mesh_id.obj"),
                ("mesh_exp", "stage3_mesh_exp.obj"),
                ("glb", "head + eyeballs (.glb)"),
                ("L_ball", "L_ball.obj"),
                ("R_ball", "R_ball.obj"),
                ("coeffs", "coefficients (.npz)"),
                ("info", "uvfit.json"),
            ):
                if fmt in f:
                    parts.append(f"<a href='{link(f[fmt])}'>{esc(label)}</a>")
            parts.append("</p></div>")
        parts.append("</body></html>\n")
        path = ctx.write_text("index.html", "".join(parts))
        return {"page": Path(os.path.relpath(path, ctx.run_dir)).as_posix()}
