"""``fk doctor``: what this installation can do, and what is missing and where it must go."""

from __future__ import annotations

import importlib.util
import platform
import sys
from typing import Any

OPTIONAL_LIBS = ("dlib", "face_alignment", "cv2", "skimage", "scipy", "trimesh", "numba", "matplotlib",
                 "nvdiffrast", "moderngl")


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        mod = __import__(module)
    except Exception as exc:  # noqa: BLE001 - report, don't crash
        return f"broken ({type(exc).__name__}: {exc})"
    return str(getattr(mod, "__version__", getattr(mod, "VERSION", "installed")))


def collect(pm: Any) -> dict[str, Any]:
    from fk import __version__
    from fk.assets import asset_root, asset_status, fk_home

    report: dict[str, Any] = {
        "fk": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "fk_home": str(fk_home()),
        "asset_root": str(asset_root()),
    }
    try:
        import torch

        cuda = torch.cuda.is_available()
        report["torch"] = {"version": torch.__version__, "cuda": cuda,
                           "device": torch.cuda.get_device_name(0) if cuda else "cpu",
                           "threads": torch.get_num_threads()}
    except ImportError:
        report["torch"] = {"version": None, "cuda": False, "device": "cpu",
                           "problem": "torch is not installed: pip install torch==2.13.0"}
    from fk.render import describe_backends

    backends = describe_backends()
    report["renderer"] = {"auto": next((b["name"] for b in backends if b["chosen"]), None), "backends": backends}
    from fk.engine.executors import describe_executors

    report["executors"] = describe_executors()
    report["libraries"] = {m: _version(m) for m in OPTIONAL_LIBS}
    try:
        from fk.models import available_models

        report["face_models"] = available_models()
    except Exception as exc:  # noqa: BLE001 - models are optional to the doctor
        report["face_models"] = [{"name": "?", "ready": False, "problem": str(exc)}]
    report["assets"] = asset_status(pm)
    report["plugins"] = [{"name": p.name, "distribution": p.distribution, "version": p.version}
                         for p in pm.plugins()]
    report["broken_plugins"] = [{"name": b.name, "distribution": b.distribution, "error": b.error}
                                for b in pm.broken]
    report["conflicts"] = [{"component": ref, "distributions": dists} for ref, dists in pm.conflicts.items()]
    return report


def show(report: dict[str, Any], out: Any) -> None:
    t = report["torch"]
    out.text(f"[bold]fk {report['fk']}[/] · Python {report['python']} · {report['platform']}")
    out.text(f"torch {t.get('version') or '[red]missing[/]'} · device {t['device']}"
             + (f" · {t['problem']}" if t.get("problem") else ""))
    r = report["renderer"]
    out.text(f"renderer (auto) → [bold]{r['auto']}[/]")
    for b in r["backends"]:
        mark = "[green]✓[/]" if b["available"] else "[yellow]✗[/]"
        out.text(f"  {mark} {b['name']}: {b['reason']}")
    out.text("executors (fk run --executor NAME):")
    for e in report["executors"]:
        mark = "[green]✓[/]" if e["available"] else "[yellow]✗[/]"
        out.text(f"  {mark} {e['name']}: {e['reason']}")
    libs = ", ".join(f"{k} {v}" if v else f"[dim]{k} missing[/]" for k, v in report["libraries"].items())
    out.text(f"libraries: {libs}")
    out.table("Face models", ["model", "ready", "where / what is missing"],
              [[m.get("name"), "yes" if m.get("ready") else "no",
                m.get("path") or m.get("problem") or "; ".join(m.get("missing", []) or [])]
               for m in report["face_models"]])
    from rich.markup import escape

    present = sum(a["present"] for a in report["assets"])
    out.text(f"[bold]model files[/] ({present}/{len(report['assets'])} present, under {report['asset_root']}; "
             "fk never downloads them)")
    for a in report["assets"]:
        if a["present"]:
            out.text(f"  [green]✓[/] {a['name']}: {escape(a['path'])}")
        else:
            out.text(f"  [yellow]✗[/] {a['name']} [dim]({a['plugin']})[/]: put it at {escape(a['path'])}\n"
                     f"      {escape(a['instructions'])}")
    if report.get("conflicts"):
        out.table("Conflicting components (steps that use them fail; uninstall or block one plugin)",
                  ["component", "provided by"],
                  [[c["component"], ", ".join(c["distributions"])] for c in report["conflicts"]])
    if report["broken_plugins"]:
        out.table("Broken plugins", ["plugin", "distribution", "error"],
                  [[b["name"], b["distribution"], b["error"]] for b in report["broken_plugins"]])
    else:
        out.text(f"plugins: {', '.join(p['name'] for p in report['plugins'])} (none broken)")
