"""Conformance: fk.nets.stylegan2 vs NVIDIA's stylegan2-ada-pytorch on the same pickle.

    python bench/conformance_stylegan2.py --repo PATH [--res 256] [--seeds 0-3] [--venv /tmp/fk-sg2-ref]

``PATH`` is a checkout (or a bare git directory, e.g. from a ``git clone --mirror``) of
https://github.com/NVlabs/stylegan2-ada-pytorch. The script

1. creates a throw-away venv (``--venv``) with torch==2.13.0 (CPU), numpy and requests, and exports
   the repository there (never imported by fk);
2. in that venv, builds a random ``training.networks.Generator`` and ``Discriminator`` with
   ``train.py``'s paper256 config at ``--res`` (z/w 512, 8 mapping layers, channel_base 16384,
   4 FP16 resolutions, conv_clamp 256), randomises biases, noise strengths and w_avg, and writes a
   snapshot with *their* pickling (``training_loop.py``'s dict, ``torch_utils.persistence``);
   on CPU their ops take the reference path (``impl='ref'``: no CUDA plugin is built);
3. renders seeds (``np.random.RandomState(seed).randn(1, 512)``, as ``generate.py``) with
   truncation 0.7, noise_mode 'const' in float32 (``force_fp32=True``; ``--fp16-seeds N`` adds their
   default FP16 blocks, minutes per image on CPU) and with truncation_cutoff 8, psi 0.5; and the
   discriminator's logits;
4. loads the pickle with fk (which never runs its code) and compares: max abs differences printed,
   target <= 1e-4 in float32.

Exit status 1 when a float32 comparison misses the target.
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
from _sidevenv import side_venv

TOL = 1e-4
CONFIG = dict(
    z_dim=512,
    w_dim=512,
    mapping_layers=8,
    channel_base=16384,
    channel_max=512,
    num_fp16_res=4,
    conv_clamp=256,
    mbstd_group_size=4,
)

REF_SCRIPT = textwrap.dedent(
    r"""
    import copy, json, pickle, statistics, sys, time, warnings
    warnings.filterwarnings("ignore")
    import numpy as np, torch
    src, out_dir, res = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seeds, cfg, bench = (json.loads(a) for a in sys.argv[4:7])
    sys.path.insert(0, src)
    import dnnlib
    from training import networks

    torch.manual_seed(0)
    G_kwargs = dnnlib.EasyDict(class_name="training.networks.Generator",
                               z_dim=cfg["z_dim"], w_dim=cfg["w_dim"],
                               mapping_kwargs=dnnlib.EasyDict(), synthesis_kwargs=dnnlib.EasyDict())
    G_kwargs.synthesis_kwargs.channel_base = cfg["channel_base"]
    G_kwargs.synthesis_kwargs.channel_max = cfg["channel_max"]
    G_kwargs.synthesis_kwargs.num_fp16_res = cfg["num_fp16_res"]
    G_kwargs.synthesis_kwargs.conv_clamp = cfg["conv_clamp"]
    G_kwargs.mapping_kwargs.num_layers = cfg["mapping_layers"]
    D_kwargs = dnnlib.EasyDict(class_name="training.networks.Discriminator", block_kwargs=dnnlib.EasyDict(),
                               mapping_kwargs=dnnlib.EasyDict(), epilogue_kwargs=dnnlib.EasyDict())
    D_kwargs.channel_base = cfg["channel_base"]
    D_kwargs.channel_max = cfg["channel_max"]
    D_kwargs.num_fp16_res = cfg["num_fp16_res"]
    D_kwargs.conv_clamp = cfg["conv_clamp"]
    D_kwargs.epilogue_kwargs.mbstd_group_size = cfg["mbstd_group_size"]
    common = dict(c_dim=0, img_resolution=res, img_channels=3)
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common).train().requires_grad_(False)
    D = dnnlib.util.construct_class_by_name(**D_kwargs, **common).train().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for net in (G, D):
            for name, p in net.named_parameters():
                if name.endswith("bias") or name.endswith("noise_strength"):
                    p.add_(0.1 * torch.randn(p.shape, generator=g))
        G.mapping.w_avg.copy_(G.mapping(torch.randn([1000, G.z_dim], generator=g), None).mean(dim=(0, 1)))
    G_ema = copy.deepcopy(G).eval()
    training_set_kwargs = dnnlib.EasyDict(class_name="training.dataset.ImageFolderDataset",
                                          path="ffhq256.zip",
                                          use_labels=False, max_size=70000, xflip=True, resolution=res)
    snapshot = dict(training_set_kwargs=dict(training_set_kwargs))
    for name, module in [("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", None)]:
        if module is not None:
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        snapshot[name] = module
    with open(f"{out_dir}/network.pkl", "wb") as f:
        pickle.dump(snapshot, f)

    G, D = G_ema, D.eval()
    out = {}
    with torch.no_grad():
        for seed in seeds:
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim))
            out[f"fp32_{seed}"] = G(z, None, truncation_psi=0.7, noise_mode="const", force_fp32=True).numpy()
            if bench.get("fp16_seeds", 0) > seeds.index(seed):  # float16 convolutions are very slow on CPU
                out[f"fp16_{seed}"] = G(z, None, truncation_psi=0.7, noise_mode="const").numpy()
            out[f"cut_{seed}"] = G(z, None, truncation_psi=0.5, truncation_cutoff=8, noise_mode="const",
                                   force_fp32=True).numpy()
            out[f"ws_{seed}"] = G.mapping(z, None, truncation_psi=0.7).numpy()
        imgs = np.concatenate([out[f"fp32_{s}"] for s in seeds])
        out["D"] = D(torch.from_numpy(imgs), None, force_fp32=True).numpy()
        timings = {}
        if bench.get("threads"):
            ws = torch.from_numpy(out[f"ws_{seeds[0]}"])
            for threads in bench["threads"]:
                torch.set_num_threads(threads)
                for mode in ("fp32",) + (("fp16",) if bench.get("fp16") else ()):
                    kw = dict(noise_mode="const", force_fp32=(mode == "fp32"))
                    G.synthesis(ws, **kw)
                    ts = []
                    for _ in range(bench["repeats"]):
                        t0 = time.perf_counter(); G.synthesis(ws, **kw); ts.append(time.perf_counter() - t0)
                    timings[f"{mode}_{threads}"] = statistics.median(ts)
    np.savez(f"{out_dir}/ref.npz", **out)
    json.dump({"torch": torch.__version__, "timings": timings}, open(f"{out_dir}/ref.json", "w"))
    """
)


def export_repo(repo: Path, dest: Path) -> Path:
    """A plain copy of the repository's files under ``dest`` (from a checkout or a bare git dir)."""
    if (repo / "training" / "networks.py").exists():
        return repo
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", f"--git-dir={repo}", "archive", "HEAD"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    if not (dest / "training" / "networks.py").exists():
        raise SystemExit(f"{repo}: not a stylegan2-ada-pytorch repository (no training/networks.py)")
    return dest


