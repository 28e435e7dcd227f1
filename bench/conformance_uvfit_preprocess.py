"""Conformance: fk's FFHQ-UV preprocessing (crop:uvfit-preprocess) against upstream's own step-1 code.

    python bench/conformance_uvfit_preprocess.py --upstream PATH/TO/csbhr/FFHQ-UV [--venv /tmp/ffhquv-prep]

``--upstream``: a checkout, or a bare git mirror (its ``RGB_Fitting`` and ``examples`` are extracted with
``git archive`` into a temporary folder). Creates a throw-away venv under /tmp (numpy 1.23, scipy,
scikit-image, Pillow, opencv and a CPU torch of that time: upstream's code needs them), and there runs
upstream's ``FitDataset.get_input_data`` (alignment/POS + ``resize_n_crop_img``, the skin GMM, BiSeNet
parsing and the mask combination, ``estimate_norm``) with only its TensorFlow 68-point detector replaced
by the same 68 points fk gets (TensorFlow is not installed: its modules get an empty stand-in; the only
torchvision wheel here is a CUDA build that does not load beside the CPU torch, so ``transforms.ToTensor``
and ``Normalize``, all upstream takes from it, get a stand-in with their documented behaviour). Both sides
use one generated ``similarity_Lm3D_all.mat`` and one generated ``79999_iter.pth`` (``fk.testing.bisenet``).

Part 1 (same inputs, same files): the astronaut (dlib's 68 points) and upstream's three example photos
(the 68 points recovered from upstream's committed ``processed_data/*.pt``). Prints max |fk - upstream|
per field and how many mask pixels differ.

Part 2 (upstream's committed ``processed_data/*.pt``, made with the real BiSeNet, HiFi3D++'s
``similarity_Lm3D_all.mat`` and the TF detector): fk on the recovered landmarks with the landmark polygon
(no real BiSeNet here) and a 5 x 3 ``lm3d`` made per photo so that POS gives back upstream's
``trans_params`` (HiFi3D++'s file is not public); then how far Deep3D's standard points (what a user
without that file gets) move the crop. The ``.pt`` files are torch
pickles: they are opened only inside the side venv and handed to fk as plain arrays.

Nothing from upstream is imported into fk; the checkout is only read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from _sidevenv import side_venv, source_tree

# numpy 1.23 (the oldest for Python 3.11): upstream builds trans_params as a ragged array, which numpy 1.24+
# refuses; the rest as of that time
PACKAGES = ["torch==2.13.0", "numpy==1.23.5", "scipy<1.12", "scikit-image<0.22", "Pillow<10",
            "opencv-python-headless<4.9"]  # fmt: skip
EXAMPLES = ("000007", "000055", "015309")

# Runs in the side venv, cwd = upstream's RGB_Fitting (its modules read files relative to it).
SIDE = r'''
import json, sys, types
from pathlib import Path
import numpy as np
work = Path(sys.argv[1])
job = json.loads((work / "job.json").read_text())
sys.path.insert(0, ".")
sys.modules["tensorflow"] = types.ModuleType("tensorflow")  # only the TF detectors use it; not called here
import torch

def plain(v):
    """A tensor or array as a numeric array (upstream's trans_params is a ragged object array of
    scalars and 1-element arrays: numpy < 2 builds one from [w0, h0, s, t[0], t[1]])."""
    if torch.is_tensor(v):
        return v.detach().cpu().numpy()
    a = np.asarray(v)
    return np.array([float(np.asarray(x).reshape(-1)[0]) for x in a]) if a.dtype == object else a

try:
    import torchvision.transforms  # noqa: F401
except Exception:  # stand-in: HWC uint8 -> CHW float / 255, then (x - mean) / std per channel
    tv, tr = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
    class Compose:
        def __init__(self, steps): self.steps = steps
        def __call__(self, x):
            for f in self.steps: x = f(x)
            return x
    class ToTensor:
        def __call__(self, a):
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div(255)
    class Normalize:
        def __init__(self, mean, std): self.mean, self.std = torch.tensor(mean), torch.tensor(std)
        def __call__(self, x): return (x - self.mean[:, None, None]) / self.std[:, None, None]
    tr.Compose, tr.ToTensor, tr.Normalize, tv.transforms = Compose, ToTensor, Normalize, tr
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tr
if job.get("goldens"):
    for name, src in job["goldens"].items():
        d = torch.load(src, map_location="cpu", weights_only=False)  # upstream's own pickle, side venv only
        np.savez(work / f"golden_{name}.npz", **{k: plain(v) for k, v in d.items()})
from scipy.io import loadmat
from dataset.fit_dataset import FitDataset
from third_party import FaceParsing_API, SkinMask_API
ds = FitDataset.__new__(FitDataset)  # its __init__ would load the TF graphs
ds.skin_model = SkinMask_API()
ds.parsing_model = FaceParsing_API(parsing_pth=job["bisenet"], resnet18_path=job["resnet18"], device="cpu")
ds.lm68_3d = loadmat(job["lm3d"])["lm"]
ds.batch_size, ds.device = 1, "cpu"
for name, item in job["photos"].items():
    lm_up = np.load(item["lm"])  # (68, 2) float32, y up: what the TF detector hands over
    ds.lm68_model = lambda img, lm_up=lm_up: lm_up.copy()
    out = ds.get_input_data(item["path"])
    np.savez(work / f"upstream_{name}.npz", **{k: plain(v) for k, v in out.items()})
print("side venv: done", flush=True)
'''


def _lm3d_file(path: Path) -> None:
    """A 68 x 3 'lm' (float32) near Deep3D's reference head, 3% larger, with every row distinct."""
    from fk_align.deep3d_align import STANDARD_5PT_3D as P
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    lm = P[2] + rng.normal(0, 0.2, (68, 3))
    lm[36], lm[39] = P[0] + (-0.1, 0, 0), P[0] + (0.1, 0, 0)
    lm[42], lm[45] = P[1] + (-0.1, 0, 0), P[1] + (0.1, 0, 0)
    lm[30], lm[48], lm[54] = P[2], P[3], P[4]
    savemat(path, {"lm": (lm * 1.03).astype(np.float32)})


