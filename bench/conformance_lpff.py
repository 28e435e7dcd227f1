"""Conformance: fk's align/LPFF defaults vs the originals' own code on the same photos and landmarks.

    python bench/conformance_lpff.py [--mirrors /work/.mirror] [--venv /tmp/fk-conformance-venv]
                                     [--work /tmp/fk-conformance] [--repeats 3]

Originals (public repositories; a checkout or bare git dir each, found under ``--mirrors`` as
``owner+name/repo`` or given with ``--repo owner/name=PATH``; else cloned from GitHub):
NVlabs/ffhq-dataset (``recreate_aligned_images``), oneThousand1000/LPFF-dataset
(``0_get_landmarks.py``, ``1_realign.py``, ``my_realign.realign_process_image``,
``2_predict_camera_parameter.py``'s ``read_data``/``compute_pose``/``compute_density``,
``3_eg3d_crop.py``, ``4_stylegan_crop.py``, its ``kde.pkl``), sicxu/Deep3DFaceRecon_pytorch
(``test.py:read_data`` -> ``util/preprocess.py:align_img``, ``BFM/similarity_Lm3D_all.mat``) and
NVlabs/eg3d (``dataset_preprocessing/ffhq/crop_images_in_the_wild.py``).

The script

1. creates a throw-away venv with the originals' old stack (numpy<1.24 for their ragged arrays, scipy 1.9, Pillow<10 for
   ``ANTIALIAS``, opencv<4.9, dlib-bin, torch CPU, tqdm) and exports the repositories into
   ``--work`` (never vendored, never imported by fk or its tests). Imports their code needs but
   these paths never call (face_alignment, skimage, requests) are empty stub modules;
2. writes the test photos: the astronaut at 1024 px, rotated, mirrored, near the edge (heavy
   padding), half transparent (RGBA), and two faces side by side;
3. in that venv runs LPFF's ``0_get_landmarks.py`` and ``1_realign.py`` as they are (dlib
   landmarks, names, realigns, detections), then its realign function, Deep3D's crop,
   ``3_eg3d_crop.py`` and ``4_stylegan_crop.py`` on the realigns (with the realign's landmarks in
   ``lm_5p_pred/`` standing in for R-Net's, which needs the gated checkpoint), ffhq-dataset's
   ``recreate_aligned_images`` and EG3D's in-the-wild crop on the photos (5 points from the same
   dlib landmarks), LPFF's ``compute_pose`` on random Deep3D poses and ``compute_density`` with
   its ``kde.pkl``; timing each crop function;
4. runs fk (``fk run`` of a recipe doing the same steps with fk's defaults, and fk's functions for
   the timings) on the same photos and landmarks, and prints per face: identical or PSNR for
   FFHQ 1024, LPFF 2400, Deep3D 224 (from the realign and from the photo), EG3D 512 (from the
   realign and from the photo), LPFF StyleGAN 1024; detections/landmark differences; names; label
   and density differences; and a timing table (medians, fk beside the original, same run).

Exit status 1 when any crop is not identical, a label differs by more than 1e-6 or a name differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path

import numpy as np

REPOS = {
    "ffhq": "NVlabs/ffhq-dataset",
    "lpff": "oneThousand1000/LPFF-dataset",
    "deep3d": "sicxu/Deep3DFaceRecon_pytorch",
    "eg3d": "NVlabs/eg3d",
}
OLD_STACK = ["numpy<1.24", "scipy==1.9.3", "Pillow<10", "opencv-python-headless<4.9", "dlib-bin", "tqdm",
             "torch==2.13.0"]
LABEL_TOL = 1e-6

# --------------------------------------------------------------------------- the originals' side
DRIVER = r'''
import ast, glob, json, os, runpy, shutil, sys, time, types
import numpy as np

work, face_model = sys.argv[1], sys.argv[2]
src = os.path.join(work, "src")
# Modules their files import at the top but these code paths never call.
for name in ("face_alignment", "skimage", "skimage.io", "skimage.transform", "requests"):
    sys.modules[name] = types.ModuleType(name)
sys.modules["skimage"].io = sys.modules["skimage.io"]
sys.modules["skimage"].transform = sys.modules["skimage.transform"]
sys.modules["face_alignment"].LandmarksType = types.SimpleNamespace(_2D=None)
sys.modules["face_alignment"].FaceAlignment = lambda *a, **k: None

def functions(path, names, glb):
    """Their functions, by name, from a script whose top level needs a GPU model (never run)."""
    tree = ast.parse(open(path).read())
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    exec(compile(ast.Module(body=body, type_ignores=[]), path, "exec"), glb)
    return glb

def timed(fn, repeats):
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter(); out = fn(); best.append(time.perf_counter() - t0)
    return out, float(np.median(best))

repeats = int(sys.argv[3])
lpff = os.path.join(src, "lpff", "data_processing", "0_image_processing")
data = os.path.join(work, "orig", "lpff_data")
os.makedirs(os.path.join(lpff, "checkpoints"), exist_ok=True)
shutil.copy(face_model, os.path.join(lpff, "checkpoints", "shape_predictor_68_face_landmarks.dat"))
os.chdir(lpff)
sys.path.insert(0, lpff)
res = {"timings": {}, "labels": {}}
for script in ("0_get_landmarks.py", "1_realign.py"):
    sys.argv = [script, "--data_dir", data]
    runpy.run_path(script, run_name="__main__")
import my_realign, stylegan_image_align
from util.load_mats import load_lm3d
lm3d = load_lm3d("./BFM")
pred = functions("2_predict_camera_parameter.py", {"read_data", "compute_rotation", "compute_pose",
                 "convert_cart_to_spherical", "compute_density", "load_kernel", "inverse_transformation"},
                 {"np": np, "torch": __import__("torch"), "Image": __import__("PIL.Image").Image,
                  "align_img": __import__("util.preprocess", fromlist=["align_img"]).align_img,
                  "pickle": __import__("pickle")})
realign = os.path.join(data, "realign")
for sub in ("realign", "lm_5p_pred", "debug", "epoch_20_000000", "crop/eg3d", "crop/stylegan"):
    os.makedirs(os.path.join(realign, sub), exist_ok=True)
out = os.path.join(work, "orig")
for sub in ("deep3d224", "lm_lpff"):
    os.makedirs(os.path.join(out, sub), exist_ok=True)
for lm_path in sorted(glob.glob(os.path.join(data, "lm_facealignment_dlib", "*.npy"))):
    face = os.path.basename(lm_path)[:-4]
    raw = glob.glob(os.path.join(data, "raw", face[:-3] + ".*"))[0]
    lm = np.load(lm_path)
    tmp = os.path.join(work, "orig", "tmp_realign.png")
    (img, lm_new), t = timed(lambda: my_realign.realign_process_image(None, raw, tmp, 2400, 4096, True, lm), repeats)
    if lm_new is None:
        continue
    res["timings"].setdefault("lpff2400", {})[face] = t
    np.save(os.path.join(out, "lm_lpff", face + ".npy"), lm_new)
    np.save(os.path.join(realign, "lm_5p_pred", face + ".npy"), lm_new)  # stands in for R-Net's landmarks
    shutil.copy(os.path.join(realign, face + ".png"), os.path.join(realign, "realign", face + ".png"))
    open(os.path.join(realign, "debug", face + ".png"), "wb").close()
    det = os.path.join(realign, "detections", face + ".txt")
    (im224, _, _), t = timed(lambda: pred["read_data"](os.path.join(realign, face + ".png"), det, lm3d,
                                                       to_tensor=False), repeats)
    res["timings"].setdefault("deep3d224", {})[face] = t
    im224.save(os.path.join(out, "deep3d224", face + ".png"))
    _, t = timed(lambda: stylegan_image_align.stylegan_image_align(os.path.join(realign, face + ".png"), tmp,
                                                                   lm_new), repeats)
    res["timings"].setdefault("stylegan1024", {})[face] = t
for script in ("3_eg3d_crop.py", "4_stylegan_crop.py"):
    sys.argv = [script, "--data_dir", data]
    runpy.run_path(script, run_name="__main__")
eg3d_crop_ns = runpy.run_path("3_eg3d_crop.py", run_name="not_main")
def lpff_eg3d(face):
    p = np.load(os.path.join(realign, "lm_5p_pred", face + ".npy"))
    p[:, -1] = 2400 - 1 - p[:, -1]
    im = eg3d_crop_ns["crop_img"](os.path.join(realign, "realign", face + ".png"), p, lm3d, flip_lm=False)
    left = int(im.size[0] / 2 - 350); up = int(im.size[1] / 2 - 350)
    return im.crop((left, up, left + 700, up + 700)).resize((512, 512), resample=__import__("PIL.Image").Image.LANCZOS)
for face in sorted(res["timings"].get("lpff2400", {})):
    _, res["timings"].setdefault("eg3d512", {})[face] = timed(lambda: lpff_eg3d(face), repeats)

# FFHQ: ffhq-dataset's own recreate_aligned_images, one item per face (its json layout)
ffhq_dir = os.path.join(src, "ffhq")
os.chdir(ffhq_dir)
sys.path.insert(0, ffhq_dir)
import download_ffhq
faces = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(data, "lm_facealignment_dlib", "*.npy")))
ffhq_out = os.path.join(out, "ffhq1024")
for i, face in enumerate(faces):
    raw = glob.glob(os.path.join(data, "raw", face[:-3] + ".*"))[0]
    lm = np.load(os.path.join(data, "lm_facealignment_dlib", face + ".npy"))
    item = {"0": {"in_the_wild": {"file_path": os.path.basename(raw), "face_landmarks": lm.tolist()}}}
    dst = os.path.join(ffhq_out, face)
    _, t = timed(lambda: download_ffhq.recreate_aligned_images(item, os.path.join(data, "raw"), dst_dir=dst),
                 repeats)
    res["timings"].setdefault("ffhq1024", {})[face] = t

# EG3D's in-the-wild crop and Deep3D's test.py read_data on the photos (5 points from dlib's 68)
eg3d_ffhq = os.path.join(src, "eg3d", "dataset_preprocessing", "ffhq")
indir = os.path.join(out, "eg3d_wild")
os.makedirs(os.path.join(indir, "detections"), exist_ok=True)
from util.preprocess import extract_5p
for face in faces:
    raw = glob.glob(os.path.join(data, "raw", face[:-3] + ".*"))[0]
    shutil.copy(raw, os.path.join(indir, face + ".png" if raw.endswith(".png") else face + ".jpg"))
    p5 = extract_5p(np.load(os.path.join(data, "lm_facealignment_dlib", face + ".npy")).astype(np.float64))
    with open(os.path.join(indir, "detections", face + ".txt"), "w") as f:
        f.writelines(f"{float(x)!r} {float(y)!r}\n" for x, y in p5)
os.chdir(eg3d_ffhq)
sys.path.insert(0, eg3d_ffhq)
for mod in [m for m in sys.modules if m == "util" or m.startswith("util.")]:
    del sys.modules[mod]
sys.argv = ["crop_images_in_the_wild.py", "--indir", indir]
runpy.run_path("crop_images_in_the_wild.py", run_name="__main__")
d3 = os.path.join(src, "deep3d")
test_ns = functions(os.path.join(d3, "test.py"), {"read_data"},
                    {"np": np, "Image": __import__("PIL.Image").Image,
                     "align_img": runpy.run_path(os.path.join(d3, "util", "preprocess.py"))["align_img"]})
lm3d_d3 = runpy.run_path(os.path.join(d3, "util", "load_mats.py"))["load_lm3d"](os.path.join(d3, "BFM"))
os.makedirs(os.path.join(out, "deep3d224_photo"), exist_ok=True)
for face in faces:
    img_path = glob.glob(os.path.join(indir, face + ".*"))[0]
    det = os.path.join(indir, "detections", face + ".txt")
    (im, _), t = timed(lambda: test_ns["read_data"](img_path, det, lm3d_d3, to_tensor=False), repeats)
    res["timings"].setdefault("deep3d224_photo", {})[face] = t
    im.save(os.path.join(out, "deep3d224_photo", face + ".png"))

# Labels and densities: LPFF's compute_pose / compute_density on random Deep3D poses
rng = np.random.RandomState(0)
os.chdir(lpff)
kernel = pred["load_kernel"]()
for i in range(64):
    angle = (rng.uniform(-0.35, 0.35, (1, 3)) * [1.0, 2.2, 0.6]).astype(np.float32)
    trans = (rng.normal(0, [[0.15, 0.15, 0.4]])).astype(np.float32)
    pose = pred["compute_pose"]({"angle": angle.copy(), "trans": trans.copy()})
    label = np.concatenate([pose.reshape(16), [4.2647, 0.0, 0.5, 0.0, 4.2647, 0.5, 0.0, 0.0, 1.0]])
    density, theta, phi = pred["compute_density"](kernel, pose)
    res["labels"][str(i)] = {"angle": angle.tolist(), "trans": trans.tolist(), "label": label.tolist(),
                             "density": float(np.ravel(density)[0])}
json.dump(res, open(os.path.join(out, "result.json"), "w"))
'''


def run(cmd: list[str], **kw) -> None:
    subprocess.run(cmd, check=True, **kw)


def ensure_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        run([sys.executable, "-m", "venv", str(venv)])
    probe = "import numpy, scipy, PIL, cv2, dlib, torch, tqdm; assert numpy.__version__ < '1.24'"
    if subprocess.run([str(py), "-c", probe], capture_output=True).returncode != 0:
        run([str(py), "-m", "pip", "install", "-q", *OLD_STACK])
    return py


def export_repo(key: str, args: argparse.Namespace, dest: Path) -> Path:
    """A plain copy of the repository's files (from a checkout, a bare git dir, or a fresh clone)."""
    name = REPOS[key]
    given = dict(s.split("=", 1) for s in args.repo).get(name)
    src = Path(given) if given else Path(args.mirrors) / name.replace("/", "+") / "repo"
    out = dest / key
    if out.exists():
        return out
    if not src.exists():
        src = dest / f"{key}.git"
        run(["git", "clone", "--bare", "--depth", "1", f"https://github.com/{name}", str(src)])
    out.mkdir(parents=True)
    if (src / ".git").exists():
        shutil.copytree(src, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
    else:  # file by file: a snapshot may lack its largest blobs (not needed here)
        listing = subprocess.run(["git", f"--git-dir={src}", "ls-tree", "-r", "-z", "HEAD"], check=True,
                                 capture_output=True).stdout.decode()
        for entry in filter(None, listing.split("\0")):
            meta, path = entry.split("\t", 1)
            mode, kind, sha = meta.split()
            if kind != "blob":
                continue
            blob = subprocess.run(["git", f"--git-dir={src}", "cat-file", "blob", sha], capture_output=True)
            if blob.returncode != 0:
                continue
            target = out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if mode == "120000":
                target.symlink_to(blob.stdout.decode())
            else:
                target.write_bytes(blob.stdout)
    return out


def make_photos(raw: Path) -> None:
    from fk.testing import astronaut_path
    from PIL import Image

    raw.mkdir(parents=True, exist_ok=True)
    base = Image.open(astronaut_path()).convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS)
    # distinct name prefixes: LPFF's 0_get_landmarks.py skips a photo "x" when any "x_*.npy" exists
    base.save(raw / "frontal.png")
    base.rotate(20, resample=Image.Resampling.BICUBIC, fillcolor=(90, 90, 90)).save(raw / "rotated.png")
    base.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(raw / "mirrored.png")
    base.crop((250, 0, 1024, 900)).save(raw / "edge.png")  # the face near the left edge: big padding
    rgba = np.dstack([np.asarray(base), np.tile(np.linspace(40, 255, 1024, dtype=np.uint8), (1024, 1))])
    Image.fromarray(rgba, "RGBA").save(raw / "halftransparent.png")
    small = base.resize((700, 700), Image.Resampling.LANCZOS)
    pair = Image.new("RGB", (1724, 1024), (30, 30, 30))
    pair.paste(small, (0, 200))
    pair.paste(base, (700, 0))
    pair.save(raw / "pair.png")


