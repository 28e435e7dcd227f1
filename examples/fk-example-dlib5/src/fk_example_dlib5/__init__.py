"""An fk plugin: registers ``detect:dlib5``. Import-light on purpose (no dlib here)."""

from fk.components import Component, Param, Port
from fk.hookspecs import hookimpl


@hookimpl
def fk_detect():
    yield Component(
        stage="detect",
        name="dlib5",
        summary="dlib HOG face boxes with the 5-point landmark model (example third-party plugin)",
        factory="fk_example_dlib5.detector:Dlib5Detector",
        params=(Param("upsample", "int", 1, "times to upsample the photo before detecting"),),
        inputs=(Port("image", "image", "the photo"),),
        outputs=(Port("faces", "faces", "boxes, largest first"),),
        fan_out="faces",
    )
