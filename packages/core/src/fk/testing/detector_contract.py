"""The contract every ``detect`` component meets, as a pytest class to subclass.

Usage (in any plugin's tests)::

    from fk.testing.detector_contract import DetectorContract

    class TestMyDetector(DetectorContract):
        component = "detect:mine"
        params = {"upsample": 1}          # optional, merged over the declared defaults
        has_landmarks = True              # False for box-only detectors

What it checks, on a real photo (scikit-image's astronaut unless ``photo`` is set)
and on a blank image:

- the component is a ``detect`` component with an ``image`` input and a ``faces``
  output of kind ``faces`` that it fans out on, and its runner returns every
  declared output port;
- the photo gives at least ``min_faces`` faces (``fk.types.Face``), sorted largest
  box first and numbered 0, 1, ... in that order;
- every box is (x0, y0, x1, y1) with x0 < x1, y0 < y1, inside the image;
- every score is a finite Python float; ``image_size`` is the photo's (H, W);
- landmarks (unless ``has_landmarks`` is False) are 68 finite (x, y) points, all
  within the box grown by ``landmark_margin`` of its size on each side;
- a blank image gives an empty list or raises ``fk.errors.NoFaceError``.

The photo and the blank image are each run once per class (class-scoped fixtures),
so slow detectors cost two calls. A detector whose model files are missing is
skipped with the asset error's message (set ``skip_if_missing = False`` to fail).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from fk.components import Component
from fk.engine.context import ItemContext
from fk.errors import MissingError, NoFaceError
from fk.types import Face


class DetectorContract:
    component: ClassVar[str] = ""  # e.g. "detect:dlib"
    params: ClassVar[dict[str, Any]] = {}
    photo: ClassVar[str | Path | None] = None  # default: scikit-image's astronaut.png
    min_faces: ClassVar[int] = 1
    has_landmarks: ClassVar[bool] = True
    landmark_margin: ClassVar[float] = 0.5
    blank_size: ClassVar[tuple[int, int]] = (256, 256)
    skip_if_missing: ClassVar[bool] = True

    # -- fixtures (once per subclass) -------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def contract_component(cls) -> Component:
        from fk.plugins import get_plugin_manager

        if not cls.component:
            pytest.fail(f'{cls.__name__}: set `component = "detect:<name>"`')
        return get_plugin_manager().component(cls.component)

    @pytest.fixture(scope="class")
    @classmethod
    def contract_runner(cls, contract_component: Component) -> Any:
        params = {**contract_component.defaults(), **cls.params}
        try:
            return contract_component.load_factory()(**params)
        except MissingError as exc:
            if cls.skip_if_missing:
                pytest.skip(f"{cls.component}: {exc} ({exc.hint})" if exc.hint else f"{cls.component}: {exc}")
            raise

    @pytest.fixture(scope="class")
    @classmethod
    def contract_photo(cls) -> Path:
        if cls.photo is not None:
            return Path(cls.photo)
        from fk.testing import astronaut_path

        return astronaut_path()

    @pytest.fixture(scope="class")
    @classmethod
    def contract_photo_result(
        cls, contract_runner: Any, contract_photo: Path, tmp_path_factory: pytest.TempPathFactory
    ) -> tuple[dict[str, Any], np.ndarray]:
        from fk.io import load_image

        run_dir = tmp_path_factory.mktemp("detector_contract")
        ctx = ItemContext(
            key=contract_photo.stem,
            source=contract_photo,
            step_id="detect",
            run_dir=run_dir,
            step_dir=run_dir / "detect",
        )
        outputs = contract_runner({"image": contract_photo}, ctx)
        return outputs, load_image(contract_photo)

    @pytest.fixture(scope="class")
    @classmethod
    def contract_faces(cls, contract_photo_result: tuple[dict[str, Any], np.ndarray]) -> list[Face]:
        outputs, _ = contract_photo_result
        return list(outputs["faces"])

    # -- the component's declaration --------------------------------------------
    def test_declares_detect_interface(self, contract_component: Component) -> None:
        assert contract_component.stage == "detect"
        assert "image" in {p.name for p in contract_component.inputs}, "a detector takes an `image` input"
        faces_port = next((p for p in contract_component.outputs if p.name == "faces"), None)
        assert faces_port is not None, "a detector outputs a `faces` port"
        assert faces_port.kind == "faces"
        assert contract_component.fan_out == "faces", "detectors fan out one item per face"

    def test_returns_declared_outputs(
        self, contract_component: Component, contract_photo_result: tuple[dict[str, Any], np.ndarray]
    ) -> None:
        outputs, _ = contract_photo_result
        missing = [p.name for p in contract_component.outputs if p.name not in outputs]
        assert not missing, f"{self.component} returned no value for {missing}"

    # -- the faces on a real photo ----------------------------------------------
    def test_finds_faces_on_photo(self, contract_faces: list[Face]) -> None:
        assert isinstance(contract_faces, list)
        assert len(contract_faces) >= self.min_faces
        assert all(isinstance(f, Face) for f in contract_faces)

    def test_sorted_largest_first(self, contract_faces: list[Face]) -> None:
        areas = [float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])) for f in contract_faces]
        assert areas == sorted(areas, reverse=True), f"faces not sorted largest first: areas {areas}"
        assert [f.index for f in contract_faces] == list(range(len(contract_faces)))

    def test_boxes_inside_image(
        self, contract_faces: list[Face], contract_photo_result: tuple[dict[str, Any], np.ndarray]
    ) -> None:
        _, rgb = contract_photo_result
        h, w = rgb.shape[:2]
        for f in contract_faces:
            x0, y0, x1, y1 = (float(v) for v in np.asarray(f.box).reshape(4))
            assert x0 < x1, f"face {f.index}: degenerate box {f.box}"
            assert y0 < y1, f"face {f.index}: degenerate box {f.box}"
            inside = -0.5 <= x0 and x1 <= w - 0.5 and -0.5 <= y0 and y1 <= h - 0.5
            assert inside, f"face {f.index}: box {f.box} leaves the {w}x{h} image"
            assert tuple(f.image_size) == (h, w)

    def test_scores_are_floats(self, contract_faces: list[Face]) -> None:
        for f in contract_faces:
            assert isinstance(f.score, float), f"face {f.index}: score {f.score!r} is not a float"
            assert math.isfinite(f.score), f"face {f.index}: score {f.score!r}"

    def test_landmarks_68_near_box(self, contract_faces: list[Face]) -> None:
        if not self.has_landmarks:
            pytest.skip(f"{self.component} gives boxes only")
        for f in contract_faces:
            lm = np.asarray(f.landmarks, dtype=np.float64)
            assert lm.shape == (68, 2), f"face {f.index}: landmarks shape {lm.shape}"
            assert np.all(np.isfinite(lm))
            x0, y0, x1, y1 = (float(v) for v in f.box)
            mx, my = self.landmark_margin * (x1 - x0), self.landmark_margin * (y1 - y0)
            inside = (
                (lm[:, 0] >= x0 - mx) & (lm[:, 0] <= x1 + mx) & (lm[:, 1] >= y0 - my) & (lm[:, 1] <= y1 + my)
            )
            assert inside.all(), (
                f"face {f.index}: landmarks {np.flatnonzero(~inside).tolist()} far outside its box"
            )

    # -- a blank image ------------------------------------------------------------
    def test_blank_image_gives_no_face(self, contract_runner: Any, tmp_path: Path) -> None:
        blank = np.full((*self.blank_size, 3), 128, dtype=np.uint8)
        ctx = ItemContext(
            key="blank", source=None, step_id="detect", run_dir=tmp_path, step_dir=tmp_path / "detect"
        )
        try:
            outputs = contract_runner({"image": blank}, ctx)
        except NoFaceError:
            return
        assert list(outputs["faces"]) == [], f"{self.component} found faces in a blank image"
