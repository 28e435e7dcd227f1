"""Conformance: fk's torch MTCNN (detect:mtcnn) vs the PyPI ``mtcnn`` package running TensorFlow.

    python bench/conformance_mtcnn.py [--venv /tmp/fk-mtcnn-ref] [--work DIR]

Creates a throw-away venv with ``mtcnn`` and ``tensorflow-cpu`` (never an fk dependency), runs the
package's own ``MTCNN().detect_faces(img, output_type="numpy", box_format="xyxy")`` (its float boxes;
the default JSON output rounds to integers) on scikit-image's astronaut and transformed copies
(mirrored, upscaled to 1024^2, rotated 12 degrees, an off-centre crop, darkened), then runs fk's
cascade on the same pixels with the same weight files and compares face by face, in the package's
order. Targets: boxes and keypoints within 1 px, confidences within 1e-3. Exit status 1 on a miss.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

PX_TOL, CONF_TOL = 1.0, 1e-3

REF_SCRIPT = textwrap.dedent(
    r"""
    import json, os, statistics, sys, time
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    import tensorflow as tf
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    import numpy as np
    from PIL import Image
    from mtcnn import MTCNN
    work, names = sys.argv[1], json.loads(sys.argv[2])
    det = MTCNN()
    out, timings = {}, {}
    for name in names:
        img = np.asarray(Image.open(f"{work}/{name}.png").convert("RGB"))
        if os.environ.get("FK_MTCNN_VARIANT") == "0.1.1":  # dicts of ints: x, y, width, height, keypoints
            res = det.detect_faces(img)
            k = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
            rows = [[0, *f["box"][:2], f["box"][0] + f["box"][2], f["box"][1] + f["box"][3], f["confidence"],
                     *[f["keypoints"][n][0] for n in k], *[f["keypoints"][n][1] for n in k]] for f in res]
            out[name] = np.asarray(rows, dtype=np.float64).reshape(-1, 16)
        else:
            res = det.detect_faces(img, output_type="numpy", box_format="xyxy")
            out[name] = np.asarray(res, dtype=np.float64).reshape(-1, 16)
        if threads:
            det.detect_faces(img)
            ts = []
            for _ in range(int(os.environ.get("FK_BENCH_REPEATS", "3"))):
                t0 = time.perf_counter(); det.detect_faces(img); ts.append(time.perf_counter() - t0)
            timings[name] = statistics.median(ts)
    np.savez(f"{work}/ref_{threads}.npz", **out)
    json.dump({"tensorflow": tf.__version__, "timings": timings}, open(f"{work}/ref_{threads}.json", "w"))
    """
)


def ensure_venv(venv: Path, variant: str = "1.0") -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        pkgs = ["mtcnn", "pillow", "tensorflow-cpu"]
        if variant == "0.1.1":
            pkgs = ["mtcnn==0.1.1", "pillow", "tensorflow-cpu", "opencv-python-headless"]
        print(f"creating the reference venv {venv} ({', '.join(pkgs)})", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pkgs], check=True)
    return python


def make_photos(work: Path) -> list[str]:
    from fk.testing import astronaut_path
    from PIL import Image, ImageEnhance

    src = Image.open(astronaut_path()).convert("RGB")
    photos = {
        "astronaut": src,
        "mirrored": src.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "upscaled1024": src.resize((1024, 1024), Image.Resampling.BICUBIC),
        "rotated12": src.rotate(12, resample=Image.Resampling.BILINEAR),
        "crop_offcentre": src.crop((100, 20, 420, 260)),
        "darkened": ImageEnhance.Brightness(src).enhance(0.55),
    }
    for name, im in photos.items():
        im.save(work / f"{name}.png")
    return list(photos)


def run_reference(
    python: Path, work: Path, names: list[str], threads: int = 0, variant: str = "1.0"
) -> tuple[dict, dict]:
    script = work / "ref_mtcnn.py"
    script.write_text(REF_SCRIPT)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore", "FK_MTCNN_VARIANT": variant}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    subprocess.run(
        [str(python), str(script), str(work), json.dumps(names), str(threads)], check=True, env=env
    )
    ref = dict(np.load(work / f"ref_{threads}.npz"))
    return ref, json.loads((work / f"ref_{threads}.json").read_text())


def compare(work: Path, names: list[str], ref: dict, variant: str = "1.0") -> list[dict]:
    from fk_align.mtcnn_detect import detect_mtcnn, detect_mtcnn_011
    from PIL import Image

    detect = detect_mtcnn if variant == "1.0" else detect_mtcnn_011

    rows = []
    for name in names:
        img = np.asarray(Image.open(work / f"{name}.png").convert("RGB"))
        mine = detect(img)
        theirs = ref[name][:, 1:]  # drop the image index column
        row = {"photo": f"{name} {img.shape[1]}x{img.shape[0]}", "faces": (len(mine), len(theirs))}
        if len(mine) == len(theirs) and len(mine):
            row["box"] = float(np.abs(mine[:, :4] - theirs[:, :4]).max())
            row["conf"] = float(np.abs(mine[:, 4] - theirs[:, 4]).max())
            row["keypoints"] = float(np.abs(mine[:, 5:] - theirs[:, 5:]).max())
        rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--venv", default=None, help="default /tmp/fk-mtcnn-ref (1.0), /tmp/fk-mtcnn011-ref (0.1.1)"
    )
    ap.add_argument(
        "--variant",
        default="1.0",
        choices=("1.0", "0.1.1"),
        help="0.1.1: GMPI's pinned release (integer outputs)",
    )
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="fk-mtcnn-conf-"))
    work.mkdir(parents=True, exist_ok=True)
    venv = args.venv or ("/tmp/fk-mtcnn-ref" if args.variant == "1.0" else "/tmp/fk-mtcnn011-ref")
    python = ensure_venv(Path(venv), args.variant)
    names = make_photos(work)
    ref, meta = run_reference(python, work, names, variant=args.variant)
    rows = compare(work, names, ref, args.variant)
    print(
        f"mtcnn {args.variant} (TensorFlow {meta['tensorflow']}) vs fk detect:mtcnn variant {args.variant} "
        "(torch), same weights:"
    )
    ok = True
    for r in rows:
        same = r["faces"][0] == r["faces"][1]
        good = same and all(
            r.get(k, 0) <= t for k, t in (("box", PX_TOL), ("keypoints", PX_TOL), ("conf", CONF_TOL))
        )
        ok &= good
        detail = (
            f"box {r['box']:.3g} px, keypoints {r['keypoints']:.3g} px, confidence {r['conf']:.2g}"
            if "box" in r
            else ""
        )
        print(
            f"  {r['photo']:28s} faces fk/mtcnn {r['faces'][0]}/{r['faces'][1]}  max |diff| {detail}"
            f"{'  ok' if good else '  FAIL'}"
        )
    print(f"  (targets: <= {PX_TOL:g} px, confidence <= {CONF_TOL:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