def _alignment_file(path: Path, lm_up: np.ndarray, trans_params: np.ndarray) -> None:
    """A 5 x 3 'lm' on which Deep3D's POS gives back ``trans_params`` for these 68 points: each reference
    point is its image point relative to t, divided by the POS scale 102 / s, with z = 0."""
    from fk.landmarks import five_from_68
    from scipy.io import savemat

    tp = np.asarray(trans_params, np.float64)
    p5 = five_from_68(np.stack([lm_up[:, 0], lm_up[:, 1]], 1).astype(np.float64))
    xy = (p5 - tp[3:5]) / (102.0 / tp[2])
    savemat(path, {"lm": np.concatenate([xy, np.zeros((5, 1))], 1)})


def _bisenet_files(tmp: Path) -> tuple[Path, Path]:
    import torch
    from fk.testing.bisenet import write_bisenet_checkpoint

    state = write_bisenet_checkpoint(tmp / "79999_iter.pth", seed=7)
    # upstream's Resnet18 first loads ImageNet weights (resnet18-5c106cde.pth); 79999_iter.pth then
    # overwrites every one of them, so any tensors of the right names and shapes do
    backbone = {k.removeprefix("cp.resnet."): v for k, v in state.items() if k.startswith("cp.resnet.")}
    torch.save(backbone, tmp / "resnet18.pth")
    return tmp / "79999_iter.pth", tmp / "resnet18.pth"


def _fk_processed(photo: Path, lm_up: np.ndarray, tmp: Path, name: str, **params) -> tuple[dict, dict]:
    from fk.engine.context import ItemContext
    from fk.io import load_image
    from fk.types import Face
    from fk_uvfit.preprocess import Preprocessor, load_processed

    h, w = load_image(photo).shape[:2]
    lm = np.stack([lm_up[:, 0], h - 1 - lm_up[:, 1]], 1).astype(np.float64)
    box = np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()])
    face = Face(box=box, score=1.0, landmarks=lm, image_size=(h, w), index=0, detector="given")
    run = tmp / f"fk_{name}"
    ctx = ItemContext(key=name, source=photo, step_id="preprocess", run_dir=run, step_dir=run)
    out = Preprocessor(**params)({"image": str(photo), "face": face}, ctx)
    meta = json.loads((run / out["processed"]["json"]).read_text())
    return load_processed(run / out["processed"]["npz"]), meta


