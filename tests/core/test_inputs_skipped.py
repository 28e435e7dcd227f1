"""Input folders: GIFs are read (first frame); sub-folders and unknown files get a line in failures.json."""

from __future__ import annotations

import numpy as np
from PIL import Image


def test_gif_first_frame_is_read_and_skipped_entries_are_reported(tmp_path):
    from fk.io import load_image
    from fk.recipe import InputSpec

    photos = tmp_path / "photos"
    (photos / "more").mkdir(parents=True)
    frames = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(photos / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("RGB", (4, 4)).save(photos / "a.png")
    (photos / "notes.txt").write_text("x")
    (photos / ".DS_Store").write_bytes(b"")
    spec = InputSpec("photos", "images", photos)
    assert [p.name for p in spec.items()] == ["a.png", "anim.gif"]
    assert [(p.name, why.split(":")[0]) for p, why in spec.skipped()] == [
        ("more", "a sub-folder"), ("notes.txt", "not an image fk reads (suffix .txt; it reads .jpg, .jpeg, .png, "
                                   ".bmp, .webp, .tif, .tiff, .gif)")]
    first = load_image(photos / "anim.gif")
    assert first.shape == (6, 8, 3)
    np.testing.assert_array_equal(first[0, 0], (255, 0, 0))
