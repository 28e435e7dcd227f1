"""Load NVIDIA StyleGAN2-ADA network pickles (``torch_utils.persistence``, ``_version = 6``) without
running anything stored in them.

The format (research note gmpi.md §5): a plain pickle of ``{'training_set_kwargs', 'G', 'D', 'G_ema',
'augment_pipe'}``. Each network is a *persistent object*: the global
``torch_utils.persistence._reconstruct_persistent_obj`` applied to ``meta = {type: 'class', version: 6,
module_src: <the whole defining source file>, class_name, state: <the module's __dict__>}``. NVIDIA's
loader ``exec``s ``module_src``; this one never reads it (only its sha256 is kept, for provenance).

What the restricted unpickler admits, and what it puts in place of each global:

- ``_reconstruct_persistent_obj`` -> a :class:`PersistentRecord` (class name, state, source hash);
- ``torch._utils._rebuild_tensor_v2``/``_rebuild_tensor``/``_rebuild_parameter``
  (``_with_state``) and ``torch.Size`` -> fk's tensor rebuilding;
- ``torch.storage._load_from_bytes`` -> a parser of the legacy ``torch.save`` blob (magic number,
  protocol 1001, system info, storage records through persistent ids, raw little-endian data) whose own
  unpickler admits only the ``torch.*Storage`` names, mapped to dtypes;
- ``collections.OrderedDict``, ``builtins.set``/``frozenset``, ``dnnlib.util.EasyDict`` -> containers,
  ``_codecs.encode`` (protocol 2's form of bytes) -> latin-1 bytes only;
- ``numpy.core.multiarray.scalar`` and ``numpy.dtype`` (NumPy scalars such as ``weight_gain``) ->
  a decoder of fixed-size numeric scalars.

Everything else stops the load with :class:`fk.io.safe_pickle.UnsafePickleError`. Each record is then
mapped *by class name* to fk's implementation (:mod:`fk.nets.stylegan2.networks`), built from the
recorded ``_init_args``/``_init_kwargs``, checked child by child against the record tree, and loaded
with ``load_state_dict(strict=True)``. Records fk does not implement (``AugmentPipe``) are returned as
records: their tensors and arguments are there, as data.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fk.errors import InputError
from fk.io.safe_pickle import NumpyDType, RestrictedUnpickler, UnsafePickleError, numpy_scalar
from fk.nets.stylegan2 import networks

__all__ = [
    "NETWORK_CLASSES",
    "PERSISTENCE_VERSION",
    "PersistentRecord",
    "build_network",
    "load_stylegan2_pickle",
    "read_stylegan2_pickle",
]

PERSISTENCE_VERSION = 6
_WHAT = "a StyleGAN2-ADA network pickle"

#: NVIDIA class name -> fk class (``training.networks``; the names are the same).
NETWORK_CLASSES: dict[str, type[torch.nn.Module]] = {
    name: getattr(networks, name)
    for name in (
        "FullyConnectedLayer",
        "Conv2dLayer",
        "MappingNetwork",
        "SynthesisLayer",
        "ToRGBLayer",
        "SynthesisBlock",
        "SynthesisNetwork",
        "Generator",
        "DiscriminatorBlock",
        "MinibatchStdLayer",
        "DiscriminatorEpilogue",
        "Discriminator",
    )
}

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class EasyDict(dict):
    """``dnnlib.util.EasyDict``: a dict whose keys also read as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class PersistentRecord:
    """One persistent object as recorded in the pickle, before (or instead of) building it."""

    class_name: str
    state: dict[str, Any]
    module_src_sha256: str
    version: int = PERSISTENCE_VERSION

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args", ()))

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return _plain(self.state.get("_init_kwargs", {}))

    def children(self) -> dict[str, Any]:
        return dict(self.state.get("_modules") or {})

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """``named_parameters`` + ``named_buffers`` of the recorded tree (NVIDIA's key names)."""
        out: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if value is not None:
                    out[prefix + name] = value
        for name, child in self.children().items():
            if isinstance(child, PersistentRecord):
                out.update(child.state_dict(prefix + name + "."))
            elif child is not None:
                raise InputError(
                    f"child module {prefix + name} is not a persistent object ({type(child).__name__})"
                )
        return out


