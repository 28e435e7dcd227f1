"""fk.io image loading: EXIF orientation, mode conversion, limits, errors, atomic save."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fk.errors import InputError, ShapeError
from fk.io import as_rgb, load_image, save_image

EXIF_ORIENTATION = 0x0112


def _display_image() -> np.ndarray:
    """A 5x7 image whose every pixel differs, so any flip or rotation shows."""
    h, w = 5, 7
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy * 40 + 10, xx * 30 + 5, (yy * w + xx) * 7 % 256], axis=-1).astype(np.uint8)


# How each EXIF orientation tag says the *stored* pixels relate to the *displayed*
# picture D, written from the TIFF/EXIF spec's wording ("the 0th row represents ...").
STORED_FROM_DISPLAY = {
    1: lambda d: d,  # 0th row = top, 0th column = left
    2: lambda d: d[:, ::-1],  # 0th row = top, 0th column = right
    3: lambda d: d[::-1, ::-1],  # 0th row = bottom, 0th column = right
    4: lambda d: d[::-1, :],  # 0th row = bottom, 0th column = left
    5: lambda d: d.transpose(1, 0, 2),  # 0th row = left, 0th column = top
    6: lambda d: d.transpose(1, 0, 2)[::-1, :],  # 0th row = right, 0th column = top
    7: lambda d: d[::-1, ::-1].transpose(1, 0, 2),  # 0th row = right, 0th column = bottom
    8: lambda d: d.transpose(1, 0, 2)[:, ::-1],  # 0th row = left, 0th column = bottom
}


def _save_with_orientation(path, stored: np.ndarray, tag: int, fmt: str, **kw) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = tag
    Image.fromarray(np.ascontiguousarray(stored)).save(path, format=fmt, exif=exif, **kw)


def test_stored_from_display_table_matches_the_spec_wording():
    d = _display_image()
    h, w = d.shape[:2]
    # tag 6: stored row 0 is the visual right column read top to bottom.
    np.testing.assert_array_equal(STORED_FROM_DISPLAY[6](d)[0], d[:, w - 1])
    # tag 8: stored row 0 is the visual left column read bottom to top.
    np.testing.assert_array_equal(STORED_FROM_DISPLAY[8](d)[0], d[::-1, 0])
    # tag 7: stored row 0 is the visual right column read bottom to top.
    np.testing.assert_array_equal(STORED_FROM_DISPLAY[7](d)[0], d[::-1, w - 1])
    # tag 5: stored column 0 is the visual top row.
    np.testing.assert_array_equal(STORED_FROM_DISPLAY[5](d)[:, 0], d[0])
    assert STORED_FROM_DISPLAY[6](d).shape[:2] == (w, h)


@pytest.mark.parametrize("tag", range(1, 9))
def test_exif_orientation_png_exact(tmp_path, tag):
    display = _display_image()
    path = tmp_path / f"o{tag}.png"
    _save_with_orientation(path, STORED_FROM_DISPLAY[tag](display), tag, "PNG")
    np.testing.assert_array_equal(load_image(path), display)


@pytest.mark.parametrize("tag", range(1, 9))
def test_exif_orientation_jpeg(tmp_path, tag):
    # JPEG is lossy: use 16-pixel flat blocks and compare block centres.
    display = np.kron(_display_image()[:3, :4], np.ones((16, 16, 1), np.uint8))
    path = tmp_path / f"o{tag}.jpg"
    _save_with_orientation(path, STORED_FROM_DISPLAY[tag](display), tag, "JPEG", quality=100)
    got = load_image(path)
    assert got.shape == display.shape
    centres = (slice(8, None, 16), slice(8, None, 16))
    np.testing.assert_allclose(got[centres].astype(int), display[centres].astype(int), atol=6)


def test_result_is_contiguous_writeable_uint8(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(_display_image()).save(path)
    img = load_image(path)
    assert img.dtype == np.uint8 and img.flags.c_contiguous and img.flags.writeable


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    Image.fromarray(gray).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(img[:, :, c], gray)


def test_rgba_keeps_the_colour_channels_as_the_seeds_loaders_do(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)  # opaque
    rgba[0, 1] = (200, 100, 50, 0)  # transparent
    rgba[1, 0] = (0, 0, 0, 128)  # half transparent black
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    # LPFF/Deep3D/EG3D read photos with Pillow's convert("RGB"): alpha dropped, RGB kept
    expected = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"))
    np.testing.assert_array_equal(img, expected)
    np.testing.assert_array_equal(img[0, 1], (200, 100, 50))
    np.testing.assert_array_equal(img[1, 0], (0, 0, 0))
    np.testing.assert_array_equal(as_rgb(rgba), rgba[:, :, :3])
    # a palette image with a transparent entry, as convert("RGB") reads it too
    pal = Image.fromarray(rgba).convert("P")
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    np.testing.assert_array_equal(load_image(tmp_path / "p.png"),
                                  np.asarray(Image.open(tmp_path / "p.png").convert("RGB")))


def test_rgba_over_white_is_an_option(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)  # opaque: kept
    rgba[0, 1] = (200, 100, 50, 0)  # transparent: background
    rgba[1, 0] = (0, 0, 0, 128)  # half black over white: 255 * 127/255 = 127
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png", alpha_background=(255, 255, 255))
    np.testing.assert_array_equal(img[0, 0], (200, 100, 50))
    np.testing.assert_array_equal(img[0, 1], (255, 255, 255))
    np.testing.assert_allclose(img[1, 0].astype(int), (127, 127, 127), atol=1)
    black = load_image(tmp_path / "a.png", alpha_background=(0, 0, 0))
    np.testing.assert_array_equal(black[0, 1], (0, 0, 0))


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # 32896 = 128 * 257
    Image.fromarray(values).save(tmp_path / "g16.png")
    img = load_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(img[0, :, 0], (0, 1, 128, 255))


def test_palette_with_transparency(tmp_path):
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 1
    pal.save(tmp_path / "p.png", transparency=1)
    img = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(img[0], [(255, 0, 0), (0, 0, 255)])  # the palette colour, as convert("RGB")
    img = load_image(tmp_path / "p.png", alpha_background=(255, 255, 255))
    np.testing.assert_array_equal(img[0], [(255, 0, 0), (255, 255, 255)])


def test_cmyk_jpeg_and_one_bit(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)  # pure red
    img = load_image(tmp_path / "c.jpg")
    assert img.shape == (16, 16, 3)
    np.testing.assert_allclose(img[8, 8].astype(int), (255, 0, 0), atol=4)
    bw = Image.new("1", (3, 2), 0)
    bw.putpixel((2, 1), 1)
    bw.save(tmp_path / "b.png")
    got = load_image(tmp_path / "b.png")
    assert got[1, 2].tolist() == [255, 255, 255] and got[0, 0].tolist() == [0, 0, 0]


def test_size_limit_is_a_clear_error_before_decoding(tmp_path):
    Image.new("RGB", (100, 50)).save(tmp_path / "big.png")
    with pytest.raises(InputError, match=r"big\.png: image is 100x50 = 5,000 pixels, over the limit of 4,999"):
        load_image(tmp_path / "big.png", max_pixels=4999)
    assert load_image(tmp_path / "big.png", max_pixels=5000).shape == (50, 100, 3)


def test_pillow_bomb_warning_does_not_leak(tmp_path, recwarn):
    Image.new("L", (16, 16)).save(tmp_path / "s.png")
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 200  # 256 px is between Pillow's limit and twice it: it would warn
    try:
        load_image(tmp_path / "s.png")
    finally:
        Image.MAX_IMAGE_PIXELS = old
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_truncated_file_names_the_file(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.png: cannot decode image") as info:
        load_image(tmp_path / "cut.png")
    assert "\n" not in str(info.value) and info.value.hint


def test_non_image_and_missing_files(tmp_path):
    (tmp_path / "notes.jpg").write_text("hello, not a jpeg")
    with pytest.raises(InputError, match=r"notes\.jpg: not an image file"):
        load_image(tmp_path / "notes.jpg")
    with pytest.raises(InputError, match=r"nope\.png: no such image file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path)


def test_as_rgb_accepts_arrays_paths_and_pil(tmp_path):
    rgb = _display_image()
    assert as_rgb(rgb) is rgb
    np.testing.assert_array_equal(as_rgb(rgb[:, :, 0])[:, :, 2], rgb[:, :, 0])
    np.testing.assert_array_equal(as_rgb(np.array([[[0.0, 0.5, 1.0]]])), [[[0, 128, 255]]])
    rgba = np.concatenate([rgb, np.zeros_like(rgb[:, :, :1])], axis=2)
    np.testing.assert_array_equal(as_rgb(rgba), rgb)
    np.testing.assert_array_equal(as_rgb(rgba, alpha_background=(255, 255, 255)), np.full_like(rgb, 255))
    Image.fromarray(rgb).save(tmp_path / "x.png")
    np.testing.assert_array_equal(as_rgb(tmp_path / "x.png"), rgb)
    np.testing.assert_array_equal(as_rgb(str(tmp_path / "x.png")), rgb)
    np.testing.assert_array_equal(as_rgb(Image.fromarray(rgb)), rgb)
    with pytest.raises(ShapeError, match=r"expected \(H, W\)"):
        as_rgb(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(InputError, match="ambiguous"):
        as_rgb(np.zeros((4, 4, 3), np.int32))


def test_save_image_round_trip_and_atomic(tmp_path):
    rgb = _display_image()
    out = save_image(tmp_path / "sub" / "x.png", rgb)
    np.testing.assert_array_equal(load_image(out), rgb)
    rgba = np.concatenate([rgb, np.full_like(rgb[:, :, :1], 7)], axis=2)
    save_image(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), rgba)
    # A failing encoder leaves neither the target nor a temporary file behind.
    with pytest.raises(ValueError):  # noqa: PT011  (Pillow's own message varies)
        save_image(tmp_path / "bad.jpg", rgb, quality="not-a-number")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "sub"]
    with pytest.raises(InputError, match="unknown image suffix"):
        save_image(tmp_path / "x.gifx", rgb)


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 3), (37, 53, 4), (1, 1, 3), (5, 1, 4), (64, 64, 3)])
def test_png_bytes_read_back_as_the_same_pixels(shape):
    import io

    from fk.io.image import png_bytes

    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    img[: shape[0] // 2] = 255  # flat rows beside noisy ones, and wrap-around in the sub filter
    for level in (0, 1, 6):
        data = png_bytes(img, level)
        with Image.open(io.BytesIO(data)) as im:
            assert im.mode == {2: "L", 3: "RGB", 4: "RGBA"}[len(shape) if len(shape) == 2 else shape[2]]
            np.testing.assert_array_equal(np.asarray(im), img)
    with pytest.raises(ShapeError, match="png_bytes"):
        png_bytes(img.astype(np.float32))


def test_a_png_with_only_a_compress_level_goes_through_fk_s_encoder(tmp_path):
    """Same pixels as Pillow's encoder, in fk's (sub-filtered) stream; other options still go to Pillow."""
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    fast = save_image(tmp_path / "fast.png", img, compress_level=1)
    pil = save_image(tmp_path / "pil.png", img, compress_level=1, optimize=False)
    for path in (fast, pil):
        with Image.open(path) as im:
            np.testing.assert_array_equal(np.asarray(im), img)
    assert fast.read_bytes() != pil.read_bytes()
    rgba = save_image(tmp_path / "rgba.png", np.dstack([img, img[..., :1]]), compress_level=1)
    with Image.open(rgba) as im:
        assert im.mode == "RGBA"
