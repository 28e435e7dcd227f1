"""fk.nets.stylegan2: the no-exec pickle loader on tiny pickles in NVIDIA's persistence format, the
networks' names and arithmetic, and the FIR operators against a float64 loop."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from fk.errors import InputError
from fk.io.safe_pickle import UnsafePickleError
from fk.nets.stylegan2 import (
    Generator,
    PersistentRecord,
    load_stylegan2_pickle,
    modulated_conv2d,
    read_stylegan2_pickle,
    setup_filter,
    upfirdn2d,
)
from fk.testing.stylegan2 import MALICIOUS_KINDS, write_malicious_pickle, write_stylegan2_pickle


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("sg2") / "tiny.pkl"
    return path, write_stylegan2_pickle(path, resolution=16, num_fp16_res=2, conv_clamp=256)


def _globals(path: Path) -> set[str]:
    """Every global the outer pickle stream names (recorded, then stood in for by inert objects)."""
    seen: set[str] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            seen.add(f"{module}.{name}")
            return dict if name in ("EasyDict", "OrderedDict") else (lambda *a, **k: None)

    with path.open("rb") as f:
        Recorder(f).load()
    return seen


def test_written_pickle_has_nvidias_structure(tiny: tuple[Path, dict]) -> None:
    path, _ = tiny
    assert _globals(path) == {
        "torch_utils.persistence._reconstruct_persistent_obj",
        "dnnlib.util.EasyDict",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_tensor_v2",
        "torch.storage._load_from_bytes",
        "collections.OrderedDict",
    }
    data = read_stylegan2_pickle(path)
    assert list(data) == ["training_set_kwargs", "G", "D", "G_ema", "augment_pipe"]
    g = data["G_ema"]
    assert isinstance(g, PersistentRecord)
    assert g.class_name == "Generator"
    assert g.init_kwargs["synthesis_kwargs"] == {
        "channel_base": 512,
        "channel_max": 32,
        "num_fp16_res": 2,
        "conv_clamp": 256,
    }
    block = g.children()["synthesis"].children()["b8"]
    assert block.class_name == "SynthesisBlock"
    assert block.init_args == (32, 32)  # positional, as NVIDIA's SynthesisNetwork passes them


def test_loads_tiny_pickle_strictly_with_nvidias_names(tiny: tuple[Path, dict]) -> None:
    path, written = tiny
    snap = load_stylegan2_pickle(path)
    assert set(snap) == {"training_set_kwargs", "G", "D", "G_ema", "augment_pipe"}
    assert snap["augment_pipe"] is None
    assert snap["training_set_kwargs"]["resolution"] == 16
    for key in ("G", "G_ema", "D"):
        mine, ref = snap[key].state_dict(), written[key].state_dict()
        assert list(mine) == list(ref)
        assert all(torch.equal(mine[k], ref[k]) for k in mine), key
        assert not snap[key].training
        assert not any(p.requires_grad for p in snap[key].parameters())
    names = set(snap["G_ema"].state_dict())
    for name in (
        "mapping.fc0.weight",
        "mapping.fc1.bias",
        "mapping.w_avg",
        "synthesis.b4.const",
        "synthesis.b4.conv1.affine.weight",
        "synthesis.b8.conv0.weight",
        "synthesis.b8.conv0.noise_const",
        "synthesis.b8.conv0.noise_strength",
        "synthesis.b8.resample_filter",
        "synthesis.b16.torgb.weight",
    ):
        assert name in names, name
    assert {"b16.fromrgb.weight", "b16.skip.weight", "b4.conv.weight", "b4.fc.weight", "b4.out.bias"} <= set(
        snap["D"].state_dict()
    )
    assert not torch.equal(
        snap["G"].state_dict()["mapping.fc0.weight"], snap["G_ema"].state_dict()["mapping.fc0.weight"]
    )


def test_loaded_generator_reproduces_the_written_one(tiny: tuple[Path, dict]) -> None:
    path, written = tiny
    g = load_stylegan2_pickle(path)["G_ema"]
    z = torch.randn(3, g.z_dim, generator=torch.Generator().manual_seed(3))
    for kw in (
        {"truncation_psi": 0.7, "noise_mode": "const"},
        {"truncation_psi": 0.5, "truncation_cutoff": 2, "noise_mode": "none", "force_fp32": True},
    ):
        a, b = g(z, None, **kw), written["G_ema"](z, None, **kw)
        assert a.shape == (3, 3, 16, 16)
        assert torch.equal(a, b)
    ws = g.mapping(z, None, truncation_psi=0.7)
    assert ws.shape == (3, g.num_ws, g.w_dim) == (3, 6, 32)
    # truncation pulls every w towards w_avg
    w1 = g.mapping(z, None)
    assert torch.allclose(ws, g.mapping.w_avg + 0.7 * (w1 - g.mapping.w_avg), atol=1e-5)


def test_pickle_protocols_2_and_3_load(tmp_path: Path) -> None:
    for protocol in (2, 3):
        written = write_stylegan2_pickle(
            tmp_path / f"p{protocol}.pkl", resolution=8, protocol=protocol, with_discriminator=False
        )
        snap = load_stylegan2_pickle(tmp_path / f"p{protocol}.pkl")
        assert snap["D"] is None
        sd = snap["G_ema"].state_dict()
        assert all(torch.equal(sd[k], v) for k, v in written["G_ema"].state_dict().items())


@pytest.mark.parametrize("kind", [k for k in MALICIOUS_KINDS if k != "module-src"])
def test_refuses_malicious_pickles_and_runs_nothing(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "ran.txt"
    path = write_malicious_pickle(tmp_path / "evil.pkl", marker, kind=kind)
    with pytest.raises(UnsafePickleError, match="refused to load") as err:
        load_stylegan2_pickle(path)
    assert str(path) in str(err.value)
    assert not marker.exists()
    if kind == "global":
        pickle.loads(path.read_bytes())  # what a plain pickle.load does with the same file
        assert marker.exists(), "the malicious pickle must really be malicious"


def test_module_source_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    path = write_malicious_pickle(tmp_path / "src.pkl", marker, kind="module-src")
    snap = load_stylegan2_pickle(path)
    assert isinstance(snap["G_ema"], Generator)
    assert not marker.exists()
    src = read_stylegan2_pickle(path)["G_ema"]
    assert len(src.module_src_sha256) == 64
    exec(compile(f"open({str(marker)!r}, 'w').write('ran')", "x", "exec"))  # what NVIDIA's loader would run
    assert marker.exists()


def test_bad_files_name_themselves(tmp_path: Path) -> None:
    missing = tmp_path / "none.pkl"
    with pytest.raises(InputError, match="none.pkl: no such file"):
        load_stylegan2_pickle(missing)
    truncated = tmp_path / "cut.pkl"
    write_stylegan2_pickle(truncated, resolution=8, with_discriminator=False)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with pytest.raises(InputError, match="cut.pkl"):
        load_stylegan2_pickle(truncated)


def test_unknown_persistent_class_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.pkl"
    write_stylegan2_pickle(path, resolution=8, with_discriminator=False)
    data = path.read_bytes().replace(b"\x8c\tGenerator", b"\x8c\tGeneratoX")
    path.write_bytes(data)
    with pytest.raises(InputError, match="'GeneratoX' has no fk implementation"):
        load_stylegan2_pickle(path)


# -- operators -------------------------------------------------------------------------------------------


def _upfirdn_loop(
    x: np.ndarray, f: np.ndarray, up: int, down: int, pad: tuple[int, int, int, int], flip: bool, gain: float
) -> np.ndarray:
    """The definition, in float64 loops: zero insertion, pad/crop, true convolution, decimation."""
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * up, w * up))
    u[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = pad
    u = np.pad(u, ((0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    u = u[:, :, max(-py0, 0) : u.shape[2] - max(-py1, 0), max(-px0, 0) : u.shape[3] - max(-px1, 0)]
    k = f * gain if flip else f[::-1, ::-1] * gain  # correlation kernel
    kh, kw = k.shape
    out = np.zeros((n, c, u.shape[2] - kh + 1, u.shape[3] - kw + 1))
    for i in range(kh):
        for j in range(kw):
            out += k[i, j] * u[:, :, i : i + out.shape[2], j : j + out.shape[3]]
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize(
    ("up", "down", "pad", "flip", "filt"),
    [
        (2, 1, (2, 1, 2, 1), False, [1, 3, 3, 1]),
        (1, 2, (1, 1, 1, 1), False, [1, 3, 3, 1]),
        (2, 1, (-1, 3, 0, 2), True, [1, 2, 5, 1]),
        (1, 1, (1, 2, 1, 2), False, "nonsep"),
        (2, 2, (1, 2, 2, 1), True, "nonsep"),
        (1, 1, (4, 3, 4, 3), False, [1, 2, 3, 4, 5, 4, 3, 2]),  # 8 taps: separable 1-D filter
    ],
)
def test_upfirdn2d_matches_the_definition(up: int, down: int, pad: tuple, flip: bool, filt: object) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 9))
    if filt == "nonsep":
        f = torch.tensor(rng.uniform(0.1, 1.0, (3, 4)), dtype=torch.float32)
    else:
        f = setup_filter(filt)
    f2d = f.numpy().astype(np.float64)
    if f2d.ndim == 1:
        f2d = np.outer(f2d, f2d)
    got = upfirdn2d(torch.from_numpy(x), f, up=up, down=down, padding=pad, flip_filter=flip, gain=3.0).numpy()
    want = _upfirdn_loop(x, f2d, up, down, pad, flip, 3.0)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_modulated_conv2d_fused_equals_unfused_and_demodulates() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 9, 9, generator=g)
    w = torch.randn(5, 8, 3, 3, generator=g)
    s = torch.rand(2, 8, generator=g) + 0.5
    f = setup_filter([1, 3, 3, 1])
    for up in (1, 2):
        a = modulated_conv2d(
            x, w, s, up=up, padding=1, resample_filter=f, flip_weight=up == 1, fused_modconv=True
        )
        b = modulated_conv2d(
            x, w, s, up=up, padding=1, resample_filter=f, flip_weight=up == 1, fused_modconv=False
        )
        assert a.shape == (2, 5, 9 * up, 9 * up)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # demodulated output == plain convolution with each sample's unit-norm modulated weight
    wm = w[None] * s[:, None, :, None, None]
    wm = wm / wm.square().sum(dim=[2, 3, 4], keepdim=True).add(1e-8).sqrt()
    ref = torch.cat([torch.nn.functional.conv2d(x[i : i + 1], wm[i], padding=1) for i in range(2)])
    torch.testing.assert_close(modulated_conv2d(x, w, s, padding=1), ref, atol=1e-5, rtol=1e-5)


def test_synthesis_is_differentiable_in_ws(tiny: tuple[Path, dict]) -> None:
    g = load_stylegan2_pickle(tiny[0])["G_ema"]
    ws = g.mapping(torch.randn(1, g.z_dim), None).detach().requires_grad_(True)
    img = g.synthesis(ws, noise_mode="const", force_fp32=True)
    img.square().mean().backward()
    assert ws.grad is not None
    assert torch.isfinite(ws.grad).all()
    assert ws.grad.abs().sum() > 0


def test_fp16_blocks_follow_nvidia_and_force_fp32_is_close(tiny: tuple[Path, dict]) -> None:
    g = load_stylegan2_pickle(tiny[0])["G_ema"]
    assert [getattr(g.synthesis, f"b{r}").use_fp16 for r in g.synthesis.block_resolutions] == [
        False,
        True,
        True,
    ]
    z = torch.randn(2, g.z_dim, generator=torch.Generator().manual_seed(1))
    a = g(z, None, noise_mode="const")
    b = g(z, None, noise_mode="const", force_fp32=True)
    assert a.dtype == b.dtype == torch.float32
    assert 0 < (a - b).abs().max() < 0.05 * b.abs().max()


def test_missing_or_misshapen_weights_are_reported(tiny: tuple[Path, dict]) -> None:
    from fk.nets.stylegan2 import build_network

    record = read_stylegan2_pickle(tiny[0])["G_ema"]
    layer = record.children()["synthesis"].children()["b8"].children()["conv1"]
    weight = layer.state["_parameters"].pop("weight")
    with pytest.raises(InputError, match="do not match its recorded architecture"):
        build_network(record, "tiny.pkl")
    layer.state["_parameters"]["weight"] = weight[:, :-1]
    with pytest.raises(InputError, match="tiny.pkl: Generator's weights"):
        build_network(record, "tiny.pkl")
