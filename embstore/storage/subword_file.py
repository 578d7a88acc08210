"""The n-gram bucket matrix of a fastText store, in a file of its own beside the catalog.

Layout: a 64-byte header (magic, layout, dimension, rows), then the rows as float32, so the
rows start on a 64-byte boundary and are memory-mapped. As with the exact rows, opening
checks in constant time (size, header, the fingerprint of the file's ends); the SHA-256 is
computed when the file is written and checked by ``check`` and ``verify=True``.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CatalogMismatchError, StoreError
from .durable import fsync_directory
from .index_files import check_mapped_digest, fingerprint_of, open_regular

MAGIC = b"embstore ngrams\x00"  # 16 bytes
LAYOUT = 1
HEADER = struct.Struct("<16sIIQ32s")  # magic, layout, dimension, rows, reserved: 64 bytes
OFFSET = HEADER.size
_COPY_ROWS_BYTES = 16 << 20


@dataclass(frozen=True)
class WrittenSubwords:
    path: Path
    rows: int
    bytes: int
    checksum: str
    fingerprint: str


def subword_file_size(rows: int, dimension: int) -> int:
    return OFFSET + 4 * rows * dimension


def write_subword_file(buckets: np.ndarray, tmp_path: Path, final_path: Path, check_interrupt=None) -> WrittenSubwords:
    """Copy ``buckets`` (rows x dimension float32, e.g. mapped from a model file) into a new file
    at ``tmp_path`` (already created and claimed by the caller), sync it and rename it to
    ``final_path``. The SHA-256 is computed as the rows go by."""
    rows, dimension = buckets.shape
    digest = hashlib.sha256()
    header = HEADER.pack(MAGIC, LAYOUT, dimension, rows, bytes(32))
    step = max(1, _COPY_ROWS_BYTES // max(4 * dimension, 1))
    try:
        with open(tmp_path, "wb") as handle:
            handle.write(header)
            digest.update(header)
            for start in range(0, rows, step):
                block = np.ascontiguousarray(buckets[start: start + step], dtype="<f4")
                data = memoryview(block).cast("B")
                handle.write(data)
                digest.update(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise StoreError(f"cannot write {final_path}: {exc.strerror or exc}") from None
    size = subword_file_size(rows, dimension)
    with open(tmp_path, "rb") as written:
        fingerprint = fingerprint_of(written, size)
    os.replace(tmp_path, final_path)
    fsync_directory(final_path.parent)
    return WrittenSubwords(final_path, rows, size, "sha256:" + digest.hexdigest(), fingerprint)


def open_subword_rows(path: Path, fd: int, *, rows: int, dimension: int, size: int, fingerprint: str | None,
                      checksum: str | None = None) -> np.ndarray:
    """The bucket rows of the file open at ``fd``, memory-mapped read-only, after the
    constant-time checks (and the SHA-256 with ``checksum``). CatalogMismatchError names what differs."""
    actual = os.fstat(fd).st_size
    if actual != size or size != subword_file_size(rows, dimension):
        raise CatalogMismatchError(f"n-gram file {path.name} is {actual:,} bytes but the catalog recorded {size:,} "
                                   f"({rows:,} rows of dimension {dimension})")
    with os.fdopen(os.dup(fd), "rb") as handle:
        head = handle.read(OFFSET)
        if len(head) < OFFSET:
            raise CatalogMismatchError(f"n-gram file {path.name} is too short to hold its header")
        magic, layout, file_dimension, file_rows, _ = HEADER.unpack(head)
        if magic != MAGIC or layout != LAYOUT or (file_rows, file_dimension) != (rows, dimension):
            raise CatalogMismatchError(f"n-gram file {path.name} does not have the header the catalog expects "
                                       f"({rows:,} rows of dimension {dimension}, layout {LAYOUT})")
        if fingerprint is not None and fingerprint_of(handle, size) != fingerprint:
            raise CatalogMismatchError(f"n-gram file {path.name} is not the file the catalog recorded (its ends differ)")
    try:
        mapped = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    except (OSError, ValueError) as exc:
        raise CatalogMismatchError(f"n-gram file {path.name} cannot be mapped: {exc}") from None
    if checksum is not None:
        check_mapped_digest(path, mapped, size, checksum, "n-gram file")
    return np.ndarray((rows, dimension), dtype="<f4", buffer=mapped, offset=OFFSET)


def open_subword_file(path: Path) -> int:
    """A read-only descriptor on the n-gram file (a regular file, never through a link)."""
    try:
        return open_regular(path)
    except CatalogMismatchError as exc:
        raise CatalogMismatchError(str(exc).replace("index file", "n-gram file")) from None