@dataclass
class _StorageRef:
    dtype: torch.dtype
    key: str
    numel: int
    extra: tuple = field(default_factory=tuple)


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: Any, stride: Any, *rest: Any) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor):
        raise UnsafePickleError("refused a tensor whose storage is not a tensor storage")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride):
        raise InputError(f"a tensor of size {size} has stride {stride}")
    span = sum((s - 1) * st for s, st in zip(size, stride, strict=True))
    needed = int(offset) + span + 1 if all(size) else 0
    if needed > storage.numel():
        raise InputError(f"a tensor of size {size} reads past its storage ({storage.numel()} elements)")
    t = storage.as_strided(size, stride, int(offset))
    if len(rest) >= 1 and bool(rest[0]):
        t = t.detach().requires_grad_(True) if t.is_floating_point() else t
    return t


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool = False, *rest: Any) -> torch.nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("refused a parameter whose data is not a tensor")
    return torch.nn.Parameter(data.detach(), requires_grad=bool(requires_grad) and data.is_floating_point())


def _torch_size(dims: Any = ()) -> tuple[int, ...]:
    return tuple(int(d) for d in dims)


def _ordered_dict(*args: Any) -> OrderedDict:
    if args and not isinstance(args[0], list | tuple | dict):
        raise UnsafePickleError("refused an OrderedDict built from a non-container")
    return OrderedDict(*args)


