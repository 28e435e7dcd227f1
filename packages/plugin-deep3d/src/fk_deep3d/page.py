"""``export:demo-page``: one static ``index.html`` over every face's exports.

Receives ``files`` as ``{item key: export:deep3d files}`` (paths relative to the run
folder) and links them relatively, so the page works from disk with no network: the
input photo, the overlay, Deep3D's 3-panel strip, and the mesh as a turntable of PNG
frames cycled by a few lines of inline JavaScript (the first frame shows without it),
plus download links for the OBJ / GLB / .mat / label.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;background:#fafafa;color:#222}
h1{font-size:1.4rem} .face{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0}
.row{display:flex;gap:1rem;flex-wrap:wrap;align-items:flex-start} figure{margin:0}
figcaption{font-size:.85rem;color:#666} img{max-height:320px;border-radius:4px}
.links a{margin-right:1rem} .meta{font-size:.85rem;color:#444}
"""

_SCRIPT = """
document.querySelectorAll('img[data-frames]').forEach(function(img){
  var frames = JSON.parse(img.getAttribute('data-frames')), i = 0;
  setInterval(function(){ i = (i + 1) % frames.length; img.src = frames[i]; }, 120);
});
"""


class DemoPage:
    def __init__(self, title: str = "fk demo"):
        self.title = title or "fk demo"

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        files: dict[str, dict[str, Any]] = inputs.get("files") or {}
        page_dir = ctx.path("index.html").parent

        def link(rel: str) -> str:
            return html.escape(Path(os.path.relpath(Path(ctx.run_dir) / rel, page_dir)).as_posix(), quote=True)

        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>",
                 f"<p class='meta'>{len(files)} face(s). Meshes are in Deep3D's world frame (decimetres, y up).</p>"]
        if not files:
            parts.append("<p>No face was reconstructed: see failures.json in the run folder.</p>")
        for key in sorted(files):
            f = files[key] or {}
            parts.append(f"<div class='face'><h2>{html.escape(key)}</h2><div class='row'>")
            for fmt, caption in (("input", "input photo"), ("overlay", "render over the photo"),
                                 ("png", "crop · render · landmarks (blue detected, red model)")):
                if fmt in f:
                    parts.append(f"<figure><img src='{link(f[fmt])}' alt='{fmt}'>"
                                 f"<figcaption>{caption}</figcaption></figure>")
            frames = f.get("turntable") or []
            if frames:
                srcs = [link(p) for p in frames]
                parts.append(f"<figure><img src='{srcs[0]}' alt='mesh turntable' "
                             f"data-frames='{html.escape(json.dumps(srcs), quote=True)}'>"
                             "<figcaption>mesh (turntable)</figcaption></figure>")
            parts.append("</div><p class='links'>")
            for fmt, label in (("obj", "mesh (.obj)"), ("glb", "mesh (.glb)"), ("mat", "coefficients (.mat)"),
                               ("npy", "LPFF coefficients (.npy)"), ("label", "EG3D camera label")):
                if fmt in f:
                    parts.append(f"<a href='{link(f[fmt])}'>{label}</a>")
            parts.append("</p></div>")
        parts.append(f"<script>{_SCRIPT}</script></body></html>\n")
        path = ctx.write_text("index.html", "".join(parts))
        return {"page": Path(os.path.relpath(path, ctx.run_dir)).as_posix()}
