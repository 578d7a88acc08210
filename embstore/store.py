"""The store: one SQLite catalog plus the FAISS index files beside it.

This is the only module that ties the catalog to the index. Loading writes a new
index file and commits the catalog in one transaction (or, for a new store, builds
the catalog in a temporary file and renames it into place), so a store is always
either as it was or completely new. Opening checks that catalog and index agree.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import faiss
import numpy as np

from .catalog import FORMAT_VERSION, Catalog, IndexFileRecord
from .errors import (
    CatalogMismatchError,
    FormatError,
    QueryError,
    StoreBusyError,
    StoreError,
    StoreNotFoundError,
    UnknownWordError,
)
from .formats import EmbeddingReader, write_embeddings
from .durable import fsync_directory
from .index import FlatIndexWriter, open_exact_rows, open_index_file, write_index_file
from .paths import resolve_store_path
from . import index_kinds
from .queries import (Neighbour, QueryResult, cosmul_top_k, exact_top_k, mean_direction, mean_directions, search_top_k,
                      unit)
from .suggest import suggest_words
from .word_table import WordTable

EXACT = "exact"
METRIC = "cosine"
NORMALISATION = "unit rows; original norms kept in the catalog"
ZERO_VECTOR_POLICIES = ("error", "skip")
ANALOGY_METHODS = ("add", "mul")
WORDS_IN_MEMORY_AFTER = 8  # words_in_memory=None: hold the words once 1/8 of them were looked up in SQLite

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


@dataclass(frozen=True)
class Resolved:
    """A query word and the vocabulary word it was resolved to."""

    asked: str
    word: str
    id: int

    @property
    def note(self) -> str | None:
        if self.asked == self.word:
            return None
        return f"{self.asked!r} is not in the vocabulary; using {self.word!r} (case-insensitive match)"


@dataclass(frozen=True)
class StoreInfo:
    path: str
    words: int
    dimension: int
    metric: str
    normalisation: str
    format_version: int
    source: str | None
    source_format: str | None
    created_at: str | None
    catalog_bytes: int
    indexes: list[dict]
    default_index: str = EXACT
    storage: str = EXACT


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _index_file_name(store_path: Path, kind: str) -> str:
    return f"{store_path.name}.{kind}.{secrets.token_hex(4)}.faiss"


def _record_written(kind: str, written, *, params: dict, generation: int, recall: dict | None) -> IndexFileRecord:
    """The catalog record of an index file that has just been written, synced and renamed."""
    return IndexFileRecord(kind=kind, file=written.path.name, rows=written.rows, bytes=written.bytes,
                           checksum=written.checksum, params=params, generation=generation, created_at=_now(),
                           recall=recall)


def _successor(record: IndexFileRecord, written) -> IndexFileRecord:
    """``record``'s next generation, now held in the file ``written``."""
    return _record_written(record.kind, written, params=record.params, generation=record.generation + 1,
                           recall=record.recall)


def open_record(directory: Path, record: IndexFileRecord, dimension: int, *, verify: bool = True,
                memory_map: bool = False) -> np.ndarray | faiss.Index:
    """Open the file of an index record, checked against the record (size, SHA-256 unless not
    ``verify``, rows, width): the exact rows as an array, any other kind as a FAISS index."""
    checked = dict(rows=record.rows, size=record.bytes, checksum=record.checksum if verify else None,
                   dimension=index_kinds.stored_dimension(record.kind, dimension))
    if record.kind == EXACT:
        return open_exact_rows(directory / record.file, **checked)
    return open_index_file(directory / record.file, **checked, memory_map=memory_map)


def leftover_files(path: Path, catalog: Catalog) -> list[Path]:
    """Files a killed writer left beside the store: temporaries and index files the catalog does not name."""
    referenced = {record.file for record in catalog.index_files()}
    found = []
    for candidate in path.parent.iterdir():
        name = candidate.name
        if name.startswith(f".{path.name}.") and name.endswith(".tmp"):
            found.append(candidate)
        elif name.startswith(f"{path.name}.") and name.endswith(".faiss") and name not in referenced:
            found.append(candidate)
    return sorted(found)


def remove_leftovers(path: Path, catalog: Catalog) -> list[Path]:
    """Delete ``leftover_files``. Call only while holding the store's write lock."""
    removed = leftover_files(path, catalog)
    for file in removed:
        file.unlink(missing_ok=True)
    return removed


