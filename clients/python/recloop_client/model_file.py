"""Reading a model version's metadata, model.pb (engine/model_io.h), with the standard library.

model.pb is a 32-byte header (magic "RCLMODEL", uint32 format version, uint32 reserved, uint64
payload length, uint64 XXH64 of the payload, little-endian) and a Protobuf ModelMetadata
(engine/model.proto). Decoding Protobuf's wire format needs no generated code: SCHEMA below names
the fields of model.proto by number, and tests/test_model.py checks that it matches
engine/model.proto field for field and that the decoded metadata equals what `recloop model info
--json` prints, so a change to the .proto cannot slip past this reader.
"""
from __future__ import annotations

import struct
from typing import Any, Dict, List, Tuple

MAGIC = b"RCLMODEL"
HEADER_BYTES = 32
FORMAT_VERSION = 2  # engine/model_io.h kModelFormatVersion

# message name -> {field number: (field name, type, repeated)}; a type is a scalar type of
# .proto or the name of another message here. "map<string,double>" is metrics' map.
SCHEMA: Dict[str, Dict[int, Tuple[str, str, bool]]] = {
    "ArrayFile": {
        1: ("name", "string", False), 2: ("dtype", "string", False),
        3: ("shape", "int64", True), 4: ("bytes", "int64", False),
        5: ("xxh64", "fixed64", False),
    },
    "Hyperparameters": {
        1: ("algorithm", "string", False), 2: ("feedback", "string", False),
        3: ("factors", "int32", False), 4: ("iterations", "int32", False),
        5: ("regularization", "float", False), 6: ("bias_regularization", "float", False),
        7: ("alpha", "float", False), 8: ("cg_steps", "int32", False),
        9: ("cholesky", "bool", False), 10: ("seed", "uint64", False),
        11: ("popularity_half_life_days", "double", False), 12: ("burn_in", "int32", False),
        13: ("samples", "int32", False), 14: ("served_samples", "int32", False),
        15: ("noise_precision", "float", False), 16: ("user_noise_dof", "float", False),
        17: ("item_noise_dof", "float", False), 18: ("confidence", "string", False),
        19: ("rating_neutral", "float", False),
    },
    "DataFingerprint": {
        1: ("path", "string", False), 2: ("rows", "int64", False),
        3: ("bytes", "int64", False), 4: ("content_xxh64", "fixed64", False),
    },
    "Lineage": {
        1: ("data", "DataFingerprint", False), 2: ("test", "DataFingerprint", False),
        3: ("split", "string", False), 4: ("train_interactions", "int64", False),
        5: ("test_interactions", "int64", False), 6: ("metrics", "map<string,double>", False),
        7: ("events_through_seq", "int64", False), 8: ("parent_version", "string", False),
        9: ("gate", "string", False), 10: ("events_store_id", "string", False),
    },
    "ModelMetadata": {
        1: ("format_version", "uint32", False), 2: ("model_version", "string", False),
        3: ("library_version", "string", False), 4: ("created_unix_ms", "int64", False),
        5: ("created_utc", "string", False), 6: ("params", "Hyperparameters", False),
        7: ("users", "int64", False), 8: ("items", "int64", False),
        9: ("seen_nnz", "int64", False), 10: ("has_factors", "bool", False),
        11: ("has_biases", "bool", False), 12: ("global_mean", "float", False),
        13: ("min_value", "float", False), 14: ("max_value", "float", False),
        15: ("lineage", "Lineage", False), 16: ("files", "ArrayFile", True),
    },
}

_VARINT_TYPES = {"int32", "int64", "uint32", "uint64", "bool"}
_DEFAULTS = {"string": "", "bool": False, "float": 0.0, "double": 0.0}


class ModelFormatError(ValueError):
    """A model file that is missing, truncated, corrupted or of another format version."""


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ModelFormatError("truncated or malformed varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> List[Tuple[int, int, Any]]:
    """(field number, wire type, raw value) of every field of one message, in order."""
    out = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ModelFormatError(f"unsupported wire type {wire} (field {number})")
        if pos > len(buf):
            raise ModelFormatError(f"truncated field {number}")
        out.append((number, wire, value))
    return out


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _scalar(kind: str, wire: int, raw: Any) -> Any:
    if kind == "string":
        return raw.decode("utf-8")
    if kind == "bool":
        return bool(raw)
    if kind in ("int32", "int64"):
        return _signed(raw & ((1 << 64) - 1), 64)
    if kind in ("uint32", "uint64"):
        return raw
    if kind == "float":
        return struct.unpack("<f", raw)[0]
    if kind == "double":
        return struct.unpack("<d", raw)[0]
    if kind == "fixed64":
        return struct.unpack("<Q", raw)[0]
    raise ModelFormatError(f"unknown field type {kind}")


def _packed(kind: str, raw: bytes) -> List[Any]:
    """The values of a packed repeated scalar field."""
    if kind in _VARINT_TYPES:
        out, pos = [], 0
        while pos < len(raw):
            v, pos = _varint(raw, pos)
            out.append(_scalar(kind, 0, v))
        return out
    size = 8 if kind in ("double", "fixed64") else 4
    return [_scalar(kind, 1, raw[i:i + size]) for i in range(0, len(raw), size)]


def decode(message: str, buf: bytes) -> Dict[str, Any]:
    """The message `message` of SCHEMA decoded from `buf` as a dict with every field (proto3
    defaults where absent: "" / 0 / False, [] for repeated fields, {} for the map, the
    submessage's defaults for a submessage). Unknown fields are skipped, as Protobuf does."""
    schema = SCHEMA[message]
    out: Dict[str, Any] = {}
    for name, kind, repeated in schema.values():
        if repeated:
            out[name] = []
        elif kind.startswith("map<"):
            out[name] = {}
        elif kind in SCHEMA:
            out[name] = decode(kind, b"")
        else:
            out[name] = _DEFAULTS.get(kind, 0)
    for number, wire, raw in _fields(buf):
        if number not in schema:
            continue
        name, kind, repeated = schema[number]
        if kind.startswith("map<"):
            entry = {n: v for n, _, v in _fields(raw)}
            key = entry.get(1, b"").decode("utf-8")
            out[name][key] = struct.unpack("<d", entry[2])[0] if 2 in entry else 0.0
        elif kind in SCHEMA:
            value = decode(kind, raw)
            if repeated:
                out[name].append(value)
            else:
                out[name] = value
        elif repeated and wire == 2 and kind != "string":
            out[name].extend(_packed(kind, raw))
        elif repeated:
            out[name].append(_scalar(kind, wire, raw))
        else:
            out[name] = _scalar(kind, wire, raw)
    return out


def read_metadata(path: str, verify=None) -> Dict[str, Any]:
    """The ModelMetadata of the model.pb at `path`, as a dict. `verify(bytes) -> int`, if given,
    is XXH64 (seed 0), used to check the payload's checksum. Raises ModelFormatError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        raise ModelFormatError(f"{path}: missing (not a model version directory)") from e
    if len(data) < HEADER_BYTES or data[:8] != MAGIC:
        raise ModelFormatError(f"{path}: not a recloop model file (bad header)")
    version, _, length, checksum = struct.unpack("<IIQQ", data[8:HEADER_BYTES])
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: model format version {version}, this client reads {FORMAT_VERSION}")
    payload = data[HEADER_BYTES:]
    if len(payload) != length:
        raise ModelFormatError(f"{path}: truncated (payload {len(payload)} of {length} bytes)")
    if verify is not None and verify(payload) != checksum:
        raise ModelFormatError(f"{path}: checksum mismatch (corrupted)")
    return decode("ModelMetadata", payload)
