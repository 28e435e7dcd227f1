import json

import numpy as np
import pytest

from fk.errors import InputError
from fk_datasets.names import archive_name
from fk_datasets.rebalance import copies_for_density, eg3d_lists, ffhq_replicas_array, stylegan_lists


def naive_copies(d: float) -> int:
    """lpff.md section 4.3, written with Python's own round()."""
    n = min(max(round(0.24 / d), 1), 4) if d > 0 else 4
    if d < 0.02:
        n = 6
    elif d < 0.03:
        n = 5
    return n


def test_copies_match_naive_rule_and_bands(rng):
    d = np.concatenate([rng.uniform(0, 0.5, 5000), 10 ** rng.uniform(-4, 1, 5000),
                        [0.0, 0.02, 0.03, 0.0686, 0.0687, 0.096, 0.0961, 0.16, 0.1601, 0.24 / 3.5, 0.24 / 2.5]])
    np.testing.assert_array_equal(copies_for_density(d), [naive_copies(float(x)) for x in d])
    # the band table of lpff.md, one value inside each band
    bands = {0.5: 1, 0.12: 2, 0.08: 3, 0.05: 4, 0.025: 5, 0.01: 6}
    assert {k: int(copies_for_density(k)) for k in bands} == bands
    # exact .5 ratios round half to even: 0.24/0.096 = 2.5 -> 2, 0.24/0.0686.. = 3.5 -> 4
    assert int(copies_for_density(0.24 / 2.5)) == round(0.24 / (0.24 / 2.5))


def test_copies_reject_bad_densities():
    with pytest.raises(InputError):
        copies_for_density([0.1, -0.2])
    with pytest.raises(InputError):
        copies_for_density([np.nan])


def test_seed_list_lengths_on_synthetic_densities(rng):
    ffhq, lpff_faces = 139_914, 19_590
    total = ffhq + 2 * lpff_faces
    assert total == 179_094
    density = rng.uniform(0.005, 3.0, total)
    counts = {1: 68_262, 2: 57_980, 4: 12_154, 8: 1_408, 16: 110}
    reps = np.concatenate([np.full(n, c) for c, n in counts.items()])
    rng.shuffle(reps)
    num_replicas = {str(i): int(c) for i, c in enumerate(reps)}
    lists = eg3d_lists(total, density, ffhq, ffhq_replicas_array(num_replicas, ffhq))
    assert {k: len(v) for k, v in lists.items()} == {
        "FFHQ": 139_914, "LPFF": 39_180, "FFHQ_rebalanced": 245_862, "FFHQ_LPFF": 179_094,
        "FFHQ_LPFF_rebalanced": int(sum(naive_copies(float(x)) for x in density))}
    assert lists["LPFF"][0] == "00139/img00139914.png"
    assert lists["FFHQ_LPFF"][-1] == "00179/img00179093.png"
    # copies are consecutive and follow ID order
    i = int(np.argmax(reps == 16))
    start = int(reps[:i].sum())
    assert lists["FFHQ_rebalanced"][start:start + 16] == [archive_name(i)] * 16
    sg = stylegan_lists(density, ffhq)
    originals = density[ffhq::2]
    assert {k: len(v) for k, v in sg.items()} == {
        "FFHQ": 70_000, "FFHQ_LPFF": 89_590,
        "FFHQ_LPFF_rebalanced": 70_000 + int(sum(naive_copies(float(x)) for x in originals))}
    assert sg["FFHQ_LPFF"][-1] == "00089/img00089589.png"
    n0 = naive_copies(float(density[ffhq]))
    assert sg["FFHQ_LPFF_rebalanced"][70_000:70_000 + n0] == ["00070/img00070000.png"] * n0
    json.dumps(sg)  # plain JSON


def test_stylegan_lists_follow_the_manifest_mapping():
    density = np.array([1.0] * 4 + [0.01, 0.01, 0.5, 0.5])  # 4 FFHQ labels, LPFF faces A (rare), B
    lists = stylegan_lists(density, eg3d_ffhq_count=4, stylegan_ffhq_count=2,
                           stylegan_id_of_eg3d={4: 3, 6: 2})  # reversed on purpose
    assert lists["FFHQ_LPFF_rebalanced"] == [archive_name(0), archive_name(1), archive_name(2)] + [archive_name(3)] * 6


def test_list_errors_name_the_problem():
    with pytest.raises(InputError, match="num_replicas"):
        ffhq_replicas_array({"0": 1}, 2)
    with pytest.raises(InputError, match="pairs"):
        stylegan_lists(np.ones(5), eg3d_ffhq_count=2)
