import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fk.errors import FkError, InputError
from fk_datasets import zips
from fk_datasets.labels import read_dataset_labels, write_camera_parameters
from fk_datasets.merge import execute_merge, list_images, plan_eg3d_merge, plan_stylegan_merge
from fk_datasets.rebalance_run import rebalance
from fk_datasets.zips import plan_zip, write_zip

from .conftest import lookat_label


def _img(path: Path, size, seed: int) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


@pytest.fixture
def sources(tmp_path, rng):
    """FFHQ-EG3D in EG3D's own naming (3 pairs, 16 px), FFHQ StyleGAN (3 images, 32 px),
    and an LPFF run with three faces (created out of name order)."""
    ffhq = tmp_path / "ffhq_eg3d"
    rows = []
    for k in range(3):
        th, ph = rng.uniform(1.3, 1.8), rng.uniform(1.4, 1.6)
        lab = lookat_label(th, ph)[0]
        _img(ffhq / f"{k:05d}.png", (16, 16), k)
        _img(ffhq / f"{k:05d}_mirror.png", (16, 16), 100 + k)
        rows += [[f"{k:05d}.png", lab.tolist()], [f"{k:05d}_mirror.png", lookat_label(np.pi - th, ph)[0].tolist()]]
    (ffhq / "dataset.json").write_text(json.dumps({"labels": rows}))
    sg = tmp_path / "ffhq_sg"
    for k in range(3):
        _img(sg / f"00000/{k:05d}.png", (32, 32), 200 + k)
    crops = tmp_path / "lpff" / "crop"
    pixels, labels = {}, {}
    for i, face in enumerate(["c_01", "a_01", "b_02"]):
        pixels[face] = _img(crops / "eg3d" / f"{face}.png", (16, 16), 300 + i)
        _img(crops / "stylegan" / f"{face}.png", (32, 32), 400 + i)
        labels[face] = lookat_label(0.6 + 0.3 * i, 1.3)[0]
    write_camera_parameters(crops.parent / "camera_parameters.json", labels)
    return {"ffhq": ffhq, "sg": sg, "crops": crops, "pixels": pixels, "labels": labels, "root": tmp_path}


def _eg3d_plan(s, faces=None, size=16):
    names, labels = read_dataset_labels(s["ffhq"] / "dataset.json")
    faces = faces if faces is not None else [p.stem for p in (s["crops"] / "eg3d").glob("*.png")]
    return plan_eg3d_merge(names, labels, faces, s["labels"], s["ffhq"], s["crops"] / "eg3d", image_size=size)


def test_eg3d_merge_ids_mirrors_labels_and_rerun(sources):
    out = sources["root"] / "merged_eg3d"
    report = execute_merge(_eg3d_plan(sources), out)
    assert report["written"] == 12
    files = list_images(out)
    assert files == [f"00000/img{i:08d}.png" for i in range(12)]
    faces = json.loads((out / "lpff_faces.json").read_text())
    assert faces == {"a_01": 6, "b_02": 8, "c_01": 10}  # sorted by name, originals even
    np.testing.assert_array_equal(np.asarray(Image.open(out / "00000/img00000008.png")), sources["pixels"]["b_02"])
    np.testing.assert_array_equal(np.asarray(Image.open(out / "00000/img00000009.png")),
                                  sources["pixels"]["b_02"][:, ::-1])
    names, labels = read_dataset_labels(out / "dataset.json")
    assert names == files
    np.testing.assert_array_equal(labels[8], sources["labels"]["b_02"])
    assert labels[9][3] == -labels[8][3] and labels[9][7] == labels[8][7]  # C_x flips, C_y stays
    # FFHQ label k keeps ID k
    ffhq_rows = json.loads((sources["ffhq"] / "dataset.json").read_text())["labels"]
    np.testing.assert_array_equal(labels[3], ffhq_rows[3][1])
    # a re-run skips; an interrupted run (a file missing) completes without rewriting the rest
    assert execute_merge(_eg3d_plan(sources), out)["already_done"]
    (out / "lpff_merge.json").unlink()
    (out / "00000/img00000011.png").unlink()
    again = execute_merge(_eg3d_plan(sources), out)
    assert (again["written"], again["skipped"]) == (1, 11)
    # a different set of faces refuses to mix into the same folder
    with pytest.raises(FkError, match="different merge"):
        execute_merge(_eg3d_plan(sources, faces=["a_01"]), out)