def _compare(ours: dict, theirs: dict) -> str:
    cells = []
    for key in ("img", "skin_mask", "parse_mask", "lm", "M", "trans_params"):
        a = np.asarray(ours[key], np.float64).reshape(-1)
        b = np.asarray(theirs[key], np.float64).reshape(-1)
        d = np.abs(a - b)
        cell = f"{d.max():.2g}"
        if key in ("img", "skin_mask", "parse_mask"):
            cell += f" ({int((d > 0.5 / 255).sum())} px)"
        cells.append(cell)
    return " | ".join(cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", type=Path, required=True, help="csbhr/FFHQ-UV: a checkout or a bare mirror")
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "ffhquv-prep")
    args = ap.parse_args()
    py = side_venv(args.venv, PACKAGES)
    from fk.cameras.deep3d import deep3d_points_to_source
    from fk.plugins import get_plugin_manager
    from fk.testing import astronaut_path

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        up = source_tree(args.upstream.resolve(), ["RGB_Fitting", "examples/fitting_examples"], tmp / "upstream")
        inputs = up / "examples" / "fitting_examples" / "inputs"
        lm3d = tmp / "similarity_Lm3D_all.mat"
        _lm3d_file(lm3d)
        bisenet, resnet18 = _bisenet_files(tmp)
        goldens = {n: str(inputs / "processed_data" / f"{n}.pt") for n in EXAMPLES}
        # 1. upstream's goldens as plain arrays (side venv), to recover the TF detector's landmarks
        job = {"goldens": goldens, "photos": {}, "bisenet": str(bisenet), "resnet18": str(resnet18),
               "lm3d": str(lm3d)}  # fmt: skip
        (tmp / "job.json").write_text(json.dumps(job))
        side = tmp / "side.py"
        side.write_text(SIDE)
        subprocess.run([str(py), str(side), str(tmp)], cwd=up / "RGB_Fitting", check=True)
        golden = {n: dict(np.load(tmp / f"golden_{n}.npz")) for n in EXAMPLES}
        photos, lms = {}, {}
        det = get_plugin_manager().component("detect:dlib").load_factory()(upsample=1, min_score=0.3)
        from fk.engine.context import ItemContext

        ctx = ItemContext(key="astronaut", source=None, step_id="d", run_dir=tmp, step_dir=tmp)
        face = det({"image": astronaut_path()}, ctx)["faces"][0]
        h = face.image_size[0]
        lm_up = np.stack([face.landmarks[:, 0], h - 1 - face.landmarks[:, 1]], 1)
        lms["astronaut"] = lm_up.astype(np.float32)
        photos["astronaut"] = Path(astronaut_path())
        for n in EXAMPLES:
            g = golden[n]
            back = deep3d_points_to_source(g["lm"][0].astype(np.float64), g["trans_params"])
            lms[n] = back.astype(np.float32)
            photos[n] = inputs / f"{n}.jpg"
        for n, lm in lms.items():
            np.save(tmp / f"lm_{n}.npy", lm)
        # 2. upstream's step 1 on the same landmarks with the generated BiSeNet and lm3d
        job = {"photos": {n: {"path": str(p), "lm": str(tmp / f"lm_{n}.npy")} for n, p in photos.items()},
               "bisenet": str(bisenet), "resnet18": str(resnet18), "lm3d": str(lm3d)}  # fmt: skip
        (tmp / "job.json").write_text(json.dumps(job))
        subprocess.run([str(py), str(side), str(tmp)], cwd=up / "RGB_Fitting", check=True)

        head = "| photo | img | skin_mask | parse_mask | lm (px) | M | trans_params |"
        rule = "|---|---|---|---|---|---|---|"
        print("\nPart 1: same 68 points, generated similarity_Lm3D_all.mat and 79999_iter.pth on both sides;")
        print("max |fk - upstream| per field, masks and img in [0, 1] (pixels differing by > 0.5/255)\n")
        print(head + "\n" + rule)
        for n in photos:
            theirs = dict(np.load(tmp / f"upstream_{n}.npz"))
            ours, meta = _fk_processed(photos[n], lms[n], tmp, n, lm3d=str(lm3d), parsing="bisenet",
                                       parsing_weights=str(bisenet))  # fmt: skip
            assert meta["parse_mask"].startswith("BiSeNet"), meta
            print(f"| {n} | {_compare(ours, theirs)} |")
        print("\nPart 2: upstream's committed processed_data/*.pt (real BiSeNet, HiFi3D++'s lm3d, TF landmarks)")
        print("vs fk on the recovered landmarks, its alignment reproduced by a 5 x 3 lm3d made for each photo")
        print("(HiFi3D++'s file is not public), the landmark polygon (no real BiSeNet weights here)\n")
        print(head + " parse IoU |\n" + rule + "---|")
        for n in EXAMPLES:
            g = golden[n]
            crafted = tmp / f"lm3d_{n}.mat"
            _alignment_file(crafted, lms[n], g["trans_params"])
            ours, _ = _fk_processed(photos[n], lms[n], tmp, f"{n}_g", lm3d=str(crafted), parsing="landmarks")
            a, b = ours["parse_mask"][0, 0] > 0.5, g["parse_mask"][0, 0] > 0.5
            iou = (a & b).sum() / max((a | b).sum(), 1)
            print(f"| {n} | {_compare(ours, g)} | {iou:.3f} |")
        print("\nWithout HiFi3D++'s similarity_Lm3D_all.mat (Deep3D's standard points) vs upstream:\n")
        print("| photo | scale s fk / upstream | crop centre shift (224² px) |\n|---|---|---|")
        for n in EXAMPLES:
            g = golden[n]
            ours, _ = _fk_processed(photos[n], lms[n], tmp, f"{n}_std", lm3d="deep3d", parsing="landmarks")
            tp, gt = ours["trans_params"].astype(np.float64), g["trans_params"].astype(np.float64)
            shift = np.abs((tp[3:5] - gt[3:5]) * gt[2]).max()
            print(f"| {n} | {tp[2] / gt[2]:.4f} | {shift:.1f} |")
        print(f"\n(upstream {os.path.basename(str(args.upstream))}; side venv {args.venv})")


if __name__ == "__main__":
    main()