def run_reference(args: argparse.Namespace, work: Path, bench: dict | None = None) -> tuple[dict, dict]:
    python = side_venv(Path(args.venv), ["torch==2.13.0", "numpy", "requests"])
    src = export_repo(Path(args.repo), work / "src")
    script = work / "ref_stylegan2.py"
    script.write_text(REF_SCRIPT)
    seeds = parse_seeds(args.seeds)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run(
        [
            str(python),
            str(script),
            str(src),
            str(work),
            str(args.res),
            json.dumps(seeds),
            json.dumps(CONFIG),
            json.dumps({"fp16_seeds": getattr(args, "fp16_seeds", 0), **(bench or {})}),
        ],
        check=True,
        env=env,
    )
    ref = dict(np.load(work / "ref.npz"))
    meta = json.loads((work / "ref.json").read_text())
    return ref, meta


def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def compare(args: argparse.Namespace, work: Path, ref: dict) -> dict[str, float]:
    import torch
    from fk.nets.stylegan2 import load_stylegan2_pickle

    snap = load_stylegan2_pickle(work / "network.pkl")
    G, D = snap["G_ema"], snap["D"]  # noqa: N806
    seeds = parse_seeds(args.seeds)
    diffs: dict[str, float] = {}
    imgs = []
    with torch.no_grad():
        for seed in seeds:
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim))
            cases = {
                "fp32": G(z, None, truncation_psi=0.7, noise_mode="const", force_fp32=True),
                "cut": G(
                    z, None, truncation_psi=0.5, truncation_cutoff=8, noise_mode="const", force_fp32=True
                ),
                "ws": G.mapping(z, None, truncation_psi=0.7),
            }
            if f"fp16_{seed}" in ref:
                cases["fp16"] = G(z, None, truncation_psi=0.7, noise_mode="const")
            imgs.append(cases["fp32"])
            for name, value in cases.items():
                d = float(np.abs(value.numpy().astype(np.float64) - ref[f"{name}_{seed}"]).max())
                diffs[name] = max(diffs.get(name, 0.0), d)
        logits = D(torch.cat(imgs), None, force_fp32=True).numpy()
        diffs["D"] = float(np.abs(logits - ref["D"]).max())
    diffs["img_range"] = float(np.abs(ref[f"fp32_{seeds[0]}"]).max())
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, help="stylegan2-ada-pytorch checkout or bare git directory")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--seeds", default="0-3")
    ap.add_argument("--venv", default="/tmp/fk-sg2-ref")
    ap.add_argument(
        "--fp16-seeds",
        type=int,
        default=0,
        help="also compare NVIDIA's default FP16 blocks on this many seeds (minutes each on CPU)",
    )
    ap.add_argument("--work", default=None, help="folder for the pickle and outputs (default: a temp folder)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="fk-sg2-conf-"))
    work.mkdir(parents=True, exist_ok=True)
    ref, meta = run_reference(args, work)
    diffs = compare(args, work, ref)
    print(
        f"stylegan2-ada-pytorch (torch {meta['torch']}, reference CPU ops) vs fk.nets.stylegan2, "
        f"{args.res}^2, seeds {args.seeds}, pickle written by NVIDIA's persistence:"
    )
    rows = [
        ("image, psi 0.7, noise const, float32", "fp32", TOL),
        ("image, psi 0.5, cutoff 8, float32", "cut", TOL),
        ("W+ latents, psi 0.7", "ws", TOL),
        ("discriminator logits, float32", "D", TOL),
        ("image, psi 0.7, their default FP16 blocks", "fp16", None),
    ]
    ok = True
    rows = [r for r in rows if r[1] in diffs]
    for label, key, tol in rows:
        verdict = "" if tol is None else ("  ok" if diffs[key] <= tol else "  FAIL")
        ok &= tol is None or diffs[key] <= tol
        print(f"  {label:45s} max |diff| {diffs[key]:.3g}{verdict}")
    print(f"  (image values span +-{diffs['img_range']:.2f}; target <= {TOL:g} in float32)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
