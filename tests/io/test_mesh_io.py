"""fk.io.mesh: round trips through OBJ, PLY and GLB keep vertex order, count and attributes."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from fk.errors import InputError, ShapeError
from fk.io.mesh import (
    Mesh,
    load_mesh,
    read_glb,
    read_obj,
    read_ply,
    save_mesh,
    vertex_normals,
    write_glb,
    write_glb_scene,
    write_obj,
    write_ply,
)


def _grid_mesh(rows=4, cols=5, seed=0, dtype=np.float64) -> Mesh:
    """A bumpy grid whose vertex list is shuffled, so any reordering shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    grid = np.stack([xx.ravel(), yy.ravel(), rng.normal(size=rows * cols) * 0.1], 1).astype(dtype)
    idx = np.arange(rows * cols).reshape(rows, cols)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    perm = rng.permutation(rows * cols)  # vertex i of the file is grid point perm[i]
    inv = np.argsort(perm)
    vertices = grid[perm]
    faces = inv[faces]
    colors = rng.uniform(size=(rows * cols, 3))
    return Mesh(vertices, faces, vertex_colors=colors, name="grid")


def _with_seam_uvs(mesh: Mesh, seed=1) -> Mesh:
    """Per-corner UVs: each face corner gets its own uv row (every vertex is on a 'seam')."""
    rng = np.random.default_rng(seed)
    uvs = rng.uniform(size=(mesh.faces.size, 2))
    uv_faces = np.arange(mesh.faces.size).reshape(-1, 3)
    tex = rng.integers(0, 256, size=(8, 12, 3), dtype=np.uint8)
    return mesh.replace(uvs=uvs, uv_faces=uv_faces, texture=tex, vertex_colors=None)


def test_mesh_validates_shapes():
    with pytest.raises(ShapeError, match=r"vertices: expected \(N, 3\), got \(4, 2\)"):
        Mesh(np.zeros((4, 2)), np.zeros((0, 3), int))
    with pytest.raises(ShapeError, match=r"faces: indices must lie in \[0, 3\)"):
        Mesh(np.zeros((3, 3)), np.array([[0, 1, 3]]))
    with pytest.raises(ShapeError, match=r"vertex_colors: expected \(3, 3\)"):
        Mesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), vertex_colors=np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="give both or neither"):
        Mesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), uvs=np.zeros((3, 2)))


