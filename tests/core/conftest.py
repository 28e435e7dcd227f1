"""Toy components for the core tests: real work (image statistics, tiling) without any plugin."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fk.components import Component, Param, Port
from fk.errors import ItemFiltered
from fk.hookspecs import hookimpl
from fk.io import load_image


class Tiles:
    """Fan-out: split a photo into `n` vertical strips (stands in for 'one item per face')."""

    def __init__(self, n: int = 2):
        self.n = n

    def __call__(self, inputs, ctx):
        rgb = load_image(inputs["image"])
        return {"tiles": np.array_split(rgb, self.n, axis=1)}


class MeanColour:
    def __init__(self, fail_on: str = "", drop: str = ""):
        self.fail_on, self.drop = fail_on, drop

    def __call__(self, inputs, ctx):
        # Ctrl-C raises KeyboardInterrupt wherever the item is; the test picks the place
        # through the environment so that the recipe (and its digest) stays the same.
        if os.environ.get("TOY_INTERRUPT_ON") == ctx.key:
            raise KeyboardInterrupt
        time.sleep(float(os.environ.get("TOY_SLEEP", "0")))  # lets process tests signal a run mid-way
        if self.drop and self.drop == ctx.key:
            raise ItemFiltered("too dull to keep", {"score": 0.25}, outputs={"mean": "filtered"})
        if self.fail_on and self.fail_on in ctx.key:
            raise ValueError(f"refusing {ctx.key} on purpose")
        pixels = inputs["tile"] if inputs.get("tile") is not None else load_image(inputs["image"])
        mean = [float(v) for v in np.asarray(pixels, float).reshape(-1, 3).mean(axis=0)]
        # "sample" stands in for a stochastic step (random init, augmentation): the engine seeds
        # every item and step, so it is the same in a resumed run as in an uninterrupted one.
        ctx.write_json(f"{ctx.key}.json", {"mean": mean, "sample": float(np.random.random())})
        ctx.save_image(f"{ctx.key}.png", np.asarray(pixels))
        return {"mean": mean}


class Summary:
    def __call__(self, inputs, ctx):
        means = inputs["means"]
        ctx.write_json("summary.json", {"count": len(means), "means": means})
        return {"report": str(ctx.path("summary.json"))}


class ToyPlugin:
    __name__ = "toy"

    @hookimpl
    def fk_crop(self):
        yield Component("crop", "tiles", "split into strips", Tiles, params=(Param("n", "int", 2),),
                        inputs=(Port("image", "image"),), outputs=(Port("tiles", "any"),), fan_out="tiles")

    @hookimpl
    def fk_evaluate(self):
        yield Component("evaluate", "mean-colour", "mean RGB of an image or tile", MeanColour,
                        params=(Param("fail_on", "str", ""), Param("drop", "str", "")),
                        inputs=(Port("image", "image", optional=True), Port("tile", "any", optional=True)),
                        outputs=(Port("mean", "json"),))

    @hookimpl
    def fk_export(self):
        yield Component("export", "summary", "collect every item's mean", Summary, scope="run",
                        inputs=(Port("means", "json"),), outputs=(Port("report", "path"),))


@pytest.fixture
def toy_pm():
    from fk.testing import isolated_plugin_manager

    with isolated_plugin_manager(ToyPlugin()) as pm:
        yield pm


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Three small generated photos with distinct colours, and one corrupt file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(["a", "b", "c"]):
        arr = np.zeros((32, 48, 3), np.uint8)
        arr[..., i] = 200
        arr[:, 24:] += rng.integers(0, 40, (32, 24, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{name}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


TOY_RECIPE = """\
fk: 1
name: toy
description: tiles and colours
inputs:
  photos: {type: images, path: %(photos)s}
steps:
  - id: tiles
    use: crop:tiles
    in: {image: inputs.photos}
    with: {n: 2}
  - id: colour
    use: evaluate:mean-colour
    in: {tile: tiles.tiles}
  - id: summary
    use: export:summary
    in: {means: colour.mean}
"""


@pytest.fixture
def toy_recipe(tmp_path: Path, photo_dir: Path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_RECIPE % {"photos": photo_dir})
    return path