def test_merge_errors_name_the_files(sources):
    crops = sources["crops"] / "eg3d"
    with pytest.raises(InputError, match="zz_01"):
        _eg3d_plan(sources, faces=["a_01", "zz_01"])  # no label
    Image.fromarray(np.zeros((16, 12, 3), np.uint8)).save(crops / "a_01.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(crops / "b_02.png")
    with pytest.raises(InputError) as err:
        execute_merge(_eg3d_plan(sources), sources["root"] / "bad")
    assert "a_01.png is 12x16, not square" in str(err.value)
    assert "b_02.png is 8x8, expected 16x16" in str(err.value)
    assert not (sources["root"] / "bad" / "dataset.json").exists()
    with pytest.raises(InputError, match="duplicate"):
        _eg3d_plan(sources, faces=["a_01", "a_01"])
    rows = json.loads((sources["ffhq"] / "dataset.json").read_text())["labels"]
    rows[2], rows[3] = rows[3], rows[2]
    (sources["ffhq"] / "dataset.json").write_text(json.dumps({"labels": rows}))
    with pytest.raises(InputError, match="original followed by its mirror"):
        _eg3d_plan(sources)
    rows[3] = rows[1]
    (sources["ffhq"] / "dataset.json").write_text(json.dumps({"labels": rows}))
    with pytest.raises(InputError, match="appear twice"):
        _eg3d_plan(sources)


def test_stylegan_merge(sources):
    faces = [p.stem for p in (sources["crops"] / "stylegan").glob("*.png")]
    plan = plan_stylegan_merge(list_images(sources["sg"]), faces, sources["crops"] / "stylegan",
                               sources["sg"], image_size=32)
    out = sources["root"] / "merged_sg"
    execute_merge(plan, out)
    assert list_images(out) == [f"00000/{i:05d}.png" for i in range(6)]
    assert json.loads((out / "lpff_faces.json").read_text()) == {"a_01": 3, "b_02": 4, "c_01": 5}
    assert not (out / "dataset.json").exists()
    (sources["sg"] / "00000/00001.png").unlink()
    with pytest.raises(InputError, match="00000/00001.png"):
        plan_stylegan_merge(list_images(sources["sg"]), faces, sources["crops"] / "stylegan", sources["sg"])
    # without FFHQ at hand: IDs after 70,000 (FFHQ's count) in the native layout
    only = plan_stylegan_merge(None, faces, sources["crops"] / "stylegan")
    assert only.names == ["70000/70000.png", "70000/70001.png", "70000/70002.png"]


def _load_like_eg3d(zip_path):
    """What EG3D's ImageFolderDataset does with a zip: sorted image names, labels by name."""
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))
        labels = json.loads(zf.read("dataset.json"))["labels"]
        images = [np.asarray(Image.open(io.BytesIO(zf.read(n)))) for n in names]
        infos = {i.filename: i for i in zf.infolist()}
        roots = {n: json.loads(zf.read(n)) for n in zf.namelist() if "/" not in n}
    return names, labels, images, infos, roots


