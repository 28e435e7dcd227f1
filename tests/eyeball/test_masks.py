"""fk eyeball render-eye-masks on the synthetic subject: masks match the rendered truth; upstream's traps avoided."""

from __future__ import annotations

import numpy as np
import pytest
from fk.errors import InputError
from fk_eyeball.masks import decode_uv_mask, render_eye_masks
from PIL import Image


def _read(path):
    return np.asarray(Image.open(path))


def _pooled_iou(root, truth, folder_root=None, names=None):
    folder_root = folder_root or root
    inter = union = 0
    for name in names or truth["frames"]:
        for eye in ("leye", "reye"):
            got = _read(folder_root / f"{eye}_mask" / name)
            assert (
                got.shape == (*truth["size"], 3) and got.dtype == np.uint8
            )  # CoRA's format: 3 equal channels
            assert (got[..., 0] == got[..., 2]).all()
            a = got[..., 0] > 127
            b = _read(root / "truth" / f"{eye}_mask" / name)[..., 0] > 127
            inter += (a & b).sum()
            union += (a | b).sum()
    return inter / union


def test_cli_masks_match_truth_iou(subject_copy, capsys):
    from fk.cli.main import main

    root, truth = subject_copy
    rc = main(
        ["eyeball", "render-eye-masks", "--data-root", str(root), "--mesh-uv", str(root / "mesh_uv.obj")]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "wrote leye_mask/ and reye_mask/ for 12 frames" in out.out
    assert "eye masks 12/12" in out.err  # plain progress lines off a TTY
    iou = _pooled_iou(root, truth)
    assert iou >= 0.95, iou
    soft = _read(root / "leye_mask" / truth["frames"][3])[..., 0]
    assert ((soft > 0) & (soft < 255)).any()  # bilinear, soft edges


def test_corner_trap_avoided_and_perspective_option(subject_copy, tmp_path):
    root, truth = subject_copy
    for eye in ("leye", "reye"):
        p = root / f"diffuse_{eye}_mask.png"
        img = _read(p).copy()
        img[-1, 0] = 255  # a white bottom-left texel: upstream's empty pixels sample it (uv = 0, 0)
        Image.fromarray(img).save(p)
    import json

    meta = json.loads((root / "transforms.json").read_text())
    meta["frames"] = meta["frames"][2:5]  # three frames are enough here
    (root / "three.json").write_text(json.dumps(meta))
    names = [f["file_path"].split("/")[-1] for f in meta["frames"]]
    s = render_eye_masks(root, root / "mesh_uv.obj", meta="three.json", out=tmp_path / "persp",
                         interpolation="perspective")  # fmt: skip
    assert s["corner_white"] == ["leye", "reye"]
    assert s["frames"] == 3
    m = _read(tmp_path / "persp" / "leye_mask" / names[0])
    assert m[0, 0, 0] == 0  # background stays 0 (upstream: round(0.25 * 255) = 64)
    assert _pooled_iou(root, truth, tmp_path / "persp", names) >= 0.95
    assert not (root / "leye_mask").exists()  # nothing written outside --out


def test_bad_label_images_name_the_file(tmp_path):
    jpg = tmp_path / "diffuse_leye_mask.png"
    Image.new("RGB", (64, 64), "white").save(jpg, format="JPEG")
    with pytest.raises(InputError, match=r"diffuse_leye_mask.png: label image is JPEG, not PNG"):
        decode_uv_mask(jpg)
    rect = tmp_path / "r.png"
    Image.new("RGB", (64, 32), "white").save(rect)
    with pytest.raises(InputError, match="r.png: UV label image is 64x32, expected square"):
        decode_uv_mask(rect)
    rgba = tmp_path / "a.png"
    arr = np.full((8, 8, 4), 255, np.uint8)
    arr[0, 0, 3] = 254  # alpha counts, as in upstream's channel mean
    Image.fromarray(arr).save(rgba)
    m = decode_uv_mask(rgba)
    assert m[0, 0] == 0 and m.sum() == 63


@pytest.mark.slow
def test_demo_command_writes_a_page_with_its_figures(tmp_path, capsys):
    from fk.cli.main import main

    rc = main(["eyeball", "demo", "--out", str(tmp_path / "demo"), "--frames", "6", "--no-auto"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "render-eye-masks IoU vs truth" in out
    page = (tmp_path / "demo" / "index.html").read_text()
    figures = sorted(p.name for p in (tmp_path / "demo" / "figures").glob("*.png"))
    assert len(figures) >= 8
    assert all(f"figures/{f}" in page for f in figures)
    assert (tmp_path / "demo" / "export" / "right" / "diffuse.png").is_file()