def _latin1_bytes(text: Any, encoding: str = "latin1") -> bytes:
    """Protocol 2 writes bytes as ``_codecs.encode(text, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("refused _codecs.encode other than bytes in protocol 2's latin1 form")
    return text.encode("latin1")


def _make_set(items: Any = ()) -> set:
    return set(items)


def _make_frozenset(items: Any = ()) -> frozenset:
    return frozenset(items)


class _Reader:
    """One file's restricted unpickling (outer stream and storage blobs)."""

    def __init__(self, source: str):
        self.source = source
        self.records = 0
        self.allowed: dict[tuple[str, str], Any] = {
            ("torch_utils.persistence", "_reconstruct_persistent_obj"): self.reconstruct,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
            ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
            ("torch.storage", "_load_from_bytes"): self.load_storage_blob,
            ("torch", "Size"): _torch_size,
            ("collections", "OrderedDict"): _ordered_dict,
            ("builtins", "set"): _make_set,
            ("__builtin__", "set"): _make_set,
            ("builtins", "frozenset"): _make_frozenset,
            ("__builtin__", "frozenset"): _make_frozenset,
            ("dnnlib.util", "EasyDict"): EasyDict,
            ("_codecs", "encode"): _latin1_bytes,
            ("numpy.core.multiarray", "scalar"): numpy_scalar,
            ("numpy._core.multiarray", "scalar"): numpy_scalar,
            ("numpy", "dtype"): NumpyDType,
        }

    def refuse(self, message: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self.source}: refused to load: {message}; nothing from it was run")

    def reconstruct(self, meta: Any) -> PersistentRecord:
        if not isinstance(meta, dict):
            raise self.refuse("a persistent object without its metadata dict")
        if meta.get("type") != "class":
            raise self.refuse(f"persistent object of type {meta.get('type')!r} (only 'class' is known)")
        if meta.get("version") != PERSISTENCE_VERSION:
            raise InputError(
                f"{self.source}: torch_utils.persistence version {meta.get('version')!r}; fk reads version "
                f"{PERSISTENCE_VERSION} (stylegan2-ada-pytorch)"
            )
        name, state = meta.get("class_name"), meta.get("state")
        if not isinstance(name, str) or not isinstance(state, dict):
            raise self.refuse("a persistent object without class_name or state")
        src = meta.get("module_src")
        digest = hashlib.sha256(src.encode("utf-8") if isinstance(src, str) else b"").hexdigest()
        self.records += 1
        return PersistentRecord(class_name=name, state=dict(state), module_src_sha256=digest)

    def load_storage_blob(self, blob: bytes) -> torch.Tensor:
        """A legacy ``torch.save`` stream holding one storage -> a flat tensor over it."""
        if not isinstance(blob, bytes | bytearray):
            raise self.refuse("a storage that is not a byte string")
        f = io.BytesIO(blob)
        storage_names = {("torch", n): n for n in _STORAGE_DTYPES}
        refs: dict[str, _StorageRef] = {}

        def persistent_load(pid: Any) -> _StorageRef:
            if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
                raise self.refuse(f"unexpected persistent id in a storage: {pid!r:.80}")
            _, type_name, key, _location, numel = pid[:5]
            if type_name not in _STORAGE_DTYPES:
                raise self.refuse(f"unknown storage type {type_name!r}")
            ref = refs.setdefault(str(key), _StorageRef(_STORAGE_DTYPES[type_name], str(key), int(numel)))
            if len(pid) > 5 and pid[5] is not None:
                raise self.refuse("storage views are not part of a StyleGAN2-ADA pickle")
            return ref

        def load_one() -> Any:
            return RestrictedUnpickler(
                f, storage_names, source=self.source, what=_WHAT, persistent_load=persistent_load
            ).load()

        try:
            magic = load_one()
            if magic != _LEGACY_MAGIC:
                raise InputError(f"{self.source}: a tensor storage is not in torch's legacy format")
            if load_one() != _LEGACY_PROTOCOL:
                raise InputError(f"{self.source}: unknown torch storage protocol")
            sys_info = load_one()
            if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
                raise InputError(f"{self.source}: big-endian tensor data is not supported")
            ref = load_one()
            keys = load_one()
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise InputError(f"{self.source}: a tensor storage is truncated or corrupt ({exc})") from exc
        if not isinstance(ref, _StorageRef) or not isinstance(keys, list):
            raise self.refuse("a storage blob that does not hold one storage")
        data: dict[str, torch.Tensor] = {}
        for key in keys:
            r = refs.get(str(key))
            if r is None:
                raise InputError(f"{self.source}: storage key {key!r} has no record")
            count = int.from_bytes(f.read(8), "little", signed=True)
            itemsize = torch.empty((), dtype=r.dtype).element_size()
            raw = f.read(count * itemsize)
            if count < 0 or len(raw) != count * itemsize:
                raise InputError(f"{self.source}: tensor data is truncated")
            data[str(key)] = (
                torch.frombuffer(bytearray(raw), dtype=r.dtype) if count else torch.empty(0, dtype=r.dtype)
            )
        if ref.key not in data:
            raise InputError(f"{self.source}: storage {ref.key!r} has no data")
        return data[ref.key]

    def load(self, stream: Any) -> Any:
        unpickler = RestrictedUnpickler(stream, self.allowed, source=self.source, what=_WHAT)
        try:
            return unpickler.load()
        except UnsafePickleError:
            raise
        except InputError:
            raise
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError, IndexError) as exc:
            raise InputError(f"{self.source}: not a readable StyleGAN2-ADA pickle ({exc})") from exc


def _plain(value: Any) -> Any:
    """EasyDicts and OrderedDicts -> dicts, recursively (init kwargs as keyword arguments)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def read_stylegan2_pickle(path: str | Path) -> dict[str, Any]:
    """The pickle's top-level dict with networks left as :class:`PersistentRecord` (nothing is built)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = _Reader(str(path)).load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", hint="pass the path of a StyleGAN2-ADA .pkl") from None
    if isinstance(data, tuple) and len(data) == 3:
        raise InputError(
            f"{path}: a TensorFlow-era (G, D, Gs) pickle; fk reads stylegan2-ada-pytorch pickles"
        )
    if not isinstance(data, dict):
        raise InputError(
            f"{path}: not a StyleGAN2-ADA snapshot (top level is {type(data).__name__}, not a dict)"
        )
    return data


