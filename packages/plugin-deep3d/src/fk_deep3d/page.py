"""``export:demo-page``: one static ``index.html`` over every face's exports.

Receives ``files`` as ``{item key: export:deep3d files}`` (paths relative to the run
folder) and links them relatively, so the page works from disk with no network: the
input photo, the overlay, Deep3D's 3-panel strip, and the mesh swinging in yaw as PNG
frames cycled back and forth by a few lines of inline JavaScript (the first frame shows
without it), plus download links for the OBJ / GLB / .mat / label. Photos where no face
was reconstructed are listed with the step and the reason (``ctx.failures``).

Escaping is done once, where a value enters the page: paths are percent-encoded as URLs
(so ``#``, ``?``, ``'``, ``&`` and spaces in file names survive), then HTML-escaped as
attribute text; names shown as text are HTML-escaped.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;background:#fafafa;color:#222}
h1{font-size:1.4rem} .face{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0}
.row{display:flex;gap:1rem;flex-wrap:wrap;align-items:flex-start} figure{margin:0}
figcaption{font-size:.85rem;color:#666} img{max-height:320px;border-radius:4px}
.links a{margin-right:1rem} .meta{font-size:.85rem;color:#444}
table{border-collapse:collapse} td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;font-size:.9rem}
"""

_SCRIPT = """
document.querySelectorAll('img[data-frames]').forEach(function(img){
  var frames = JSON.parse(img.getAttribute('data-frames')), i = 0, step = 1;
  if (frames.length < 2) return;
  setInterval(function(){
    if (i + step < 0 || i + step >= frames.length) step = -step;  // back and forth: no jump at the ends
    i += step; img.src = frames[i];
  }, 110);
});
"""


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


class DemoPage:
    def __init__(self, title: str = "fk demo"):
        self.title = title or "fk demo"

    def __call__(self, inputs: dict[str, Any], ctx) -> dict[str, Any]:
        files: dict[str, dict[str, Any]] = inputs.get("files") or {}
        failures: list[dict[str, Any]] = list(getattr(ctx, "failures", None) or [])
        page_dir = ctx.path("index.html").parent

        def url(rel: str) -> str:
            """A relative URL to a run file: percent-encoded, not yet HTML-escaped."""
            return quote(Path(os.path.relpath(Path(ctx.run_dir) / rel, page_dir)).as_posix())

        title = html.escape(self.title)
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
                 f"<style>{_STYLE}</style></head><body><h1>{title}</h1>",
                 f"<p class='meta'>{len(files)} face(s). Meshes are in Deep3D's world frame (decimetres, y up).</p>"]
        if not files:
            parts.append("<p>No face was reconstructed.</p>")
        for key in sorted(files):
            f = files[key] or {}
            parts.append(f"<div class='face'><h2>{html.escape(key)}</h2><div class='row'>")
            for fmt, caption in (("input", "input photo"), ("overlay", "render over the photo"),
                                 ("png", "crop · render · landmarks (blue detected, red model)")):
                if fmt in f:
                    parts.append(f"<figure><img src='{_attr(url(f[fmt]))}' alt='{fmt}'>"
                                 f"<figcaption>{caption}</figcaption></figure>")
            frames = f.get("swing") or []
            if frames:
                srcs = [url(p) for p in frames]
                parts.append(f"<figure><img src='{_attr(srcs[0])}' alt='mesh swinging in yaw' "
                             f"data-frames='{_attr(json.dumps(srcs))}'>"
                             "<figcaption>mesh, yaw ±60°</figcaption></figure>")
            parts.append("</div><p class='links'>")
            for fmt, label in (("obj", "mesh (.obj)"), ("glb", "mesh (.glb)"), ("mat", "coefficients (.mat)"),
                               ("npy", "LPFF coefficients (.npy)"), ("label", "EG3D camera label")):
                if fmt in f:
                    parts.append(f"<a href='{_attr(url(f[fmt]))}'>{label}</a>")
            parts.append("</p></div>")
        if failures:
            parts.append(f"<h2>Not reconstructed ({len(failures)})</h2><table><tr><th>item</th><th>step</th>"
                         "<th>reason</th></tr>")
            for fail in sorted(failures, key=lambda x: (str(x.get("item")), str(x.get("step")))):
                parts.append("<tr>" + "".join(f"<td>{html.escape(str(fail.get(k, '')))}</td>"
                                              for k in ("item", "step", "error")) + "</tr>")
            parts.append("</table><p class='meta'>The same list is in failures.json in the run folder.</p>")
        parts.append(f"<script>{_SCRIPT}</script></body></html>\n")
        path = ctx.write_text("index.html", "".join(parts))
        return {"page": Path(os.path.relpath(path, ctx.run_dir)).as_posix()}
