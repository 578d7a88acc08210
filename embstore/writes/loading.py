"""Loading an embedding file into a new store, or in place of an existing one.

A new store's catalog is built in a claimed temporary file and linked into place last,
so a store appears at its path only complete (and never over one that appeared
meanwhile). A replacement streams into one SQLite transaction, which holds the write lock
for the load; readers go on reading the old generation until it commits. With
``storage="sq8"`` the codes are built and the exact rows dropped inside that same commit.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import gc
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import CatalogDamagedError, FormatError, InterruptedAfterCommit, NotAStoreError, StoreError
from ..formats import EmbeddingReader, open_embeddings
from ..formats.counts import read_counts
from ..search import index_kinds
from ..storage.catalog import Catalog
from ..storage.catalog_indexes import IndexFileRecord
from ..storage.durable import fsync_directory
from ..storage.file_names import (NewFiles, is_store_file, leftover_files, new_catalog_file, new_index_file,
                                  own_paths, own_shard_paths, own_subword_paths, remove_files)
from ..row_norms import float64_norms, row_norms
from .subword_loading import record_subwords
from .. import row_sketch
from ..storage.index_files import (LENGTH_PROBLEM, FlatIndexWriter, WrittenFile, can_sketch, open_exact_rows,
                                   write_index_file)
from ..storage.schema import FORMAT_VERSION
from ..storage.store_meta import EXACT, NO_CHANGES, RAW_ROWS, STORAGE_KINDS, now
from ..storage.word_inserter import WordInserter, WordsHere
from ..vocabulary.vocabulary import all_plain_words, word_problem

METRIC = "cosine"
NORMALISATION = "none: rows as loaded, divided by their norms at query time; norms also kept in the catalog"
ZERO_VECTOR_POLICIES = ("error", "skip")
WORDS_PROCESS_BYTES = 32 << 20  # a smaller file's words are inserted in this process (WordsHere)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class LoadReport:
    """What a load did."""

    store: Path
    source: str
    format: str
    dimension: int
    words: int
    duplicates: int
    zero_vectors_skipped: int
    seconds: float
    first_duplicates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def record_written(kind: str, written: WrittenFile, *, params: dict, generation: int, rows_generation: int,
                   recall: dict | None) -> IndexFileRecord:
    """The catalog record of an index file that has just been written, synced and renamed."""
    if written.fingerprint is not None:  # the exact rows: what every open checks in constant time
        params = {**{k: v for k, v in params.items() if k != "rows_checksum"}, "fingerprint": written.fingerprint}
    if written.rows_checksum is not None:  # a sketched rows file: its part before the sketch (check, repair)
        params = {**params, "rows_checksum": written.rows_checksum}
    return IndexFileRecord(kind=kind, file=written.path.name, rows=written.rows, bytes=written.bytes,
                           checksum=written.checksum, params=params, generation=generation, created_at=now(),
                           recall=recall, rows_generation=rows_generation)


def load_store(source: str | os.PathLike, path: Path, *, format: str | None = None, limit: int | None = None,
               unicode_errors: str = "strict", zero_vectors: str = "error", replace: bool = False,
               progress: Progress | None = None, storage: str = EXACT, bad_words: str = "error",
               counts: str | os.PathLike | None = None, encoding: str = "utf-8", sketch: bool = False) -> LoadReport:
    """Load ``source`` into a new store at ``path``, or replace the store there. See ``Store.load``."""
    if storage not in STORAGE_KINDS:
        raise ValueError(f"storage must be one of {', '.join(STORAGE_KINDS)}")
    if sketch and storage != EXACT:
        raise StoreError("a sketch is made of the exact rows; --storage sq8 keeps none: choose one of the two")
    if zero_vectors not in ZERO_VECTOR_POLICIES or bad_words not in ZERO_VECTOR_POLICIES:
        raise ValueError(f"zero_vectors and bad_words must be one of {ZERO_VECTOR_POLICIES}")
    started = time.perf_counter()
    if os.path.lexists(source) and is_store_file(path, source):
        raise StoreError(f"{source} is one of the store's own files, not an embedding file to load")
    exists = os.path.lexists(path)
    damaged = False
    if exists:
        try:
            Catalog.open(path).close()  # never overwrite something that is not a store
        except CatalogDamagedError:
            damaged = True  # ours, but SQLite cannot use it: a replace builds a new catalog in its place
        except NotAStoreError as exc:
            raise NotAStoreError(f"{exc}; embstore never writes over a file that is not a store: choose another "
                                 "--db") from None
        if not replace:
            raise StoreError(f"a store already exists at {path}; replace it with replace=True "
                             "(--replace on the command line), or choose another path")

    def run(how: str) -> LoadReport:
        with open_embeddings(source, format, limit=limit, unicode_errors=unicode_errors, encoding=encoding) as reader:
            path.parent.mkdir(parents=True, exist_ok=True)
            if sketch and not can_sketch(reader.dimension):
                raise StoreError(f"{source}: a sketch needs rows of at least {row_sketch.MIN_DIMENSION} dimensions "
                                 f"(these have {reader.dimension}, and one pass over them is fast already); load "
                                 "without --sketch")
            loader = _Loader(reader, path, zero_vectors, progress, storage, started, bad_words, counts, sketch)
            return loader.replace() if how == "replace" else loader.create(overwrite=how == "overwrite")

    if not exists:
        return run("create")
    if not damaged:
        try:
            return run("replace")
        except CatalogDamagedError:
            pass  # the catalog failed half-way: rolled back; build a new one instead
    return run("overwrite")


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the words stream in: in a 3M-word load its
    full collections, each walking every word seen so far, took ~3 CPU-s. Streaming makes no
    cycles worth collecting; the collector resumes afterwards if it was on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive flock on the folder, held by whoever is placing a new catalog in it."""
    fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class _Loader:
    def __init__(self, reader: EmbeddingReader, path: Path, zero_vectors: str, progress: Progress | None,
                 storage: str, started: float, bad_words: str = "error", counts: str | os.PathLike | None = None,
                 sketch: bool = False):
        self.reader, self.path, self.zero_vectors, self.bad_words = reader, path, zero_vectors, bad_words
        self.sketch = sketch
        self.counts = counts
        self.counts_in_file = False  # whether the file itself gave the counts (a fastText model)
        self.bad_words_skipped = self.duplicates = 0
        self.first_duplicates: list[str] = []  # the first five different ones, for the report
        self.progress, self.storage, self.started = progress, storage, started
        self.files = NewFiles()

    def create(self, overwrite: bool = False) -> LoadReport:
        """A new catalog built in a temporary file, then linked into place; ``overwrite`` puts it
        in place of a damaged one (whose index files are removed once it is there)."""
        tmp_catalog = new_catalog_file(self.path)
        with self.files.written():
            self.files.claim(tmp_catalog, tmp_catalog)
            catalog = Catalog.create(tmp_catalog)
            try:
                report, dropped = self._write(catalog, rows_generation=1, words_process=True)
                catalog.finish_creation()
            except InterruptedAfterCommit:  # committed to the temporary catalog only: nothing is placed yet
                catalog.close()
                raise KeyboardInterrupt from None
            except BaseException:
                catalog.close()
                raise
            with _folder_lock(self.path.parent):  # one creator at a time decides what is stale here
                if overwrite or not os.path.lexists(self.path):  # a WAL left by a removed (or damaged)
                    for suffix in ("-wal", "-shm"):            # store must not be replayed into this one
                        self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
                try:
                    if overwrite:
                        os.replace(tmp_catalog, self.path)
                    else:
                        os.link(tmp_catalog, self.path)  # unlike a rename, never replaces a store that appeared
                        tmp_catalog.unlink()
                except FileExistsError:
                    raise StoreError(f"a store appeared at {self.path} while this load ran; load again with "
                                     "--replace") from None
            fsync_directory(self.path.parent)
            kept = {p.name for p in self.files.paths if p not in dropped}
        remove_files(dropped)
        if overwrite:  # the damaged catalog's files: this store's own pattern, named by nothing now
            remove_files([p for p in leftover_files(self.path, kept) if not p.name.endswith(".tmp")])
        return report

    def replace(self) -> LoadReport:
        catalog = Catalog.open(self.path)
        try:
            with self.files.written():
                with catalog.write_transaction():
                    old = [(row[0], row[1]) for row in catalog.index_file_rows()]  # damaged records too
                    remove_files(leftover_files(self.path, catalog.recorded_file_names()))
                    catalog.delete_all_words()
                    catalog.delete_all_index_files()
                    old_subwords = catalog.delete_subwords()
                    old_shards = catalog.delete_shards()  # a new load is not sharded
                    catalog.delete_meta("shards")
                    report, dropped = self._write(catalog, rows_generation=catalog.safe_generation("rows_generation") + 1)
                    report.notes.extend(_replaced_notes([kind for kind, _ in old], old_shards))
        finally:
            catalog.close()
        remove_files(own_paths(self.path, old) + dropped + own_subword_paths(self.path, old_subwords)
                     + own_shard_paths(self.path, old_shards))
        return report

    def _write(self, catalog: Catalog, rows_generation: int,
               words_process: bool = False) -> tuple[LoadReport, list[Path]]:
        """Stream the rows into a new exact file and the words into the catalog: through
        ``catalog``, inside the caller's transaction (a replacement), or with ``words_process``
        (a new catalog, no transaction open) through a ``WordInserter`` process beside this one,
        after which the rest is recorded in a transaction of its own. Returns the report and
        the files to remove once committed."""
        tmp, final = new_index_file(self.path, EXACT)
        writer = FlatIndexWriter(self.files.claim(tmp, final), final, self.reader.dimension,
                                 expected_rows=self.reader.expected_rows, sketch=self.sketch)
        sink: Catalog | WordInserter | WordsHere = catalog
        try:
            if words_process:
                sink = WordInserter(catalog.path) if self._source_bytes() >= WORDS_PROCESS_BYTES else WordsHere(catalog)
            with _collector_paused():
                report = self._stream(sink, writer)
            # The rows file is synced (and checksummed, if its count was not as declared) on a
            # thread while SQLite builds the word indexes, after the bulk insert: both let go of the GIL.
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="embstore-finish") as pool:
                finishing = pool.submit(writer.finish)
                try:
                    sink.finish_bulk_insert()
                finally:
                    concurrent.futures.wait([finishing])
                written = finishing.result()
        except BaseException:
            writer.abort()
            if sink is not catalog:
                sink.abort()
            raise
        with contextlib.nullcontext() if sink is catalog else catalog.write_transaction():
            return self._record(catalog, report, written, rows_generation)

    def _source_bytes(self) -> int:
        """About how many bytes the file holds once decompressed (gzip records it, modulo 4 GiB, in
        its last four bytes; bzip2 and xz text is taken as 4 times its size), or a large number
        when it has no size (a pipe)."""
        try:
            size = os.stat(self.reader.name).st_size if os.path.isfile(self.reader.name) else 1 << 62
            compression = getattr(self.reader, "compression", None)
            if compression == "gzip" and size >= 18:
                with open(self.reader.name, "rb") as handle:
                    handle.seek(-4, os.SEEK_END)
                    return max(size, int.from_bytes(handle.read(4), "little"))
            return 4 * size if compression else size
        except OSError:
            return 1 << 62

    def _record(self, catalog: Catalog, report: LoadReport, written: WrittenFile,
                rows_generation: int) -> tuple[LoadReport, list[Path]]:
        """Everything but the words: counts, n-grams, the rows file's record and the metadata."""
        if self.counts is not None:
            report.notes.extend(self._record_counts(catalog))
        if hasattr(self.reader, "subwords"):
            report.notes.extend(record_subwords(catalog, self.path, self.reader, self.files))
        if written.sketch_held is not None and row_sketch.weak_hold_note(written.sketch_held):
            report.notes.append(row_sketch.weak_hold_note(written.sketch_held))
        catalog.record_index_file(record_written(
            EXACT, written, params={"faiss": "IndexFlatIP"}, generation=1, rows_generation=rows_generation,
            recall={"recall@10": 1.0, "note": "exact search"}))
        source = Path(self.reader.name)
        catalog.set_meta(
            format_version=FORMAT_VERSION, dimension=self.reader.dimension, metric=METRIC,
            normalisation=NORMALISATION, source=os.path.abspath(self.reader.name), source_format=self.reader.format,
            source_bytes=source.stat().st_size if source.is_file() else "", created_at=now(),
            duplicates_skipped=report.duplicates, zero_vectors_skipped=report.zero_vectors_skipped,
            rows_generation=rows_generation, generation=catalog.safe_generation() + 1,
            load_options=json.dumps({"format": self.reader.format, "limit": self.reader.limit,
                                     "unicode_errors": self.reader.unicode_errors, "zero_vectors": self.zero_vectors,
                                     "bad_words": self.bad_words, "storage": self.storage,
                                     **({"sketch": True} if self.sketch else {}),
                                     **({"encoding": self.reader.encoding} if hasattr(self.reader, "encoding") else {})}),
            changes_since_load=json.dumps(NO_CHANGES), storage=EXACT, row_values=RAW_ROWS,
            subwords="ngrams" if catalog.subword_row() is not None else "",  # check: a lost record shows
            counts_source=os.path.abspath(self.counts) if self.counts is not None else
            os.path.abspath(self.reader.name) if self.counts_in_file else "",
        )
        catalog.delete_meta("default_index")
        if self.storage == EXACT:
            return report, []
        self._keep_codes_only(catalog, written, rows_generation)
        return report, [written.path]

    def _record_counts(self, catalog: Catalog) -> list[str]:
        """Give each stored word its count from the counts file; returns notes for the report."""
        for block in read_counts(self.counts, self.reader.unicode_errors):
            catalog.record_counts(block)
        with_count, without = catalog.count_stats()
        notes = [f"{without:,} of {with_count + without:,} words have no count in {self.counts}"] if without else []
        if not catalog.counts_in_order():
            notes.append(f"the counts in {self.counts} do not fall in the order of {self.reader.name}: IDs and "
                         "frequency ranks (restrict, completion) follow the file's order, as gensim's index does")
        return notes

    def _keep_codes_only(self, catalog: Catalog, written: WrittenFile, rows_generation: int) -> None:
        """Build the ``storage`` codes from the rows just written and make them the store's only rows."""
        rows = open_exact_rows(written.path, rows=written.rows, size=written.bytes, checksum=written.checksum,
                               dimension=self.reader.dimension).rows
        rows = rows / row_norms(rows)[:, None]  # codes hold unit rows
        params = index_kinds.resolve_parameters(self.storage, {}, rows.shape[0], rows.shape[1])
        built, seconds = index_kinds.build(self.storage, rows, params)
        del rows
        tmp, final = new_index_file(self.path, self.storage)
        codes = write_index_file(built, self.files.claim(tmp, final), final)
        catalog.record_index_file(record_written(self.storage, codes, params={**params, "build_seconds": round(seconds, 3)},
                                                 generation=1, rows_generation=rows_generation, recall=None))
        catalog.delete_index_file(EXACT)
        catalog.set_meta(storage=self.storage, default_index=self.storage)

    def _stream(self, sink: Catalog | WordInserter | WordsHere, writer: FlatIndexWriter) -> LoadReport:
        """Read the file into ``writer`` (rows) and ``sink`` (words: the catalog, or the word process)."""
        reader = self.reader
        seen: set[str] = set()
        next_id = zeros = 0
        unit = "entry" if reader.format in ("word2vec-bin", "fasttext-bin") else "line"
        for chunk in reader.chunks():
            norms = float64_norms(chunk.vectors)  # the norms the catalog keeps
            lengths = row_norms(chunk.vectors)  # float32, gensim's: what the rows file keeps
            keep = np.isfinite(lengths) & (lengths > 0)
            for position in np.flatnonzero(~keep):
                if self.zero_vectors == "error":
                    problem = ("is all zeros, which has no direction for cosine search" if norms[position] == 0
                               else LENGTH_PROBLEM)
                    raise FormatError(reader.name, int(chunk.lines[position]),
                                      f"the vector of {chunk.words[position]!r} {problem}",
                                      hint="zero_vectors='skip' (--zero-vectors skip) leaves such words out",
                                      unit=unit)
                zeros += 1
            fresh = set(chunk.words) if keep.all() and all_plain_words(chunk.words) else None
            if fresh is not None and len(fresh) == len(chunk.words) and seen.isdisjoint(fresh):
                seen |= fresh  # the usual chunk: every word good and new, checked in a few C calls
            else:
                self._check_words_one_by_one(chunk, keep, seen, unit)
            del fresh
            rows = chunk.vectors
            if not keep.all():
                rows, norms, lengths = rows[keep], norms[keep], lengths[keep]
            words = [w for w, k in zip(chunk.words, keep) if k] if len(rows) < len(keep) else chunk.words
            counts = None
            if chunk.counts is not None and self.counts is None:  # the file's own counts (fastText)
                counts = (chunk.counts[keep] if len(rows) < len(keep) else chunk.counts).tolist()
                self.counts_in_file = True
            ids = range(next_id, next_id + len(words))
            writer.add(rows, lengths)  # the values as read, bit for bit
            sink.insert_words(ids, words, ids, norms, counts)
            next_id += len(words)
            if self.progress:
                self.progress(reader.bytes_read, reader.total_bytes)
        if next_id == 0:
            raise FormatError(reader.name, None, "no vectors left to store after skipping zero vectors")
        return LoadReport(
            store=self.path, source=reader.name, format=reader.format, dimension=reader.dimension, words=next_id,
            duplicates=self.duplicates, zero_vectors_skipped=zeros, seconds=time.perf_counter() - self.started,
            first_duplicates=self.first_duplicates, notes=list(reader.notes) + (
                [f"{self.bad_words_skipped:,} words with white space or control characters skipped"]
                if self.bad_words_skipped else []),
        )

    def _check_words_one_by_one(self, chunk, keep: np.ndarray, seen: set[str], unit: str) -> None:
        """The word rule and duplicates, word by word, for a chunk that failed the quick check:
        clears ``keep`` for each word left out, and adds the kept ones to ``seen``."""
        for position, word in enumerate(chunk.words):
            problem = word_problem(word)
            if problem and self.bad_words == "error":
                raise FormatError(self.reader.name, int(chunk.lines[position]), f"word {word!r:.60} {problem}",
                                  hint="a word has no white space or control characters; bad_words='skip' (--bad-words skip) "
                                       "leaves such words out", unit=unit)
            if problem:
                keep[position] = False
                self.bad_words_skipped += 1
            elif word in seen:
                keep[position] = False
                self.duplicates += 1
                if len(self.first_duplicates) < 5 and word not in self.first_duplicates:
                    self.first_duplicates.append(word)  # five different words, not one word five times
            elif keep[position]:
                seen.add(word)


def _replaced_notes(old_kinds: list[str], old_shards: list) -> list[str]:
    """What a replacement removed with the old rows, and how to have it again."""
    notes = []
    built = [kind for kind in index_kinds.KINDS if kind in old_kinds]  # a damaged record's kind is no advice
    if built:
        notes.append(f"removed the {', '.join(built)} {'index' if len(built) == 1 else 'indexes'} built from the old "
                     f"rows; build again with: " + "; ".join(f"embstore index build --kind {kind}" for kind in built))
    if old_shards:
        graphs = " --graphs" if any(kind != EXACT for kind, _, _ in old_shards) else ""
        notes.append(f"removed the shard layout of the old rows; make it again with: embstore shard --shards "
                     f"{len({number for _, number, _ in old_shards})}{graphs}")
    return notes
