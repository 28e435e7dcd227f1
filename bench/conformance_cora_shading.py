"""Conformance of fk_eyeball.brdf (training's and the export preview's shading) with CoRA's own functions.

    python bench/conformance_cora_shading.py --cora /path/to/CoRA/checkout [--work /tmp/cora_conformance]

Runs, in the throw-away venv of ``bench/conformance_cora.py`` (torch CPU + numpy, created under --work if
missing), upstream's ``cora/disney_brdf.py::_apply_shading_burley`` (imported from the checkout) and
``cora/utils.py::SH_xyz`` with its two helpers (extracted from the source by name: ``utils.py`` imports
torchvision, cv2 and matplotlib at the top, which the venv does not have) on 20 000 random points with
random normals, materials, camera and light positions (co-located and not), and compares, in float64:

1. the BRDF x cosine terms: upstream's (diffuse, specular) vs fk's ``point_light`` x d² (fk includes the
   1/d² and the light colour; here colour 1) -- expected: equal to rounding;
2. the 9 SH basis values: upstream's ``SH_xyz(l, m, x, y, z)`` vs fk's ``sh_basis`` -- expected: equal.

Nothing from upstream is copied into fk; the comparison runs upstream's code as it is.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

UPSTREAM = textwrap.dedent("""
    import ast, math, sys
    import numpy as np, torch
    cora, data, out = sys.argv[1:4]
    sys.path.insert(0, cora)
    from cora.disney_brdf import _apply_shading_burley
    ns = {"torch": torch, "math": math}
    tree = ast.parse(open(cora + "/cora/utils.py").read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in ("associated_legendre_polynomial", "normlizeSH",
                                                               "SH_xyz"):
            exec(compile(ast.Module([node], []), "cora/utils.py", "exec"), ns)
    d = {k: torch.from_numpy(v) for k, v in np.load(data).items()}
    # upstream's Shader: view_dirs camera -> surface, light_dirs light -> surface
    diff, spec = _apply_shading_burley(d["normal"], d["points"] - d["camera"], d["points"] - d["light"],
                                       d["specular"], d["roughness"], d["albedo"])
    n = torch.nn.functional.normalize(d["normal"], dim=-1)
    x, y, z = n[..., :1], n[..., 1:2], n[..., 2:]
    sh = torch.cat([ns["SH_xyz"](l, m, x, y, z) for l in range(3) for m in range(-l, l + 1)], -1)
    np.savez(out, diffuse=diff.numpy(), specular=spec.numpy(), sh=sh.numpy())
""")


def main() -> None:
    import torch
    from conformance_cora import venv
    from fk_eyeball.brdf import point_light, sh_basis

    ap = argparse.ArgumentParser()
    ap.add_argument("--cora", type=Path, required=True, help="a checkout of github.com/yxuhan/CoRA")
    ap.add_argument("--work", type=Path, default=Path("/tmp/cora_conformance"))
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    py = venv(a.work)
    rng = np.random.default_rng(0)
    n = 20_000
    points = rng.normal(scale=0.3, size=(n, 3))
    normal = rng.normal(size=(n, 3))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    camera = np.broadcast_to(np.array([0.2, -0.1, 3.0]), (n, 3)).copy()
    light = camera.copy()
    light[n // 2 :] = [-1.5, 1.2, 2.0]  # the second half: a light away from the camera (relighting)
    data = {
        "points": points, "normal": normal, "camera": camera, "light": light,
        "albedo": rng.random((n, 3)), "specular": rng.random((n, 1)), "roughness": rng.random((n, 1)),
    }  # fmt: skip
    (a.work / "shading_upstream.py").write_text(UPSTREAM)
    np.savez(a.work / "shading_in.npz", **data)
    res = subprocess.run(
        [str(py), str(a.work / "shading_upstream.py"), str(a.cora), str(a.work / "shading_in.npz"),
         str(a.work / "shading_out.npz")],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    if res.returncode:
        raise SystemExit(f"upstream shading failed:\n{res.stderr[-2000:]}")
    up = np.load(a.work / "shading_out.npz")
    t = {k: torch.from_numpy(v) for k, v in data.items()}
    d2 = ((t["light"] - t["points"]) ** 2).sum(-1, keepdim=True)
    diff, spec = point_light(
        t["points"], t["normal"], t["camera"], t["albedo"], t["specular"], t["roughness"],
        torch.ones(3, dtype=torch.float64), light_pos=t["light"],
    )  # fmt: skip
    diff, spec = (diff * d2).numpy(), (spec * d2).numpy()
    lit = (up["diffuse"] > 0).any(1)
    print(f"points: {n} ({lit.sum()} lit), half co-located, half lit from a second position")
    rel = np.abs(diff - up["diffuse"]).max() / np.abs(up["diffuse"]).max()
    print(f"1. diffuse:  max |upstream - fk| = {np.abs(diff - up['diffuse']).max():.3g} (relative {rel:.3g})")
    spec_up = np.broadcast_to(up["specular"], spec.shape)
    rel = np.abs(spec - spec_up).max() / np.abs(spec_up).max()
    print(f"   specular: max |upstream - fk| = {np.abs(spec - spec_up).max():.3g} (relative {rel:.3g})")
    sh = sh_basis(t["normal"]).numpy()
    print(f"2. SH basis: max |upstream - fk| = {np.abs(sh - up['sh']).max():.3g}")


if __name__ == "__main__":
    main()
