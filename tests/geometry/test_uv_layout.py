"""UV layouts: the texel map of a layout and the cylindrical unwrap for models without UVs."""

from __future__ import annotations

import numpy as np
from fk.geometry.uv import cylindrical_uv, texel_map


def test_texel_map_interpolates_the_uvs_back_to_each_texel_centre():
    from fk.models.demo import demo_head_arrays

    a = demo_head_arrays()
    size = 96
    tmap = texel_map(a["uvs"], a["uv_faces"], size)
    assert tmap.covered.mean() > 0.95  # the demo head's layout fills its square
    uv = tmap.gather(a["uvs"], a["uv_faces"])  # interpolate the layout itself
    rows, cols = np.nonzero(tmap.covered)
    centre = np.stack([(cols + 0.5) / size, 1 - (rows + 0.5) / size], 1)
    np.testing.assert_allclose(uv, centre, atol=1e-4)
    np.testing.assert_allclose(tmap.barycentric[tmap.covered].sum(1), 1.0, atol=1e-6)


def test_cylindrical_unwrap_of_a_face_mask_has_no_folds():
    """The front of the demo head (a BFM-like face mask) unrolls with every triangle the same way round."""
    from fk.models.demo import demo_head_arrays

    a = demo_head_arrays()
    verts = np.asarray(a["mean_shape"]).reshape(-1, 3)
    front = np.asarray(a["face_triangles"])
    used = np.unique(front)
    remap = np.full(len(verts), -1)
    remap[used] = np.arange(len(used))
    uv = cylindrical_uv(verts[used])
    tri = remap[front]
    e1, e2 = uv[tri[:, 1]] - uv[tri[:, 0]], uv[tri[:, 2]] - uv[tri[:, 0]]
    signed = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    assert (signed > 0).all(), "counter-clockwise triangles stay counter-clockwise: no fold-overs"
    assert uv.min() >= 0.019
    assert uv.max() <= 0.981
    np.testing.assert_array_equal(cylindrical_uv(verts[used]), uv)  # deterministic
