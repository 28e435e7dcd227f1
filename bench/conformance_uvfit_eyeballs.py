"""Conformance: fk's FFHQ-UV eyeball fit against upstream's own script, on upstream's example head.

    python bench/conformance_uvfit_eyeballs.py --upstream PATH/TO/csbhr/FFHQ-UV [--venv /tmp/ffhquv-venv]

(a git checkout; from a bare mirror: ``git archive HEAD Mesh_Add_EyeBall examples | tar -x -C DIR``).
Measured on csbhr/FFHQ-UV 223c129: L_ball vertex 5.4e-07, normal 3.2e-06; R_ball 5.4e-07, 7.7e-06.

Creates a throw-away venv (numpy, scipy) under /tmp, runs upstream's
``Mesh_Add_EyeBall/run_mesh_add_eyeball.py`` on a copy of ``examples/mesh_add_eyeball_examples/mesh_head.obj``
(it writes L_ball.obj / R_ball.obj next to it), runs ``fk_uvfit.eyeballs.fit_template`` on the same head
and templates, and prints the largest vertex and normal differences (upstream writes ``%f``: 1e-6).
Nothing from upstream is imported into fk; the checkout is only read.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from _sidevenv import side_venv


def _obj_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    v, vn = [], []
    for line in path.read_text().splitlines():
        tok = line.split()
        if tok and tok[0] == "v":
            v.append([float(x) for x in tok[1:4]])
        elif tok and tok[0] == "vn":
            vn.append([float(x) for x in tok[1:4]])
    return np.asarray(v), np.asarray(vn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", type=Path, required=True, help="a checkout of csbhr/FFHQ-UV")
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "ffhquv-conformance-venv")
    args = ap.parse_args()
    up = args.upstream.resolve()
    py = side_venv(args.venv, ["numpy", "scipy"])
    with tempfile.TemporaryDirectory() as tmp:
        head = Path(tmp) / "mesh_head.obj"
        shutil.copy(up / "examples" / "mesh_add_eyeball_examples" / "mesh_head.obj", head)
        subprocess.run([str(py), "run_mesh_add_eyeball.py", "--mesh_path", str(head)],
                       cwd=up / "Mesh_Add_EyeBall", check=True)
        theirs = {s: _obj_arrays(Path(tmp) / f"{s}_ball.obj") for s in ("L", "R")}

        from fk_uvfit.eyeballs import fit_template

        head_v = np.asarray(_obj_arrays(head)[0], np.float32)
        assets = up / "Mesh_Add_EyeBall" / "eye_ball_assets"
        for side, name in (("L", "eyeLeft_mesh_move.obj"), ("R", "eyeRight_mesh_move.obj")):
            ours = fit_template(head_v, assets / name, side)
            dv = np.abs(ours.vertices - theirs[side][0]).max()
            dn = np.abs(ours.normals - theirs[side][1]).max()
            print(f"{side}_ball: {len(ours.vertices)} vertices; max |fk - upstream| vertex {dv:.2e}, "
                  f"normal {dn:.2e} (upstream writes %f: 1e-6)")


if __name__ == "__main__":
    main()
