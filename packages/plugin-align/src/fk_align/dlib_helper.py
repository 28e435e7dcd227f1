"""dlib's HOG detector and 68-point predictor in a child process (``python -m fk_align.dlib_helper PATH``).

Why a process: dlib holds the GIL while it builds the HOG detector and reads the 99 MB predictor (about
1 s together on the 2-core machine), so a loading *thread* stalls the main thread for as long; a child
process loads them on the other core while the parent imports torch and the fit's kernels.

Protocol (stdin/stdout of the child, no pickle): the child loads both models, then answers requests one
at a time. A request is one JSON line ``{"h", "w", "upsample", "min_score"}`` followed by the ``h*w*3``
bytes of a C-ordered uint8 RGB image; the answer is one JSON line, ``{"faces": [[left, top, right,
bottom, score, [x0, y0, ..., x67, y67]], ...]}`` (dlib's integers and doubles, exact in JSON) or
``{"error": "..."}``. End of input ends the child.
"""

from __future__ import annotations

import json
import sys


def _serve(predictor_path: str) -> None:
    import dlib
    import numpy as np

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        hog = dlib.get_frontal_face_detector()
        predictor = dlib.shape_predictor(predictor_path)
        failed = None
    except Exception as exc:  # noqa: BLE001 - every request answers with the error; the parent reloads
        failed = f"{type(exc).__name__}: {exc}"
    for line in stdin:
        req = json.loads(line)
        h, w = int(req["h"]), int(req["w"])
        data = stdin.read(h * w * 3)
        if len(data) != h * w * 3:
            return
        if failed is not None:
            stdout.write(json.dumps({"error": failed}).encode() + b"\n")
            stdout.flush()
            continue
        try:
            rgb = np.frombuffer(data, np.uint8).reshape(h, w, 3)
            rects, scores, _ = hog.run(rgb, int(req["upsample"]), float(req["min_score"]))
            faces = []
            for rect, score in zip(rects, scores, strict=True):
                shape = predictor(rgb, rect)
                points = [c for p in shape.parts() for c in (p.x, p.y)]
                faces.append([rect.left(), rect.top(), rect.right(), rect.bottom(), float(score), points])
            answer = {"faces": faces}
        except Exception as exc:  # noqa: BLE001 - the parent detects in-process and reports it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(answer).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    _serve(sys.argv[1])
