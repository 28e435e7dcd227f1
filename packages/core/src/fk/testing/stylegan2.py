"""Tiny StyleGAN2-ADA pickles in NVIDIA's exact persistence format, and malicious ones, for tests.

:func:`write_stylegan2_pickle` writes what ``training_loop.py`` writes: a plain pickle of
``{'training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe'}`` where every network is the global
``torch_utils.persistence._reconstruct_persistent_obj`` applied to ``{'type': 'class', 'version': 6,
'module_src': <source text>, 'class_name', 'state': <the module's __dict__ with _init_args and
_init_kwargs>}``, kwargs dicts as ``dnnlib.util.EasyDict``, tensors through torch's own reducers
(``_rebuild_parameter``/``_rebuild_tensor_v2`` over legacy ``_load_from_bytes`` storage blobs). The
``module_src`` is a stand-in text (fk does not ship NVIDIA's source); loaders must never read it anyway.

:func:`write_malicious_pickle` writes files that would run code on ``pickle.load``; each run would
create ``marker``, so a test asserts the loader refuses (or ignores the code) and the marker is absent.

Usage::

    from fk.testing.stylegan2 import write_stylegan2_pickle
    nets = write_stylegan2_pickle(tmp_path / "tiny.pkl", resolution=16)
    loaded = load_stylegan2_pickle(tmp_path / "tiny.pkl")   # loaded["G_ema"] equals nets["G_ema"]
"""

from __future__ import annotations

import copy
import io
import pickle
import types
from pathlib import Path
from typing import Any

import torch

from fk.nets.stylegan2.networks import Discriminator, Generator, PersistentModule

__all__ = ["MALICIOUS_KINDS", "STAND_IN_MODULE_SRC", "write_malicious_pickle", "write_stylegan2_pickle"]

STAND_IN_MODULE_SRC = (
    "# Stand-in for the source of training/networks.py, which NVIDIA's persistence stores here.\n"
    "# Written by fk.testing.stylegan2; fk's loader never executes or reads it.\n"
)
_PERSISTENCE = ("torch_utils.persistence", "_reconstruct_persistent_obj")
_EASYDICT = ("dnnlib.util", "EasyDict")


def _reconstruct_persistent_obj(meta: dict) -> None:  # pragma: no cover - a pickling token only
    raise RuntimeError("a token for the pickler; never called")


class _EasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict`` (a dict subclass: NEWOBJ + SETITEMS)."""


class _Persistent:
    """Pickles as NVIDIA's persistent object: ``_reconstruct_persistent_obj(meta)``."""

    def __init__(self, meta: dict):
        self.meta = meta

    def __reduce__(self) -> tuple:
        return (_reconstruct_persistent_obj, (self.meta,), None)


class _Pickler(pickle._Pickler):  # the Python pickler: its save_global can be redirected per object
    _GLOBALS = {id(_reconstruct_persistent_obj): _PERSISTENCE, id(_EasyDict): _EASYDICT}

    def save_global(self, obj: Any, name: str | None = None) -> None:
        target = self._GLOBALS.get(id(obj))
        if target is None:
            return super().save_global(obj, name)
        module, qualname = target
        if self.proto >= 4:
            self.save(module)
            self.save(qualname)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
        self.memoize(obj)

    # the Python pickler dispatches functions straight to the base save_global
    dispatch = pickle._Pickler.dispatch.copy()
    dispatch[types.FunctionType] = save_global


def _easy(value: Any) -> Any:
    if isinstance(value, dict):
        return _EasyDict({k: _easy(v) for k, v in value.items()})
    return value


def _persistent(module: torch.nn.Module, module_src: str) -> _Persistent:
    if not isinstance(module, PersistentModule):
        raise TypeError(f"{type(module).__name__} is not one of fk's StyleGAN2 modules")
    state: dict[str, Any] = {}
    for key, value in module.__dict__.items():
        if key == "_modules":
            value = {k: _persistent(v, module_src) for k, v in value.items() if v is not None}
        elif key == "_init_kwargs":
            # NVIDIA's train.py passes nested kwargs as EasyDicts; the top level is a plain dict
            value = {k: _easy(v) for k, v in value.items()}
        state[key] = value
    meta = dict(type="class", version=6, module_src=module_src, class_name=type(module).__name__, state=state)
    return _Persistent(meta)


def _randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Non-zero biases, noise strengths and w_avg, so a test of the loader sees every tensor."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias") or name.endswith("noise_strength"):
                p.add_(0.1 * torch.randn(p.shape, generator=generator))
        for name, b in module.named_buffers():
            if name.endswith("w_avg"):
                b.copy_(torch.randn(b.shape, generator=generator))


