"""FID and KID on 10k x 2048 features: fk.metrics.fid beside torch-fidelity's own functions, same features.

    python bench/bench_fid.py [--n 10000] [--dim 2048] [--kid-subsets 100] [--inception]

torch-fidelity (v0.3.0, GMPI's backend) runs in a throw-away venv (``--venv``, default /tmp/fk-tfid-venv),
created on the first run with torch 2.13.0 CPU and torch-fidelity 0.3.0 (its unused torchvision dataset
import is stubbed: no torchvision wheel matches torch 2.13); it is never an fk dependency. Both sides run
in their own child process on the same .npy features (non-negative, correlated float32, like Inception
pool features) and report seconds and peak resident memory (``ru_maxrss``); the values are compared too.
``--skip-ref`` times fk alone. ``--inception`` also runs both Inception networks on one generated weight
file (fk.testing.inception) and the same uint8 images at three sizes, printing the largest difference.
The machine is usually shared: the load average is printed, ratios matter more than seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REF_PACKAGES = ["torch==2.13.0", "torch-fidelity==0.3.0"]

TIMER = r"""
import json, resource, sys, time
T = {}


def timed(key, fn, *args, **kwargs):
    t = time.perf_counter()
    value = fn(*args, **kwargs)
    T[key] = time.perf_counter() - t
    return value


def report(**values):
    values.update(T, rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(values))
"""

FK_CHILD = (
    TIMER
    + r"""
import numpy as np, scipy.linalg, torch  # imported before timing, as the reference side does
from fk.metrics.fid import feature_statistics, fid_from_statistics, kid
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
s1, s2 = timed("stats_s", lambda: (feature_statistics(a), feature_statistics(b)))
fid = timed("fid_s", fid_from_statistics, s1, s2)
fid_eigh = timed("fid_eigh_s", fid_from_statistics, s1, s2, "eigh")
r = timed("kid_s", kid, a, b, subsets=int(sys.argv[3]))
report(fid=fid, fid_eigh=fid_eigh, kid=r.mean)
"""
)

# torch-fidelity imports torchvision only for its CIFAR/STL dataset wrappers (unused here), and no torchvision
# wheel in the registry matches torch 2.13: an empty stand-in satisfies that import
STUB_TORCHVISION = r"""
import sys, types
tv = types.ModuleType("torchvision")
tv.datasets = types.ModuleType("torchvision.datasets")
tv.datasets.CIFAR10 = tv.datasets.STL10 = object
sys.modules.update({"torchvision": tv, "torchvision.datasets": tv.datasets})
"""

REF_CHILD = (
    TIMER
    + STUB_TORCHVISION
    + r"""
import warnings
warnings.simplefilter("ignore")
import numpy as np, torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
a, b = torch.from_numpy(np.load(sys.argv[1])), torch.from_numpy(np.load(sys.argv[2]))
s1, s2 = timed("stats_s", lambda: (fid_features_to_statistics(a), fid_features_to_statistics(b)))
fid = timed("fid_s", fid_statistics_to_metric, s1, s2, False)["frechet_inception_distance"]
kw = dict(kid_subsets=int(sys.argv[3]), kid_subset_size=1000, verbose=False)
r = timed("kid_s", kid_features_to_metric, a, b, **kw)
report(fid=fid, kid=r["kernel_inception_distance_mean"])
"""
)

FK_FEATURES = r"""
import sys, numpy as np
from fk.nets.inception import load_fid_inception, inception_features
net = load_fid_inception(sys.argv[1])
imgs = np.load(sys.argv[2])
batches = [imgs[i:i + 4] for i in range(0, len(imgs), 4)]
np.save(sys.argv[3], np.concatenate(list(inception_features(net, batches))))
"""

REF_FEATURES = (
    STUB_TORCHVISION
    + r"""
import numpy as np, torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=sys.argv[1])
imgs = torch.from_numpy(np.load(sys.argv[2])).permute(0, 3, 1, 2).contiguous()
with torch.no_grad():
    out = [net.eval()(imgs[i:i + 4])[0].numpy() for i in range(0, len(imgs), 4)]
