"""One generation of a store, opened and held: the catalog's read snapshot, the exact rows,
and an open descriptor on every index file that generation names.

Holding the descriptors from the moment the snapshot is taken is what lets a reader work
on while writers commit: a writer never changes a file in place, and a file it removes
after its commit stays readable through the descriptors that readers hold. Opening
checks that catalog and files agree; approximate indexes are read (memory-mapped) and
their SHA-256 checked when first used.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..lazy_modules import faiss
import numpy as np

from ..errors import CatalogDamagedError, CatalogMismatchError, StoreBusyError, StoreNotFoundError
from .catalog import Catalog
from .catalog_indexes import IndexFileRecord, parse_record
from .catalog_subwords import parse_subword_record
from .file_names import index_file_path, subword_file_path
from .. import row_sketch
from .index_files import (fd_checksum, open_exact_rows, open_index_file, open_regular, rows_before_sketch_intact,
                          stored_width)
from .subword_file import open_subword_rows
from ..subwords.compose import SubwordVectors
from .schema import UNIT_ROWS
from .shard_files import ShardLayout
from .store_meta import EXACT, RAW_ROWS, StoreMeta

OPEN_ATTEMPTS = 5


class HeldFile:
    """An index file opened once, read later through its descriptor (even after a writer removed it)."""

    def __init__(self, path: Path, record: IndexFileRecord, fd: int):
        self.path = path
        self.record = record
        self.fd = fd
        self.opened: faiss.Index | None = None

    @classmethod
    def open(cls, path: Path, record: IndexFileRecord) -> "HeldFile":
        try:
            return cls(path, record, open_regular(path))
        except CatalogMismatchError:
            if not os.path.lexists(path):  # removed by a writer that committed after our snapshot was taken
                raise _Vanished(f"index file {path} is missing") from None
            raise

    def shared(self) -> "HeldFile":
        """Another holder of the same open file (for the next generation, when the record is unchanged)."""
        copy = HeldFile(self.path, self.record, os.dup(self.fd))
        copy.opened = self.opened
        return copy

    @property
    def source(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.opened = None


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path`` (after links), or None."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


class _Vanished(CatalogMismatchError):
    """A file the snapshot names is gone: a writer may have committed meanwhile."""


class StoreFiles:
    """An opened, checked generation of the store at ``path``. Use ``open``; ``reopen`` moves to
    the newest generation, reusing what has not changed."""

    def __init__(self, path: Path, catalog: Catalog, meta: StoreMeta, held: dict[str, HeldFile],
                 rows: np.ndarray | None, storage_index: faiss.Index | None, size: int,
                 norms: np.ndarray | None = None, sketch: row_sketch.Sketch | None = None):
        self.path = path
        self.catalog = catalog
        self.meta = meta
        self.held = held
        self.rows = rows  # the exact rows (read-only, mapped), unless the store keeps only compressed codes
        self.norms = norms  # their float32 norms, when the rows file holds them
        self.sketch = sketch  # the rows' sketch (layout 3 files), for single exact queries
        self.sketch_problem: str | None = None  # why a layout 3 file's sketch cannot be used
        self.storage_index = storage_index  # the sq8 index holding the rows, for --storage sq8 stores
        self.size = size
        self.broken: dict[str, str] = {}  # approximate indexes that cannot be used, and why
        self.verify = False  # whether files are checked against their SHA-256 when opened
        self.subword_file: HeldFile | None = None  # a fastText store's n-gram rows
        self.subword_problem: str | None = None  # why they cannot be used, if they cannot
        self._subword_rows: np.ndarray | None = None
        self._probe: Catalog | None = None  # see newest_generation
        self.identity: tuple[int, int] | None = None  # the catalog file's (device, inode) when opened
        self._probe_identity: tuple[int, int] | None = None

    @property
    def records(self) -> dict[str, IndexFileRecord]:
        return {kind: held.record for kind, held in self.held.items()}

    @property
    def dimension(self) -> int:
        return self.meta.dimension

    @property
    def generation(self) -> int:
        return self.meta.generation

    def is_current(self, kind: str) -> bool:
        """Whether the ``kind`` file holds exactly this generation's rows (else it is stale)."""
        held = self.held.get(kind)
        return held is not None and held.record.rows_generation == self.meta.rows_generation \
            and held.record.rows == self.size

    def index(self, kind: str, *, verify: bool | None = None) -> faiss.Index:
        """The ``kind`` file as a FAISS index, memory-mapped and checked (size, rows; the SHA-256
        when the store was opened with ``verify``) on first use."""
        verify = self.verify if verify is None else verify
        held = self.held[kind]
        if held.opened is None:
            record = held.record
            held.opened = open_index_file(held.path, rows=record.rows, size=record.bytes,
                                          checksum=record.checksum if verify else None,
                                          dimension=stored_width(kind, self.dimension), memory_map=True,
                                          source=held.source)
        return held.opened

    def private_index(self, kind: str) -> faiss.Index:
        """A private, growable copy of the ``kind`` index (a mapped one cannot take rows)."""
        held = self.held[kind]
        record = held.record
        return open_index_file(held.path, rows=record.rows, size=record.bytes, checksum=record.checksum,
                               dimension=stored_width(kind, self.dimension), source=held.source)

    @classmethod
    def open(cls, path: Path, *, verify: bool = False, readonly: bool = False) -> "StoreFiles":
        """Open the store at ``path``: CatalogMismatchError (with what to do) if catalog and files
        disagree, StoreNotFoundError if there is none."""
        if not os.path.lexists(path):
            raise StoreNotFoundError(f"no store at {path}; create one with: embstore load FILE --db {path}")
        identity = _file_identity(path)  # before opening: a file put in place meanwhile shows as a change
        files = cls._open(path, Catalog.open(path, readonly=readonly), None, verify)
        files.identity = identity
        return files

    def is_newest(self) -> bool:
        """Whether this is still the newest generation of the catalog file at the path (False
        also when another catalog file was put in its place, whatever its generation)."""
        return self.identity == _file_identity(self.path) and self.newest_generation() == self.generation

    def newest_generation(self) -> int:
        """The generation last committed, read on a connection of its own (this one keeps its
        snapshot). The probe connection is kept for the next call (a server asks before every
        request: ~20 us instead of ~0.3 ms to open one), and opened again when the catalog
        file at the path is another file (a store loaded in its place) or is an in-memory
        copy that cannot see later commits."""
        identity = _file_identity(self.path)
        probe = self._probe
        if probe is None or identity is None or identity != self._probe_identity or not probe.live:
            self.close_probe()
            probe = Catalog.open(self.path, readonly=self.catalog.readonly, upgrade=False)
            if not probe.live or identity is None:
                try:
                    return probe.generation()
                finally:
                    probe.close()
            self._probe, self._probe_identity = probe, identity
        return probe.generation()

    def close_probe(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    def reopen(self) -> "StoreFiles":
        """The newest generation, opened on a connection of its own and reusing what has not
        changed; then this one is closed. If opening fails, this one is left as it was."""
        identity = _file_identity(self.path)
        fresh = StoreFiles._open(self.path, Catalog.open(self.path, readonly=self.catalog.readonly), self,
                                 self.verify)
        fresh.identity = identity
        self.close()
        return fresh

    @classmethod
    def _open(cls, path: Path, catalog: Catalog, previous: "StoreFiles | None", verify: bool) -> "StoreFiles":
        """One generation on ``catalog`` (closed if opening fails), reusing ``previous``'s unchanged parts."""
        try:
            return cls._open_generation(path, catalog, previous, verify)
        except CatalogMismatchError as exc:
            catalog.close()
            raise CatalogMismatchError(
                f"{path}: catalog and index disagree: {exc}. To repair: 'embstore repair --db {path}'") from None
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            catalog.close()
            raise CatalogDamagedError(f"{path}: the catalog cannot be read ({exc}). To repair: "
                                      f"'embstore repair --db {path}'") from None
        except BaseException:
            catalog.close()
            raise

    @classmethod
    def _open_generation(cls, path: Path, catalog: Catalog, previous: "StoreFiles | None",
                         verify: bool) -> "StoreFiles":
        for attempt in range(OPEN_ATTEMPTS):
            catalog.release_snapshot()
            catalog.hold_snapshot()
            meta = StoreMeta.parse(catalog.meta(), path)
            if meta.get("row_values") not in (RAW_ROWS, UNIT_ROWS) and catalog.has_counts():
                raise CatalogMismatchError(  # queries would not know whether to divide by the norms
                    f"meta.row_values is {str(meta.get('row_values'))[:40]!r}, not {RAW_ROWS!r} or {UNIT_ROWS!r}")
            count, low, high = catalog.word_bounds()
            held, broken, vanished = cls._hold_files(path, catalog, meta, previous)
            subwords, subword_problem, subwords_vanished = cls._hold_subwords(path, catalog, meta, previous)
            if not vanished and not subwords_vanished:
                break
            catalog.release_snapshot()
            catalog.hold_snapshot()
            unchanged = catalog.generation() == meta.generation  # no writer replaced them: they are damaged
            if unchanged and meta.storage not in broken:
                break  # the same generation, so this snapshot holds the content read
            for file in list(held.values()) + ([subwords] if subwords else []):
                file.close()
            if unchanged:
                raise CatalogMismatchError(broken[meta.storage])
            if attempt == OPEN_ATTEMPTS - 1:
                raise StoreBusyError(f"store {path} changed {OPEN_ATTEMPTS} times while it was being opened; "
                                     "try again")
        try:
            files = cls._read_rows(path, catalog, meta, held, (count, low, high), previous, verify)
            files.verify = verify
            files.broken = {kind: why for kind, why in broken.items() if kind != meta.storage}
            files.subword_file, files.subword_problem = subwords, subword_problem
            if previous is not None and subwords is not None and previous.subword_file is not None \
                    and previous.subword_file.record == subwords.record:
                files._subword_rows = previous._subword_rows
            return files
        except BaseException:
            for file in list(held.values()) + ([subwords] if subwords else []):
                file.close()
            raise

    @staticmethod
    def _hold_files(path: Path, catalog: Catalog, meta: StoreMeta, previous: "StoreFiles | None"
                    ) -> tuple[dict[str, HeldFile], dict[str, str], bool]:
        """Open every index file the snapshot names: (held files, {kind: why it cannot be used},
        whether a file was missing). An approximate index that is damaged is set aside (queries
        answer from the exact rows, with a note); damage to the rows themselves is raised."""
        held: dict[str, HeldFile] = {}
        broken: dict[str, str] = {}
        vanished = False
        try:
            for row in catalog.index_file_rows():
                kind = row[0]
                try:
                    record = parse_record(row)
                    old = previous.held.get(kind) if previous else None
                    held[kind] = old.shared() if old is not None and old.record == record else \
                        HeldFile.open(index_file_path(path, kind, record.file), record)
                except _Vanished as exc:
                    vanished, broken[kind] = True, str(exc)
                except CatalogMismatchError as exc:
                    if kind == meta.storage:
                        raise
                    broken[kind] = str(exc)
        except BaseException:
            for file in held.values():
                file.close()
            raise
        return held, broken, vanished

    @staticmethod
    def _hold_subwords(path: Path, catalog: Catalog, meta: StoreMeta, previous: "StoreFiles | None"
                       ) -> tuple[HeldFile | None, str | None, bool]:
        """The n-gram file the snapshot names, opened: (held file or None, why it cannot be used,
        whether it was missing). Damage here never stops the store: vocabulary words are answered,
        and a word outside the vocabulary gets the problem as its error."""
        row = catalog.subword_row()
        if row is None:
            return None, None, False
        try:
            record = parse_subword_record(row, meta.dimension)
            old = previous.subword_file if previous else None
            if old is not None and old.record == record:
                return old.shared(), None, False
            return HeldFile.open(subword_file_path(path, record.file), record), None, False
        except _Vanished as exc:
            return None, str(exc).replace("index file", "n-gram file"), True
        except CatalogMismatchError as exc:
            return None, str(exc).replace("index file", "n-gram file"), False

    def subword_rows(self) -> np.ndarray | None:
        """The n-gram bucket rows (mapped and checked on first use), or None if the store has none.
        CatalogMismatchError says why they cannot be used."""
        if self.subword_problem is not None:
            raise CatalogMismatchError(f"{self.subword_problem}; run 'embstore check --db {self.path}'")
        if self.subword_file is None:
            return None
        if self._subword_rows is None:
            held, record = self.subword_file, self.subword_file.record
            try:
                self._subword_rows = open_subword_rows(held.path, held.fd, rows=record.rows, dimension=record.dimension,
                                                       size=record.bytes, fingerprint=record.fingerprint,
                                                       checksum=record.checksum if self.verify else None)
            except CatalogMismatchError as exc:
                self.subword_problem = str(exc)
                raise CatalogMismatchError(f"{exc}; run 'embstore check --db {self.path}'") from None
        return self._subword_rows

    def subword_vectors(self) -> SubwordVectors | None:
        """What builds a vector for a word outside the vocabulary, or None if the store has no n-grams."""
        rows = self.subword_rows()
        if rows is None:
            return None
        self.subwords_intact()
        record = self.subword_file.record
        return SubwordVectors(rows, record.minn, record.maxn)

    def subwords_intact(self) -> None:
        """As ``rows_intact``, for the mapped n-gram file."""
        held = self.subword_file
        if held is not None and held.fd >= 0 and os.fstat(held.fd).st_size < held.record.bytes:
            raise CatalogMismatchError(f"n-gram file {held.path} shrank after it was opened (another program "
                                       f"changed it); run 'embstore check --db {self.path}'")

    @classmethod
    def _read_rows(cls, path, catalog, meta, held, stats, previous, verify) -> "StoreFiles":
        count, low, high = stats
        storage = held.get(meta.storage)
        if storage is None:
            raise CatalogMismatchError(
                f"no {meta.storage} index holding the rows is recorded; the load that made it did not finish. "
                "Load the source file again with --replace")
        record = storage.record
        if count != record.rows or (count and (low != 0 or high != count - 1)):
            raise CatalogMismatchError(
                f"the catalog lists {count:,} words (IDs {low}..{high}) but the index holds {record.rows:,} rows")
        reuse = previous is not None and previous.held.get(meta.storage) is not None \
            and previous.held[meta.storage].record == record
        rows = storage_index = norms = sketch = sketch_problem = None
        if meta.storage == EXACT:
            if reuse:
                rows, norms, sketch, sketch_problem = previous.rows, previous.norms, previous.sketch, \
                    previous.sketch_problem
            else:
                exact = open_exact_rows(storage.path, rows=record.rows, size=record.bytes,
                                        checksum=record.checksum if verify else None, dimension=meta.dimension,
                                        source=storage.source, fingerprint=record.params.get("fingerprint"))
                rows, norms, sketch, sketch_problem = exact.rows, exact.norms, exact.sketch, exact.sketch_problem
        else:
            storage_index = previous.storage_index if reuse else open_index_file(
                storage.path, rows=record.rows, size=record.bytes, checksum=record.checksum if verify else None,
                dimension=stored_width(meta.storage, meta.dimension), source=storage.source)
        files = cls(path, catalog, meta, held, rows, storage_index, count, norms, sketch)
        files.sketch_problem = sketch_problem
        return files

    def close(self) -> None:
        self.close_probe()
        for held in self.held.values():
            held.close()
        self.held = {}
        if self.subword_file is not None:
            self.subword_file.close()
            self.subword_file = None
        self._subword_rows = None
        self.rows = self.storage_index = self.norms = self.sketch = None
        self.catalog.close()

    def shard_layout(self) -> ShardLayout | None:
        """This generation's shard layout (``embstore shard``), or None if the store is not
        sharded; CatalogMismatchError if its records disagree with the words or the rows."""
        try:
            return ShardLayout.read(self.catalog, self.size, self.meta.rows_generation)
        except CatalogMismatchError as exc:
            raise CatalogMismatchError(f"{self.path}: the shard layout is damaged: {exc}. To repair: "
                                       f"'embstore repair --db {self.path}'") from None

    def rows_verified(self, doing: str) -> None:
        """Raise CatalogMismatchError unless the exact rows file matches its recorded SHA-256 (or, for
        a sketched file, its rows do: a rewrite makes a new sketch). A write that rewrites every row
        (a change of words, the sketch) calls this first, so that rows damaged on disk are never
        written again under a fresh checksum, where ``check`` could no longer see the damage. One
        more read of the file (about 1.5 GB/s)."""
        held = self.held.get(EXACT)
        if held is None or held.fd < 0:
            return
        record = held.record
        if fd_checksum(held.fd) != record.checksum and not rows_before_sketch_intact(
                held.fd, record.rows, self.dimension, record.params.get("rows_checksum")):
            raise CatalogMismatchError(f"the exact rows file {held.path.name} does not match its checksum: the rows are "
                                       f"damaged, and {doing} would write them again as they are; nothing was "
                                       f"changed. Run 'embstore check --db {self.path}', then 'embstore repair'")

    def rows_intact(self) -> None:
        """Raise CatalogMismatchError if the exact rows file shrank after it was opened: reading
        a mapped page past its end would kill the process (SIGBUS). embstore never changes a
        file in place; only another program can. One fstat, about a microsecond."""
        held = self.held.get(EXACT)
        if held is not None and held.fd >= 0 and os.fstat(held.fd).st_size < held.record.bytes:
            raise CatalogMismatchError(f"index file {held.path} shrank after it was opened (another program "
                                       f"changed it); run 'embstore check --db {self.path}'")