def write_stylegan2_pickle(
    path: str | Path,
    *,
    resolution: int = 16,
    z_dim: int = 32,
    w_dim: int = 32,
    c_dim: int = 0,
    img_channels: int = 3,
    channel_base: int = 512,
    channel_max: int = 32,
    num_fp16_res: int = 0,
    conv_clamp: float | None = None,
    mapping_layers: int = 2,
    seed: int = 0,
    protocol: int = 4,
    with_discriminator: bool = True,
    module_src: str = STAND_IN_MODULE_SRC,
) -> dict[str, Any]:
    """Write a random StyleGAN2-ADA snapshot at ``path``; returns the fk networks written.

    Returns:
        ``{'G', 'D', 'G_ema', 'training_set_kwargs'}`` (``D`` None without a discriminator).
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    synthesis_kwargs = dict(
        channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res, conv_clamp=conv_clamp
    )
    g_kwargs = dict(
        z_dim=z_dim,
        w_dim=w_dim,
        mapping_kwargs=dict(num_layers=mapping_layers),
        synthesis_kwargs=synthesis_kwargs,
        c_dim=c_dim,
        img_resolution=resolution,
        img_channels=img_channels,
    )
    G = Generator(**g_kwargs)  # noqa: N806 - NVIDIA's names
    _randomise(G, g)
    G_ema = copy.deepcopy(G)  # noqa: N806
    with torch.no_grad():
        for p in G_ema.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    D = None  # noqa: N806
    if with_discriminator:
        D = Discriminator(
            c_dim=c_dim,
            img_resolution=resolution,
            img_channels=img_channels,  # noqa: N806
            architecture="resnet",
            channel_base=channel_base,
            channel_max=channel_max,
            num_fp16_res=num_fp16_res,
            conv_clamp=conv_clamp,
            block_kwargs=dict(),
            mapping_kwargs=dict(),
            epilogue_kwargs=dict(mbstd_group_size=4),
        )
        _randomise(D, g)
    for net in (G, G_ema, D):
        if net is not None:
            net.eval().requires_grad_(False)
    training_set_kwargs = _EasyDict(
        class_name="training.dataset.ImageFolderDataset",
        path="tiny.zip",
        use_labels=c_dim > 0,
        max_size=4,
        xflip=False,
        resolution=resolution,
    )
    snapshot = {
        "training_set_kwargs": training_set_kwargs,
        "G": _persistent(G, module_src),
        "D": _persistent(D, module_src) if D is not None else None,
        "G_ema": _persistent(G_ema, module_src),
        "augment_pipe": None,
    }
    buf = io.BytesIO()
    _Pickler(buf, protocol=protocol).dump(snapshot)
    Path(path).write_bytes(buf.getvalue())
    return {"G": G, "D": D, "G_ema": G_ema, "training_set_kwargs": dict(training_set_kwargs)}


MALICIOUS_KINDS = ("global", "nested-global", "storage-global", "module-src")


def write_malicious_pickle(path: str | Path, marker: str | Path, kind: str = "global") -> Path:
    """Write a pickle that creates ``marker`` if anything in it runs; returns ``path``.

    Kinds:
        ``global``: the whole file is ``builtins.exec(<create marker>)``.
        ``nested-global``: a valid-looking snapshot whose G state holds an ``os.system`` call.
        ``storage-global``: a tensor storage blob whose inner pickle calls ``builtins.exec``.
        ``module-src``: a *valid* tiny snapshot whose ``module_src`` creates the marker when
            ``exec``-ed, as NVIDIA's loader would; fk must load it and never run it.
    """
    marker = Path(marker)
    code = f"open({str(marker)!r}, 'w').write('ran')"

    class _Exec:
        def __reduce__(self) -> tuple:
            return (exec, (code,))

    class _System:
        def __reduce__(self) -> tuple:
            import os

            return (os.system, (f"touch {marker}",))

    path = Path(path)
    if kind == "global":
        path.write_bytes(pickle.dumps(_Exec(), protocol=4))
    elif kind == "nested-global":
        buf = io.BytesIO()
        meta = dict(
            type="class",
            version=6,
            module_src=STAND_IN_MODULE_SRC,
            class_name="Generator",
            state={"_parameters": {}, "_buffers": {}, "_modules": {}, "payload": _System()},
        )
        _Pickler(buf, protocol=4).dump({"G": _Persistent(meta), "D": None, "G_ema": None})
        path.write_bytes(buf.getvalue())
    elif kind == "storage-global":
        from fk.nets.stylegan2 import persistence

        class _Blob:
            def __reduce__(self) -> tuple:
                inner = b"".join(
                    pickle.dumps(x, protocol=2)
                    for x in (persistence._LEGACY_MAGIC, 1001, {"little_endian": True})
                ) + pickle.dumps(_Exec(), protocol=2)
                return (_load_from_bytes_token, (inner,))

        buf = io.BytesIO()
        p = _Pickler(buf, protocol=4)
        p._GLOBALS = {**_Pickler._GLOBALS, id(_load_from_bytes_token): ("torch.storage", "_load_from_bytes")}
        p.dump({"G": _Blob()})
        path.write_bytes(buf.getvalue())
    elif kind == "module-src":
        write_stylegan2_pickle(path, resolution=8, module_src=code + "\n", with_discriminator=False)
    else:
        raise ValueError(f"kind must be one of {MALICIOUS_KINDS}, got {kind!r}")
    return path


def _load_from_bytes_token(blob: bytes) -> None:  # pragma: no cover - a pickling token only
    raise RuntimeError("a token for the pickler; never called")