def test_full_flow_merge_rebalance_zip(sources):
    root = sources["root"]
    eg3d_out, sg_out = root / "FFHQ_LPFF_EG3D", root / "FFHQ_LPFF_SG"
    execute_merge(_eg3d_plan(sources), eg3d_out)
    faces = [p.stem for p in (sources["crops"] / "stylegan").glob("*.png")]
    execute_merge(plan_stylegan_merge(list_images(sources["sg"]), faces, sources["crops"] / "stylegan",
                                      sources["sg"], image_size=32), sg_out)
    summary = rebalance(eg3d_out, sg_out, root / "rebalance",
                        num_replicas=_write(root / "num_replicas.json", {str(i): i % 3 + 1 for i in range(6)}))
    assert summary["eg3d_lists"]["FFHQ"] == 6 and summary["eg3d_lists"]["LPFF"] == 6
    assert summary["eg3d_lists"]["FFHQ_rebalanced"] == 12
    assert summary["stylegan_lists"]["FFHQ_LPFF"] == 6
    assert (root / "rebalance/imgs/ffhq-lpff-rebalanced.png").stat().st_size > 1000
    assert np.load(root / "rebalance/files/density_FFHQ_LPFF.npy").shape == (12,)

    names, labels = read_dataset_labels(eg3d_out / "dataset.json")
    lists = {p.stem: json.loads(p.read_text()) for p in eg3d_out.glob("*.json")
             if p.stem not in ("dataset", "lpff_faces", "lpff_merge")}
    dest = root / "eg3d.zip"
    write_zip(plan_zip("eg3d", list_images(eg3d_out), dict(zip(names, labels, strict=True)), lists, resolution=32),
              eg3d_out, dest)
    znames, zlabels, images, infos, zroot = _load_like_eg3d(dest)
    assert znames == [f"00000/img{i:08d}.png" for i in range(12)]
    assert [n for n, _ in zlabels] == znames
    np.testing.assert_array_equal(np.array([lab for _, lab in zlabels]), labels)
    assert all(im.shape == (32, 32, 3) for im in images)  # resized (Lanczos) to the requested size
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos.values())
    assert infos[znames[0]].file_size > 32 * 32 * 3  # PNG stored without deflate
    assert set(zroot) == {"dataset.json", "FFHQ.json", "LPFF.json", "FFHQ_LPFF.json", "FFHQ_LPFF_rebalanced.json",
                          "FFHQ_rebalanced.json"}
    assert zroot["LPFF.json"] == znames[6:]
    assert write_zip(plan_zip("eg3d", list_images(eg3d_out), dict(zip(names, labels, strict=True)), lists,
                              resolution=32), eg3d_out, dest)["skipped"]

    sg_lists = {p.stem: json.loads(p.read_text()) for p in sg_out.glob("FFHQ*.json")}
    sg_zip = root / "sg.zip"
    write_zip(plan_zip("stylegan", list_images(sg_out), lists=sg_lists), sg_out, sg_zip)
    znames, zlabels, images, _, zroot = _load_like_eg3d(sg_zip)
    assert zlabels is None and len(znames) == 6 and images[0].shape == (32, 32, 3)
    np.testing.assert_array_equal(images[3], np.asarray(Image.open(sources["crops"] / "stylegan/a_01.png")))
    assert set(zroot) == {"dataset.json", "FFHQ.json", "FFHQ_LPFF.json", "FFHQ_LPFF_rebalanced.json"}


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_zip_errors_and_interruption(sources, monkeypatch):
    root = sources["root"]
    out = root / "m"
    execute_merge(_eg3d_plan(sources), out)
    names, labels = read_dataset_labels(out / "dataset.json")
    label_of = dict(zip(names, labels, strict=True))
    del label_of[names[5]]
    with pytest.raises(InputError, match="00000/img00000005.png"):
        plan_zip("eg3d", list_images(out), label_of)
    with pytest.raises(InputError, match="not in the zip"):
        plan_zip("eg3d", list_images(out), dict(zip(names, labels, strict=True)), {"LPFF": ["00001/img00001000.png"]})
    with pytest.raises(InputError, match="change ID"):
        plan_zip("eg3d", list_images(out)[1:], dict(zip(names, labels, strict=True)), {"FFHQ": []})
    # a crash half-way leaves neither the zip nor a temporary file behind
    calls = {"n": 0}
    real = zips._encode

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(zips, "_encode", flaky)
    dest = root / "z" / "eg3d.zip"
    dest.parent.mkdir()
    with pytest.raises(KeyboardInterrupt):
        write_zip(plan_zip("eg3d", list_images(out), dict(zip(names, labels, strict=True))), out, dest)
    assert list(dest.parent.iterdir()) == []
    monkeypatch.setattr(zips, "_encode", real)
    # a non-square StyleGAN source is named
    Image.fromarray(np.zeros((32, 30, 3), np.uint8)).save(sources["sg"] / "00000/00002.png")
    with pytest.raises(InputError, match="00002.png: 30x32 is not square"):
        write_zip(plan_zip("stylegan", list_images(sources["sg"])), sources["sg"], root / "sg.zip")
    assert not (root / "sg.zip").exists()
