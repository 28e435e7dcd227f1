"""``fk eyeball demo``: every Step-1 tool on the synthetic subject, errors against the truth, an HTML page.

Lengths are reported in millimetres (the synthetic world is in decimetres: 1 unit = 100 mm).
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

MM = 100.0  # synthetic world units (dm) -> mm


def _read_mask(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))[..., 0].astype(np.float32) / 255.0


def mask_iou(pred_root: Path, truth_root: Path, names: list[str]) -> dict[str, float]:
    """Pooled IoU (masks thresholded at 0.5) per eye over every frame; a missing prediction counts as empty."""
    out = {}
    for eye in ("leye", "reye"):
        inter = union = 0
        for n in names:
            t = _read_mask(truth_root / f"{eye}_mask" / n) > 0.5
            p_path = pred_root / f"{eye}_mask" / n
            p = _read_mask(p_path) > 0.5 if p_path.is_file() else np.zeros_like(t)
            inter += int((p & t).sum())
            union += int((p | t).sum())
        out[eye] = inter / max(union, 1)
    return out


def overlay_masks(rgb: np.ndarray, truth: list[np.ndarray], pred: list[np.ndarray]) -> np.ndarray:
    """Prediction tinted (left eye blue, right eye magenta), truth outlined in green."""
    from scipy import ndimage

    out = rgb.astype(np.float32)
    for p, col in zip(pred, ([60, 120, 255], [255, 60, 200]), strict=True):
        out = out * (1 - 0.5 * p[..., None]) + 0.5 * p[..., None] * np.array(col, np.float32)
    for t in truth:
        b = t > 0.5
        edge = b & ~ndimage.binary_erosion(b)
        out[edge] = (0, 255, 0)
    return np.clip(out, 0, 255).astype(np.uint8)


def _crop_eyes(img: np.ndarray, masks: list[np.ndarray], pad: int = 12, zoom: int = 3) -> np.ndarray:
    from PIL import Image

    m = np.maximum(*masks) > 0.05
    if not m.any():
        return img
    rows, cols = np.nonzero(m)
    r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad, img.shape[0])
    c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad, img.shape[1])
    crop = Image.fromarray(img[r0:r1, c0:c1])
    return np.asarray(crop.resize((crop.width * zoom, crop.height * zoom), Image.NEAREST))


def run_demo(out: str | Path, scale: float = 0.5, n_frames: int = 24, auto: bool = True,
             log: Callable[[str], None] = print) -> dict:  # fmt: skip
    from fk.io.image import load_image, save_image

    from fk_eyeball.auto import auto_eye_masks, detect_2d_landmarks, triangulate_eye_landmarks
    from fk_eyeball.dataset import load_subject
    from fk_eyeball.export import photo_albedo, write_eyeballs
    from fk_eyeball.masks import render_eye_masks
    from fk_eyeball.synth import write_subject
    from fk_eyeball.triangulate import fit_spheres, triangulate
    from fk_eyeball.uv_landmarks import uv_landmarks, write_config_key

    out = Path(out)
    root = out / "subject"
    if root.exists():
        shutil.rmtree(root)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    rows: list[tuple[str, str, str]] = []

    def report(what: str, value: str, target: str = "") -> None:
        rows.append((what, value, target))
        lines.append(f"{what}: {value}" + (f"   [{target}]" if target else ""))

    log("synthetic subject ...")
    truth = write_subject(root, scale=scale, n_frames=n_frames)
    names = truth["frames"]
    subject = load_subject(root)
    centres_true = {e: np.asarray(c) for e, c in truth["centers"].items()}

    log("render-eye-masks ...")
    render_eye_masks(root, root / "mesh_uv.obj")
    iou = mask_iou(root, root / "truth", names)
    report(
        "render-eye-masks IoU vs truth (left, right eye)", f"{iou['leye']:.3f}, {iou['reye']:.3f}", ">= 0.95"
    )

    log("uv-landmarks ...")
    manual = {}
    for eye, side in (("leye", "left"), ("reye", "right")):
        pts, _ = uv_landmarks(root / f"diffuse_{eye}_landmark.png", root / "coord.npy")
        err = np.abs(pts - np.asarray(truth["painted_landmarks"][eye])).max()
        report(f"uv-landmarks {side}: {len(pts)} blobs, max |lift - painted texel's 3D point|", f"{err:.2e} units",
               "<= 1e-5")  # fmt: skip
        write_config_key(root / "config.yaml", f"{side}_eye_ldm", pts)
        manual[eye] = pts
    c_man, r_man, _ = fit_spheres(manual)
    err_man = max(np.linalg.norm(c_man[e] - centres_true[e]) for e in c_man) * MM
    report("sphere fit from the 4 painted landmarks per eye: max centre error, radius error",
           f"{err_man:.3f} mm, {abs(r_man - truth['radius']) * MM:.3f} mm", "<= 0.5 mm")  # fmt: skip

    log("triangulation (truth + 1 px noise) ...")
    rng = np.random.default_rng(0)
    P = np.concatenate([np.asarray(truth["contour_landmarks"][e]) for e in ("leye", "reye")])
    c2w = subject.cam2world
    cam = np.einsum("vji,vlj->vli", c2w[:, :3, :3], P[None] - c2w[:, None, :3, 3])
    K = subject.K
    px = np.stack(
        [K[0, 0] * cam[..., 0] / cam[..., 2] + K[0, 2], K[1, 1] * cam[..., 1] / cam[..., 2] + K[1, 2]], -1
    )
    tri = triangulate(px + rng.normal(0, 1, px.shape), K, c2w)
    report(
        f"triangulated contour landmarks, 1 px noise, {len(c2w)} views at {subject.size[1]}x{subject.size[0]}: "
        "max error",
        f"{np.linalg.norm(tri.points - P, axis=1).max() * MM:.3f} mm",
        "<= 0.5 mm at 720x960",
    )
    c_tri, r_tri, _ = fit_spheres({"leye": tri.points[:6], "reye": tri.points[6:]})
    report(
        "sphere fit from them: max centre error",
        f"{max(np.linalg.norm(c_tri[e] - centres_true[e]) for e in c_tri) * MM:.3f} mm",
        "<= 0.5 mm at 720x960",
    )

    auto_iou = None
    if auto:
        log("auto-eye-masks (dlib on every frame) ...")
        s = auto_eye_masks(root, out=out / "auto")
        auto_iou = mask_iou(out / "auto", root / "truth", names)
        report("auto-eye-masks (dlib 68-point eye contours) IoU vs truth (left, right)",
               f"{auto_iou['leye']:.3f}, {auto_iou['reye']:.3f} ({len(s['no_face'])} frames without a face)",
               ">= 0.8")  # fmt: skip
        log("landmarks-2d / landmarks-3d ...")
        d2 = detect_2d_landmarks(root)
        try:
            t3 = triangulate_eye_landmarks(root)
            auto_pts = np.concatenate([t3["leye"], t3["reye"]])
            report(f"landmarks-3d from dlib on {len(t3['views'])} near-frontal views: max / median distance to "
                   "the synthetic contour points", f"{np.linalg.norm(auto_pts - P, axis=1).max() * MM:.2f} / "
                   f"{np.median(np.linalg.norm(auto_pts - P, axis=1)) * MM:.2f} mm; reprojection RMS "
                   f"{np.median(t3['rms_px']):.2f} px", "reported (dlib on a synthetic face)")  # fmt: skip
            c_auto, r_auto, _ = fit_spheres({"leye": t3["leye"], "reye": t3["reye"]},
                                            radius_bounds=(0.08, 0.16))  # fmt: skip
            report("sphere fit from the dlib landmarks: max centre error, radius",
                   f"{max(np.linalg.norm(c_auto[e] - centres_true[e]) for e in c_auto) * MM:.2f} mm, "
                   f"{r_auto * MM:.2f} mm (truth {truth['radius'] * MM:.0f} mm)", "reported")  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the page reports it
            report("landmarks-3d", f"failed: {exc}", "")
        vis = sorted((root / "vis_landmarks").glob("*.png"))[:2]
        for v in vis:
            shutil.copy(v, figs / f"landmarks_{v.name}")
        d2_frames = d2["frames"]
    else:
        d2_frames = []

    log("export-eyeballs ...")
    write_eyeballs(out / "export", c_man, r_man, subject.cam2world, subject.K, subject.size,
                   lambda eye, p: photo_albedo(subject, eye, c_man[eye], p))  # fmt: skip

    # figures: three frames, manual and automatic masks against the truth
    axes = subject.cam2world[:, :3, 2]
    mean_axis = axes.mean(0) / np.linalg.norm(axes.mean(0))
    most_frontal = names[int(np.argmax(axes @ mean_axis))]
    picks = list(dict.fromkeys([most_frontal, names[0], names[-1]]))
    for n in picks:
        rgb = load_image(root / "image" / n)
        truth_m = [_read_mask(root / "truth" / f"{e}_mask" / n) for e in ("leye", "reye")]
        pred = [_read_mask(root / f"{e}_mask" / n) for e in ("leye", "reye")]
        save_image(figs / f"manual_{n}", overlay_masks(rgb, truth_m, pred))
        save_image(figs / f"manual_zoom_{n}", _crop_eyes(overlay_masks(rgb, truth_m, pred), truth_m))
        if auto:
            pa = [(_read_mask(p) if (p := out / "auto" / f"{e}_mask" / n).is_file() else np.zeros_like(truth_m[0]))
                  for e in ("leye", "reye")]  # fmt: skip
            save_image(figs / f"auto_zoom_{n}", _crop_eyes(overlay_masks(rgb, truth_m, pa), truth_m))
    for folder in ("right", "left"):
        for m in ("diffuse", "normal"):
            shutil.copy(out / "export" / folder / f"{m}.png", figs / f"export_{folder}_{m}.png")
    shutil.copy(root / "diffuse_leye_mask.png", figs / "uv_leye_mask.png")
    page = _write_page(out, rows, picks, auto, d2_frames)
    (out / "report.json").write_text(
        json.dumps({"rows": rows, "mask_iou": iou, "auto_mask_iou": auto_iou}, indent=1)
    )
    return {"lines": lines, "page": str(page), "iou": iou, "auto_iou": auto_iou}


def _write_page(out: Path, rows, picks, auto: bool, d2_frames) -> Path:
    esc = html.escape
    table = "\n".join(
        f"<tr><td>{esc(a)}</td><td><b>{esc(b)}</b></td><td>{esc(c)}</td></tr>" for a, b, c in rows
    )
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))

    def imgs(prefix: str) -> str:
        return "".join(f'<figure><img src="figures/{f}"><figcaption>{esc(f)}</figcaption></figure>'
                       for f in figs if f.startswith(prefix))  # fmt: skip

    body = f"""<!doctype html><meta charset="utf-8"><title>fk eyeball demo</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}} td{{padding:3px 8px;border-bottom:1px solid #ddd}}
figure{{display:inline-block;margin:6px}} img{{max-height:360px}}</style>
<h1>fk eyeball demo: CoRA's Step-1 tools on a synthetic subject</h1>
<p>Synthetic data: fk's demo head (decimetres) with two eyeball spheres of radius 13 mm at known centres, rendered
by fk's CPU renderer from phone-like cameras; every figure below is computed, none is a photo. Overlays: the tool's
mask tinted (left eye blue, right eye magenta), the ground truth outlined in green.</p>
<table><tr><th>check</th><th>result</th><th>target</th></tr>{table}</table>
<h2>render-eye-masks (painted UV masks → frames)</h2>{imgs("manual")}
<h2>automatic path (dlib eye contours)</h2>{imgs("auto") if auto else "<p>skipped (--no-auto)</p>"}
<p>near-frontal frames chosen from the poses: {esc(", ".join(d2_frames))}</p>{imgs("landmarks")}
<h2>painted UV mask and eyeball export (right/ = CoRA's leye)</h2>{imgs("uv_")}{imgs("export")}
"""
    page = out / "index.html"
    page.write_text(body)
    return page