def _check_tree(module: torch.nn.Module, record: PersistentRecord, where: str, source: str) -> None:
    """The built module has the record's children, class for class."""
    mine = dict(module.named_children())
    theirs = {k: v for k, v in record.children().items() if v is not None}
    if set(mine) != set(theirs):
        raise InputError(
            f"{source}: {where or 'network'} ({record.class_name}) has children {sorted(theirs)} "
            "in the pickle "
            f"but {sorted(mine)} when built from its recorded arguments"
        )
    for name, child in theirs.items():
        if not isinstance(child, PersistentRecord):
            raise InputError(f"{source}: {where}{name} is not a persistent object")
        if type(mine[name]).__name__ != child.class_name:
            raise InputError(
                f"{source}: {where}{name} is a {child.class_name} in the pickle, "
                f"{type(mine[name]).__name__} in fk"
            )
        _check_tree(mine[name], child, f"{where}{name}.", source)


def build_network(record: PersistentRecord, source: str = "<pickle>") -> torch.nn.Module:
    """fk's module for one record: built from its recorded arguments, loaded strictly from its state."""
    cls = NETWORK_CLASSES.get(record.class_name)
    if cls is None:
        raise InputError(
            f"{source}: persistent class {record.class_name!r} has no fk implementation "
            f"(fk builds {', '.join(sorted(NETWORK_CLASSES))})"
        )
    try:
        with torch.device("meta"):  # no random init: every tensor comes from the pickle below
            module = cls(*record.init_args, **record.init_kwargs)
    except TypeError as exc:
        raise InputError(
            f"{source}: cannot build {record.class_name} from its recorded arguments ({exc})"
        ) from exc
    _check_tree(module, record, "", source)
    state = record.state_dict()
    grads = {k: bool(v.requires_grad) for k, v in state.items()}  # before assign=True resets them
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise InputError(
            f"{source}: {record.class_name}'s weights do not match its recorded architecture: "
            + " ".join(s.strip() for s in first[:3])
        ) from exc
    left = [k for k, v in module.state_dict(keep_vars=True).items() if v.is_meta]
    if left:
        raise InputError(f"{source}: {record.class_name} has no weights in the pickle for {left[:3]}")
    for name, p in module.named_parameters():
        p.requires_grad_(grads.get(name, False))
    module.train(bool(record.state.get("training", False)))
    return module


def load_stylegan2_pickle(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an NVIDIA StyleGAN2-ADA ``.pkl`` into fk networks, running nothing from the file.

    Returns the snapshot dict with NVIDIA's keys: ``'G'``, ``'D'``, ``'G_ema'`` as fk modules
    (:class:`~fk.nets.stylegan2.Generator`, :class:`~fk.nets.stylegan2.Discriminator`), ``'augment_pipe'``
    as ``None`` or a :class:`PersistentRecord`, ``'training_set_kwargs'`` as a dict (``None`` when absent),
    plus any other top-level entries as read. Networks are in the mode and ``requires_grad`` state the
    pickle recorded (NVIDIA's snapshots: eval, no gradients).

    Raises:
        UnsafePickleError: the file names a global outside the allow-list (nothing was run).
        InputError: unreadable, truncated, or weights that do not fit the recorded architecture.
    """
    data = read_stylegan2_pickle(path)
    out: dict[str, Any] = {"training_set_kwargs": None, "augment_pipe": None}
    for key, value in data.items():
        if isinstance(value, PersistentRecord) and (
            key in ("G", "D", "G_ema") or value.class_name in NETWORK_CLASSES
        ):
            out[key] = build_network(value, str(path)).to(device)
        else:
            out[key] = _plain(value) if isinstance(value, dict) else value
    return out
