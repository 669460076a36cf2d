"""frlite's compact checkpoint: only what FR keeps, readable without pickle.

Layout (little-endian):
    magic  b"FRLCKPT\\0"            8 bytes
    format version                  u32   (FORMAT_VERSION)
    header length                   u32
    header                          zlib-compressed UTF-8 JSON
    payload                         the tensors' bytes, at offsets the header gives
    crc32 of everything above       u32

Per tensor the header holds name, shape, encoding and, for FR weights, the layer kind and its
torch options. Encodings:
    "fr-sparse": kept values as float32, then their flat positions ascending, delta-coded as
                 LEB128 varints (positions inside a low-frequency corner are close together).
    "dense":     raw array of the stated dtype (biases and any ordinary parameters/buffers).
A round trip reproduces every tensor bit for bit.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frlite.converter.core.bounded_read import limit_text, max_file_bytes
from frlite.converter.core.errors import CheckpointError

MAGIC = b"FRLCKPT\0"
FORMAT_VERSION = 1
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32,
           "uint8": torch.uint8, "bool": torch.bool}


@dataclass
class LayerInfo:
    """What the file records about an FR weight: the layer kind and its torch options."""

    kind: str
    config: dict[str, Any]


@dataclass
class CompactCheckpoint:
    tensors: dict[str, torch.Tensor]
    layers: dict[str, LayerInfo] = field(default_factory=dict)  # keyed by weight name
    meta: dict[str, Any] = field(default_factory=dict)


def _encode_varints(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in values.tolist():
        while True:
            byte = v & 0x7F
            v >>= 7
            if v:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                break
    return bytes(out)


def _decode_varints(buf: bytes, count: int, source: str = "compact checkpoint") -> np.ndarray:
    vals = np.empty(count, dtype=np.int64)
    pos = 0
    for i in range(count):
        shift = 0
        v = 0
        while True:
            if pos >= len(buf):
                raise CheckpointError(f"{source}: position data ends early (corrupt file)")
            byte = buf[pos]
            pos += 1
            v |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 56:  # past int64: a crafted varint, not a position
                raise CheckpointError(f"{source}: a position is longer than 64 bits (corrupt file)")
        vals[i] = v
    if pos != len(buf):
        raise CheckpointError(f"{source}: position data has trailing bytes (corrupt file)")
    return vals


def _dtype_name(dtype: torch.dtype) -> str:
    for name, dt in _DTYPES.items():
        if dt == dtype:
            return name
    raise CheckpointError(f"compact checkpoint: dtype {dtype} is not supported")


def encode_compact(ckpt: CompactCheckpoint) -> bytes:
    entries: list[dict[str, Any]] = []
    payload = bytearray()
    for name, tensor in ckpt.tensors.items():
        t = tensor.detach().cpu()
        entry: dict[str, Any] = {"name": name, "shape": list(t.shape), "offset": len(payload)}
        info = ckpt.layers.get(name)
        if info is not None:
            flat = t.to(torch.float32).reshape(-1).numpy()
            pos = np.flatnonzero(flat)
            values = flat[pos].astype("<f4").tobytes()
            deltas = np.diff(pos, prepend=0)
            index = _encode_varints(deltas)
            entry.update(encoding="fr-sparse", kind=info.kind, config=info.config,
                         nnz=int(pos.size), values_bytes=len(values), index_bytes=len(index))
            if t.dtype != torch.float32:
                entry["dtype"] = _dtype_name(t.dtype)
            payload += values + index
        else:
            raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            entry.update(encoding="dense", dtype=_dtype_name(t.dtype), nbytes=len(raw))
            payload += raw
        entries.append(entry)
    header = {"tensors": entries, "meta": ckpt.meta}
    header_bytes = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    body = MAGIC + struct.pack("<II", FORMAT_VERSION, len(header_bytes)) + header_bytes + bytes(payload)
    return body + struct.pack("<I", zlib.crc32(body))


_KINDS = ("conv2d", "conv_transpose2d", "linear")
_MAX_RANK = 8


class _Header:
    """Checks one field after another of an untrusted header, naming the first bad one."""

    def __init__(self, source: str) -> None:
        self.source = source

    def bad(self, where: str, why: str) -> CheckpointError:
        return CheckpointError(f"{self.source}: header field {where} {why}; the file is damaged or was not written "
                               "by frlite, re-create it with `frlite pack`")

    def field(self, entry: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
        if key not in entry:
            raise self.bad(f"{where}.{key}", "is missing")
        value = entry[key]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise self.bad(f"{where}.{key}", f"is {type(value).__name__}, not {getattr(kind, '__name__', kind)}")
        return value

    def count(self, entry: dict[str, Any], key: str, where: str, upper: int) -> int:
        value = self.field(entry, key, int, where)
        if not 0 <= value <= upper:
            raise self.bad(f"{where}.{key}", f"= {value:,} is outside 0..{upper:,}")
        return int(value)


def _read_header(body: bytes, header_len: int, source: str, limit: int) -> dict[str, Any]:
    if header_len > len(body) - 16:
        raise CheckpointError(f"{source}: header length {header_len:,} runs past the end of the file; "
                              "the file is damaged, re-create it with `frlite pack`")
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(body[16:16 + header_len], limit + 1)  # bounded: a zlib bomb stops here
    except zlib.error as exc:
        raise CheckpointError(f"{source}: header does not decompress ({exc}); re-create it with `frlite pack`") from exc
    if len(raw) > limit:
        raise CheckpointError(f"{source}: header decompresses to more than {limit_text(limit)}; refusing it")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{source}: header is not valid JSON ({str(exc)[:120]}); re-create it with `frlite pack`") from exc
    if not isinstance(header, dict) or not isinstance(header.get("tensors"), list):
        raise CheckpointError(f"{source}: header holds no tensor list; the file is damaged, re-create it with `frlite pack`")
    if not isinstance(header.get("meta", {}), dict):
        raise CheckpointError(f"{source}: header field meta is not an object; re-create it with `frlite pack`")
    return header


def _validate_entry(h: _Header, e: object, i: int, payload_len: int, budget: list[int]) -> None:
    """Every field typed and every count consistent with the payload, before anything is allocated;
    `budget` holds the bytes the decoded tensors may still take (shared by all entries)."""
    where = f"tensors[{i}]"
    if not isinstance(e, dict):
        raise h.bad(where, f"is {type(e).__name__}, not an object")
    h.field(e, "name", str, where)
    shape = h.field(e, "shape", list, where)
    if len(shape) > _MAX_RANK or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise h.bad(f"{where}.shape", f"= {str(shape)[:80]} is not a list of at most {_MAX_RANK} sizes >= 0")
    numel = 1
    for d in shape:
        numel *= d
    offset = h.count(e, "offset", where, payload_len)
    encoding = h.field(e, "encoding", str, where)
    if encoding == "fr-sparse":
        itemsize = 4 if "dtype" not in e else torch.empty(0, dtype=_DTYPES[_dtype_field(h, e, where)]).element_size()
        nnz = h.count(e, "nnz", where, numel)
        if h.count(e, "values_bytes", where, payload_len) != 4 * nnz:
            raise h.bad(f"{where}.values_bytes", f"= {e['values_bytes']:,} is not 4 x nnz ({4 * nnz:,})")
        index_bytes = h.count(e, "index_bytes", where, payload_len)
        if index_bytes < nnz:
            raise h.bad(f"{where}.index_bytes", f"= {index_bytes:,} is fewer than one byte per position ({nnz:,})")
        end = offset + 4 * nnz + index_bytes
        kind = h.field(e, "kind", str, where)
        if kind not in _KINDS:
            raise h.bad(f"{where}.kind", f"= {kind[:40]!r} is not one of {', '.join(_KINDS)}")
        h.field(e, "config", dict, where)
        need = numel * max(itemsize, 4)
    elif encoding == "dense":
        itemsize = torch.empty(0, dtype=_DTYPES[_dtype_field(h, e, where)]).element_size()
        nbytes = h.count(e, "nbytes", where, payload_len)
        if nbytes != numel * itemsize:
            raise h.bad(f"{where}.nbytes", f"= {nbytes:,} does not match shape {shape} x {itemsize} bytes")
        end = offset + nbytes
        need = nbytes
    else:
        raise h.bad(f"{where}.encoding", f"= {encoding[:40]!r} is unknown (this frlite reads fr-sparse, dense); "
                    "or upgrade frlite")
    if end > payload_len:
        raise h.bad(where, f"points at bytes {offset:,}..{end:,} past the payload's {payload_len:,}")
    budget[0] -= need
    if budget[0] < 0:
        raise h.bad(f"{where}.shape", f"= {shape} would take the decoded tensors past the limit of {limit_text()}")


def _dtype_field(h: _Header, e: dict[str, Any], where: str) -> str:
    name = h.field(e, "dtype", str, where)
    if name not in _DTYPES:
        raise h.bad(f"{where}.dtype", f"= {name[:40]!r} is not one of {', '.join(_DTYPES)}")
    return str(name)


def decode_compact(data: bytes, source: str = "compact checkpoint") -> CompactCheckpoint:
    """Decode a .frl. The header is untrusted even with a good CRC (anyone can compute one): every
    field is checked and the decoded size bounded (one crafted shape asked for 3.64 TiB) before
    any tensor is allocated."""
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{source}: not an frlite compact checkpoint (bad magic)")
    if len(data) < len(MAGIC) + 12:
        raise CheckpointError(f"{source}: file is truncated; re-create it with `frlite pack`")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise CheckpointError(f"{source}: checksum mismatch, the file is truncated or corrupt; re-create it with `frlite pack`")
    version, header_len = struct.unpack("<II", body[8:16])
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{source}: format version {version} is not supported (this frlite reads {FORMAT_VERSION}); upgrade frlite")
    limit = max_file_bytes()
    header = _read_header(body, header_len, source, limit)
    payload = body[16 + header_len:]
    h = _Header(source)
    budget = [limit]
    names: set[str] = set()
    for i, e in enumerate(header["tensors"]):
        _validate_entry(h, e, i, len(payload), budget)
        if e["name"] in names:
            raise h.bad(f"tensors[{i}].name", f"= {e['name'][:60]!r} appears twice")
        names.add(e["name"])
    out = CompactCheckpoint(tensors={}, meta=header.get("meta", {}))
    for i, e in enumerate(header["tensors"]):
        shape = tuple(e["shape"])
        start = e["offset"]
        if e["encoding"] == "fr-sparse":
            nnz = e["nnz"]
            numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
            values = np.frombuffer(payload, "<f4", nnz, start)
            istart = start + e["values_bytes"]
            deltas = _decode_varints(payload[istart:istart + e["index_bytes"]], nnz, source)
            if nnz and (deltas[1:] <= 0).any():
                raise h.bad(f"tensors[{i}]", "has positions that are not strictly ascending")
            if nnz and int(deltas.max()) >= numel:  # also keeps the cumulative sum far from int64 overflow
                raise h.bad(f"tensors[{i}]", f"has a position step {int(deltas.max()):,} outside the tensor's {numel:,} values")
            pos = np.cumsum(deltas)
            if nnz and not 0 <= pos[-1] < numel:
                raise h.bad(f"tensors[{i}]", f"has a position {int(pos[-1]):,} outside the tensor's {numel:,} values")
            flat = np.zeros(numel, dtype=np.float32)
            flat[pos] = values
            t = torch.from_numpy(flat.reshape(shape))
            if "dtype" in e:
                t = t.to(_DTYPES[e["dtype"]])
            out.tensors[e["name"]] = t
            out.layers[e["name"]] = LayerInfo(e["kind"], e["config"])
        else:
            raw = bytearray(payload[start:start + e["nbytes"]])
            t = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            out.tensors[e["name"]] = t.view(_DTYPES[e["dtype"]]).reshape(shape).clone()
    return out


def write_compact(path: str | Path, ckpt: CompactCheckpoint) -> int:
    """Write atomically (temp file + rename); return the file size in bytes."""
    path = Path(path)
    data = encode_compact(ckpt)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}; choose a writable location") from exc
    return len(data)
