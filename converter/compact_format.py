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

from .errors import CheckpointError

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


def _decode_varints(buf: bytes, count: int) -> np.ndarray:
    vals = np.empty(count, dtype=np.int64)
    pos = 0
    for i in range(count):
        shift = 0
        v = 0
        while True:
            if pos >= len(buf):
                raise CheckpointError("compact checkpoint: position data ends early (corrupt file)")
            byte = buf[pos]
            pos += 1
            v |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        vals[i] = v
    if pos != len(buf):
        raise CheckpointError("compact checkpoint: position data has trailing bytes (corrupt file)")
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


def decode_compact(data: bytes, source: str = "compact checkpoint") -> CompactCheckpoint:
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
    header = json.loads(zlib.decompress(body[16:16 + header_len]))
    payload = body[16 + header_len:]
    out = CompactCheckpoint(tensors={}, meta=header.get("meta", {}))
    for e in header["tensors"]:
        shape = tuple(e["shape"])
        start = e["offset"]
        if e["encoding"] == "fr-sparse":
            nnz = e["nnz"]
            values = np.frombuffer(payload, "<f4", nnz, start)
            istart = start + e["values_bytes"]
            pos = np.cumsum(_decode_varints(payload[istart:istart + e["index_bytes"]], nnz))
            flat = np.zeros(int(np.prod(shape)), dtype=np.float32)
            flat[pos] = values
            t = torch.from_numpy(flat.reshape(shape))
            if "dtype" in e:
                t = t.to(_DTYPES[e["dtype"]])
            out.tensors[e["name"]] = t
            out.layers[e["name"]] = LayerInfo(e["kind"], e["config"])
        elif e["encoding"] == "dense":
            raw = bytearray(payload[start:start + e["nbytes"]])
            t = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            out.tensors[e["name"]] = t.view(_DTYPES[e["dtype"]]).reshape(shape).clone()
        else:
            raise CheckpointError(f"{source}: unknown tensor encoding {e['encoding']!r}; upgrade frlite")
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