def test_vertex_normals_point_outward_for_ccw_faces():
    # Triangle in the z=0 plane, counter-clockwise seen from +z: normal +z.
    n = vertex_normals(np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]]), np.array([[0, 1, 2]]))
    np.testing.assert_allclose(n[:3], [[0, 0, 1]] * 3)
    np.testing.assert_array_equal(n[3], [0, 0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_obj_round_trip_exact_with_colours_and_normals(tmp_path, dtype):
    mesh = _grid_mesh(dtype=dtype)
    mesh = mesh.replace(normals=vertex_normals(mesh.vertices, mesh.faces).astype(dtype))
    back = read_obj(write_obj(tmp_path / "m.obj", mesh))
    # read as float64; cast back to the written dtype, every value is bit-identical
    np.testing.assert_array_equal(back.vertices.astype(dtype), mesh.vertices)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    np.testing.assert_array_equal(back.vertex_colors.astype(dtype), mesh.vertex_colors.astype(dtype))
    np.testing.assert_array_equal(back.normals.astype(dtype), mesh.normals)
    assert back.name == "grid"


def test_obj_textured_writes_mtl_and_png_and_reads_them_back(tmp_path):
    mesh = _with_seam_uvs(_grid_mesh())
    write_obj(tmp_path / "face.obj", mesh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.mtl", "face.obj", "face_texture.png"]
    text = (tmp_path / "face.obj").read_text()
    assert "mtllib face.mtl" in text and "usemtl material0" in text
    assert "map_Kd face_texture.png" in (tmp_path / "face.mtl").read_text()
    # the first face line is f v/vt with 1-based indices
    first_f = next(line for line in text.splitlines() if line.startswith("f "))
    v0, t0 = mesh.faces[0, 0] + 1, mesh.uv_faces[0, 0] + 1
    assert first_f.split()[1] == f"{v0}/{t0}"
    back = read_obj(tmp_path / "face.obj")
    np.testing.assert_array_equal(back.vertices, mesh.vertices)
    np.testing.assert_array_equal(back.uvs, mesh.uvs)
    np.testing.assert_array_equal(back.uv_faces, mesh.uv_faces)
    np.testing.assert_array_equal(back.texture, mesh.texture)


def test_obj_reader_handles_quads_negative_indices_and_255_colours(tmp_path):
    (tmp_path / "q.obj").write_text(
        "# quad\nv 0 0 0 255 0 0\nv 1 0 0 0 255 0\nv 1 1 0 0 0 255\nv 0 1 0 255 255 255\n"
        "vn 0 0 1\nf -4//1 -3//1 -2//1 -1//1\n"
    )
    m = read_obj(tmp_path / "q.obj")
    np.testing.assert_array_equal(m.faces, [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_array_equal(m.vertex_colors[0], [1, 0, 0])
    np.testing.assert_array_equal(m.normals, [[0, 0, 1]] * 4)


def test_obj_reader_errors_name_the_file_and_line(tmp_path):
    (tmp_path / "bad.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 x\n")
    with pytest.raises(InputError, match=r"bad\.obj:3: malformed OBJ line"):
        read_obj(tmp_path / "bad.obj")
    with pytest.raises(InputError, match=r"missing\.obj: cannot read OBJ"):
        read_obj(tmp_path / "missing.obj")


def test_ply_round_trip_binary(tmp_path):
    mesh = _grid_mesh(dtype=np.float32)
    mesh = mesh.replace(normals=vertex_normals(mesh.vertices, mesh.faces).astype(np.float32))
    path = write_ply(tmp_path / "m.ply", mesh)
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    back = read_ply(path)
    np.testing.assert_array_equal(back.vertices, mesh.vertices)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    np.testing.assert_array_equal(back.normals, mesh.normals)
    np.testing.assert_allclose(back.vertex_colors, mesh.vertex_colors, atol=0.5 / 255 + 1e-12)


def test_ply_float64_precision_is_exact(tmp_path):
    mesh = _grid_mesh(dtype=np.float64)
    back = read_ply(write_ply(tmp_path / "m.ply", mesh, precision="float64"))
    np.testing.assert_array_equal(back.vertices, mesh.vertices)


def test_ply_reader_ascii_polygons_and_float_colours(tmp_path):
    (tmp_path / "a.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        "property float red\nproperty float green\nproperty float blue\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
        "0 0 0 1 0 0\n1 0 0 0 1 0\n1 1 0 0 0 1\n0 1 0 0.5 0.5 0.5\n4 0 1 2 3\n"
    )
    m = read_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(m.faces, [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_allclose(m.vertex_colors[3], [0.5, 0.5, 0.5])


def test_ply_reader_big_endian_mixed_polygons(tmp_path):
    header = (
        "ply\nformat binary_big_endian 1.0\nelement vertex 4\nproperty double x\nproperty double y\n"
        "property double z\nelement face 2\nproperty list uchar uint vertex_indices\nend_header\n"
    ).encode()
    verts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], ">f8").tobytes()
    faces = struct.pack(">B3I", 3, 0, 1, 2) + struct.pack(">B4I", 4, 0, 1, 2, 3)
    (tmp_path / "b.ply").write_bytes(header + verts + faces)
    m = read_ply(tmp_path / "b.ply")
    np.testing.assert_array_equal(m.faces, [[0, 1, 2], [0, 1, 2], [0, 2, 3]])
    np.testing.assert_array_equal(m.vertices[2], [1, 1, 0])


def test_ply_reader_rejects_garbage(tmp_path):
    (tmp_path / "g.ply").write_bytes(b"not a ply at all")
    with pytest.raises(InputError, match=r"g\.ply: malformed PLY"):
        read_ply(tmp_path / "g.ply")


def _glb_json(path):
    data = path.read_bytes()
    (length,) = struct.unpack("<I", data[12:16])
    return json.loads(data[20 : 20 + length])


def test_glb_vertex_colours_keep_order_and_count(tmp_path):
    mesh = _grid_mesh()
    mesh = mesh.replace(normals=vertex_normals(mesh.vertices, mesh.faces))
    back = read_glb(write_glb(tmp_path / "m.glb", mesh))
    assert back.num_vertices == mesh.num_vertices
    np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-6)  # glTF stores float32
    np.testing.assert_array_equal(back.faces, mesh.faces)
    np.testing.assert_allclose(back.vertex_colors, mesh.vertex_colors, atol=0.5 / 255 + 1e-9)
    np.testing.assert_allclose(back.normals, mesh.normals, atol=1e-6)


def test_glb_texture_with_seams_appends_split_vertices_after_originals(tmp_path):
    base = _grid_mesh()
    mesh = _with_seam_uvs(base)
    path = write_glb(tmp_path / "t.glb", mesh)
    back = read_glb(path)
    n = base.num_vertices
    # Every corner has its own uv, so there are exactly F*3 (vertex, uv) pairs.
    assert back.num_vertices == mesh.faces.size
    np.testing.assert_allclose(back.vertices[:n], mesh.vertices, atol=1e-6)  # originals first, in order
    # Each face of the file is the same triangle, with the same uv per corner.
    np.testing.assert_allclose(back.vertices[back.faces], mesh.vertices[mesh.faces], atol=1e-6)
    np.testing.assert_allclose(back.uvs[back.faces], mesh.uvs[mesh.uv_faces], atol=1e-6)
    np.testing.assert_array_equal(back.texture, mesh.texture)
    # The base colour factor is 1: trimesh's grey default would darken the texture.
    material = _glb_json(path)["materials"][0]["pbrMetallicRoughness"]
    assert material.get("baseColorFactor", [1, 1, 1, 1]) == [1, 1, 1, 1]


def test_glb_texture_without_seams_keeps_vertex_count(tmp_path):
    base = _grid_mesh()
    rng = np.random.default_rng(3)
    mesh = base.replace(
        uvs=rng.uniform(size=(base.num_vertices, 2)), uv_faces=base.faces,
        texture=np.zeros((4, 4, 3), np.uint8), vertex_colors=None,
    )  # fmt: skip
    back = read_glb(write_glb(tmp_path / "t.glb", mesh))
    assert back.num_vertices == base.num_vertices
    np.testing.assert_array_equal(back.faces, base.faces)
    np.testing.assert_allclose(back.uvs, mesh.uvs, atol=1e-6)


def test_glb_uv_v_axis_is_flipped_in_file(tmp_path):
    # glTF puts the uv origin at the top-left of the image; fk (like OBJ) at the bottom-left.
    mesh = Mesh(
        np.eye(3), np.array([[0, 1, 2]]), uvs=np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.9]]),
        uv_faces=np.array([[0, 1, 2]]), texture=np.zeros((2, 2, 3), np.uint8),
    )  # fmt: skip
    path = write_glb(tmp_path / "uv.glb", mesh)
    js = _glb_json(path)
    acc = js["accessors"][js["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"]]
    np.testing.assert_allclose(acc["max"], [0.5, 1 - 0.2], atol=1e-6)
    np.testing.assert_allclose(acc["min"], [0.1, 1 - 0.9], atol=1e-6)


def test_save_and_load_by_suffix(tmp_path):
    mesh = _grid_mesh()
    for suffix in (".obj", ".ply", ".glb"):
        back = load_mesh(save_mesh(tmp_path / f"m{suffix}", mesh))
        np.testing.assert_array_equal(back.faces, mesh.faces)
        np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-6)
    with pytest.raises(InputError, match="unknown mesh suffix"):
        save_mesh(tmp_path / "m.stl", mesh)


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".glb"])
def test_writers_are_atomic(tmp_path, monkeypatch, suffix):
    import fk.atomic

    mesh = _grid_mesh()
    target = save_mesh(tmp_path / f"m{suffix}", mesh)
    before = target.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    # the new bytes are in the temporary file when fsync fails: the old file must survive
    monkeypatch.setattr(fk.atomic.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_mesh(target, mesh.replace(vertices=mesh.vertices + 1))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


@pytest.mark.parametrize("suffix", [".obj", ".glb"])
def test_item_context_write_mesh_records_every_file_under_the_names_the_obj_uses(tmp_path, suffix):
    from fk.atomic import sha256_file
    from fk.engine.context import ItemContext

    mesh = _with_seam_uvs(_grid_mesh())
    ctx = ItemContext(key="a", source=None, step_id="export", run_dir=tmp_path, step_dir=tmp_path / "faces")
    path = ctx.write_mesh(f"a{suffix}", mesh)
    recorded = sorted(w["path"] for w in ctx.written)
    on_disk = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "faces").iterdir())
    assert recorded == on_disk  # no temporary names left, nothing unrecorded
    expected = ["faces/a.mtl", "faces/a.obj", "faces/a_texture.png"] if suffix == ".obj" else ["faces/a.glb"]
    assert recorded == expected
    assert all(w["sha256"] == sha256_file(tmp_path / w["path"]) for w in ctx.written)
    back = load_mesh(path)
    np.testing.assert_array_equal(back.texture, mesh.texture)


