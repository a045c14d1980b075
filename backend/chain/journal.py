"""A key/value store for py-evm that survives the process: every write is appended to a journal file before
it is visible, and the journal is replayed into memory when the store is opened.

The embedded chain (:mod:`backend.chain.embedded`) keeps its whole database here when it is given a path (its
py-evm database adapter is in that module), so stopping and starting the service, or killing it, keeps every
block, account and contract.

- **Format.** A magic line, then frames: ``>II`` (payload length, CRC-32 of the payload) and the payload, a
  run of operations ``>BI`` (``1`` set / ``0`` delete, key length), the key and, for a set, ``>I`` and the
  value. One frame is one atomic batch of py-evm's (a block, with its state), or one direct write.
- **Atomicity.** A frame is written with one ``write`` call, and the in-memory view changes only after it.
  A process killed at any point leaves whole frames plus, at worst, one partial frame at the end, which the
  next open recognises (short, or a CRC mismatch) and truncates: the store reopens at the last whole batch.
- **Durability.** By default a frame is in the operating system's cache when the call returns, which a
  killed process cannot lose. ``fsync=True`` also forces it to the disk (a power cut), at a cost per block.
- **Reads** come from memory (the whole store is loaded at open): a chain for one service is small.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

MAGIC = b"KNOWLEDGER-CHAIN-JOURNAL 1\n"
_FRAME = struct.Struct(">II")
_OP = struct.Struct(">BI")
_LEN = struct.Struct(">I")
_SET, _DELETE = 1, 0


class JournalCorrupt(Exception):
    """The file is not a chain journal (its first bytes are not the magic line)."""


def _encode(ops: list[tuple[bytes, bytes | None]]) -> bytes:
    parts: list[bytes] = []
    for key, value in ops:
        parts.append(_OP.pack(_DELETE if value is None else _SET, len(key)))
        parts.append(key)
        if value is not None:
            parts.append(_LEN.pack(len(value)))
            parts.append(value)
    payload = b"".join(parts)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes) -> Iterator[tuple[bytes, bytes | None]]:
    at = 0
    while at < len(payload):
        op, klen = _OP.unpack_from(payload, at)
        at += _OP.size
        key = payload[at : at + klen]
        at += klen
        if op == _SET:
            (vlen,) = _LEN.unpack_from(payload, at)
            at += _LEN.size
            yield key, payload[at : at + vlen]
            at += vlen
        else:
            yield key, None


def read_journal(path: Path) -> tuple[dict[bytes, bytes], int]:
    """The store a journal describes, and the length of its whole frames (anything after is partial)."""
    data: dict[bytes, bytes] = {}
    raw = path.read_bytes() if path.exists() else b""
    if not raw:
        return data, 0
    if not raw.startswith(MAGIC):
        raise JournalCorrupt(f"{path} is not a chain journal")
    at = good = len(MAGIC)
    while at + _FRAME.size <= len(raw):
        length, crc = _FRAME.unpack_from(raw, at)
        start, end = at + _FRAME.size, at + _FRAME.size + length
        if end > len(raw) or zlib.crc32(raw[start:end]) != crc:
            break
        for key, value in _decode(raw[start:end]):
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        at = good = end
    return data, good


class Collect:
    """The write target of one atomic batch: reads see the store, writes are collected for one frame."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        self._data = data
        self.ops: list[tuple[bytes, bytes | None]] = []

    def __getitem__(self, key: bytes) -> bytes:
        return self._data[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.ops.append((key, value))

    def __delitem__(self, key: bytes) -> None:
        self.ops.append((key, None))

    def __contains__(self, key: bytes) -> bool:
        return key in self._data

    def _exists(self, key: bytes) -> bool:
        return key in self._data


class JournalStore:
    """The store: a dict in memory, every change appended to the journal (one frame) before it shows."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.data, good = read_journal(path)
        self._lock = threading.Lock()
        self._fsync = fsync
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self._fd, good)  # drop a partial last frame (a killed writer)
        os.lseek(self._fd, 0, os.SEEK_END)
        if good == 0:
            self._append(MAGIC)

    @property
    def empty(self) -> bool:
        return not self.data

    def _append(self, raw: bytes) -> None:
        written = os.write(self._fd, raw)
        if written != len(raw):  # a full disk: never leave a frame half applied in memory
            raise OSError(f"short write to {self.path}: {written} of {len(raw)} bytes")
        if self._fsync:
            os.fsync(self._fd)

    def commit(self, ops: list[tuple[bytes, bytes | None]]) -> None:
        if not ops:
            return
        with self._lock:
            self._append(_encode(ops))
            for key, value in ops:
                if value is None:
                    self.data.pop(key, None)
                else:
                    self.data[key] = value

    def close(self) -> None:
        os.close(self._fd)