RECIPE = """fk: 1
name: conformance
inputs:
  photos: {type: images, path: RAW}
steps:
  - {id: detect, use: "detect:lpff", in: {image: inputs.photos},
     with: {write_landmarks: true, naming: lpff}, dir: lm_facealignment_dlib}
  - {id: ffhq, use: "crop:ffhq", in: {image: inputs.photos, face: detect.faces}, dir: ffhq1024}
  - {id: realign, use: "crop:lpff-realign", in: {image: inputs.photos, face: detect.faces}, dir: realign}
  - {id: realigned, use: "crop:lpff-realigned", in: {crop: realign.crop}}
  - {id: deep3d, use: "crop:deep3d", in: {image: realigned.image, face: realigned.face5}, dir: deep3d224}
  - {id: eg3d, use: "crop:eg3d", in: {image: realigned.image, face: realigned.face}, dir: eg3d512}
  - {id: stylegan, use: "crop:ffhq", in: {image: realigned.image, face: realigned.face},
     with: {border: lpff}, dir: stylegan1024}
  - {id: deep3d_photo, use: "crop:deep3d", in: {image: inputs.photos, face: detect.faces}, dir: deep3d224_photo}
  - {id: eg3d_photo, use: "crop:eg3d", in: {image: inputs.photos, face: detect.faces}, dir: eg3d512_photo}
"""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def load(path: Path) -> np.ndarray | None:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")) if path.exists() else None


