"""Which face models fk can use, and loading one by name.

``load_face_model("demo")`` always works (fk generates the head itself). ``"bfm09"`` needs
``$FK_HOME/assets/bfm/BFM_model_front.mat`` (build it with ``fk models convert-bfm``) and
``"hifi3dpp"`` needs ``$FK_HOME/assets/hifi3dpp/hifi3dpp_model_info.mat``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fk.assets import asset_path
from fk.errors import AssetMissingError, UsageError
from fk.models.assets import ASSETS, BFM_FRONT, BFM_SOURCES, HIFI3DPP_INFO

MODEL_NAMES = ("demo", "bfm09", "hifi3dpp")

_SUMMARIES = {
    "demo": "fk's built-in demo head: generated procedurally, not a statistical model (always available)",
    "bfm09": "Basel Face Model 2009 as Deep3D uses it: 35,709 vertices, 80 id / 64 exp / 80 tex",
    "hifi3dpp": "HiFi3D++ (FFHQ-UV): 20,481-vertex full head with UVs, 532 id / 45 exp / 439 tex",
}
_REQUIRED = {"demo": (), "bfm09": (BFM_FRONT,), "hifi3dpp": (HIFI3DPP_INFO,)}


def _asset(name: str):
    return next(a for a in ASSETS if a.name == name)


def available_models() -> list[dict[str, Any]]:
    """One entry per face model: ``{name, ready, path, summary, missing, missing_details}``.

    ``path`` is the model file fk loads (None for the generated demo head); ``missing`` lists the
    absolute paths of absent files the model needs (for BFM09 without ``BFM_model_front.mat``, also
    the absent conversion sources); ``missing_details`` gives ``{name, path, instructions, convert}``
    for each of them.
    """
    out = []
    for name in MODEL_NAMES:
        missing = []
        for asset_name in _REQUIRED[name]:
            a = _asset(asset_name)
            p = asset_path(a.path)
            if not p.exists():
                missing.append({"name": a.name, "path": str(p), "instructions": a.instructions, "convert": a.convert})
        if name == "bfm09" and missing:
            for asset_name in BFM_SOURCES:
                a = _asset(asset_name)
                p = asset_path(a.path)
                if not p.exists():
                    missing.append({"name": a.name, "path": str(p), "instructions": a.instructions, "convert": ""})
        path = None if name == "demo" else str(asset_path(_asset(_REQUIRED[name][0]).path))
        out.append({"name": name, "ready": not missing, "path": path, "summary": _SUMMARIES[name],
                    "missing": [m["path"] for m in missing], "missing_details": missing})
    return out


def load_face_model(name: str = "demo", path: str | Path | None = None, **kwargs: Any):
    """Load a face model by name as a :class:`fk.models.FaceModel` (float32, CPU).

    Args:
        name: "demo", "bfm09" or "hifi3dpp".
        path: the model file, overriding the asset location (BFM: ``BFM_model_front.mat``;
            HiFi3D++: ``hifi3dpp_model_info.mat``).
        kwargs: passed to the loader (e.g. ``recenter`` for BFM).
    """
    if name not in MODEL_NAMES:
        raise UsageError(f"unknown face model {name!r}", hint=f"choose one of {', '.join(MODEL_NAMES)}")
    if name == "demo":
        from fk.models.demo import load_demo_head

        return load_demo_head(**kwargs)
    asset = _asset(_REQUIRED[name][0])
    file = Path(path) if path is not None else asset_path(asset.path)
    if not file.exists():
        how = f" Or build it: {asset.convert}" if asset.convert else ""
        raise AssetMissingError(f"missing face model file {file} ({asset.summary})", hint=f"{asset.instructions}{how}")
    if name == "bfm09":
        from fk.models.bfm import load_bfm09

        return load_bfm09(file, **kwargs)
    from fk.models.hifi3dpp import load_hifi3dpp

    return load_hifi3dpp(file, **kwargs)
