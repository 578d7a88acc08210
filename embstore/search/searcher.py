"""Search over one generation's rows: the exact rows or an approximate index, chosen per query.

Knows nothing of SQLite or words: it is given the rows, the default index kind, and for
each approximate index its parameters, whether it holds the current rows, and how to
open it. A stale index (built before the rows last changed) or a default that names no
index is never searched: the exact rows answer, with a note that says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Collection, Sequence

import numpy as np

from ..errors import CatalogMismatchError, QueryError
from ..row_norms import row_norms
from ..row_sketch import SketchDamaged
from ..lazy_modules import faiss, lazy_module

if TYPE_CHECKING:
    from ..row_sketch import Sketch
    from .analogy_screen import Screening

index_kinds = lazy_module("embstore.search.index_kinds")  # approximate kinds only: an exact query needs none
analogy_screen = lazy_module("embstore.search.analogy_screen")
from .engine import cosmul_top_k, cosmul_top_k_vectors, exact_top_k, mean_directions, search_top_k

EXACT = "exact"
ANALOGY_METHODS = ("add", "mul")
Hits = list[list[tuple[int, float]]]


@dataclass(frozen=True)
class AvailableIndex:
    """An approximate index the searcher may use."""

    kind: str
    params: dict
    current: bool  # built from exactly the rows being searched
    open: Callable[[], faiss.Index]


@dataclass(frozen=True)
class Choice:
    """The index that answers a query, and a note when it is not the one asked for."""

    kind: str
    note: str | None = None


NORM_BLOCK = 65_536  # rows per step when lengths or unit rows are computed
RERANKED_KINDS = ("pq",)  # compressed codes whose candidates are re-scored from the exact rows
RERANK_CANDIDATES = 30  # candidates per answer the codes propose (at least RERANK_MINIMUM)
RERANK_MINIMUM = 300
# Past this no answer from float rows comes from healthy rows, and a check would pass. Not 1:
# float32 lengths are gensim's, and a row whose squares are subnormal (values near 1e-22) gets
# a length several times too short, so its "unit" row is several times too long (4.95 seen at
# 50 dimensions; the factor grows with the square root of the dimension), and so are the
# scores with it. What this catches is gross: garbage floats (1e12, 1e29) and NaN. sq8 is
# held to NaN and to its trained ranges (index_kinds.code_range_problem) instead: its clamped
# rows decode longer than 1 too.
PLAUSIBLE_SCORE = 1e6
EXHAUSTIVE_KINDS = (EXACT, "sq8")  # scan every row: they give min(k, rows to give) answers unless rows are NaN


class Searcher:
    """Top-k search, analogy scoring and pair similarities over one set of rows, by cosine.

    The exact rows are the vectors as loaded (``raw_rows``), so that a vector is given back
    bit for bit; cosine divides by each row's float32 length (stored beside the rows). A
    query, or a batch, scores the stored rows and divides by those lengths without copying
    the rows; 3CosMul, the analogy screen and index builds use unit rows computed once per
    process, as gensim's ``get_normed_vectors`` does (same float32 operations). Stores
    written before 0.2 hold unit rows."""

    def __init__(self, rows: np.ndarray | None, dimension: int, *, storage: str = EXACT,
                 storage_index: faiss.Index | None = None, default: str = EXACT,
                 indexes: dict[str, AvailableIndex] | None = None, damaged: dict[str, str] | None = None,
                 raw_rows: bool = False, norms: np.ndarray | None = None, sketch: Sketch | None = None,
                 sketch_problem: str | None = None, guard: Callable[[], None] | None = None):
        """``rows``: the exact rows (``raw_rows``: as loaded, else unit length); or None with
        ``storage_index``, the compressed index of kind ``storage`` that holds a store's only
        (unit) rows. ``norms``: the rows' float32 norms if known (else computed when first
        needed); ``sketch``: the rows' sketch (``row_sketch``), which single exact queries read
        instead of every row; ``guard``: called before the rows are read, raises if their file
        was damaged."""
        self.dimension = dimension
        self.raw_rows = raw_rows and rows is not None
        self._norms: np.ndarray | None = norms if self.raw_rows else None
        self._sketch = sketch if self.raw_rows and norms is not None else None
        self.sketch_problem = sketch_problem  # why the rows' sketch cannot be used (single queries scan every row)
        self._guard = guard or (lambda: None)
        self._unit: np.ndarray | None = None
        self.storage = storage
        self.storage_index = storage_index
        self.default = default
        self.indexes = indexes or {}
        self.damaged = damaged or {}  # {kind: why it cannot be used}
        self._rows = rows
        self.size = rows.shape[0] if rows is not None else storage_index.ntotal
        self._opened: dict[str, faiss.Index] = {}
        self._codes_checked = storage_index is None
        self._decoded: dict[str, np.ndarray] = {}
        self._parameters: dict[tuple[str, int | None], tuple] = {}

    @property
    def rows(self) -> np.ndarray:
        """The rows as stored: the exact rows, or a store's sq8 codes decoded once (about unit length)."""
        if self._rows is None:
            self._rows = self._finite(index_kinds.decoded(self.storage_index, self.dimension))
        return self._rows

    def _finite(self, decoded: np.ndarray) -> np.ndarray:
        """Rows decoded from the store's own codes, or CatalogMismatchError if their ranges cannot
        be those of unit rows or a value is not a number."""
        self.index(self.storage)  # checks the ranges once
        if not np.isfinite(decoded).all():
            self._damaged(self.storage, "its codes decode to values that are not numbers")
        return decoded

    @property
    def norms(self) -> np.ndarray:
        """The float32 length of each stored row (gensim's ``norms``), computed once per process."""
        if self._norms is None:
            if not self.raw_rows:
                self._norms = np.ones(self.size, dtype=np.float32)
            else:
                self._norms = np.concatenate([row_norms(self._rows[start: start + NORM_BLOCK])
                                              for start in range(0, self.size, NORM_BLOCK)] or
                                             [np.zeros(0, dtype=np.float32)]).astype(np.float32)
        return self._norms

    @property
    def unit_rows(self) -> np.ndarray:
        """Every row at unit length (read-only): the stored rows, or for rows as loaded a copy
        computed once (gensim's ``get_normed_vectors``: float32 rows divided by their norms)."""
        if not self.raw_rows:
            return self.rows
        self._guard()
        if self._unit is None:
            unit = np.empty_like(self._rows)
            norms = self.norms
            for start in range(0, self.size, NORM_BLOCK):
                stop = start + NORM_BLOCK
                np.divide(self._rows[start:stop], norms[start:stop, None], out=unit[start:stop])
            unit.flags.writeable = False
            self._unit = unit
        return self._unit

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """Unit rows for ``ids`` without decoding a whole compressed store (read-only for exact rows)."""
        self._guard()
        ids = list(ids)
        if self._unit is not None or not self.raw_rows and self._rows is not None:
            rows = self.unit_rows
            if len(ids) == 1:  # a view, not a copy: a word query is short enough for this to show
                return rows[ids[0]: ids[0] + 1]
            return rows[ids]
        if self.raw_rows:  # the lengths stored beside the rows, else computed for these rows only
            stored = self._rows[ids]
            return stored / (self._norms[ids] if self._norms is not None else row_norms(stored))[:, None]
        return self._finite(index_kinds.decoded(self.storage_index, self.dimension, ids))

    def stored_vectors(self, ids: Sequence[int]) -> np.ndarray | None:
        """The rows of ``ids`` exactly as loaded (a copy), or None if the store holds only unit rows."""
        self._guard()
        return np.array(self._rows[list(ids)]) if self.raw_rows else None

    def holds_rows(self, kind: str) -> bool:
        """Whether ``kind`` is the compressed index that holds the store's only rows."""
        return kind != EXACT and kind == self.storage

    # -- choosing an index ------------------------------------------------------------

    def choose(self, index: str | None) -> Choice:
        """The index that answers: ``index`` if given, else the default. Raises QueryError for
        a kind that is unknown or was asked for by name and does not exist."""
        kind = index or self.default or EXACT
        if kind == EXACT and self.sketch_problem:
            return Choice(kind, f"the rows' sketch cannot be used ({self.sketch_problem}: the file is damaged); "
                                "every row was read. To repair it: embstore check, then embstore repair")
        if kind == EXACT or self.holds_rows(kind):
            return Choice(kind)
        if kind not in index_kinds.KINDS:
            raise QueryError(f"unknown index kind {kind!r}; expected exact or one of {', '.join(index_kinds.KINDS)}")
        available = self.indexes.get(kind)
        if kind in self.damaged:
            return Choice(EXACT, f"the {kind} index cannot be used ({self.damaged[kind]}); the exact rows "
                                 "answered. To repair it: embstore repair")
        if available is None:
            if index:
                raise QueryError(f"this store has no {kind} index; build it with: embstore index build --kind {kind}")
            return Choice(EXACT, f"the default index {kind} does not exist; the exact rows answered "
                                 "(set another with: embstore index default KIND)")
        if not available.current:
            return Choice(EXACT, f"the {kind} index is stale (the words changed after it was built); the exact "
                                 f"rows answered. Rebuild it with: embstore index build --kind {kind}")
        return Choice(kind)

    def index(self, kind: str) -> faiss.Index:
        """The opened FAISS index of ``kind`` (the compressed rows for a compressed store). An sq8
        index whose ranges cannot be those of unit rows is set aside as damaged when first opened
        (the caller then asks the exact rows); for the store's own codes that is an error."""
        if self.holds_rows(kind):
            if not self._codes_checked:
                problem = index_kinds.code_range_problem(self.storage_index)
                if problem:
                    self._damaged(kind, problem)  # raises
                self._codes_checked = True
            return self.storage_index
        if kind not in self._opened:
            opened = self._opened[kind] = self.indexes[kind].open()
            problem = index_kinds.code_range_problem(opened)
            if problem:
                self.damaged[kind] = f"{problem}: its file is damaged"
        return self._opened[kind]

    def parameters(self, kind: str, id_limit: int | None) -> tuple:
        """FAISS search parameters for vectors and for stored words (``index_kinds.search_parameters``)."""
        settings = self._parameters.get((kind, id_limit))
        if settings is None:
            params = self.indexes[kind].params if kind in self.indexes else {}
            settings = self._parameters[kind, id_limit] = index_kinds.search_parameters(kind, params, id_limit)
        return settings

    # -- searching --------------------------------------------------------------------

    def search(self, kind: str, queries: np.ndarray, k: int, exclude: Sequence[Collection[int]],
               id_limit: int | None = None, row_ids: Sequence[int] | None = None) -> Hits:
        """Top ``k`` (id, score) for each query through ``kind`` (a ``choose``n kind);
        ``row_ids``: the queries are these stored rows."""
        if kind == EXACT:
            self._guard()
            if self.raw_rows and self._unit is None:
                try:
                    hits = exact_top_k(self._rows, queries, k, exclude, id_limit, norms=self.norms, sketch=self._sketch)
                except SketchDamaged as exc:  # set aside for this process; every row answers, with a note
                    self._sketch, self.sketch_problem = None, str(exc)
                    hits = exact_top_k(self._rows, queries, k, exclude, id_limit, norms=self.norms)
            else:
                hits = exact_top_k(self.unit_rows, queries, k, exclude, id_limit)
            self._plausible(EXACT, hits, (k, exclude, id_limit))  # or raises: nothing else can answer
            return hits
        faiss_index = self.index(kind)
        if kind in self.damaged:  # found so on opening
            return self.search(EXACT, queries, k, exclude, id_limit)
        if kind in RERANKED_KINDS and self._rows is not None:
            return self._reranked(kind, faiss_index, queries, k, exclude, id_limit)
        if kind in index_kinds.FLAT_CODE_KINDS and len(queries) > 4:
            # These kinds score every row against its decoded vector anyway; for a batch,
            # decoding once and multiplying with BLAS gives the same answers much faster.
            hits = exact_top_k(self._decoded_rows(kind, faiss_index), queries, k, exclude, id_limit)
        else:
            parameters, word_parameters = self.parameters(kind, id_limit)
            hits = search_top_k(faiss_index, queries, k, exclude, parameters, id_limit, row_ids, word_parameters)
        if self._plausible(kind, hits, (k, exclude, id_limit) if kind in EXHAUSTIVE_KINDS else None):
            return hits
        return self.search(EXACT, queries, k, exclude, id_limit)

    def _plausible(self, kind: str, hits: Hits, asked: tuple | None = None) -> bool:
        """Whether every score of ``kind``'s answers could be a cosine. One that cannot (a file
        damaged after opening's checks, which read no row: only ``check`` reads every byte)
        sets an approximate ``kind`` aside as damaged for this process (``choose`` then says so),
        and is one clear error for the store's own rows."""
        if asked is not None:  # a scan of every row: fewer answers than rows to give means rows that score NaN
            k, exclude, id_limit = asked
            for row, skip in zip(hits, exclude):
                if len(row) < self.rows_to_give(k, skip, id_limit):
                    return self._damaged(kind, "some of its rows score NaN with every query")
        bound = np.inf if kind == "sq8" else PLAUSIBLE_SCORE  # sq8: its ranges are checked on opening
        for row in hits:
            for _, score in row:
                if not -bound <= score <= bound:  # (NaN fails both)
                    return self._damaged(kind, f"it answered with a score no cosine can have, {score:.4g}")
        return True

    def rows_to_give(self, k: int, excluded: Collection[int], id_limit: int | None) -> int:
        """How many answers a search that misses no row gives: ``k``, or fewer when the rows
        searched (all, or the first ``id_limit``) less the ``excluded`` among them are fewer."""
        rows = self.size if id_limit is None else min(int(id_limit), self.size)
        return min(k, rows - len({i for i in excluded if 0 <= i < rows}))

    def _damaged(self, kind: str, found: str) -> bool:
        """Set an approximate ``kind`` aside (False); for the store's own rows raise CatalogMismatchError."""
        why = f"{found}: its file is damaged"
        if kind == EXACT or self.holds_rows(kind):  # the store's only rows: nothing else can answer
            rows = "exact rows" if kind == EXACT and self.storage == EXACT else f"{self.storage} rows"
            raise CatalogMismatchError(f"the store's {rows} are damaged ({why}); run 'embstore check', then "
                                       "'embstore repair'")
        self.damaged[kind] = why
        return False

    def _reranked(self, kind: str, faiss_index: faiss.Index, queries: np.ndarray, k: int,
                  exclude: Sequence[Collection[int]], id_limit: int | None) -> Hits:
        """Top ``k`` through compressed codes, re-scored exactly: the codes propose the
        ``RERANK_CANDIDATES`` x k best (one FAISS call for the batch), and each candidate's
        exact cosine is computed from its row, which reads only the candidates' pages of the
        memory-mapped rows. The codes stay small in memory (pq: at most 10% of the rows'
        bytes) while the answers' order and scores are exact among the candidates."""
        limit = self.size if id_limit is None else min(int(id_limit), self.size)
        extra = max((len(e) for e in exclude), default=0)
        wanted = min(limit, max(RERANK_CANDIDATES * k, RERANK_MINIMUM) + extra)
        parameters, _ = self.parameters(kind, id_limit)
        proposed = search_top_k(faiss_index, queries, wanted, [()] * len(queries), parameters, id_limit)
        self._guard()
        hits: Hits = []
        for query, candidates, skip in zip(np.asarray(queries, dtype=np.float32), proposed, exclude):
            ids = np.array(sorted({i for i, _ in candidates} - set(skip)), dtype=np.int64)
            if not len(ids):
                hits.append([])
                continue
            scores = self._rows[ids] @ query
            if self.raw_rows:
                scores = scores / self.norms[ids]
            best = np.argsort(-scores, kind="stable")[:k]
            hits.append([(int(ids[j]), float(scores[j])) for j in best])
        return hits

    def search_word(self, kind: str, word_id: int, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest rows of the stored row ``word_id`` (itself left out), in as few steps as can be."""
        hits = search_top_k(self.index(kind), self.vectors([word_id]), k, [{word_id}], row_ids=[word_id],
                            row_parameters=self.parameters(kind, None)[1])
        return hits[0] if self._plausible(kind, hits) else self.search(EXACT, self.vectors([word_id]), k, [{word_id}])[0]

    def _decoded_rows(self, kind: str, faiss_index: faiss.Index) -> np.ndarray:
        if self.holds_rows(kind):
            return self.unit_rows
        if kind not in self._decoded:
            self._decoded[kind] = index_kinds.decoded(faiss_index, self.dimension)
        return self._decoded[kind]

    def analogy_hits(self, ids: np.ndarray, k: int, method: str = "add", id_limit: int | None = None,
                     kind: str = EXACT) -> Hits:
        """(a, b, c) ID rows in, (id, score) lists out: 3CosAdd through ``kind``, or 3CosMul, which
        is not an inner product and always scores the exact rows. a, b and c are never answers."""
        if method not in ANALOGY_METHODS:
            raise QueryError(f"method must be one of {', '.join(ANALOGY_METHODS)}")
        exclude = [set(row) for row in ids.tolist()]
        if method == "add":  # the terms' unit rows only: the search itself divides by the norms
            terms = self.vectors(ids.ravel()).reshape(ids.shape[0], 3, self.dimension)
            queries = mean_directions(terms[:, [1, 2]], terms[:, [0]])
            return self.search(kind, queries, k, exclude, id_limit)
        return cosmul_top_k(self.unit_rows, ids[:, [1, 2]], ids[:, [0]], k, exclude, id_limit)

    def analogy_hits_for_vectors(self, terms: np.ndarray, k: int, exclude: Sequence[Collection[int]],
                                 method: str = "add", id_limit: int | None = None, kind: str = EXACT) -> Hits:
        """``analogy_hits`` for (a, b, c) terms given as unit vectors, (q, 3, d); ``exclude[i]``:
        the IDs query i must not answer (its terms that are stored words)."""
        if method not in ANALOGY_METHODS:
            raise QueryError(f"method must be one of {', '.join(ANALOGY_METHODS)}")
        if method == "add":
            return self.search(kind, mean_directions(terms[:, [1, 2]], terms[:, [0]]), k, exclude, id_limit)
        self._guard()
        return cosmul_top_k_vectors(self.unit_rows, terms[:, [1, 2]], terms[:, [0]], k, exclude, id_limit)

    def screen_analogies(self, questions: np.ndarray, id_limit: int | None = None) -> Screening:
        """Decide 3CosAdd (a, b, c, d) ID rows without a full search where a bound allows
        (``analogy_screen``); undecided questions must be searched in full."""
        rows = self.unit_rows
        return analogy_screen.screen_analogies(rows if id_limit is None else rows[:id_limit], questions)

    def pair_similarities(self, first_ids: np.ndarray, second_ids: np.ndarray) -> np.ndarray:
        """Cosine similarity of each (first_ids[i], second_ids[i]) pair of rows."""
        return self.checked_similarities(np.einsum("ij,ij->i", self.vectors(first_ids), self.vectors(second_ids)))

    def checked_similarities(self, similarities: np.ndarray) -> np.ndarray:
        """``similarities`` of stored rows, or CatalogMismatchError if one is no cosine (damaged rows)."""
        wrong = ~(np.abs(similarities) <= (np.inf if self.storage == "sq8" else PLAUSIBLE_SCORE))  # (NaN too)
        if wrong.any():
            self._damaged(self.storage, f"it gave a similarity no cosine can have, {similarities[wrong][0]:.4g}")
        return similarities
