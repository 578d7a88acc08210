"""The store facade: one SQLite catalog plus the FAISS index files beside it.

``Store`` wires the parts (storage, vocabulary, search, writes, evaluation; README, "How a
store is laid out") to one opened generation and keeps the public API; it holds no logic
of its own. A query flows words -> IDs -> rows and search -> IDs -> words; a write commits
through ``writes`` and the store then moves to the generation it committed.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from typing import TYPE_CHECKING

from .errors import EmbstoreError, StoreChangedError, StoreClosedError
from .paths import resolve_store_path
from .results import Neighbour, QueryResult, Resolved
from .search.searcher import EXACT, AvailableIndex, Hits, Searcher
from .storage.catalog import Catalog
from .storage.describe import StoreInfo, describe
from .storage.store_files import StoreFiles
from .vocabulary.vocabulary import Vocabulary
from .word_queries import WordQueries

if TYPE_CHECKING:  # loading, writing and exporting are imported when used: a query does not need them
    from .storage.catalog_indexes import IndexFileRecord
    from .writes.loading import LoadReport, Progress

CHANGE_ATTEMPTS = 3  # a word change that finds the store changed under it is redone on the new state


class _Closed:
    """Stands in for every part of a closed store: any use says it is closed."""

    def __init__(self, path: Path):
        self._path = path

    def _fail(self, *args, **kwargs):
        raise StoreClosedError(f"the store {self._path} is closed; open it again with Store.open")

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        self._fail()

    __len__ = __iter__ = __contains__ = _fail


class Store:
    """An open embedding store. Create one with ``Store.load`` and open it with ``Store.open``."""

    def __init__(self, files: StoreFiles, words_in_memory: bool | None = None):
        self._words_in_memory = words_in_memory
        self._attach(files)

    def _attach(self, files: StoreFiles) -> None:
        """Wire the parts to one opened generation."""
        self._files = files
        self.path, self.catalog, self.meta = files.path, files.catalog, files.meta.raw
        self.dimension, self.storage, self.generation = files.dimension, files.meta.storage, files.generation
        self.vocab = Vocabulary(files.catalog, files.size, self._words_in_memory)
        self.searcher = Searcher(files.rows, files.dimension, storage=files.meta.storage,
                                 storage_index=files.storage_index, default=files.meta.default_index, indexes={
                                     kind: AvailableIndex(kind, record.params, files.is_current(kind),
                                                          functools.partial(files.index, kind))
                                     for kind, record in files.records.items() if kind not in (EXACT, self.storage)},
                                 damaged=files.broken, raw_rows=files.meta.raw_rows, norms=files.norms,
                                 sketch=files.sketch, sketch_problem=files.sketch_problem, guard=files.rows_intact)
        has_subwords = files.subword_file is not None or files.subword_problem is not None
        self._queries = WordQueries(self.vocab, self.searcher, files.subword_vectors if has_subwords else None)

    # -- opening, closing, loading ----------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, verify: bool = False,
             words_in_memory: bool | None = None) -> "Store":
        """Open the store at ``path`` (resolved as the CLI does when None), checking in constant
        time that the catalog and the files agree (rows, IDs, sizes, headers, the rows file's
        fingerprint); ``verify=True`` also reads every byte of the rows for their SHA-256, as
        ``embstore check`` does. The rows are memory-mapped. A store that cannot be written
        here opens read-only. ``words_in_memory``: True holds
        the words in a table in memory now (0.25 s and 5 MB at 400k words), False never, None
        once an eighth of the vocabulary has been looked up through SQLite."""
        return cls(StoreFiles.open(resolve_store_path(path), verify=verify), words_in_memory)

    @classmethod
    def load(cls, source: str | os.PathLike, path: str | os.PathLike | None = None, *, format: str | None = None,
             limit: int | None = None, unicode_errors: str = "strict", zero_vectors: str = "error",
             replace: bool = False, progress: Progress | None = None, storage: str = EXACT,
             bad_words: str = "error", counts: str | os.PathLike | None = None, encoding: str = "utf-8",
             sketch: bool = False) -> LoadReport:
        """Load an embedding file into a new store at ``path``, or replace the one there, all
        or nothing. Duplicate words keep their first vector; ``zero_vectors`` 'error' or
        'skip'; ``bad_words`` (white space or control characters in a word) 'error' or 'skip';
        ``storage="sq8"`` keeps only 8-bit codes; ``counts``: a 'word count' file (word2vec's
        -save-vocab, gensim's fvocab). Vectors are kept exactly as read. A fastText ``.bin``
        model also keeps its n-gram rows, so that any word gets a vector; ``encoding`` is its
        words' encoding (gensim's ``encoding=``). ``sketch`` also writes the rows' sketch (rows of
        128 dimensions or more; about a fifth more disk at 300): a single exact query then reads
        a fifth of the bytes and gives the same answers (``row_sketch``). Raises FormatError, StoreError."""
        from .writes.loading import load_store

        return load_store(source, resolve_store_path(path), format=format, limit=limit,
                          unicode_errors=unicode_errors, zero_vectors=zero_vectors, replace=replace,
                          progress=progress, storage=storage, bad_words=bad_words, counts=counts, encoding=encoding,
                          sketch=sketch)

    def close(self) -> None:
        """Release the catalog and the index files; any later use raises StoreClosedError."""
        if isinstance(self._files, _Closed):
            return
        self._files.close()
        closed = _Closed(self.path)
        self._files = self.catalog = self.vocab = self.searcher = self._queries = closed

    @property
    def closed(self) -> bool:
        return isinstance(self._files, _Closed)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def is_newest(self) -> bool:
        """Whether this store is at the newest committed generation (no writer committed since)."""
        return self._files.is_newest()

    def refresh(self) -> bool:
        """Move to the newest committed generation; returns whether anything changed. If the
        move fails (damage, Ctrl-C), the store stays whole on the generation it had."""
        if self._files.is_newest():
            return False
        self._reload()
        return True

    def _reload(self) -> None:
        self._attach(self._files.reopen())

    def _write(self, operation: Callable[[Catalog], object], attempts: int = 1):
        """Run ``operation`` with a catalog connection of its own, so that this store's read
        snapshot is never released; redo it on the new state if another writer committed
        first (up to ``attempts`` times); then move to the newest generation. If that move
        fails, the store stays whole on the generation it had."""
        self.catalog.require_writable()
        writer = Catalog.open(self.path)
        try:
            for attempt in range(attempts):
                try:
                    return operation(writer)
                except StoreChangedError:
                    if attempt == attempts - 1:
                        raise
                    self._reload()
        finally:
            writer.close()
            try:
                self._reload()
            except EmbstoreError:
                pass

    def _manage_indexes(self, operation: str, *args, **kwargs):
        """``IndexManager.<operation>`` on this generation, with a catalog connection of its own."""
        from .writes.index_manager import IndexManager

        return self._write(lambda writer: getattr(IndexManager(self._files, writer), operation)(*args, **kwargs))

    def _change_words(self, change: str, *args, **kwargs):
        """``WordChanges.<change>``, redone on the new state if another writer committed first."""
        from .writes.word_changes import WordChanges

        return self._write(lambda writer: getattr(WordChanges(self._files, self.vocab, writer), change)(
            *args, **kwargs), CHANGE_ATTEMPTS)

    # -- the vocabulary ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, word: object) -> bool:
        return word in self.vocab

    def __iter__(self) -> Iterator[str]:
        return iter(self.vocab)

    def vocabulary(self) -> list[str]:
        """All words in ID (= frequency) order; cached after the first call."""
        return self.vocab.words()

    def completions(self, prefix: str, limit: int = 50) -> list[str]:
        """Up to ``limit`` words that start with ``prefix`` (case-insensitively), most frequent first."""
        return self.vocab.completions(prefix, limit)

    def resolve(self, word: str, case_insensitive: bool = False) -> Resolved:
        """``word`` exactly as written, else (only with ``case_insensitive``) its most frequent
        case-insensitive match; UnknownWordError (a KeyError) with suggestions otherwise."""
        return self._queries.resolve(word, case_insensitive)

    def resolve_many(self, words: Sequence[str], on_unknown: str = "raise", case_insensitive: bool = False) -> list:
        """``resolve`` for many words; ``on_unknown="report"`` puts each error in its word's place."""
        return self._queries.resolve_many(words, on_unknown, case_insensitive)

    # -- queries ----------------------------------------------------------------------
    # Words are matched exactly as written: an unknown word raises UnknownWordError (a
    # KeyError, as in gensim). ``case_insensitive=True`` falls back to the most frequent
    # word that differs only in case, with a note in the result, as the CLI does.

    def nearest(self, word: str, k: int = 10, restrict: int | None = None, index: str | None = None,
                case_insensitive: bool = False) -> QueryResult:
        """The ``k`` words most similar to ``word`` by cosine (gensim's ``most_similar(word)``).
        ``restrict``: search only the N most frequent words; ``index``: an approximate index."""
        return self._queries.nearest(word, k, restrict, index, case_insensitive)

    def nearest_many(self, words: Sequence[str], k: int = 10, restrict: int | None = None,
                     on_unknown: str = "raise", index: str | None = None,
                     case_insensitive: bool = False) -> list[QueryResult]:
        """``nearest`` for many words in one batched search."""
        return self._queries.nearest_many(words, k, restrict, on_unknown, index, case_insensitive)

    def nearest_to_vector(self, vector, k: int = 10, restrict: int | None = None,
                          index: str | None = None) -> QueryResult:
        """The ``k`` words whose vectors have the highest cosine with ``vector``."""
        return self._queries.nearest_to_vector(vector, k, restrict, index)

    def most_similar(self, positive: Sequence[str] = (), negative: Sequence[str] = (), k: int = 10,
                     restrict: int | None = None, index: str | None = None,
                     case_insensitive: bool = False) -> QueryResult:
        """gensim's ``most_similar(positive, negative)`` for lists of words (vectors and weights:
        ``keyed_vectors()``)."""
        return self._queries.most_similar(positive, negative, k, restrict, index, case_insensitive)

    def analogy(self, a: str, b: str, c: str, k: int = 10, method: str = "add",
                restrict: int | None = None, index: str | None = None, case_insensitive: bool = False) -> QueryResult:
        """A is to B as C is to ?: 3CosAdd (``add``) or 3CosMul (``mul``); query words excluded."""
        return self._queries.analogy_many([(a, b, c)], k, method, restrict, "raise", index, case_insensitive)[0]

    def analogy_many(self, questions: Sequence[tuple[str, str, str]], k: int = 10, method: str = "add",
                     restrict: int | None = None, on_unknown: str = "raise",
                     index: str | None = None, case_insensitive: bool = False) -> list[QueryResult]:
        """``analogy`` for many (a, b, c) questions, batched through one search."""
        return self._queries.analogy_many(questions, k, method, restrict, on_unknown, index, case_insensitive)

    def similarity(self, first: str, second: str, case_insensitive: bool = False) -> float:
        """Cosine similarity of two words."""
        return self._queries.similarity(first, second, case_insensitive)

    def doesnt_match(self, words: Sequence[str], case_insensitive: bool = False) -> tuple[str, list[Neighbour]]:
        """gensim's ``doesnt_match``: (odd word, every word with its cosine to the mean)."""
        return self._queries.doesnt_match(words, case_insensitive)

    def unit_vector(self, word: str, case_insensitive: bool = False) -> np.ndarray:
        """The unit-length vector of ``word`` (a copy)."""
        return self._queries.unit_vector(word, case_insensitive)

    def vector(self, word: str, case_insensitive: bool = False) -> np.ndarray:
        """The vector of ``word`` exactly as loaded: the float32 values of the source file (a copy)."""
        return self._queries.vector(word, case_insensitive)

    def analogy_hits(self, ids: np.ndarray, k: int, method: str = "add", id_limit: int | None = None,
                     index: str | None = None) -> Hits:
        """The batch engine under ``analogy_many``: (a, b, c) ID rows in, (id, score) lists out."""
        kind = self.searcher.choose(index).kind if method == "add" else EXACT
        return self.searcher.analogy_hits(ids, k, method, id_limit, kind)

    @property
    def has_subwords(self) -> bool:
        """Whether the store keeps a fastText model's n-gram rows, so that any word has a vector."""
        return self._files.subword_file is not None or self._files.subword_problem is not None

    def index_kind(self, index: str | None) -> str:
        """The index that answers a query given ``index`` (None: the default)."""
        return self.searcher.choose(index).kind

    @property
    def approximate_vectors(self) -> bool:
        """True when the store keeps only compressed codes, so every vector is an approximation."""
        return self.storage != EXACT

    def evaluate_analogies(self, path: str | os.PathLike, **options):
        """Analogy accuracy on a questions-words file; see ``evaluation.evaluate.evaluate_analogies``."""
        from .evaluation.evaluate import evaluate_analogies

        return evaluate_analogies(self.searcher, self.vocab, path, **options)

    def evaluate_word_pairs(self, path: str | os.PathLike, **options):
        """Word-pair correlation; see ``evaluation.evaluate.evaluate_word_pairs``."""
        from .evaluation.evaluate import evaluate_word_pairs

        return evaluate_word_pairs(self.searcher, self.vocab, path, **options)

    def measure_index(self, kind: str, **options) -> dict:
        """Recall and latency of an approximate index; see ``evaluation.recall.measure_index``."""
        from .evaluation.recall import measure_index

        record = self._files.records.get(kind)
        return measure_index(self.searcher, self.vocab, kind, nearest=self.nearest,
                             index_bytes=record.bytes if record else None, **options)

    # -- indexes ----------------------------------------------------------------------

    def build_index(self, kind: str, *, make_default: bool = False, progress: Progress | None = None,
                    **params: int | None) -> IndexFileRecord:
        """Build an approximate or compressed index from the rows and record it atomically."""
        return self._manage_indexes("build", kind, self.searcher.unit_rows, make_default=make_default,
                                    progress=progress, **params)

    def drop_index(self, kind: str) -> None:
        """Remove an approximate index (the exact rows cannot be dropped)."""
        self._manage_indexes("drop", kind)

    def set_default_index(self, kind: str) -> None:
        """Make ``kind`` the index queries use when none is named ('exact' to reset)."""
        self._manage_indexes("set_default", kind)

    def tune_index(self, kind: str, **settings: int | None) -> IndexFileRecord:
        """Change hnsw ``ef_search``/``ef_search_words`` or ivf ``nprobe`` without a rebuild."""
        return self._manage_indexes("tune", kind, **settings)

    def record_index_measurements(self, kind: str, figures: dict) -> bool:
        """Store measured recall and latency with the ``kind`` file they were measured on."""
        return self._manage_indexes("record_measurements", kind, figures)

    def set_sketch(self, on: bool = True) -> bool:
        """Write the exact rows again with their sketch (``on``; see ``load(sketch=True)``) or without
        it, in one atomic commit; False if they already are so. The rows, their indexes and shards
        stay as they are. Raises QueryError for rows under 128 dimensions or a store of sq8 codes."""
        from .writes.row_sketching import set_sketch

        return self._write(lambda writer: set_sketch(self._files, writer, on), CHANGE_ATTEMPTS)

    @property
    def sketched(self) -> bool:
        """Whether the exact rows have a sketch (single exact queries read it instead of every row)."""
        return self._files.sketch is not None

    # -- shards -----------------------------------------------------------------------

    def shard(self, shards: int, *, graphs: bool = False, progress: Callable[[str, int, int], None] | None = None,
              reuse_rows: bool = True) -> list:
        """Split the exact rows by word ID into ``shards`` files, one per range (with ``graphs``,
        also an HNSW graph of each), replacing any earlier layout in one atomic commit. Word
        changes keep the shard rows equal to the store's rows; graphs go stale when the rows
        change. Rows files of the current rows, as many shards, are kept (``reuse_rows``) when they
        pass the checks of an open; without ``graphs`` any stored graphs are removed. Ray's
        shard actors (``RayShards``) each load one shard file."""
        from .writes.sharding import Sharding

        unit = (lambda: self.searcher.unit_rows) if graphs else None
        return self._write(lambda writer: Sharding(self._files, writer).shard(shards, unit, progress, reuse_rows),
                           CHANGE_ATTEMPTS)

    def drop_shards(self) -> int:
        """Remove the shard files; returns how many shards there were."""
        from .writes.sharding import Sharding

        return self._write(lambda writer: Sharding(self._files, writer).drop())

    def shard_layout(self):
        """This generation's ``ShardLayout`` (ranges and files), or None if the store is not sharded."""
        return self._files.shard_layout()

    # -- changes ----------------------------------------------------------------------

    def add_words(self, words: Sequence[str], vectors: np.ndarray, on_duplicate: str = "error",
                  source: str = "add") -> dict:
        """Add words with their vectors in one atomic change. ``on_duplicate``: 'error', 'skip'
        (keep the old vector) or 'replace' (same ID, new vector). New words get the next IDs."""
        return self._change_words("add_words", words, vectors, on_duplicate, source)

    def append_file(self, source: str | os.PathLike, **options) -> dict:
        """Add the words of an embedding file (``load --append``); one atomic change."""
        return self._change_words("append_file", source, **options)

    def delete_words(self, words: Sequence[str]) -> int:
        """Delete words (exact spelling) in one atomic change; later IDs move down to stay dense."""
        return self._change_words("delete_words", words)

    def rename_word(self, old: str, new: str) -> None:
        """Give a word a new spelling; its ID and vector stay."""
        self._change_words("rename_word", old, new)

    def keyed_vectors(self, index: str | None = None):
        """This store as gensim's ``KeyedVectors`` (``embstore.KeyedVectors``); closing the view
        leaves the store open."""
        from .gensim_view import KeyedVectors

        return KeyedVectors(self, index=index)

    # -- inspection and export --------------------------------------------------------

    def info(self) -> StoreInfo:
        """Size, metadata and index files (each with whether it is stale)."""
        return describe(self._files)

    def iter_vectors(self, words: Sequence[str] | None = None, batch: int = 50_000
                     ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Yield (words, original vectors) chunks: all words in ID order, or just ``words``."""
        from .export import iter_vectors

        return iter_vectors(self.vocab, self.searcher, words, batch)

    def export(self, output: str | os.PathLike, format: str, words: Sequence[str] | None = None,
               case_insensitive: bool = False) -> list[Path]:
        """Write the store (or only ``words``) as word2vec text/binary, GloVe text or .npy; '-' is stdout.
        Values are written exactly: binary as stored, text as the shortest decimal of each float32."""
        from .export import export_store

        return export_store(self.path, self.vocab, self.searcher, output, format, words, case_insensitive)
