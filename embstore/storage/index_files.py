"""FAISS index files: streamed writing of the exact rows, checksums, and verified opening.

Knows nothing of SQLite. The exact rows file (layout 2) is

    bytes 0-63     header: magic, layout, dimension, rows, where FAISS's part and the norms start
    bytes 64-82    zeros
    bytes 83-      FAISS's serialisation of an ``IndexFlatIP`` holding the rows, so that its
                   rows start at byte 128, on a 64-byte boundary
    after the rows each row's float32 norm
    then (layout 3 only) the rows' sketch, from a 64-byte boundary: its basis (d x 64), each
                   row's projection (n x 64) and residual bound (n), then a 64-byte trailer
                   (magic, width, the bounds that hold for every row, a digest of the basis):
                   ``row_sketch``

so the rows are memory-mapped, aligned for BLAS, in constant time and shared between
processes through the page cache; FAISS reads its part as it is; FAISS ID i is row i.
It is written one chunk at a time, so a load never holds the whole matrix. Files of
layout 1 (FAISS's serialisation alone, rows at the unaligned byte 45) are read into
memory, as before.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import mmap
import os
import queue
import stat
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from ..lazy_modules import faiss
import numpy as np

from .. import row_sketch
from ..row_norms import row_norms
from .durable import fsync_directory
from ..errors import CatalogMismatchError, StoreError

_HASH_BLOCK = 8 << 20
ROWS_MAGIC = b"embstore rows\x00\x00\x00"  # 16 bytes
ROWS_LAYOUT = 2
SKETCHED_LAYOUT = 3  # layout 2 and the rows' sketch after the norms
HEADER = struct.Struct("<16sIIQQQQ8s")  # magic, layout, dimension, rows, FAISS offset, norms offset, sketch offset, reserved
SKETCH_MAGIC = b"embstore sketch\x00"
SKETCH_TRAILER = struct.Struct("<16sIfddd16s")  # magic, width, held, leak, longest, widest, basis digest: 64 bytes
FAISS_OFFSET = 83  # + FAISS's 45 header bytes = 128: the first row on a 64-byte boundary
ROWS_OFFSET = 128
FINGERPRINT_BYTES = 64 << 10  # the fingerprint hashes this much at each end of the file


def faiss_reason(exc: BaseException) -> str:
    """The useful part of a FAISS error: the system's reason where it gives one ('No space left
    on device'), else what failed, without FAISS's C++ location."""
    text = str(exc).strip()
    reason = re.search(r"\(([^()]+)\)\s*$", text)
    if reason:
        return reason.group(1)
    return text.rsplit("failed: ", 1)[-1].rsplit("Error: ", 1)[-1][:200]


def stored_width(kind: str, dimension: int) -> int:
    """The width of the rows inside a ``kind`` file.

    FAISS scans 8-bit codes with SIMD only when the width is a multiple of 8: at 400k x 50
    one sq8 query took 34 ms, against 6 ms with the rows zero-padded to 56. So sq8 pads
    when that costs at most an eighth more bytes. Zeros change no inner product.
    """
    if kind == "sq8":
        padded = -(-dimension // 8) * 8
        if 8 * padded <= 9 * dimension:
            return padded
    return dimension


@dataclass(frozen=True)
class WrittenFile:
    """What the catalog records about an index file once it is safely on disk."""

    path: Path
    rows: int
    bytes: int
    checksum: str
    fingerprint: str | None = None  # exact rows: checked at every open, in constant time
    rows_checksum: str | None = None  # a sketched rows file: the SHA-256 of its part before the sketch
    sketch_held: float | None = None  # a sketched rows file: the share of the rows its directions hold


@dataclass(frozen=True)
class ExactRows:
    """The exact rows of one file: memory-mapped (layout 2) or read into memory (layout 1)."""

    rows: np.ndarray  # (n, d) float32, read-only
    norms: np.ndarray | None  # each row's float32 norm, when the file holds them
    mapped: bool
    sketch: row_sketch.Sketch | None = None  # layout 3: the rows' sketch, mapped
    sketch_problem: str | None = None  # layout 3: why the sketch cannot be used (the rows can)


LENGTH_PROBLEM = ("has a length float32 cannot hold (it rounds to 0 or overflows), so cosine cannot rank it; "
                  "scale the vectors")


def rows_file_size(rows: int, dimension: int, sketched: bool = False) -> int:
    """The size of an exact rows file: layout 2, or ``sketched`` (layout 3)."""
    if sketched:
        return sketch_offset(rows, dimension) + 4 * row_sketch.WIDTH * (dimension + rows) + 4 * rows + \
            SKETCH_TRAILER.size
    return ROWS_OFFSET + 4 * rows * dimension + 4 * rows


def fd_checksum(fd: int, end: int | None = None) -> str | None:
    """SHA-256 of an open file read through ``fd`` (to ``end``, if given), as 'sha256:<hex>';
    None if the file ends before ``end``."""
    digest = hashlib.sha256()
    offset = 0
    while (end is None or offset < end) and \
            (block := os.pread(fd, _HASH_BLOCK if end is None else min(_HASH_BLOCK, end - offset), offset)):
        digest.update(block)
        offset += len(block)
    return "sha256:" + digest.hexdigest() if end is None or offset == end else None


def rows_part_checksum(fd: int, rows: int, dimension: int) -> str | None:
    """SHA-256 of the part of a sketched rows file before its sketch (header, rows, norms: the size
    of a layout 2 file), read through ``fd``; None if the file ends before that part does."""
    return fd_checksum(fd, rows_file_size(rows, dimension))


def rows_before_sketch_intact(fd: int, rows: int, dimension: int, expected: object) -> bool:
    """Whether a sketched rows file's part before its sketch matches ``expected`` (its record's
    ``rows_checksum``): when the whole file's SHA-256 differs, only the sketch is damaged, and
    ``repair`` (or any write of the rows) makes a new one from the intact rows, with no reload."""
    return isinstance(expected, str) and rows_part_checksum(fd, rows, dimension) == expected


def sketch_offset(rows: int, dimension: int) -> int:
    """Where a layout 3 file's sketch starts: the first 64-byte boundary after the norms."""
    return -(-rows_file_size(rows, dimension) // 64) * 64


def can_sketch(dimension: int) -> bool:
    """Whether rows of ``dimension`` can have a sketch (it must be at most half their bytes)."""
    return dimension >= row_sketch.MIN_DIMENSION


def fingerprint_of(handle: BinaryIO, size: int) -> str:
    """A hash of the first and last 64 KiB of a file: a constant-time check that an open file is
    the one written (a full SHA-256 is ``check``'s and ``verify=True``'s)."""
    digest = hashlib.sha256(struct.pack("<Q", size))
    handle.seek(0)
    digest.update(handle.read(FINGERPRINT_BYTES))
    handle.seek(max(0, size - FINGERPRINT_BYTES))
    digest.update(handle.read(FINGERPRINT_BYTES))
    return "sha256-ends:" + digest.hexdigest()[:32]


def file_checksum(path: Path) -> str:
    """SHA-256 of a file, as 'sha256:<hex>'."""
    with open(path, "rb") as handle:
        return fd_checksum(handle.fileno())


def _flat_ip_layout(dimension: int) -> tuple[bytes, bytes]:
    """FAISS's serialisation of an empty IndexFlatIP: (bytes before ntotal, bytes after it):
    'IxFI', the dimension, then two unused int64 fields, is_trained and the metric (inner
    product). Written out here so that opening a store needs no FAISS; a writer checks it
    against FAISS's own output first (``_faiss_layout_checked``)."""
    return b"IxFI" + struct.pack("<i", dimension), struct.pack("<qqBi", 1 << 20, 1 << 20, 1, 0)


@functools.lru_cache(maxsize=None)
def _faiss_layout_checked(dimension: int) -> tuple[bytes, bytes]:
    """``_flat_ip_layout``, checked against FAISS's own output for an empty and a one-row
    index, so a change in FAISS's format is caught here rather than written to disk."""
    empty = faiss.IndexFlatIP(dimension)
    blank = faiss.serialize_index(empty).tobytes()
    empty.add(np.zeros((1, dimension), dtype=np.float32))
    one = faiss.serialize_index(empty).tobytes()
    before, after = _flat_ip_layout(dimension)
    expected_one = before + struct.pack("<q", 1) + after + struct.pack("<Q", dimension) + bytes(4 * dimension)
    if blank != before + struct.pack("<q", 0) + after + struct.pack("<Q", 0) or one != expected_one:
        raise RuntimeError("this FAISS version serialises IndexFlatIP differently; embstore cannot stream it")
    return before, after


class FlatIndexWriter:
    """Write rows into an exact rows file (layout 2) chunk by chunk, then sync it.

    The file is written at ``tmp_path``; ``finish`` appends the norms, fills in the row
    count, fsyncs and renames it to ``final_path``. ``abort`` removes the temporary file.
    Writes happen on a background thread (at most ``_QUEUED_CHUNKS`` chunks wait), so the
    disk works while the caller parses the next chunk; a failed write is raised by the next call.

    With ``expected_rows`` (a word2vec header's count, say), that thread also feeds the rows to
    the file's SHA-256 as they are written, starting from the header the file will have with
    that many rows. When the count comes out as expected, ``finish`` need not read the file
    back for its checksum; otherwise it does.
    """

    _QUEUED_CHUNKS = 2

    def __init__(self, tmp_path: Path, final_path: Path, dimension: int, expected_rows: int | None = None,
                 sketch: bool = False):
        """``sketch``: also write the rows' sketch (layout 3; ``can_sketch`` dimensions only)."""
        self.tmp_path = tmp_path
        self.final_path = final_path
        self.dimension = dimension
        self.sketch = sketch and can_sketch(dimension)
        self.sketch_held = 0.0
        self.rows = 0
        self._before, self._after = _faiss_layout_checked(dimension)
        self._norms: list[np.ndarray] = []
        if expected_rows is not None and not 0 < expected_rows < (1 << 60) // (4 * (dimension + 1)):
            expected_rows = None  # a header's claim no file can hold: never matched, so not hashed ahead
        self._expected_rows = expected_rows
        self._digest = hashlib.sha256(self._prefix(expected_rows)) if expected_rows else None
        self._handle = open(tmp_path, "wb")
        self._handle.write(self._prefix(0))
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=self._QUEUED_CHUNKS)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._write_queued, name="embstore-index-writer", daemon=True)
        self._thread.start()

    def _prefix(self, rows: int) -> bytes:
        """The file's first ``ROWS_OFFSET`` bytes for ``rows`` rows: our header, then FAISS's."""
        return _header(self.dimension, rows, self.sketch and rows > 0) + self._before + struct.pack("<q", rows) + \
            self._after + struct.pack("<Q", rows * self.dimension)

    def _write_queued(self) -> None:
        while (rows := self._queue.get()) is not None:
            if self._failure is None:
                try:
                    data = memoryview(rows).cast("B")
                    self._handle.write(data)
                    if self._digest is not None:
                        self._digest.update(data)  # hashlib lets the caller's thread run meanwhile
                except BaseException as exc:  # reported to the caller by the next add or finish
                    self._failure = exc

    def _raise_failure(self) -> None:
        if isinstance(self._failure, OSError):  # a full disk, say: name the file
            raise StoreError(f"cannot write {self.final_path}: {self._failure.strerror or self._failure}") from None
        if self._failure is not None:
            raise self._failure

    def add(self, unit_rows: np.ndarray, norms: np.ndarray | None = None) -> None:
        """Append rows; ``norms``, if given, must be their ``row_norms`` (computed by the caller already)."""
        self._raise_failure()
        rows = np.ascontiguousarray(unit_rows, dtype="<f4")  # written later: callers must not change it
        if rows.ndim != 2 or rows.shape[1] != self.dimension:
            raise ValueError(f"expected rows of dimension {self.dimension}, got shape {rows.shape}")
        if not rows.size:  # a chunk whose every word was a duplicate
            return
        if norms is None:
            norms = row_norms(rows)
        elif len(norms) != rows.shape[0]:
            raise ValueError(f"expected {rows.shape[0]:,} norms, one a row, got {len(norms):,}")
        self._norms.append(np.asarray(norms, dtype="<f4"))  # gensim's norms, row by row
        self._queue.put(rows)
        self.rows += rows.shape[0]

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> WrittenFile:
        self._stop()
        self._raise_failure()
        handle = self._handle
        digest = self._digest if self.rows == self._expected_rows else None
        try:
            for norms in self._norms:
                handle.write(memoryview(norms).cast("B"))
                if digest is not None:
                    digest.update(memoryview(norms).cast("B"))
            rows_digest = digest.copy() if digest is not None else None  # of the part before the sketch
            if self.sketch and self.rows:
                self._write_sketch(handle, digest)
            handle.seek(0)
            handle.write(self._prefix(self.rows))
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        except OSError as exc:
            raise StoreError(f"cannot write {self.final_path}: {exc.strerror or exc}") from None
        checksum = "sha256:" + digest.hexdigest() if digest is not None else file_checksum(self.tmp_path)
        size = self.tmp_path.stat().st_size
        with open(self.tmp_path, "rb") as written:
            fingerprint = fingerprint_of(written, size)
            rows_checksum = None
            if self.sketch and self.rows:
                rows_checksum = "sha256:" + rows_digest.hexdigest() if rows_digest is not None else \
                    rows_part_checksum(written.fileno(), self.rows, self.dimension)
        os.replace(self.tmp_path, self.final_path)
        fsync_directory(self.final_path.parent)
        return WrittenFile(self.final_path, self.rows, size, checksum, fingerprint, rows_checksum,
                           self.sketch_held if rows_checksum is not None else None)

    def _write_sketch(self, handle: BinaryIO, digest) -> None:
        """Append the rows' sketch (``row_sketch``), reading the rows back from the page cache."""
        def write(data: np.ndarray) -> None:
            view = memoryview(np.ascontiguousarray(data, dtype="<f4")).cast("B")
            handle.write(view)
            if digest is not None:
                digest.update(view)

        rows, dimension = self.rows, self.dimension
        norms = np.concatenate(self._norms)
        start = sketch_offset(rows, dimension)
        handle.flush()
        write(np.zeros((start - handle.tell()) // 4, dtype="<f4"))  # to the 64-byte boundary (a multiple of 4)
        row_bytes = 4 * dimension
        buffer = np.empty((min(rows, ROW_CHUNK), dimension), dtype="<f4")  # read, not mapped: no 3.6 GB of RSS
        with open(self.tmp_path, "rb", buffering=0) as written:
            def read(first: int, count: int, stride: int = 1) -> np.ndarray:
                block = buffer[:count]
                parts = [memoryview(block).cast("B")] if stride == 1 else [memoryview(row).cast("B") for row in block]
                for i, part in enumerate(parts):  # one read, or a sample's rows one at a time, far apart
                    if os.preadv(written.fileno(), [part], ROWS_OFFSET + (first + i * stride) * row_bytes) != len(part):
                        raise StoreError(f"cannot read back {self.tmp_path} while writing its sketch")
                return block

            step = max(1, rows // row_sketch.SAMPLE_ROWS)
            taken = min(-(-rows // step), row_sketch.SAMPLE_ROWS, len(buffer))
            sample = read(0, taken, step) / norms[: taken * step: step, None]
            basis = row_sketch.directions(sample)
            self.sketch_held = row_sketch.held_share(sample, basis)
            orthogonality, column = row_sketch.basis_error(basis)
            write(basis)
            residuals, leak, longest, widest = [], 0.0, 0.0, 0.0
            for first in range(0, rows, ROW_CHUNK):
                count = min(ROW_CHUNK, rows - first)
                projections, block_residuals, (block_leak, block_longest, block_widest) = \
                    row_sketch.sketch_block(read(first, count), norms[first: first + count], basis, orthogonality,
                                            column)
                write(projections)
                residuals.append(block_residuals)
                leak, longest, widest = max(leak, block_leak), max(longest, block_longest), max(widest, block_widest)
        for block in residuals:
            write(block)
        trailer = SKETCH_TRAILER.pack(SKETCH_MAGIC, row_sketch.WIDTH, self.sketch_held, leak, longest, widest,
                                      row_sketch.basis_digest(basis))
        handle.write(trailer)
        if digest is not None:
            digest.update(trailer)

    def abort(self) -> None:
        try:
            self._stop()
            try:
                self._handle.close()  # flushes its buffer: on a full disk that fails again
            except OSError:
                pass  # the error being handled is the one to report; the file goes anyway
        finally:
            self.tmp_path.unlink(missing_ok=True)


ROW_CHUNK = 65_536  # rows per write when a matrix already in memory (or mapped) is written out


def write_rows_file(rows: np.ndarray, tmp_path: Path, final_path: Path, sketch: bool = False) -> WrittenFile:
    """Write ``rows`` (a matrix, or a slice of a mapped one) as an exact rows file, a chunk at a
    time; with their ``sketch`` if asked."""
    writer = FlatIndexWriter(tmp_path, final_path, rows.shape[1], expected_rows=rows.shape[0], sketch=sketch)
    try:
        for start in range(0, rows.shape[0], ROW_CHUNK):
            writer.add(rows[start: start + ROW_CHUNK])
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def _header(dimension: int, rows: int, sketched: bool = False) -> bytes:
    norms_offset = ROWS_OFFSET + 4 * rows * dimension
    layout, sketch_at = (SKETCHED_LAYOUT, sketch_offset(rows, dimension)) if sketched else (ROWS_LAYOUT, 0)
    return HEADER.pack(ROWS_MAGIC, layout, dimension, rows, FAISS_OFFSET, norms_offset, sketch_at, bytes(8)) + \
        bytes(FAISS_OFFSET - HEADER.size)


def write_index_file(index: faiss.Index, tmp_path: Path, final_path: Path) -> WrittenFile:
    """Serialise any FAISS index to ``tmp_path``, fsync, and rename it to ``final_path``."""
    try:
        try:
            faiss.write_index(index, str(tmp_path))
        except RuntimeError as exc:  # a full disk, say
            raise StoreError(f"cannot write {final_path}: {faiss_reason(exc)}") from None
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        checksum = file_checksum(tmp_path)
        size = tmp_path.stat().st_size
        os.replace(tmp_path, final_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    fsync_directory(final_path.parent)
    return WrittenFile(final_path, index.ntotal, size, checksum)


def open_index_file(path: Path, *, rows: int, size: int, checksum: str | None, dimension: int,
                    memory_map: bool = False, source: str | None = None) -> faiss.Index:
    """Open an index file after checking it against what the catalog recorded.

    The file is opened once and everything reads that open file, so a writer that
    replaces and deletes it meanwhile cannot pull it away between the check and the
    read. The size is always checked and the checksum when given, both before FAISS
    parses a byte. Raises CatalogMismatchError on any disagreement.

    ``memory_map`` asks FAISS to map the file (zero-copy, IO_FLAG_MMAP_IFC) instead of
    reading it: opening a 400k HNSW index then takes ~50 ms instead of ~200 ms, and
    processes share its pages. A mapped index cannot take new rows (FAISS aborts the
    process), so callers that add rows open a read copy. FAISS's older IO_FLAG_MMAP made
    IVF searches ~10x slower (its on-disk lists start prefetch threads per query). The
    exact rows are read, not mapped: FAISS's flat format puts them at byte 45, and numpy's
    BLAS runs ~10x slower on a float32 array that is not 4-byte aligned.
    """
    with _open_sized(path, size, source) as handle:
        if checksum is not None:
            digest = hashlib.sha256()
            while block := handle.read(_HASH_BLOCK):
                digest.update(block)
            _check_digest(path, digest, checksum)
        same_file = f"/proc/self/fd/{handle.fileno()}"
        source = same_file if os.path.exists(same_file) else str(path)
        try:  # FAISS reports a damaged file as RuntimeError, an absurd size in it as MemoryError
            index = None
            if memory_map:
                try:
                    index = faiss.read_index(source, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
                except (RuntimeError, MemoryError):
                    index = None
            if index is None:
                index = faiss.read_index(source)
        except (RuntimeError, MemoryError) as exc:
            raise CatalogMismatchError(f"index file {path.name} cannot be read: {faiss_reason(exc)}") from None
    if index.ntotal != rows or index.d != dimension:
        raise CatalogMismatchError(
            f"index file {path.name} holds {index.ntotal:,} rows of dimension {index.d}; "
            f"the catalog expects {rows:,} of dimension {dimension}"
        )
    return index


def open_exact_rows(path: Path, *, rows: int, size: int, checksum: str | None, dimension: int,
                    source: str | None = None, fingerprint: str | None = None) -> ExactRows:
    """The rows of an exact rows file, checked against what the catalog recorded.

    Layout 2 is memory-mapped: opening checks, in constant time, the size, the header (magic,
    layout, dimension, rows, offsets), FAISS's header bytes and, when given, the fingerprint
    of the file's ends; with ``checksum`` it also reads the whole file for its SHA-256 (that is
    ``check``'s and ``verify=True``'s work). A layout 1 file is read into memory in one pass
    that computes its SHA-256 when asked. Anything else goes through ``open_index_file`` and
    its checks and messages. Raises CatalogMismatchError.
    """
    with _open_sized(path, size, source) as handle:
        head = handle.read(ROWS_OFFSET)
        if head[:16] == ROWS_MAGIC:
            return _map_rows(path, handle, head, rows=rows, size=size, checksum=checksum, dimension=dimension,
                             fingerprint=fingerprint)
    before, after = _flat_ip_layout(dimension)
    header = before + struct.pack("<q", rows) + after + struct.pack("<Q", rows * dimension)
    if size == len(header) + 4 * rows * dimension:  # else the catalog is wrong: FAISS's path says how
        with _open_sized(path, size, source) as handle:
            if handle.read(len(header)) == header:
                out = np.empty((rows, dimension), dtype=np.float32)
                body = memoryview(out).cast("B")
                digest = hashlib.sha256(header)
                if not _read_all(handle, body, digest if checksum is not None else None):
                    raise CatalogMismatchError(f"index file {path.name} ended early while it was read")
                if checksum is not None:
                    _check_digest(path, digest, checksum)
                out.flags.writeable = False
                return ExactRows(out, None, mapped=False)
    index = open_index_file(path, rows=rows, size=size, checksum=checksum, dimension=dimension, source=source)
    out = flat_rows(index).copy()  # a copy: the view dies with ``index``
    out.flags.writeable = False
    return ExactRows(out, None, mapped=False)


def _map_rows(path: Path, handle: BinaryIO, head: bytes, *, rows: int, size: int, checksum: str | None,
              dimension: int, fingerprint: str | None) -> ExactRows:
    if len(head) < ROWS_OFFSET:
        raise CatalogMismatchError(f"index file {path.name} is too short to hold its header")
    magic, layout, file_dimension, file_rows, faiss_offset, norms_offset, sketch_at, _ = HEADER.unpack_from(head)
    if layout not in (ROWS_LAYOUT, SKETCHED_LAYOUT):
        raise CatalogMismatchError(f"index file {path.name} has rows layout {layout}; this embstore reads "
                                   f"layouts {ROWS_LAYOUT} and {SKETCHED_LAYOUT} (a newer embstore wrote it?)")
    sketched = layout == SKETCHED_LAYOUT
    if (file_rows, file_dimension) != (rows, dimension):
        raise CatalogMismatchError(f"index file {path.name} holds {file_rows:,} rows of dimension {file_dimension}; "
                                   f"the catalog expects {rows:,} of dimension {dimension}")
    before, after = _flat_ip_layout(dimension)
    faiss_head = before + struct.pack("<q", rows) + after + struct.pack("<Q", rows * dimension)
    if (faiss_offset, norms_offset, sketch_at, size) != (
            FAISS_OFFSET, ROWS_OFFSET + 4 * rows * dimension, sketch_offset(rows, dimension) if sketched else 0,
            rows_file_size(rows, dimension, sketched)) or sketched and not can_sketch(dimension) \
            or head[FAISS_OFFSET:ROWS_OFFSET] != faiss_head:
        raise CatalogMismatchError(f"index file {path.name} does not have the layout its header describes")
    if fingerprint is not None and fingerprint_of(handle, size) != fingerprint:
        raise CatalogMismatchError(f"index file {path.name} is not the file the catalog recorded (its ends differ)")
    try:
        mapped = mmap.mmap(handle.fileno(), size, prot=mmap.PROT_READ)
    except (OSError, ValueError) as exc:
        raise CatalogMismatchError(f"index file {path.name} cannot be mapped: {exc}") from None
    if checksum is not None:
        check_mapped_digest(path, mapped, size, checksum)
    matrix = np.ndarray((rows, dimension), dtype="<f4", buffer=mapped, offset=ROWS_OFFSET)
    norms = np.ndarray((rows,), dtype="<f4", buffer=mapped, offset=norms_offset)
    sketch, problem = _mapped_sketch(mapped, rows, dimension) if sketched else (None, None)
    return ExactRows(matrix, norms, mapped=True, sketch=sketch, sketch_problem=problem)


def _mapped_sketch(mapped: mmap.mmap, rows: int, dimension: int) -> tuple[row_sketch.Sketch | None, str | None]:
    """The sketch of a layout 3 file (its size and offsets already checked), reading only its trailer
    and its basis (d x 64: its digest is checked): (sketch, None), or (None, why it cannot be used)."""
    width = row_sketch.WIDTH
    start = sketch_offset(rows, dimension)
    end = rows_file_size(rows, dimension, True) - SKETCH_TRAILER.size
    magic, file_width, held, leak, longest, widest, digest = SKETCH_TRAILER.unpack(mapped[end: end + SKETCH_TRAILER.size])
    if magic != SKETCH_MAGIC or file_width != width or not all(
            0 <= value < 1e6 for value in (leak, longest, widest)):  # (NaN fails too)
        return None, "its trailer is damaged"
    basis = np.ndarray((dimension, width), dtype="<f4", buffer=mapped, offset=start)
    if row_sketch.basis_digest(basis) != digest:
        return None, "its basis does not match the digest in its trailer"
    projections = np.ndarray((rows, width), dtype="<f4", buffer=mapped, offset=start + 4 * width * dimension)
    residuals = np.ndarray((rows,), dtype="<f4", buffer=mapped, offset=start + 4 * width * (dimension + rows))
    held = held if 0 <= held <= 1 else 0.0  # (a figure for people only: damage here changes no answer)
    checked = np.zeros(-(-rows // row_sketch.BOUND_BLOCK), dtype=bool)  # (per process: see row_sketch.bounds)
    return row_sketch.Sketch(basis, projections, residuals, leak, longest, widest, held, checked), None


def faiss_part(path: Path) -> faiss.Index:
    """The FAISS index inside an exact rows file, read by FAISS itself (a copy in memory)."""
    data = np.fromfile(path, dtype=np.uint8)
    if data[:16].tobytes() == ROWS_MAGIC:
        data = data[FAISS_OFFSET: ROWS_OFFSET + 4 * HEADER.unpack_from(data[:64].tobytes())[3] *
                    HEADER.unpack_from(data[:64].tobytes())[2]]
    return faiss.deserialize_index(data)


def _read_all(handle: BinaryIO, body: memoryview, digest=None) -> bool:
    """Fill ``body`` from ``handle``, feeding ``digest`` as it goes; False if the file ends first.

    With a digest, a second thread reads the next blocks while this one hashes the last:
    both release the GIL, and filling new memory (page faults) costs about as much as
    SHA-256, so the two overlap (1M x 300 rows: 2.3 -> 1.3 s).
    """
    blocks: queue.Queue = queue.Queue(maxsize=4)

    def read() -> None:
        done = 0
        try:
            while done < body.nbytes:
                got = handle.readinto(body[done: done + _HASH_BLOCK])
                if not got:
                    break
                if digest is not None:
                    blocks.put(body[done: done + got])
                done += got
        except BaseException as exc:
            blocks.put(exc)
        blocks.put(done)

    if digest is None:
        read()
        item = blocks.get()
    else:
        reader = threading.Thread(target=read, name="embstore-index-reader", daemon=True)
        reader.start()
        while isinstance(item := blocks.get(), memoryview):
            digest.update(item)
        reader.join()
    if isinstance(item, BaseException):
        raise item
    return item == body.nbytes


def open_regular(path: Path) -> int:
    """A read-only descriptor on ``path`` if it is a regular file: never through a symbolic link,
    never blocking on a FIFO or a device (CatalogMismatchError otherwise)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CatalogMismatchError(f"index file {path} is missing") from None
    except OSError as exc:
        what = "a symbolic link, which embstore never follows" if exc.errno == errno.ELOOP else exc.strerror
        raise CatalogMismatchError(f"index file {path} cannot be read: it is {what}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CatalogMismatchError(f"index file {path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


@contextlib.contextmanager
def _open_sized(path: Path, size: int, source: str | None = None) -> Iterator[BinaryIO]:
    """``path`` (read through ``source``, a held descriptor's /proc path, when given) opened for
    reading, after checking it is a regular file of the recorded size."""
    try:
        handle = open(source, "rb") if source else os.fdopen(open_regular(path), "rb")
    except FileNotFoundError:
        raise CatalogMismatchError(f"index file {path} is missing") from None
    except OSError as exc:
        raise CatalogMismatchError(f"index file {path} cannot be read: {exc.strerror}") from None
    with handle:
        actual_size = os.fstat(handle.fileno()).st_size
        if actual_size != size:
            raise CatalogMismatchError(
                f"index file {path.name} is {actual_size:,} bytes but the catalog recorded {size:,}"
            )
        yield handle


def _check_digest(path: Path, digest, checksum: str, what: str = "index file") -> None:
    if "sha256:" + digest.hexdigest() != checksum:
        raise CatalogMismatchError(f"{what} {path.name} does not match the checksum in the catalog")


def check_mapped_digest(path: Path, mapped: mmap.mmap, size: int, checksum: str, what: str = "index file") -> None:
    """CatalogMismatchError unless the SHA-256 of the first ``size`` bytes of ``mapped`` is ``checksum``."""
    digest = hashlib.sha256()
    view = memoryview(mapped)
    for start in range(0, size, _HASH_BLOCK):
        digest.update(view[start: start + _HASH_BLOCK])
    view.release()
    _check_digest(path, digest, checksum, what)


def flat_rows(index: faiss.Index) -> np.ndarray:
    """A read-only (ntotal, d) float32 view of a flat index's rows, without copying."""
    flat = faiss.downcast_index(index)
    if not isinstance(flat, faiss.IndexFlat):
        raise TypeError("only flat indexes expose their rows")
    count = flat.ntotal * flat.d
    if count == 0:
        return np.zeros((0, flat.d), dtype=np.float32)
    view = faiss.rev_swig_ptr(flat.get_xb(), count).reshape(flat.ntotal, flat.d)
    view.flags.writeable = False
    return view
