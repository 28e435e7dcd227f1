"""Review of LPFF's manual QA: a local page over every debug render, with automatic flags.

LPFF asks users to delete bad debug renders by hand. Here nothing is deleted: decisions
go to ``review/rejects.json`` (``{"rejected": [...], "decisions": {face: "accept"|"reject"}}``)
under the LPFF folder, and the merge and camera-parameter steps leave rejected faces out.

Automatic flags (``review/flags.json``), computed from files the pipeline wrote:

- ``landmarks``: the model's 68 landmarks (``realign/lm_5p_pred``), reduced to the 5 points
  of ``realign/detections``, miss the detected 5 points by more than ``lm_threshold`` times
  the inter-ocular distance (a fit that does not match the photo).
- ``blur``: the variance of the Laplacian of the grey EG3D crop is below ``blur_threshold``.
- ``no-crop``: the face has a debug render but no EG3D crop.
- ``poor camera fit``: without R-Net's checkpoint the lpff recipe's camera is fk's fit
  (``realign/camera/{face}.json``, source ``fit-fallback``); a fit whose landmark RMS is
  above its ``flag_rmse`` is kept and flagged here.
- ``low score``: the detector's score for the face (``lm_facealignment_dlib/faces/*.json``)
  is below ``score_threshold``. LPFF keeps every dlib HOG box (no threshold) and relies on
  this review, so weak boxes, real faces or not, are shown for a decision, never dropped.

The server binds 127.0.0.1 only and serves files of the known faces only.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import numpy as np
from fk import atomic
from fk.errors import InputError
from fk.landmarks import five_from_68

LM_THRESHOLD = 0.10
BLUR_THRESHOLD = 20.0
SCORE_THRESHOLD = 0.3  # dlib HOG's weak false positives score ~0.1; real faces can score ~0.2


def lpff_paths(root: Path) -> dict[str, Path]:
    """The LPFF folders under ``root`` (a data dir holding ``realign/``, or ``realign/`` itself)."""
    root = Path(root)
    realign = root / "realign" if (root / "realign" / "debug").is_dir() else root
    if not (realign / "debug").is_dir():
        raise InputError(f"{root}: no realign/debug folder (the debug renders) found",
                         hint="Pass the folder `fk run recipes/lpff.yaml --out DIR` wrote.")
    base = realign.parent if realign.name == "realign" else realign
    return {"debug": realign / "debug", "eg3d": realign / "crop" / "eg3d", "lm_pred": realign / "lm_5p_pred",
            "detections": realign / "detections", "review": base / "review", "realign": realign,
            "faces": base / "lm_facealignment_dlib" / "faces", "camera": realign / "camera"}


def detection_scores(faces_dir: Path) -> dict[str, float]:
    """Face -> detector score from the detect step's ``faces/{photo}.json`` files (empty if none)."""
    scores: dict[str, float] = {}
    for path in sorted(Path(faces_dir).glob("*.json")) if Path(faces_dir).is_dir() else []:
        try:
            for face, rec in json.loads(path.read_text()).items():
                scores[face] = float(rec["score"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a damaged score file only loses its flags
    return scores


def landmark_error(lm68_pred, detected5) -> float:
    """Mean 5-point distance between model and detection, in inter-ocular distances."""
    pred = five_from_68(np.asarray(lm68_pred, float))
    det = np.asarray(detected5, float).reshape(5, 2)
    iod = np.linalg.norm(det[1] - det[0])
    return float(np.linalg.norm(pred - det, axis=1).mean() / max(iod, 1e-9))


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (a standard sharpness score; low is blurry)."""
    g = np.asarray(gray, float)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(lap.var())


def compute_flags(root: Path, lm_threshold: float = LM_THRESHOLD, blur_threshold: float = BLUR_THRESHOLD,
                  score_threshold: float = SCORE_THRESHOLD) -> dict:
    """Flags for every face with a debug render; written to ``review/flags.json``."""
    from PIL import Image

    p = lpff_paths(root)
    scores = detection_scores(p["faces"])
    out = {}
    for debug in sorted(p["debug"].glob("*.png")):
        face = debug.stem
        rec: dict = {"flags": [], "lm_error": None, "sharpness": None, "score": scores.get(face)}
        camera = p["camera"] / f"{face}.json"
        if camera.is_file():
            try:
                cam = json.loads(camera.read_text())
                rec["camera"] = cam.get("source")
                if cam.get("flag"):
                    rec["flags"].append(str(cam["flag"]))
            except (ValueError, AttributeError):
                rec["flags"].append("unreadable camera record")
        if rec["score"] is not None and rec["score"] < score_threshold:
            rec["flags"].append(f"low detection score {rec['score']:.2f}: check that it is a face")
        lm, det = p["lm_pred"] / f"{face}.npy", p["detections"] / f"{face}.txt"
        if lm.is_file() and det.is_file():
            rec["lm_error"] = landmark_error(np.load(lm), np.loadtxt(det))
            if rec["lm_error"] > lm_threshold:
                rec["flags"].append(f"landmarks off by {rec['lm_error']:.2f} eye distances")
        crop = p["eg3d"] / f"{face}.png"
        if crop.is_file():
            with Image.open(crop) as im:
                rec["sharpness"] = laplacian_variance(np.asarray(im.convert("L")))
            if rec["sharpness"] < blur_threshold:
                rec["flags"].append(f"blurry crop (Laplacian variance {rec['sharpness']:.1f})")
        else:
            rec["flags"].append("no EG3D crop")
        out[face] = rec
    atomic.write_json(p["review"] / "flags.json", out)
    return out


class ReviewState:
    """Faces, flags and decisions; every change is saved atomically to ``review/rejects.json``."""

    def __init__(self, root: Path, **flag_kw):
        self.paths = lpff_paths(root)
        self.flags = compute_flags(root, **flag_kw)
        self.lock = threading.Lock()
        self.file = self.paths["review"] / "rejects.json"
        self.decisions: dict[str, str] = {}
        if self.file.is_file():
            prior = json.loads(self.file.read_text())
            self.decisions = {k: v for k, v in prior.get("decisions", {}).items() if k in self.flags}
            for face in prior.get("rejected", []):
                if face in self.flags:
                    self.decisions[face] = "reject"

    def items(self) -> list[dict]:
        return [{"face": f, **self.flags[f], "decision": self.decisions.get(f, "accept"),
                 "has_crop": (self.paths["eg3d"] / f"{f}.png").is_file()} for f in sorted(self.flags)]

    def decide(self, face: str, decision: str) -> None:
        if face not in self.flags or decision not in ("accept", "reject"):
            raise KeyError(face)
        with self.lock:
            self.decisions[face] = decision
            rejected = sorted(f for f, d in self.decisions.items() if d == "reject")
            atomic.write_json(self.file, {"rejected": rejected, "decisions": dict(sorted(self.decisions.items()))})

    def image(self, kind: str, face: str) -> Path | None:
        if face not in self.flags or kind not in ("debug", "eg3d"):
            return None
        path = self.paths[kind] / f"{face}.png"
        return path if path.is_file() else None


def make_server(state: ReviewState, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 (``port`` 0: any free port; see ``server.server_address``)."""
    page = (Path(__file__).with_name("review_page.html")).read_text(encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the CLI prints the address once
            pass

        def _send(self, status, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 - http.server's naming
            path = unquote(self.path.split("?", 1)[0])
            if path == "/":
                return self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
            if path == "/api/items":
                return self._send(HTTPStatus.OK, json.dumps(state.items()).encode(), "application/json")
            parts = path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "img":
                file = state.image(parts[1], parts[2].removesuffix(".png"))
                if file:
                    return self._send(HTTPStatus.OK, file.read_bytes(), "image/png")
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

        def do_POST(self):  # noqa: N802
            if self.path != "/api/decision":
                return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                state.decide(str(body["face"]), str(body["decision"]))
            except (ValueError, KeyError, TypeError):
                return self._send(HTTPStatus.BAD_REQUEST, b"bad decision", "text/plain")
            return self._send(HTTPStatus.OK, json.dumps({"ok": True}).encode(), "application/json")

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)
