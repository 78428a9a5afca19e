"""Every text a serialized job can hide a secret in, for tests that search it.

A portable pipeline carries payloads a plain byte search cannot see into: Beam
Java serializes its DoFns into Snappy streams (``SnappyOutputStream``: magic,
version, then length-prefixed raw Snappy blocks), in which a string can be split
by back-references; the Python SDK compresses its pickled DoFns.  ``readable``
returns the bytes with each such stream decompressed and appended.
"""

from __future__ import annotations

import bz2
import contextlib
import struct
import zlib

import pyarrow as pa

_SNAPPY_MAGIC = b"\x82SNAPPY\x00"
_SNAPPY_HEADER = len(_SNAPPY_MAGIC) + 8  # magic, version, compatible version


def _varint(data: bytes) -> int:
    result = shift = 0
    for byte in data:
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result
        shift += 7
    raise ValueError("truncated varint")


def snappy_streams(data: bytes) -> list[bytes]:
    """The decompressed contents of every Java Snappy stream found in ``data``."""
    found = []
    start = data.find(_SNAPPY_MAGIC)
    while start != -1:
        pos, out = start + _SNAPPY_HEADER, []
        while pos + 4 <= len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            block = data[pos + 4 : pos + 4 + length]
            try:
                out.append(
                    pa.decompress(
                        block, decompressed_size=_varint(block), codec="snappy"
                    ).to_pybytes()
                )
            except (ValueError, OSError, pa.ArrowException):
                break  # the stream ended: what follows is the enclosing proto
            pos += 4 + length
        found.append(b"".join(out))
        start = data.find(_SNAPPY_MAGIC, start + 1)
    return found


def readable(data: bytes, compressed: list[bytes] = ()) -> bytes:
    """``data`` with its Java Snappy streams decompressed, and ``compressed`` blobs
    (pickled Python DoFns) inflated where zlib or bz2 can."""
    parts = [data, *snappy_streams(data)]
    for blob in compressed:
        for decompress in (zlib.decompress, bz2.decompress):
            with contextlib.suppress(Exception):
                parts.append(decompress(blob))
    return b"\n".join(parts)
