"""fk-plugin-align on this CPU: detect + LPFF realign + every crop, per image and with 2 processes.

    python bench/bench_align.py [--repeats 3] [--images 6] [--cnn]

Photos: scikit-image's astronaut upscaled (bicubic) to 1024^2 and 2400^2 (plus the native
512^2 for the detector rows). Reference column: the dlib figures in
/work/shared/notes/performance.md, measured on this machine class (HOG upsample 1 on the
512^2 astronaut 0.11 s, 68-point predictor 2.5 ms, MMOD CNN upsample 1 10.1 s).
Figures are medians over ``--repeats``; the machine is shared, so compare ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from _timing import median_time

REFERENCE = {"hog512": 0.11, "predictor": 0.0025, "cnn512": 10.1}



def photos(folder: Path) -> dict[int, Path]:
    from fk.testing import astronaut_path
    from PIL import Image

    src = Image.open(astronaut_path()).convert("RGB")
    out = {512: astronaut_path()}
    for size in (1024, 2400):
        out[size] = folder / f"astronaut{size}.png"
        src.resize((size, size), Image.Resampling.BICUBIC).save(out[size])
    return out


def process_photo(path: str) -> float:
    """What one worker does per photo: detect, realign, then the FFHQ, Deep3D and EG3D crops."""
    from fk.io import load_image
    from fk_align.deep3d_align import align_img
    from fk_align.dlib_detect import DlibDetector
    from fk_align.eg3d_crop import eg3d_crop
    from fk_align.ffhq import ffhq_align
    from fk_align.realign import lpff_realign

    t0 = time.perf_counter()
    rgb = load_image(path)
    for face in DlibDetector(upsample=1, min_score=0.3).find_faces(rgb):
        re = lpff_realign(rgb, face.landmarks)
        ffhq_align(rgb, face.landmarks)
        align_img(re.image, re.landmarks)
        eg3d_crop(re.image, re.landmarks)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=6, help="photos per throughput run (1024^2)")
    ap.add_argument("--cnn", action="store_true", help="also time dlib's MMOD CNN (about 10 s per call)")
    args = ap.parse_args()

    from fk.io import load_image
    from fk_align.deep3d_align import align_img
    from fk_align.dlib_detect import DlibCnnDetector, DlibDetector, _hog, landmarks_68
    from fk_align.eg3d_crop import eg3d_crop
    from fk_align.ffhq import ffhq_align
    from fk_align.realign import lpff_realign

    folder = Path(tempfile.mkdtemp(prefix="bench_align_"))
    paths = photos(folder)
    det = DlibDetector(upsample=1, min_score=0.3)

    rgb512 = load_image(paths[512])
    rects = _hog().run(rgb512, 1, 0.0)[0]
    print(f"{'step':<44}{'fk':>10}{'reference':>12}")
    hog = median_time(lambda: _hog().run(rgb512, 1, 0.0), args.repeats)
    print(f"{'dlib HOG, upsample 1, 512^2':<44}{hog:>9.3f}s{REFERENCE['hog512']:>11.3f}s")
    pred = median_time(lambda: landmarks_68(rgb512, rects[0]), max(args.repeats, 20))
    print(
        f"{'dlib 68-point predictor, one face':<44}{pred * 1e3:>8.1f}ms"
        f"{REFERENCE['predictor'] * 1e3:>10.1f}ms"
    )
    if args.cnn:
        cnn = DlibCnnDetector(upsample=1)
        t = median_time(lambda: cnn.detect(rgb512), 1)
        print(f"{'dlib MMOD CNN, upsample 1, 512^2':<44}{t:>9.2f}s{REFERENCE['cnn512']:>11.2f}s")

    for size in (1024, 2400):
        rgb = load_image(paths[size])
        face = det.find_faces(rgb)[0]
        re = lpff_realign(rgb, face.landmarks)
        rows = {  # partial binds this iteration's photo, face and realign
            "load image": partial(load_image, paths[size]),
            "detect:dlib (HOG upsample 1 + 68 points)": partial(det.find_faces, rgb),
            "crop:lpff-realign (2400^2)": partial(lpff_realign, rgb, face.landmarks),
            "crop:ffhq (1024^2, from the photo)": partial(ffhq_align, rgb, face.landmarks),
            "crop:deep3d (224^2, from the realign)": partial(align_img, re.image, re.landmarks),
            "crop:eg3d (512^2, from the realign)": partial(eg3d_crop, re.image, re.landmarks),
        }
        print(f"\n{size}^2 photo (face ~{int(face.box[2] - face.box[0])} px)")
        total = 0.0
        for name, fn in rows.items():
            t = median_time(fn, args.repeats)
            total += t
            hog_ref = (
                f"{REFERENCE['hog512'] * (size / 512) ** 2:>10.2f}s*" if name.startswith("detect") else ""
            )
            print(f"  {name:<42}{t:>9.3f}s{hog_ref}")
        print(f"  {'total per image':<42}{total:>9.3f}s")
    print("  * reference HOG time scaled by pixel count from the 512^2 figure")

    batch = [str(paths[1024])] * args.images
    t0 = time.perf_counter()
    for p in batch:
        process_photo(p)
    one = len(batch) / (time.perf_counter() - t0)
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(process_photo, batch[:2]))  # start and warm both workers
        t0 = time.perf_counter()
        list(pool.map(process_photo, batch))
        two = len(batch) / (time.perf_counter() - t0)
    print(f"\nthroughput, 1024^2 photos, detect + realign + ffhq + deep3d + eg3d ({len(batch)} photos)")
    print(f"  1 process   {one:6.2f} images/s")
    print(f"  2 processes {two:6.2f} images/s   (x{two / one:.2f})")


if __name__ == "__main__":
    main()