np.save(sys.argv[3], np.concatenate(out))
"""
)


def compare_inception(ref_python: str, tmp: Path, count: int = 8) -> None:
    """fk's FID Inception beside torch-fidelity's on one weight file and the same uint8 images."""
    import numpy as np
    from fk.testing.inception import write_fid_inception_weights

    weights = write_fid_inception_weights(tmp / "inception.pth")
    rng = np.random.default_rng(1)
    sizes = [(256, 256), (299, 299), (64, 48)]
    for h, w in sizes:
        imgs = rng.integers(0, 256, (count, h, w, 3), dtype=np.uint8)
        np.save(tmp / "imgs.npy", imgs)
        subprocess.run(
            [sys.executable, "-c", FK_FEATURES, str(weights), str(tmp / "imgs.npy"), str(tmp / "fk.npy")],
            check=True,
        )
        subprocess.run(
            [ref_python, "-c", REF_FEATURES, str(weights), str(tmp / "imgs.npy"), str(tmp / "ref.npy")],
            check=True,
        )
        a, b = np.load(tmp / "fk.npy"), np.load(tmp / "ref.npy")
        print(
            f"Inception features, {count} images {h}x{w} -> 299: "
            f"max |fk - torch-fidelity| {np.abs(a - b).max():.2e} "
            f"(feature scale {np.abs(b).max():.1f})"
        )


def ensure_ref_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    # importing torch_fidelity itself needs torchvision, which the venv lacks (the children stub it)
    probe = "import importlib.util as u, torch; assert u.find_spec('torch_fidelity')"
    if py.exists() and subprocess.run([str(py), "-c", probe], capture_output=True).returncode == 0:
        return py
    print(f"creating {venv} with {' '.join(REF_PACKAGES)} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *REF_PACKAGES], check=True)
    return py


def features(n: int, dim: int, path: Path) -> tuple[Path, Path]:
    import numpy as np

    rng = np.random.default_rng(0)
    mix = rng.standard_normal((dim, dim)).astype(np.float32) / np.sqrt(dim)
    a = np.abs(rng.standard_normal((n, dim), dtype=np.float32) @ mix)
    b = np.abs(rng.standard_normal((n, dim), dtype=np.float32) @ (mix * 1.05) + 0.02)
    pa, pb = path / "a.npy", path / "b.npy"
    np.save(pa, a.astype(np.float32))
    np.save(pb, b.astype(np.float32))
    return pa, pb


def child(python: str, code: str, args: list[str]) -> dict:
    res = subprocess.run([python, "-c", code, *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"child failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--kid-subsets", type=int, default=100)
    ap.add_argument("--venv", type=Path, default=Path("/tmp/fk-tfid-venv"))
    ap.add_argument("--skip-ref", action="store_true")
    ap.add_argument(
        "--inception", action="store_true", help="also compare the Inception features (generated weights)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fk-bench-fid-") as tmp:
        pa, pb = features(args.n, args.dim, Path(tmp))
        cargs = [str(pa), str(pb), str(args.kid_subsets)]
        fk = child(sys.executable, FK_CHILD, cargs)
        ref_py = None if args.skip_ref else str(ensure_ref_venv(args.venv))
        ref = child(ref_py, REF_CHILD, cargs) if ref_py else None
        if ref_py and args.inception:
            compare_inception(ref_py, Path(tmp))
    print(
        f"FID/KID on {args.n} x {args.dim} float32 features per set, KID {args.kid_subsets} x 1000; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    rows = [
        ("statistics (mean, covariance)", "stats_s"),
        ("FID from statistics (scipy sqrtm)", "fid_s"),
        ("KID", "kid_s"),
    ]
    print(f"{'step':36s} {'fk s':>9s} {'torch-fidelity s':>17s} {'ratio':>7s}")
    for label, key in rows:
        r = f"{ref[key]:17.2f} {fk[key] / ref[key]:7.2f}" if ref else f"{'-':>17s} {'-':>7s}"
        print(f"{label:36s} {fk[key]:9.2f} {r}")
    total_fk = fk["stats_s"] + fk["fid_s"] + fk["kid_s"]
    if ref:
        total_ref = ref["stats_s"] + ref["fid_s"] + ref["kid_s"]
        print(f"{'total':36s} {total_fk:9.2f} {total_ref:17.2f} {total_fk / total_ref:7.2f}")
        print(
            f"{'peak RSS MiB':36s} {fk['rss_mib']:9.0f} {ref['rss_mib']:17.0f} "
            f"{fk['rss_mib'] / ref['rss_mib']:7.2f}"
        )
        print(
            f"FID fk {fk['fid']:.6f} vs torch-fidelity {ref['fid']:.6f} "
            f"(relative {abs(fk['fid'] / ref['fid'] - 1):.1e}); "
            f"KID fk {fk['kid']:.8f} vs {ref['kid']:.8f} (difference {abs(fk['kid'] - ref['kid']):.1e})"
        )
    print(
        f"fk option --fid-trace-sqrt eigh: {fk['fid_eigh_s']:.2f} s for the FID step "
        f"(FID {fk['fid_eigh']:.6f}, "
        f"relative to scipy's {abs(fk['fid_eigh'] / fk['fid'] - 1):.1e})"
    )


if __name__ == "__main__":
    main()
