"""Models written by `recloop train --out DIR`, read for notebooks: `load_model(dir)`.

A version directory holds model.pb (metadata, see model_file.py), the external IDs (users.txt,
items.txt: line i is dense index i) and plain little-endian arrays: row-major float32 factor
matrices, float32 biases and popularity, and the seen-items CSR matrix (engine/model_io.h).
Arrays are numpy arrays when numpy can be imported (matrices shaped [rows, factors]), else
array.array objects (matrices flat, row-major, with `shape` telling the rows and columns).
"""
from __future__ import annotations

import array
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .model_file import ModelFormatError, read_metadata

try:  # optional: arrays as numpy arrays
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the machine
    _np = None

try:  # optional: XXH64 checksums verified (Debian's python3-xxhash)
    import xxhash as _xxhash
except ImportError:  # pragma: no cover - depends on the machine
    _xxhash = None

__all__ = ["Model", "load_model", "resolve_model_dir", "ModelFormatError"]

_TYPECODES = {"f32": "f", "i32": "i", "i64": "q"}
_NUMPY_DTYPES = {"f32": "<f4", "i32": "<i4", "i64": "<i8"}


@dataclass
class Model:
    """One model version. Dense index i of a user or item is its position in user_ids/item_ids.

    user_factors / item_factors: [users, k] and [items, k] (None for a popularity model);
    user_bias / item_bias: explicit (rating) models only, else None; seen_*: the CSR matrix of
    the items each user interacted with in training (row u: seen_indices[seen_indptr[u] :
    seen_indptr[u+1]]); rating_head: the rating predictor saved beside the ranking model, if any.
    """
    path: str
    version: str
    metadata: Dict[str, Any]
    user_ids: List[str]
    item_ids: List[str]
    factors: int
    user_factors: Any = None
    item_factors: Any = None
    user_bias: Any = None
    item_bias: Any = None
    item_popularity: Any = None
    seen_indptr: Any = None
    seen_indices: Any = None
    seen_values: Any = None
    global_mean: float = 0.0
    rating_head: Optional["Model"] = None
    numpy: bool = False
    _user_index: Dict[str, int] = field(default_factory=dict, repr=False)
    _item_index: Dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def algorithm(self) -> str:
        return self.metadata["params"]["algorithm"]

    @property
    def feedback(self) -> str:
        return self.metadata["params"]["feedback"]

    def user_index(self, user: str) -> int:
        """The dense index of `user` (KeyError if the model does not know it)."""
        if not self._user_index:
            self._user_index = {u: i for i, u in enumerate(self.user_ids)}
        return self._user_index[user]

    def item_index(self, item: str) -> int:
        if not self._item_index:
            self._item_index = {it: i for i, it in enumerate(self.item_ids)}
        return self._item_index[item]

    def seen(self, user: str) -> List[str]:
        """The items `user` interacted with in training."""
        u = self.user_index(user)
        lo, hi = int(self.seen_indptr[u]), int(self.seen_indptr[u + 1])
        return [self.item_ids[int(j)] for j in self.seen_indices[lo:hi]]

    def scores(self, user: str) -> List[float]:
        """The model's score of every item for a trained `user`, as the server ranks them
        before its filters: the dot product of the user's and the item's factors, plus for a
        rating model the global mean and both biases, clamped to the rating range (ALS and
        EASE; a BPMF version's factor rows hold its samples side by side)."""
        if self.user_factors is None:
            raise ValueError(f"{self.path}: a {self.algorithm} model has no factors")
        u = self.user_index(user)
        k = self.factors
        if self.numpy:
            s = self.item_factors @ self.user_factors[u]
            out = [float(x) for x in s]
        else:
            p = self.user_factors[u * k:(u + 1) * k]
            q = self.item_factors
            out = [sum(p[f] * q[i * k + f] for f in range(k)) for i in range(len(self.item_ids))]
        if self.item_bias is not None:
            offset = self.global_mean + float(self.user_bias[u])
            lo, hi = self.metadata["min_value"], self.metadata["max_value"]
            out = [offset + s + float(b) for s, b in zip(out, self.item_bias)]
            if hi > lo:
                out = [min(max(s, lo), hi) for s in out]
        return out

    def recommend(self, user: str, n: int = 10, exclude_seen: bool = True) -> List[Tuple[str, float]]:
        """The top `n` (item, score) of scores(user), without the items seen in training."""
        scores = self.scores(user)
        skip = set(self.seen(user)) if exclude_seen else set()
        order = sorted((i for i in range(len(scores)) if self.item_ids[i] not in skip),
                       key=lambda i: -scores[i])
        return [(self.item_ids[i], scores[i]) for i in order[:n]]


def resolve_model_dir(path: str) -> str:
    """`path` if it is a version directory (it holds model.pb), else its `current` version (a
    models directory written by `recloop train --out`)."""
    if os.path.isfile(os.path.join(path, "model.pb")):
        return path
    current = os.path.join(path, "current")
    if os.path.isfile(os.path.join(current, "model.pb")):
        return os.path.realpath(current)
    raise ModelFormatError(f"{path}: neither a model version (no model.pb) nor a models "
                           "directory with a `current` version")