class Store:
    """An open embedding store. Create one with ``Store.load`` and open it with ``Store.open``."""

    def __init__(self, path: Path, catalog: Catalog, rows: np.ndarray | faiss.Index, meta: dict[str, str],
                 words_in_memory: bool | None = None):
        """``rows``: the exact unit rows, or, for a store with compressed storage, the index holding them.
        ``words_in_memory``: see ``open``."""
        self.path = path
        self.catalog = catalog
        self.meta = meta
        self.dimension = int(meta["dimension"])
        self.storage = meta.get("storage", EXACT)
        exact = isinstance(rows, np.ndarray)
        self.index: faiss.Index | None = None if exact else rows  # the compressed index, if it holds the rows
        self._decoded: np.ndarray | None = rows if exact else None
        self._size = rows.shape[0] if exact else rows.ntotal
        self._vocabulary: list[str] | None = None
        self._words_in_memory = words_in_memory
        self._word_table: WordTable | None = None
        self._words_looked_up = 0  # IDs turned into words through SQLite, for words_in_memory=None
        self._approximate: dict[str, faiss.Index] = {}  # opened approximate indexes, by kind
        self._decoded_kinds: dict[str, np.ndarray] = {}  # sq8/pq rows decoded for batch search
        self._records: dict[str, IndexFileRecord] | None = None
        self._search_settings: dict[tuple[str, int | None], tuple] = {}  # search_parameters, per kind and ID limit
        self.generation = int(meta.get("generation", 0))

    @property
    def _rows(self) -> np.ndarray:
        """The unit rows: the exact index's own memory, or, for sq8 storage, its codes decoded once."""
        if self._decoded is None:
            self._decoded = index_kinds.decoded(self.index, self.dimension)
        return self._decoded

    def _vectors(self, ids: Sequence[int]) -> np.ndarray:
        """Unit rows for ``ids`` without decoding the whole store (read-only for exact rows)."""
        ids = list(ids)
        if self._decoded is not None:
            if len(ids) == 1:  # a view, not a copy: a word query is short enough for this to show
                return self._decoded[ids[0]: ids[0] + 1]
            return self._decoded[ids]
        return index_kinds.decoded(self.index, self.dimension, ids)

    def _holds_rows(self, kind: str) -> bool:
        """Whether ``kind`` is the compressed index that holds this store's only rows."""
        return kind != EXACT and kind == self.storage

    @property
    def approximate_vectors(self) -> bool:
        """True when the store keeps only compressed codes, so every vector is an approximation."""
        return self.storage != EXACT

    # -- opening and closing ------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, verify: bool = True,
             words_in_memory: bool | None = None, _retries: int = 5) -> "Store":
        """Open the store at ``path`` (resolved as the CLI does when None).

        Checks that the catalog and the exact index agree (row counts, IDs, size and,
        when ``verify``, the SHA-256 checksum) and raises CatalogMismatchError if not.

        ``words_in_memory`` says where the words of answers come from. SQLite looks up
        the 10 words of an answer in 25-40 us at 400k words, a table in memory in 5-15 us;
        the table takes 0.25 s and 5 MB to load at 400k words. True loads it now; False
        never does; None (the default) loads it once the store has looked up an eighth of
        its vocabulary through SQLite, when those lookups have cost about what loading
        does. A one-shot query never gets there; a long-running process soon does.
        """
        path = resolve_store_path(path)
        if not path.exists():
            raise StoreNotFoundError(
                f"no store at {path}; create one with: embstore load FILE --db {path}"
            )
        catalog = Catalog.open(path)
        try:
            for attempt in range(3):
                with catalog.read_snapshot():
                    meta = catalog.meta()
                    record = catalog.index_file(meta.get("storage", EXACT))
                    count, low, high = catalog.word_stats()
                if record is None or "dimension" not in meta:
                    raise CatalogMismatchError(
                        f"{path} has no exact index recorded; the load that made it did not finish. "
                        "Load the source file again with --replace"
                    )
                try:
                    rows = open_record(path.parent, record, int(meta["dimension"]), verify=verify)
                    break
                except CatalogMismatchError:
                    # A writer may have replaced the index between our read and the open: re-read once more.
                    if attempt == 2 or catalog.index_file(record.kind) == record:
                        raise
            if count != record.rows or (count and (low != 0 or high != count - 1)):
                raise CatalogMismatchError(
                    f"the catalog lists {count:,} words (IDs {low}..{high}) but the index holds {record.rows:,} rows"
                )
            catalog.hold_snapshot()
            if catalog.meta() != meta:  # a writer committed between our reads: start again from its state
                catalog.close()
                if _retries == 0:
                    raise StoreBusyError(f"store {path} changed five times while it was being opened; try again")
                return cls.open(path, verify=verify, words_in_memory=words_in_memory, _retries=_retries - 1)
        except CatalogMismatchError as exc:
            catalog.close()
            raise CatalogMismatchError(
                f"{path}: catalog and index disagree: {exc}. To repair: 'embstore repair --db {path}' "
                f"(or load the source file again with 'embstore load SOURCE --db {path} --replace')"
            ) from None
        except BaseException:
            catalog.close()
            raise
        store = cls(path, catalog, rows, meta, words_in_memory)
        if words_in_memory:
            store._hold_words()
        return store

    def close(self) -> None:
        self.catalog.close()
        self._decoded = None
        self.index = None

    def refresh(self) -> bool:
        """Catch up with changes other processes committed; returns whether anything changed."""
        self.catalog.release_snapshot()
        current = int(self.catalog.meta().get("generation", 0))
        if current == self.generation:
            self.catalog.hold_snapshot()
            return False
        self._reload()
        return True

    def _reload(self) -> None:
        """Re-read the catalog and the exact index after a committed change."""
        self.catalog.release_snapshot()
        fresh = Store.open(self.path, words_in_memory=self._words_in_memory)
        self.catalog.close()
        self.__dict__.update(fresh.__dict__)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- loading --------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        source: str | os.PathLike,
        path: str | os.PathLike | None = None,
        *,
        format: str | None = None,
        limit: int | None = None,
        unicode_errors: str = "strict",
        zero_vectors: str = "error",
        replace: bool = False,
        progress: Progress | None = None,
        storage: str = EXACT,
    ) -> LoadReport:
        """Load an embedding file into a new store at ``path``, or replace an existing one.

        Duplicate words keep their first vector. A zero vector has no direction, so
        it cannot be searched by cosine: ``zero_vectors='error'`` stops the load
        naming its line, ``'skip'`` leaves it out and counts it. On any error the
        store is left exactly as it was (or absent). Raises FormatError, StoreError.

        ``storage="sq8"`` keeps only 8-bit codes (a quarter of the bytes): every vector
        read back, searched or exported is then an approximation.
        """
        if storage not in (EXACT, "sq8"):
            raise ValueError("storage must be 'exact' or 'sq8'")
        if zero_vectors not in ZERO_VECTOR_POLICIES:
            raise ValueError(f"zero_vectors must be one of {ZERO_VECTOR_POLICIES}")
        started = time.perf_counter()
        path = resolve_store_path(path)
        exists = path.exists()
        if exists and not replace:
            raise StoreError(f"a store already exists at {path}; pass --replace to overwrite it, or choose another --db")
        if exists:
            Catalog.open(path).close()  # refuse to overwrite something that is not a store
        with EmbeddingReader(source, format, limit=limit, unicode_errors=unicode_errors) as reader:
            path.parent.mkdir(parents=True, exist_ok=True)
            if exists:
                report = cls._load_replacing(reader, path, zero_vectors, progress, started)
            else:
                report = cls._load_new(reader, path, zero_vectors, progress, started)
        if storage != EXACT:
            with cls.open(path) as store:
                store._compress_storage(storage)
        return report

    def _compress_storage(self, kind: str) -> None:
        """Keep only a ``kind`` index as the store's rows: build it, then drop the exact file."""
        self.build_index(kind, make_default=True)
        exact = self.catalog.index_file(EXACT)
        with self.catalog.write_transaction():
            self.catalog.conn.execute("DELETE FROM index_files WHERE kind = ?", (EXACT,))
            self.catalog.set_meta(storage=kind, generation=self.generation + 1)
        (self.path.parent / exact.file).unlink(missing_ok=True)
        self._reload()

    @classmethod
    def _load_new(cls, reader, path, zero_vectors, progress, started) -> LoadReport:
        token = secrets.token_hex(4)
        tmp_catalog_path = path.with_name(f".{path.name}.{token}.tmp")
        catalog = Catalog.create(tmp_catalog_path)
        index_name = _index_file_name(path, EXACT)
        writer = FlatIndexWriter(path.with_name(f".{index_name}.tmp"), path.with_name(index_name), reader.dimension)
        try:
            with catalog.write_transaction():
                report = cls._write_rows(reader, catalog, writer, path, zero_vectors, progress, started)
            catalog.finish_creation()
            for stale in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                stale.unlink(missing_ok=True)
            os.replace(tmp_catalog_path, path)
            fsync_directory(path.parent)
        except BaseException:
            writer.abort()
            catalog.close()
            tmp_catalog_path.unlink(missing_ok=True)
            path.with_name(index_name).unlink(missing_ok=True)
            raise
        return report

    @classmethod
    def _load_replacing(cls, reader, path, zero_vectors, progress, started) -> LoadReport:
        catalog = Catalog.open(path)
        index_name = _index_file_name(path, EXACT)
        writer = None
        try:
            with catalog.write_transaction():
                old_files = [record.file for record in catalog.index_files()]
                remove_leftovers(path, catalog)
                writer = FlatIndexWriter(path.with_name(f".{index_name}.tmp"), path.with_name(index_name),
                                         reader.dimension)
                catalog.delete_all_words()
                catalog.conn.execute("DELETE FROM index_files")
                report = cls._write_rows(reader, catalog, writer, path, zero_vectors, progress, started)
        except BaseException:
            if writer is not None:
                writer.abort()
            path.with_name(index_name).unlink(missing_ok=True)
            catalog.close()
            raise
        catalog.close()
        for name in old_files:
            if name != index_name:
                (path.parent / name).unlink(missing_ok=True)
        return report

    @staticmethod
    def _write_rows(reader: EmbeddingReader, catalog: Catalog, writer: FlatIndexWriter, path: Path,
                    zero_vectors: str, progress: Progress | None, started: float) -> LoadReport:
        """Stream the reader's rows into the index writer and the catalog (inside a transaction)."""
        seen: set[str] = set()
        next_id = 0
        duplicates = 0
        first_duplicates: list[str] = []
        zeros = 0
        for chunk in reader.chunks():
            exact = chunk.vectors.astype(np.float64)  # norms and unit rows are computed in float64
            norms = np.sqrt(np.einsum("ij,ij->i", exact, exact))
            keep = np.ones(len(chunk.words), dtype=bool)
            for position in np.flatnonzero(norms == 0):
                if zero_vectors == "error":
                    raise FormatError(
                        reader.name, int(chunk.lines[position]),
                        f"the vector of {chunk.words[position]!r} is all zeros, which has no direction for cosine search",
                        hint="--zero-vectors skip leaves such words out",
                        unit="entry" if reader.format == "word2vec-bin" else "line",
                    )
                keep[position] = False
                zeros += 1
            for position, word in enumerate(chunk.words):
                if word in seen:
                    keep[position] = False
                    duplicates += 1
                    if len(first_duplicates) < 5:
                        first_duplicates.append(word)
                elif keep[position]:
                    seen.add(word)
            if not keep.all():
                exact, norms = exact[keep], norms[keep]
            words = [w for w, k in zip(chunk.words, keep) if k] if len(exact) < len(keep) else chunk.words
            exact /= norms[:, None]
            unit_rows = exact.astype(np.float32)
            ids = range(next_id, next_id + len(words))
            writer.add(unit_rows)
            catalog.insert_words(ids, words, ids, norms.tolist())
            next_id += len(words)
            if progress:
                progress(reader.bytes_read, reader.total_bytes)
        if next_id == 0:
            raise FormatError(reader.name, None, "no vectors left to store after skipping zero vectors")
        written = writer.finish()
        catalog.finish_bulk_insert()  # word indexes are built now, after the bulk insert
        catalog.record_index_file(_record_written(
            EXACT, written, params={"faiss": "IndexFlatIP"}, generation=1,
            recall={"recall@10": 1.0, "note": "exact search"},
        ))
        generation = int(catalog.meta().get("generation", 0)) + 1
        catalog.set_meta(
            generation=generation,
            format_version=FORMAT_VERSION, dimension=reader.dimension, metric=METRIC, normalisation=NORMALISATION,
            source=os.path.abspath(reader.name), source_format=reader.format, created_at=_now(),
            duplicates_skipped=duplicates, zero_vectors_skipped=zeros,
        )
        return LoadReport(
            store=path, source=reader.name, format=reader.format, dimension=reader.dimension, words=next_id,
            duplicates=duplicates, zero_vectors_skipped=zeros, seconds=time.perf_counter() - started,
            first_duplicates=first_duplicates,
        )

    # -- the vocabulary -------------------------------------------------------------

    def __len__(self) -> int:
        return self._size

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and bool(self.catalog.ids_for_words([word]))

    def __iter__(self) -> Iterator[str]:
        for _, words, _ in self.catalog.iter_words():
            yield from words

    def vocabulary(self) -> list[str]:
        """All words in ID (= frequency) order; cached after the first call."""
        if self._vocabulary is None:
            self._vocabulary = self.catalog.vocabulary()
        return self._vocabulary

    def resolve(self, word: str) -> Resolved:
        """Find ``word``: exactly, else its most frequent case-insensitive match.

        Raises UnknownWordError with suggestions when neither exists.
        """
        return self.resolve_many([word])[0]

    def resolve_many(self, words: Sequence[str], on_unknown: str = "raise") -> list[Resolved | UnknownWordError]:
        """``resolve`` for many words with one catalog query for the exact matches.

        ``on_unknown="raise"`` raises UnknownWordError at the first unknown word;
        ``"report"`` puts the error in its place in the returned list instead.
        """
        found = self.catalog.ids_for_words(words)
        resolved: list[Resolved | UnknownWordError] = []
        for word in words:
            if word in found:
                resolved.append(Resolved(word, word, found[word]))
                continue
            match = self.catalog.most_frequent_folded_match(word)
            if match is None:
                error = UnknownWordError(word, suggest_words(self.catalog, word))
                if on_unknown == "raise":
                    raise error
                resolved.append(error)
                continue
            resolved.append(Resolved(word, match[1], match[0]))
        return resolved

    def _words_for(self, ids: Iterable[int]) -> dict[int, str]:
        """{id: word} for ``ids``, from memory or SQLite as ``words_in_memory`` says (see ``open``)."""
        ids = list(ids)
        if self._vocabulary is not None:
            return {i: self._vocabulary[i] for i in ids}
        if self._word_table is None and self._words_in_memory is None:
            self._words_looked_up += len(ids)
            if self._words_looked_up * WORDS_IN_MEMORY_AFTER >= self._size:
                self._hold_words()
        if self._word_table is not None:
            return self._word_table.words_for_ids(ids)
        return self.catalog.words_for_ids(ids)

    def _hold_words(self) -> None:
        """Load the words into a table in memory; from now on answers take their words from it."""
        self._word_table = self.catalog.word_table()
        if self._word_table is None:  # the words cannot be packed (see Catalog.word_table): stay with SQLite
            self._words_in_memory = False

    def unit_vector(self, word: str) -> np.ndarray:
        """The stored unit-length vector of ``word`` (a copy)."""
        return np.array(self._vectors([self.resolve(word).id])[0])

    def vector(self, word: str) -> np.ndarray:
        """The vector of ``word`` as loaded (unit row times its stored norm; float32)."""
        resolved = self.resolve(word)
        norm = self.catalog.norms_for_ids([resolved.id])[0]
        return (self._vectors([resolved.id])[0].astype(np.float64) * norm).astype(np.float32)

    def _id_limit(self, restrict: int | None) -> int | None:
        if restrict is None:
            return None
        if restrict < 1:
            raise QueryError("restrict must be at least 1")
        if restrict >= self._size:
            return None
        return self.catalog.id_below_rank(restrict)

    def _result(self, query: str, hits: list[tuple[int, float]], resolved: Sequence[Resolved]) -> QueryResult:
        words = self._words_for(i for i, _ in hits)
        notes = [r.note for r in resolved if r.note]
        return QueryResult(query, [Neighbour(words[i], float(s)) for i, s in hits], notes)

    # -- queries --------------------------------------------------------------------

    def nearest(self, word: str, k: int = 10, restrict: int | None = None, index: str | None = None) -> QueryResult:
        """The ``k`` words most similar to ``word`` by cosine (gensim's ``most_similar(word)``)."""
        if restrict is None:
            answer = self._nearest_through_graph(word, k, index)
            if answer is not None:
                return answer
        return self.nearest_many([word], k=k, restrict=restrict, index=index)[0]

    def _nearest_through_graph(self, word: str, k: int, index: str | None) -> QueryResult | None:
        """``nearest`` of one word in the vocabulary through an hnsw index, in fewer steps.

        The same search ``nearest_many`` makes, without its batch handling: at 0.1 ms a
        query each step shows. None sends the query the general way (another index kind,
        a word that is not in the vocabulary as written, k < 1).
        """
        kind = index or self.meta.get("default_index")
        if k < 1 or kind != "hnsw" or self._holds_rows(kind) or self._record(kind) is None:
            return None
        word_id = self.catalog.id_for_word(word)
        if word_id is None:
            return None
        faiss_index, record = self._approximate_index(kind)
        hits = search_top_k(faiss_index, self._vectors([word_id]), k, [{word_id}], row_ids=[word_id],
                            row_parameters=self._search_parameters(kind, record, None)[1])
        return self._result(word, hits[0], [])

    def nearest_many(self, words: Sequence[str], k: int = 10, restrict: int | None = None,
                     on_unknown: str = "raise", index: str | None = None) -> list[QueryResult]:
        """``nearest`` for many words in one batched search.

        With ``on_unknown="report"`` an unknown word gives a result with ``error`` set
        instead of raising UnknownWordError. ``index`` names an index kind (see
        ``build_index``); None means the store's default, "exact" the exact rows.
        """
        resolved = self.resolve_many(list(words), on_unknown)
        known = [r for r in resolved if isinstance(r, Resolved)]
        ids = [r.id for r in known]
        hits = iter(self._search(self._vectors(ids), k, [{i} for i in ids], self._id_limit(restrict), index,
                                 row_ids=ids) if known else [])
        return [
            self._result(r.asked, next(hits), [r]) if isinstance(r, Resolved)
            else QueryResult(r.word, [], error=str(r))
            for r in resolved
        ]

    def nearest_to_vector(self, vector: Sequence[float] | np.ndarray, k: int = 10,
                          restrict: int | None = None, index: str | None = None) -> QueryResult:
        """The ``k`` words whose vectors have the highest cosine with ``vector``."""
        vector = np.asarray(vector, dtype=np.float32).ravel()
        if vector.shape[0] != self.dimension:
            raise QueryError(f"the vector has {vector.shape[0]} values; this store's dimension is {self.dimension}")
        hits = self._search(unit(vector)[None, :], k, [set()], self._id_limit(restrict), index)
        return self._result("<vector>", hits[0], [])

    def most_similar(self, positive: Sequence[str] = (), negative: Sequence[str] = (), k: int = 10,
                     restrict: int | None = None, index: str | None = None) -> QueryResult:
        """gensim's ``most_similar(positive, negative)``: cosine with the normalised mean direction."""
        pos = self.resolve_many(list(positive))
        neg = self.resolve_many(list(negative))
        direction = mean_direction(self._vectors([r.id for r in pos]), self._vectors([r.id for r in neg]))
        exclude = {r.id for r in pos + neg}
        hits = self._search(direction[None, :], k, [exclude], self._id_limit(restrict), index)
        label = " + ".join(r.asked for r in pos) + "".join(f" - {r.asked}" for r in neg)
        return self._result(label, hits[0], pos + neg)

    def analogy(self, a: str, b: str, c: str, k: int = 10, method: str = "add",
                restrict: int | None = None, index: str | None = None) -> QueryResult:
        """A is to B as C is to ?: 3CosAdd (``add``, gensim ``most_similar(positive=[b, c],
        negative=[a])``) or 3CosMul (``mul``, ``most_similar_cosmul``). Query words are excluded."""
        return self.analogy_many([(a, b, c)], k=k, method=method, restrict=restrict, index=index)[0]

    def analogy_many(self, questions: Sequence[tuple[str, str, str]], k: int = 10, method: str = "add",
                     restrict: int | None = None, on_unknown: str = "raise",
                     index: str | None = None) -> list[QueryResult]:
        """``analogy`` for many (a, b, c) questions, batched through one search.

        With ``on_unknown="report"`` a question with an unknown word gives a result with
        ``error`` set instead of raising UnknownWordError.
        """
        if method not in ANALOGY_METHODS:
            raise QueryError(f"method must be one of {', '.join(ANALOGY_METHODS)}")
        flat = self.resolve_many([w for q in questions for w in q], on_unknown)
        triples = [flat[i: i + 3] for i in range(0, len(flat), 3)]
        known = [t for t in triples if all(isinstance(r, Resolved) for r in t)]
        ids = np.array([[r.id for r in t] for t in known], dtype=np.int64).reshape(-1, 3)
        hits = iter(self.analogy_hits(ids, k, method, self._id_limit(restrict), index) if known else [])
        results = []
        for question, triple in zip(questions, triples):
            label = f"{question[0]} : {question[1]} :: {question[2]} : ?"
            errors = [r for r in triple if not isinstance(r, Resolved)]
            if errors:
                results.append(QueryResult(label, [], error=str(errors[0])))
            else:
                results.append(self._result(label, next(hits), triple))
        return results

    def analogy_hits(self, ids: np.ndarray, k: int, method: str = "add", id_limit: int | None = None,
                     index: str | None = None) -> list[list[tuple[int, float]]]:
        """The batch engine under ``analogy_many``: (a, b, c) ID rows in, (id, score) lists out.

        Searches only IDs below ``id_limit`` when given; a, b and c are never answers.
        3CosMul is not an inner product, so it always scores the exact rows.
        """
        if method not in ANALOGY_METHODS:
            raise QueryError(f"method must be one of {', '.join(ANALOGY_METHODS)}")
        exclude = [set(row) for row in ids.tolist()]
        if method == "add":
            queries = mean_directions(self._rows[ids[:, [1, 2]]], self._rows[ids[:, [0]]])
            return self._search(queries, k, exclude, id_limit, index)
        return cosmul_top_k(self._rows, ids[:, [1, 2]], ids[:, [0]], k, exclude, id_limit)

    def screen_analogies(self, questions: np.ndarray, id_limit: int | None = None):
        """Decide 3CosAdd (a, b, c, d) ID rows without a full search where a bound allows.

        See ``embstore.analogy_screen``; undecided questions must be searched in full.
        """
        from .analogy_screen import screen_analogies

        return screen_analogies(self._rows if id_limit is None else self._rows[:id_limit], questions)

    # -- index kinds ----------------------------------------------------------------

    def index_kind(self, index: str | None) -> str:
        """The index a query uses: ``index`` if given, else the store's default, else exact.

        On a store with sq8 storage, 'exact' means exact search over the decoded rows.
        """
        kind = index or self.meta.get("default_index") or EXACT
        if self._holds_rows(kind):
            return kind
        if kind != EXACT and kind not in index_kinds.KINDS:
            raise QueryError(f"unknown index kind {kind!r}; expected exact or one of {', '.join(index_kinds.KINDS)}")
        if kind != EXACT and self._record(kind) is None:
            raise QueryError(f"this store has no {kind} index; build it with: embstore index build --kind {kind}")
        return kind

    def _record(self, kind: str) -> IndexFileRecord | None:
        """The catalog's record of ``kind``, read once per catalog state (queries ask often)."""
        if self._records is None:
            self._records = {r.kind: r for r in self.catalog.index_files()}
        return self._records.get(kind)

    def _approximate_index(self, kind: str, rebuild_stale: bool = True) -> tuple[faiss.Index, IndexFileRecord]:
        """The opened FAISS index of ``kind`` and its record; a stale one is rebuilt first."""
        if self._holds_rows(kind):
            return self.index, self._record(kind)
        if kind not in self._approximate:
            record = self._record(kind)
            if record.stale and rebuild_stale:
                params = {k: v for k, v in record.params.items() if k != "build_seconds"}
                self.build_index(kind, **params)
                record = self._record(kind)
            self._approximate[kind] = self._open_index(record, memory_map=True)
        return self._approximate[kind], self._record(kind)

    def _open_index(self, record: IndexFileRecord, *, memory_map: bool) -> faiss.Index:
        """Open and verify the file of ``record``; mapped files are shared and cannot take new rows."""
        return open_record(self.path.parent, record, self.dimension, memory_map=memory_map)

    def _search(self, queries: np.ndarray, k: int, exclude, id_limit: int | None,
                index: str | None, row_ids: Sequence[int] | None = None) -> list[list[tuple[int, float]]]:
        """Top ``k`` for each query through the chosen index; ``row_ids``: the queries are these words' rows."""
        kind = self.index_kind(index)
        if kind == EXACT:
            return exact_top_k(self._rows, queries, k, exclude, id_limit)
        faiss_index, record = self._approximate_index(kind)
        if kind in index_kinds.FLAT_CODE_KINDS and len(queries) > 4:
            # These kinds score every row against its decoded vector anyway; for a batch,
            # decoding once and multiplying with BLAS gives the same answers much faster.
            return exact_top_k(self._decoded_rows(kind, faiss_index), queries, k, exclude, id_limit)
        parameters, word_parameters = self._search_parameters(kind, record, id_limit)
        return search_top_k(faiss_index, queries, k, exclude, parameters, id_limit, row_ids, word_parameters)

    def _search_parameters(self, kind: str, record: IndexFileRecord, id_limit: int | None) -> tuple:
        """``index_kinds.search_parameters``, kept until the catalog changes."""
        settings = self._search_settings.get((kind, id_limit))
        if settings is None:
            settings = self._search_settings[kind, id_limit] = index_kinds.search_parameters(kind, record.params,
                                                                                             id_limit)
        return settings

    def _decoded_rows(self, kind: str, faiss_index: faiss.Index) -> np.ndarray:
        if self._holds_rows(kind):
            return self._rows
        if kind not in self._decoded_kinds:
            self._decoded_kinds[kind] = index_kinds.decoded(faiss_index, self.dimension)
        return self._decoded_kinds[kind]

    def _catalog_written(self, kind: str | None = None) -> None:
        """After a write outside ``_commit_change``: forget what was cached about ``kind``
        and the index records, re-read the metadata and take a fresh read snapshot."""
        if kind is not None:
            self._approximate.pop(kind, None)
            self._decoded_kinds.pop(kind, None)
        self._records = None
        self._search_settings = {}
        self.meta = self.catalog.meta()
        self.catalog.hold_snapshot()

    def build_index(self, kind: str, *, make_default: bool = False,
                    progress: Callable[[int, int], None] | None = None, **params: int | None) -> IndexFileRecord:
        """Build an approximate or compressed index beside the exact rows and record it.

        The file is written to a temporary name, fsynced and renamed, then recorded in
        one catalog transaction; a previous index of the same kind is removed after.
        """
        if self._holds_rows(kind):
            raise QueryError(f"the {kind} index holds this store's rows; it is not rebuilt from them")
        resolved = index_kinds.resolve_parameters(kind, params, self._size, self.dimension)
        built, seconds = index_kinds.build(kind, self._rows, resolved, progress)
        written = self._write_faiss(kind, built)
        previous = self.catalog.index_file(kind)
        record = _record_written(kind, written, params={**resolved, "build_seconds": round(seconds, 3)},
                                 generation=(previous.generation + 1) if previous else 1, recall=None)
        try:
            with self.catalog.write_transaction():
                self.catalog.record_index_file(record)
                if make_default:
                    self.catalog.set_meta(default_index=kind)
        except BaseException:
            written.path.unlink(missing_ok=True)
            raise
        if previous and previous.file != record.file:
            (self.path.parent / previous.file).unlink(missing_ok=True)
        self._catalog_written(kind)
        return record

    def _write_faiss(self, kind: str, index: faiss.Index):
        """Write ``index`` under a new file name beside the store (temporary file, fsync, rename)."""
        name = _index_file_name(self.path, kind)
        return write_index_file(index, self.path.with_name(f".{name}.tmp"), self.path.with_name(name))

    def drop_index(self, kind: str) -> None:
        """Remove an approximate index (the exact rows cannot be dropped)."""
        if self._holds_rows(kind):
            raise QueryError(f"the {kind} index holds this store's rows and cannot be dropped")
        if kind == EXACT:
            raise QueryError("the exact index holds the store's rows and cannot be dropped")
        record = self.catalog.index_file(kind)
        if record is None:
            raise QueryError(f"this store has no {kind} index")
        with self.catalog.write_transaction():
            self.catalog.conn.execute("DELETE FROM index_files WHERE kind = ?", (kind,))
            if self.meta.get("default_index") == kind:
                self.catalog.conn.execute("DELETE FROM meta WHERE key = 'default_index'")
        (self.path.parent / record.file).unlink(missing_ok=True)
        self._catalog_written(kind)

    def set_default_index(self, kind: str) -> None:
        """Make ``kind`` the index queries use when none is named ('exact' to reset)."""
        if kind != EXACT:
            self.index_kind(kind)
        with self.catalog.write_transaction():
            self.catalog.set_meta(default_index=kind)
        self._catalog_written()

    def record_index_measurements(self, kind: str, figures: dict) -> None:
        """Store measured recall and latency for ``kind`` in the catalog (shown by ``info``)."""
        with self.catalog.write_transaction():
            self.catalog.record_index_file(dataclasses.replace(self.catalog.index_file(kind), recall=figures))
        self._catalog_written()

    def tune_index(self, kind: str, **settings: int | None) -> IndexFileRecord:
        """Change how ``kind`` searches (hnsw ``ef_search``, ``ef_search_words``; ivf ``nprobe``) without a rebuild.

        The recall measured with the old settings no longer applies and is cleared.
        """
        if kind == EXACT or self._holds_rows(kind):
            raise QueryError(f"the {kind} index has no search-time settings")
        self.index_kind(kind)  # raises if the store has no such index
        with self.catalog.write_transaction():
            record = self.catalog.index_file(kind)
            params = index_kinds.tuned_parameters(kind, record.params, settings)
            self.catalog.record_index_file(dataclasses.replace(record, params=params, recall=None))
        self._catalog_written()
        return self._record(kind)

    def pair_similarities(self, first_ids: np.ndarray, second_ids: np.ndarray) -> np.ndarray:
        """Cosine similarity of each (first_ids[i], second_ids[i]) pair of words."""
        return np.einsum("ij,ij->i", self._rows[first_ids], self._rows[second_ids])

    def evaluate_analogies(self, path: str | os.PathLike, **options):
        """Analogy accuracy on a questions-words file; see ``embstore.evaluate.evaluate_analogies``."""
        from .evaluate import evaluate_analogies

        return evaluate_analogies(self, path, **options)

    def evaluate_word_pairs(self, path: str | os.PathLike, **options):
        """Word-pair correlation; see ``embstore.evaluate.evaluate_word_pairs``."""
        from .evaluate import evaluate_word_pairs

        return evaluate_word_pairs(self, path, **options)

    def similarity(self, first: str, second: str) -> float:
        """Cosine similarity of two words."""
        one, two = self.resolve_many([first, second])
        first, second = self._vectors([one.id, two.id])
        return float(np.dot(first, second))

    def doesnt_match(self, words: Sequence[str]) -> tuple[str, list[Neighbour]]:
        """gensim's ``doesnt_match``: the word least similar to the mean of all of them.

        Returns (odd word, every word with its cosine to the mean, least similar first).
        """
        resolved = self.resolve_many(list(words))
        if len(resolved) < 2:
            raise QueryError("odd-one-out needs at least two words")
        vectors = self._vectors([r.id for r in resolved])
        mean = mean_direction(vectors, vectors[:0])
        scores = vectors @ mean
        ranked = sorted(zip(scores.tolist(), [r.word for r in resolved]))
        return ranked[0][1], [Neighbour(w, float(s)) for s, w in ranked]

    # -- changes ------------------------------------------------------------------

    def _commit_change(self, unit_rows: np.ndarray | None, change: Callable[[Catalog], None],
                       appended: np.ndarray | None = None) -> None:
        """Apply one change atomically: new exact rows (if any), catalog edits and index upkeep.

        Runs under SQLite's write lock. New index files are written, fsynced and renamed
        before the catalog commits; old files are removed after. Approximate indexes get
        ``appended`` rows added, or are marked stale when rows changed otherwise.
        """
        if self.approximate_vectors and unit_rows is not None:
            raise QueryError(f"{self.path} keeps only {self.storage} codes; adding or deleting words needs "
                             "exact rows: load the source again without --storage")
        new_files: list[Path] = []
        old_files: list[str] = []
        try:
            with self.catalog.write_transaction():
                if int(self.catalog.meta().get("generation", 0)) != self.generation:
                    raise StoreError(f"{self.path} changed since it was opened; open it again and retry")
                remove_leftovers(self.path, self.catalog)
                generation = self.generation + 1
                if unit_rows is not None:
                    old = self.catalog.index_file(EXACT)
                    name = _index_file_name(self.path, EXACT)
                    writer = FlatIndexWriter(self.path.with_name(f".{name}.tmp"), self.path.with_name(name),
                                             self.dimension)
                    try:
                        for start in range(0, unit_rows.shape[0], 65_536):
                            writer.add(unit_rows[start: start + 65_536])
                        written = writer.finish()
                    except BaseException:
                        writer.abort()
                        raise
                    new_files.append(written.path)
                    old_files.append(old.file)
                    self.catalog.record_index_file(_successor(old, written))
                change(self.catalog)
                for record in self.catalog.index_files():
                    if record.kind == EXACT or record.stale or unit_rows is None:
                        continue
                    if appended is None:
                        self.catalog.mark_stale([record.kind])
                        continue
                    index = self._open_index(record, memory_map=False)  # a private copy that can grow
                    index_kinds.add_rows(record.kind, index, record.params, appended)
                    written = self._write_faiss(record.kind, index)
                    new_files.append(written.path)
                    old_files.append(record.file)
                    self.catalog.record_index_file(_successor(record, written))
                self.catalog.set_meta(generation=generation)
                count, low, high = self.catalog.word_stats()
                rows = self.catalog.index_file(self.storage).rows
                if count != rows or (count and (low, high) != (0, count - 1)):
                    raise CatalogMismatchError(f"internal error: change left {count} words for {rows} rows")
        except BaseException:
            for file in new_files:
                file.unlink(missing_ok=True)
            self.catalog.hold_snapshot()
            raise
        for name in old_files:
            (self.path.parent / name).unlink(missing_ok=True)
        self._reload()

    def _unit_rows_for(self, words: Sequence[str], vectors: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise QueryError(f"{source}: vectors must have {self.dimension} values, this store's dimension")
        if not np.isfinite(vectors).all():
            raise QueryError(f"{source}: vectors must be finite numbers")
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
        if (norms == 0).any():
            word = words[int(np.flatnonzero(norms == 0)[0])]
            raise QueryError(f"{source}: the vector of {word!r} is all zeros, which has no direction")
        return (vectors.astype(np.float64) / norms[:, None]).astype(np.float32), norms

    def add_words(self, words: Sequence[str], vectors: np.ndarray, on_duplicate: str = "error",
                  source: str = "add") -> dict:
        """Add words with their vectors in one atomic change.

        ``on_duplicate``: 'error' refuses a word already present, 'skip' keeps the old
        vector, 'replace' keeps the word's ID and replaces its vector. New words get the
        next IDs (and so rank after every existing word). Returns counts of what was done.
        """
        if on_duplicate not in ("error", "skip", "replace"):
            raise QueryError("on_duplicate must be error, skip or replace")
        words = list(words)
        for word in words:
            if not word or word != word.strip() or any(c in word for c in " \n\r\t"):
                raise QueryError(f"{source}: word {word!r} is empty or holds white space")
        unit_rows, norms = self._unit_rows_for(words, vectors, source)
        existing = self.catalog.ids_for_words(words)
        if existing and on_duplicate == "error":
            shown = ", ".join(repr(w) for w in list(existing)[:5])
            raise QueryError(f"{source}: {len(existing)} word(s) already in the store ({shown}); "
                             "choose --on-duplicate skip or replace")
        new_positions: dict[str, int] = {}
        replaced: dict[int, int] = {}
        for position, word in enumerate(words):
            if word in existing:
                if on_duplicate == "replace":
                    replaced[existing[word]] = position
            elif word not in new_positions:
                new_positions[word] = position
        chosen = list(new_positions.values())
        if not chosen and not replaced:
            return {"added": 0, "replaced": 0, "skipped": len(words)}
        rows = np.array(self._rows)
        for word_id, position in replaced.items():
            rows[word_id] = unit_rows[position]
        appended = unit_rows[chosen]
        start = self._size

        def change(catalog: Catalog) -> None:
            ids = range(start, start + len(chosen))
            catalog.insert_words(ids, [words[p] for p in chosen], ids, norms[chosen].tolist())
            catalog.update_norms(list(replaced), [norms[p] for p in replaced.values()])

        self._commit_change(np.concatenate([rows, appended]), change, appended=None if replaced else appended)
        return {"added": len(chosen), "replaced": len(replaced), "skipped": len(words) - len(chosen) - len(replaced)}

    def append_file(self, source: str | os.PathLike, *, format: str | None = None, limit: int | None = None,
                    unicode_errors: str = "strict", on_duplicate: str = "skip") -> dict:
        """Add the words of an embedding file (``load --append``); one atomic change."""
        words: list[str] = []
        blocks: list[np.ndarray] = []
        with EmbeddingReader(source, format, limit=limit, unicode_errors=unicode_errors) as reader:
            if reader.dimension != self.dimension:
                raise FormatError(reader.name, 1, f"has dimension {reader.dimension}; this store's is {self.dimension}")
            seen: set[str] = set()
            for chunk in reader.chunks():
                zero = np.flatnonzero(~np.any(chunk.vectors, axis=1))
                if len(zero):
                    raise FormatError(reader.name, int(chunk.lines[zero[0]]),
                                      f"the vector of {chunk.words[zero[0]]!r} is all zeros")
                keep = [i for i, w in enumerate(chunk.words) if not (w in seen or seen.add(w))]
                words.extend(chunk.words[i] for i in keep)
                blocks.append(chunk.vectors[keep])
        return self.add_words(words, np.concatenate(blocks), on_duplicate=on_duplicate, source=str(source))

    def delete_words(self, words: Sequence[str]) -> int:
        """Delete words (exact spelling) in one atomic change; later IDs move down to stay dense."""
        found = self.catalog.ids_for_words(list(words))
        missing = [w for w in words if w not in found]
        if missing:
            raise UnknownWordError(missing[0], suggest_words(self.catalog, missing[0]))
        doomed = sorted(set(found.values()))
        if len(doomed) >= self._size:
            raise QueryError("cannot delete every word of a store; load another file with --replace instead")
        keep = np.ones(self._size, dtype=bool)
        keep[doomed] = False

        def change(catalog: Catalog) -> None:
            catalog.delete_words_by_id(doomed)
            catalog.renumber_words()

        self._commit_change(np.array(self._rows[keep]), change)
        return len(doomed)

    def rename_word(self, old: str, new: str) -> None:
        """Give a word a new spelling; its ID and vector stay."""
        found = self.catalog.ids_for_words([old, new])
        if old not in found:
            raise UnknownWordError(old, suggest_words(self.catalog, old))
        if new in found:
            raise QueryError(f"{new!r} is already in the store")
        if not new or new != new.strip() or any(c in new for c in " \n\r\t"):
            raise QueryError(f"word {new!r} is empty or holds white space")
        self._commit_change(None, lambda catalog: catalog.rename_word(found[old], new))

    # -- inspection and export --------------------------------------------------------

    def info(self) -> StoreInfo:
        indexes = []
        for record in self.catalog.index_files():
            file = self.path.parent / record.file
            indexes.append({
                "kind": record.kind, "file": str(file), "rows": record.rows,
                "bytes_on_disk": file.stat().st_size if file.exists() else None,
                "checksum": record.checksum, "params": record.params, "recall": record.recall,
                "created_at": record.created_at, "stale": record.stale,
            })
        return StoreInfo(
            path=str(self.path.resolve()), words=self._size, dimension=self.dimension,
            metric=self.meta.get("metric", METRIC), normalisation=self.meta.get("normalisation", NORMALISATION),
            format_version=int(self.meta["format_version"]), source=self.meta.get("source"),
            source_format=self.meta.get("source_format"), created_at=self.meta.get("created_at"),
            catalog_bytes=self.path.stat().st_size, indexes=indexes,
            default_index=self.meta.get("default_index") or EXACT, storage=self.storage,
        )

    def iter_vectors(self, words: Sequence[str] | None = None, batch: int = 50_000
                     ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Yield (words, original vectors) chunks: all words in ID order, or just ``words``."""
        if words is None:
            for ids, chunk_words, norms in self.catalog.iter_words(batch):
                rows = self._rows[ids[0]: ids[-1] + 1].astype(np.float64)
                yield chunk_words, (rows * norms[:, None]).astype(np.float32)
            return
        for start in range(0, len(words), batch):
            resolved = self.resolve_many(list(words[start: start + batch]))
            ids = [r.id for r in resolved]
            norms = self.catalog.norms_for_ids(ids)
            yield [r.word for r in resolved], (self._rows[ids].astype(np.float64) * norms[:, None]).astype(np.float32)

    def export(self, output: str | os.PathLike, format: str, words: Sequence[str] | None = None) -> list[Path]:
        """Write the store (or only ``words``) as word2vec text/binary, GloVe text or .npy.

        Unknown words in ``words`` raise UnknownWordError before anything is written.
        Returns the files written.
        """
        if words is not None:
            words = list(dict.fromkeys(r.word for r in self.resolve_many(list(words))))
        count = self._size if words is None else len(words)
        return write_embeddings(output, format, self.iter_vectors(words), count, self.dimension)