def fk_timings(raw: Path, lm_dir: Path, realign_dir: Path, repeats: int) -> dict[str, dict[str, float]]:
    """fk's crop functions on the same photos and landmarks (medians, in process)."""
    from fk.io import load_image
    from fk_align.deep3d_align import align_img
    from fk_align.eg3d_crop import eg3d_crop
    from fk_align.ffhq import LPFF_STYLEGAN, ffhq_align
    from fk_align.landmarks import five_from_68
    from fk_align.realign import lpff_realign

    def med(fn):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    def crop_photo(photo, fn, *args):
        return fn(load_image(photo), *args)

    out: dict[str, dict[str, float]] = {}
    for lm_path in sorted(lm_dir.glob("*.npy")):
        face = lm_path.stem
        photo = next(raw.glob(face[:-3] + ".*"))
        lm = np.load(lm_path).astype(np.float64)
        five = five_from_68(lm).astype(np.float32)
        out.setdefault("ffhq1024", {})[face] = med(partial(crop_photo, photo, ffhq_align, lm))
        out.setdefault("deep3d224_photo", {})[face] = med(partial(crop_photo, photo, align_img, five))
        realigned = realign_dir / f"{face}.png"
        if not realigned.exists():
            continue
        res = lpff_realign(load_image(photo), lm)
        out.setdefault("lpff2400", {})[face] = med(partial(crop_photo, photo, lpff_realign, lm))
        p5 = np.asarray(five_from_68(res.landmarks), np.float32)
        out.setdefault("deep3d224", {})[face] = med(partial(crop_photo, realigned, align_img, p5))
        out.setdefault("stylegan1024", {})[face] = med(partial(crop_photo, realigned, ffhq_align, res.landmarks,
                                                               LPFF_STYLEGAN))
        out.setdefault("eg3d512", {})[face] = med(partial(crop_photo, realigned, eg3d_crop, res.landmarks))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirrors", default="/work/.mirror", help="folder of owner+name/repo git dirs")
    ap.add_argument("--repo", action="append", default=[], help="owner/name=PATH (checkout or bare git dir)")
    ap.add_argument("--venv", default="/tmp/fk-conformance-venv", type=Path)
    ap.add_argument("--work", default="/tmp/fk-conformance", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    work: Path = args.work
    if work.exists():
        shutil.rmtree(work)
    (work / "src").mkdir(parents=True)
    py = ensure_venv(args.venv)
    for key in REPOS:
        export_repo(key, args, work / "src")
    eg3d_sub = work / "src" / "eg3d" / "dataset_preprocessing" / "ffhq" / "Deep3DFaceRecon_pytorch"
    shutil.rmtree(eg3d_sub, ignore_errors=True)  # a submodule: EG3D pins Deep3D, whose align_img is unchanged
    shutil.copytree(work / "src" / "deep3d", eg3d_sub)
    lpff_bfm = work / "src" / "lpff" / "data_processing" / "0_image_processing" / "BFM"
    lpff_bfm.mkdir(exist_ok=True)
    shutil.copy(work / "src" / "deep3d" / "BFM" / "similarity_Lm3D_all.mat", lpff_bfm)
    (work / "src" / "ffhq" / "LICENSE.txt").touch()
    raw = work / "orig" / "lpff_data" / "raw"
    make_photos(raw)
    from fk_align.dlib_detect import PREDICTOR_68, dlib_model_path

    driver = work / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    t0 = time.perf_counter()
    run([str(py), str(driver), str(work), str(dlib_model_path(PREDICTOR_68)), str(args.repeats)],
        stdout=subprocess.DEVNULL)
    print(f"originals ran in {time.perf_counter() - t0:.0f} s ({py})")
    ref = json.loads((work / "orig" / "result.json").read_text())

    recipe = work / "fk.yaml"
    recipe.write_text(RECIPE.replace("RAW", str(raw)))
    fk_out = work / "fk"
    fk_run = subprocess.run([sys.executable, "-m", "fk.cli.main", "run", str(recipe), "--out", str(fk_out),
                             "--json"], capture_output=True, text=True)
    failures = [f for f in json.loads(fk_run.stdout or "{}").get("failures", []) if f.get("type") != "SkippedInput"]
    print(f"fk run: exit {fk_run.returncode}; item failures: "
          + ("; ".join(f"{f['item']}/{f['step']}: {f['error']}" for f in failures) or "none"))
    orig = work / "orig"
    data = orig / "lpff_data"
    names_orig = sorted(p.stem for p in (data / "lm_facealignment_dlib").glob("*.npy"))
    names_fk = sorted(p.stem for p in (fk_out / "lm_facealignment_dlib").glob("*.npy"))
    ok = names_orig == names_fk
    print(f"\nnames (LPFF lm_facealignment_dlib vs fk): {'equal' if ok else 'DIFFER'}: {names_orig}"
          + ("" if ok else f" vs {names_fk}"))
    lm_diff = max(float(np.abs(np.load(data / "lm_facealignment_dlib" / f"{n}.npy")
                               - np.load(fk_out / "lm_facealignment_dlib" / f"{n}.npy")).max())
                  for n in names_orig if n in names_fk)
    print(f"dlib landmarks, max |LPFF - fk|: {lm_diff:.3g} px")

    columns = [("FFHQ 1024", orig / "ffhq1024" / "{f}" / "00000" / "00000.png", fk_out / "ffhq1024"),
               ("LPFF 2400", data / "realign" / "{f}.png", fk_out / "realign"),
               ("Deep3D 224 (realign)", orig / "deep3d224" / "{f}.png", fk_out / "deep3d224"),
               ("EG3D 512 (realign)", data / "realign" / "crop" / "eg3d" / "{f}.png", fk_out / "eg3d512"),
               ("LPFF StyleGAN 1024", data / "realign" / "crop" / "stylegan" / "{f}.png", fk_out / "stylegan1024"),
               ("Deep3D 224 (photo)", orig / "deep3d224_photo" / "{f}.png", fk_out / "deep3d224_photo"),
               ("EG3D 512 (photo)", orig / "eg3d_wild" / "crop" / "{f}.png", fk_out / "eg3d512_photo")]
    print("\n| face | " + " | ".join(c[0] for c in columns) + " | detections max diff (px) |")
    print("|---" * (len(columns) + 2) + "|")
    for face in names_orig:
        cells = []
        for label, ref_tpl, fk_dir in columns:
            a, b = load(Path(str(ref_tpl).format(f=face))), load(fk_dir / f"{face}.png")
            if a is None and b is None:
                cells.append("— (both skip)")
            elif a is None or b is None:
                cells.append(f"only {'fk' if a is None else 'original'}")
                ok = False
            elif a.shape != b.shape:
                cells.append(f"shape {a.shape} vs {b.shape}")
                ok = False
            else:
                p = psnr(a, b)
                # ffhq-dataset opens photos without convert('RGB') (its inputs are RGB JPEGs): on an RGBA
                # file its padding runs on 4 channels; fk reads every photo as the other seeds do
                known = label == "FFHQ 1024" and face.startswith("halftransparent")
                cells.append("identical" if p == float("inf") else f"{p:.1f} dB" + (" (RGBA, explained)" * known))
                ok &= p == float("inf") or known
        det_o, det_f = data / "realign" / "detections" / f"{face}.txt", fk_out / "realign" / "detections" / f"{face}.txt"
        if det_o.exists() and det_f.exists():
            d = float(np.abs(np.loadtxt(det_o) - np.loadtxt(det_f)).max())
            same = det_o.read_bytes() == det_f.read_bytes()
            cells.append(f"{d:.2g}{' (files identical)' if same else ''}")
        else:
            cells.append("—")
        print(f"| {face} | " + " | ".join(cells) + " |")

    from fk.cameras.deep3d import eg3d_label_from_deep3d
    from fk_datasets.density_filter import DensityFilter

    kde_path = work / "src" / "lpff" / "data_processing" / "0_image_processing" / "kde.pkl"
    flt = DensityFilter.from_kde_pickle(kde_path)
    label_diff, dens_diff, decisions = 0.0, 0.0, 0
    for rec in ref["labels"].values():
        lab = eg3d_label_from_deep3d(np.asarray(rec["angle"], np.float64)[0], np.asarray(rec["trans"], np.float64)[0])
        label_diff = max(label_diff, float(np.abs(np.asarray(lab) - rec["label"]).max()))
        got = flt.decide(np.asarray(rec["label"]))[0]["density"]
        dens_diff = max(dens_diff, abs(got - rec["density"]) / max(rec["density"], 1e-12))
        decisions += (got < 0.4) == (rec["density"] < 0.4)
    ok &= label_diff <= LABEL_TOL
    print(f"\nEG3D labels from {len(ref['labels'])} Deep3D poses (LPFF compute_pose vs fk): max |diff| "
          f"{label_diff:.2g} (target {LABEL_TOL:g})")
    print(f"density with LPFF's kde.pkl (LPFF pickle.load + scipy vs fk's safe loader): max rel diff "
          f"{dens_diff:.2g}; same 0.4 decision {decisions}/{len(ref['labels'])}")

    fk_t = fk_timings(raw, fk_out / "lm_facealignment_dlib", fk_out / "realign", args.repeats)
    print("\ncrop timings, medians over faces of per-face medians (same run; the machine is shared):")
    print("| crop | fk s | original s | fk / original |\n|---|---|---|---|")
    for key, label in (("ffhq1024", "FFHQ 1024"), ("lpff2400", "LPFF 2400"), ("deep3d224", "Deep3D 224 (realign)"),
                       ("deep3d224_photo", "Deep3D 224 (photo)"), ("eg3d512", "EG3D 512 (realign)"),
                       ("stylegan1024", "LPFF StyleGAN 1024")):
        faces = sorted(set(fk_t.get(key, {})) & set(ref["timings"].get(key, {})))
        if not faces:
            continue
        a = float(np.median([fk_t[key][f] for f in faces]))
        b = float(np.median([ref["timings"][key][f] for f in faces]))
        print(f"| {label} | {a:.3f} | {b:.3f} | {a / b:.2f} |")
    print(f"\nload: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} CPUs")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