def _file_entry(meta: Dict[str, Any], name: str) -> Optional[Dict[str, Any]]:
    for f in meta["files"]:
        if f["name"] == name:
            return f
    return None


def _read_file(directory: str, entry: Dict[str, Any], verify: bool) -> bytes:
    path = os.path.join(directory, entry["name"])
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        raise ModelFormatError(f"{path}: missing") from e
    if len(data) != entry["bytes"]:
        raise ModelFormatError(f"{path}: {len(data)} bytes, the metadata says {entry['bytes']}")
    if verify and _xxhash is not None and _xxhash.xxh64_intdigest(data) != entry["xxh64"]:
        raise ModelFormatError(f"{path}: checksum mismatch (corrupted)")
    return data


def _read_array(directory: str, meta: Dict[str, Any], name: str, use_numpy: bool,
                verify: bool, required: bool = True) -> Any:
    entry = _file_entry(meta, name)
    if entry is None:
        if required:
            raise ModelFormatError(f"{directory}/model.pb: does not list {name}")
        return None
    data = _read_file(directory, entry, verify)
    dtype, shape = entry["dtype"], entry["shape"]
    if dtype not in _TYPECODES:
        raise ModelFormatError(f"{directory}/{name}: unexpected dtype {dtype}")
    if use_numpy:
        a = _np.frombuffer(data, dtype=_NUMPY_DTYPES[dtype]).astype(_NUMPY_DTYPES[dtype][1:])
        return a.reshape(shape) if len(shape) == 2 else a
    a = array.array(_TYPECODES[dtype])
    if a.itemsize != {"f32": 4, "i32": 4, "i64": 8}[dtype]:
        raise ModelFormatError(f"array typecode {a.typecode} is not {dtype} on this machine")
    a.frombytes(data)
    if sys.byteorder != "little":  # the files are little-endian
        a.byteswap()
    return a


def _read_ids(directory: str, meta: Dict[str, Any], name: str, n: int) -> List[str]:
    entry = _file_entry(meta, name)
    if entry is None:
        raise ModelFormatError(f"{directory}/model.pb: does not list {name}")
    text = _read_file(directory, entry, True).decode("utf-8")
    if n and not text.endswith("\n"):
        raise ModelFormatError(f"{directory}/{name}: truncated (no final newline)")
    ids = text.split("\n")[:-1] if text else []
    if len(ids) != n:
        raise ModelFormatError(f"{directory}/{name}: {len(ids)} IDs, the metadata says {n}")
    return ids


def load_model(path: str, use_numpy: Optional[bool] = None, verify: bool = True,
               rating_head: bool = True) -> Model:
    """Reads the model version at `path` (a version directory, or a models directory: its
    `current` version).

    use_numpy: arrays as numpy arrays (default: if numpy can be imported) or array.array.
    verify: check every file's size against the metadata, and its XXH64 checksum too when the
      xxhash module (Debian's python3-xxhash) is importable.
    Raises ModelFormatError for a missing, truncated or corrupted file."""
    directory = resolve_model_dir(path)
    if use_numpy is None:
        use_numpy = _np is not None
    elif use_numpy and _np is None:
        raise ImportError("use_numpy=True but numpy cannot be imported")
    hasher = _xxhash.xxh64_intdigest if verify and _xxhash is not None else None
    meta = read_metadata(os.path.join(directory, "model.pb"), hasher)
    users, items = meta["users"], meta["items"]
    model = Model(path=directory, version=meta["model_version"] or os.path.basename(directory),
                  metadata=meta, user_ids=_read_ids(directory, meta, "users.txt", users),
                  item_ids=_read_ids(directory, meta, "items.txt", items),
                  factors=0, global_mean=meta["global_mean"], numpy=use_numpy)
    if meta["has_factors"]:
        model.user_factors = _read_array(directory, meta, "user_factors.f32", use_numpy, verify)
        model.item_factors = _read_array(directory, meta, "item_factors.f32", use_numpy, verify)
        model.factors = int(_file_entry(meta, "user_factors.f32")["shape"][1])
    if meta["has_biases"]:
        model.user_bias = _read_array(directory, meta, "user_bias.f32", use_numpy, verify)
        model.item_bias = _read_array(directory, meta, "item_bias.f32", use_numpy, verify)
    model.item_popularity = _read_array(directory, meta, "item_popularity.f32", use_numpy,
                                        verify, required=False)
    for name in ("seen_indptr.i64", "seen_indices.i32", "seen_values.f32"):
        setattr(model, name.split(".")[0],
                _read_array(directory, meta, name, use_numpy, verify))
    if len(model.seen_indptr) != users + 1:
        raise ModelFormatError(f"{directory}/seen_indptr.i64: {len(model.seen_indptr)} row "
                               f"pointers for {users} users")
    head = os.path.join(directory, "rating_head")
    if rating_head and os.path.isfile(os.path.join(head, "model.pb")):
        model.rating_head = load_model(head, use_numpy, verify, rating_head=False)
    return model
