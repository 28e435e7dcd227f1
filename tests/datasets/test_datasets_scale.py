"""FFHQ scale, labels only: 139,914 FFHQ-EG3D labels + 2 x 19,590 LPFF, 70,000 + 19,590 StyleGAN IDs."""

import numpy as np

from fk_datasets.merge import plan_eg3d_merge, plan_stylegan_merge
from fk_datasets.names import archive_name, ffhq_native_name
from fk_datasets.rebalance import copies_for_density
from fk_datasets.rebalance_run import compute_lists
from fk_datasets.zips import plan_zip

from .conftest import ffhq_like_angles, lookat_label


def test_ffhq_scale_merge_lists_and_zip_index(rng):
    ffhq, faces_n = 139_914, 19_590
    theta, phi = ffhq_like_angles(rng, ffhq // 2)
    ffhq_labels = lookat_label(theta, phi)
    ffhq_names = [archive_name(i) for i in range(ffhq)]  # LPFF's renamed dataset-ffhq.json
    faces = [f"{i:06d}@N00_{i:08d}_{1 + i % 3:02d}" for i in rng.permutation(faces_n)]
    cams = {f: lookat_label(t, p)[0] for f, t, p in
            zip(faces, rng.uniform(0.3, 1.3, faces_n), rng.uniform(1.0, 2.0, faces_n), strict=True)}
    plan = plan_eg3d_merge(ffhq_names, ffhq_labels, faces, cams)
    assert plan.total == 179_094 == ffhq + 2 * faces_n
    assert plan.faces[min(faces)] == 139_914 and plan.faces[max(faces)] == 179_092
    assert plan.names[-1] == "00179/img00179093.png"
    assert int(plan.mirrored.sum()) == faces_n

    sg = plan_stylegan_merge([ffhq_native_name(i) for i in range(70_000)], faces)
    assert sg.total == 89_590 and sg.names[70_000] == "70000/70000.png" and sg.names[-1] == "89000/89589.png"

    res = compute_lists(plan.labels, ffhq, 70_000, None,
                        {plan.faces[f]: sg.faces[f] for f in faces})
    rebalanced = int(copies_for_density(res["density"]).sum())
    assert {k: len(v) for k, v in res["eg3d"].items()} == {
        "FFHQ": 139_914, "LPFF": 39_180, "FFHQ_LPFF": 179_094, "FFHQ_LPFF_rebalanced": rebalanced}
    sg_rebalanced = 70_000 + int(copies_for_density(res["density"][ffhq::2]).sum())
    assert {k: len(v) for k, v in res["stylegan"].items()} == {
        "FFHQ": 70_000, "FFHQ_LPFF": 89_590, "FFHQ_LPFF_rebalanced": sg_rebalanced}
    assert rebalanced > 179_094  # LPFF's large poses are rare in the joint set: duplicated

    index = plan_zip("eg3d", plan.names, dict(zip(plan.names, plan.labels, strict=True)), res["eg3d"])
    assert index.archive == plan.names and index.labels.shape == (179_094, 25)
    sg_index = plan_zip("stylegan", sg.names, lists=res["stylegan"])
    assert sg_index.archive[-1] == "00089/img00089589.png" and sg_index.labels is None
