"""What GMPI runs write for people to look at: frames, videos, depth pictures, plane sheets, an HTML page.

Videos are MP4 (H.264 through imageio-ffmpeg's bundled ffmpeg) when that package imports, else an
animated GIF (Pillow); the file name says which. Every file is written atomically.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
from fk import atomic
from fk.io import save_image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] float (H, W, C) -> uint8 by round(clip(x, 0, 1) * 255) (fk's float image rule)."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def depth_picture(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """(H, W) z-depth -> (H, W, 3) uint8 grey, near bright: 1 - clip((d - near) / (far - near))."""
    d = np.clip((np.asarray(depth, dtype=np.float64) - near) / (far - near), 0.0, 1.0)
    grey = to_uint8(1.0 - d)
    return np.repeat(grey[..., None], 3, axis=-1)


def plane_sheet(planes: np.ndarray, columns: int = 8) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (rows H, columns W, C) contact sheet, plane 0 top-left, 2-pixel gaps."""
    n, h, w, c = planes.shape
    rows = -(-n // columns)
    sheet = np.full((rows * (h + 2), min(n, columns) * (w + 2), c), 255, np.uint8)
    for i in range(n):
        r, k = divmod(i, columns)
        sheet[r * (h + 2) : r * (h + 2) + h, k * (w + 2) : k * (w + 2) + w] = planes[i]
    return sheet


def write_video(path_stem: Path, frames: list[np.ndarray], fps: int = 15) -> Path:
    """Write ``frames`` (uint8 (H, W, 3)) as ``<stem>.mp4``, or ``<stem>.gif`` without imageio-ffmpeg."""
    try:
        import imageio_ffmpeg
    except ImportError:
        imageio_ffmpeg = None
    if imageio_ffmpeg is not None:
        h, w = frames[0].shape[:2]
        path = path_stem.with_suffix(".mp4")

        def write(tmp: Path) -> None:
            # even sizes and yuv420p so every browser plays it; macro_block_size 1 keeps the size as is
            writer = imageio_ffmpeg.write_frames(
                str(tmp),
                (w, h),
                fps=fps,
                codec="libx264",
                pix_fmt_out="yuv420p",
                output_params=["-f", "mp4"],
                macro_block_size=1,
                ffmpeg_log_level="error",
            )
            writer.send(None)
            for f in frames:
                writer.send(np.ascontiguousarray(f[..., :3]))
            writer.close()

        _atomic_write(path, write)
        return path
    from PIL import Image

    path = path_stem.with_suffix(".gif")
    images = [Image.fromarray(f[..., :3]) for f in frames]
    _atomic_write(
        path,
        lambda tmp: images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
        ),
    )
    return path


def _atomic_write(path: Path, writer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_image(path, image)


_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;background:#fafafa}img,video{max-width:100%;"
    "image-rendering:auto;border:1px solid #ccc}.row{display:flex;gap:1em;flex-wrap:wrap;align-items:"
    "flex-start}.cell{flex:0 1 auto}.note{color:#a40;font-weight:bold}figcaption{font-size:.85em}"
)


def write_page(path: Path, title: str, note: str, sections: list[dict]) -> Path:
    """A static page: per section a heading, videos and images (paths relative to the page).

    ``sections``: [{"title": str, "videos": [(caption, rel)], "images": [(caption, rel)], "text": str}].
    """
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    if note:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec['title'])}</h2>")
        if sec.get("text"):
            parts.append(f"<p>{html.escape(sec['text'])}</p>")
        parts.append("<div class='row'>")
        for caption, rel in sec.get("videos", []):
            src = html.escape(rel, quote=True)
            if rel.endswith(".gif"):
                media = f"<img src='{src}'>"
            else:
                media = f"<video src='{src}' autoplay loop muted playsinline controls></video>"
            parts.append(
                f"<figure class='cell'>{media}<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        for caption, rel in sec.get("images", []):
            parts.append(
                f"<figure class='cell'><img src='{html.escape(rel, quote=True)}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("</body></html>\n")
    return atomic.write_text(path, "".join(parts))