def _glb_chunks(path):
    data = path.read_bytes()
    magic, version, total = struct.unpack("<4sII", data[:12])
    (length,) = struct.unpack("<I", data[12:16])
    doc = json.loads(data[20 : 20 + length])
    (bin_length,) = struct.unpack("<I", data[20 + length : 24 + length])
    binary = data[28 + length : 28 + length + bin_length]
    return magic, version, total, len(data), doc, binary


def test_glb_is_valid_binary_gltf_and_embeds_the_obj_textures_png_bytes(tmp_path):
    mesh = _with_seam_uvs(_grid_mesh())
    mesh = mesh.replace(texture=np.random.default_rng(5).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    write_obj(tmp_path / "m.obj", mesh)
    magic, version, total, size, doc, binary = _glb_chunks(write_glb(tmp_path / "m.glb", mesh))
    assert (magic, version, total) == (b"glTF", 2, size)
    assert doc["buffers"] == [{"byteLength": len(binary)}]
    assert len(binary) % 4 == 0
    assert all(view["byteOffset"] % 4 == 0 for view in doc["bufferViews"])
    (image,) = doc["images"]
    view = doc["bufferViews"][image["bufferView"]]
    png = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
    assert image["mimeType"] == "image/png"
    assert png == (tmp_path / "m_texture.png").read_bytes()  # encoded once, the same bytes in both files
    position = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    np.testing.assert_allclose(position["min"], mesh.vertices.min(0), atol=1e-6)
    np.testing.assert_allclose(position["max"], mesh.vertices.max(0), atol=1e-6)


def test_glb_scene_binds_every_map_and_keeps_each_mesh_in_trimesh(tmp_path):
    import trimesh

    rng = np.random.default_rng(6)
    head = _with_seam_uvs(_grid_mesh()).replace(name="head",
                                                texture=rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    eye = _grid_mesh().replace(name="eye l", vertices=_grid_mesh().vertices + 3.0)
    maps = {"metallic_roughness": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
            "normal": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)}
    path = write_glb_scene(tmp_path / "s.glb", [head, eye], materials=[maps, None])
    scene = trimesh.load(path, process=False, maintain_order=True)
    assert sorted(scene.geometry) == ["eye_l", "head"]
    material = scene.geometry["head"].visual.material
    np.testing.assert_array_equal(np.asarray(material.baseColorTexture.convert("RGB")), head.texture)
    np.testing.assert_array_equal(np.asarray(material.metallicRoughnessTexture.convert("RGB")),
                                  maps["metallic_roughness"])
    np.testing.assert_array_equal(np.asarray(material.normalTexture.convert("RGB")), maps["normal"])
    np.testing.assert_allclose(scene.geometry["eye_l"].vertices, eye.vertices, atol=1e-6)
    colours = np.asarray(scene.geometry["eye_l"].visual.vertex_colors[:, :3]) / 255.0
    np.testing.assert_allclose(colours, eye.vertex_colors, atol=0.5 / 255 + 1e-9)
