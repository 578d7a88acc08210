"""Links from each row of an HNSW graph to its own nearest neighbours, and searches that start there.

FAISS's HNSW keeps for each row a level-0 list of up to 2*M neighbours, chosen by a
heuristic that prefers neighbours in different directions over the nearest ones. Many
slots stay free: on GloVe 6B 50d with M=32 a list holds 36 of its 64 on average.

``link_nearest`` searches the graph for each row's nearest neighbours and writes the
ones not yet listed into the row's free slots. The file is still a plain IndexHNSWFlat.
Each row's search starts at the row itself (``from_rows``), where its neighbours are: at
400k x 50 on FAISS's graph at efConstruction 40, a list of 64 from the row links better than
a list of 40 from the top of the graph in about the same time (recall@10 of word queries with
a list of 12: 0.963 against 0.950, 45 s against 43 s), and the default list of 16 takes
15-18 s for 0.914 (``bench/hnsw_build.py``). Indexes recorded before ``link_ef`` searched
from the top at ``ef_construction``, and rows added to them still are.

``search_from_rows`` answers queries that are stored rows (``nearest king``): each
bottom-layer search starts at the query's own node, where the links put its nearest
neighbours one step away, instead of descending from the top of the graph. At 400k x 50
recall@10 is 0.993 with a candidate list of 12 and about 480 distance computations per
query; plain FAISS HNSW needs efSearch 96 and 2.9k for 0.990. Queries that are not stored rows
(analogies) search from the top as usual and gain less. Knows nothing of SQLite.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..lazy_modules import faiss
import numpy as np

CHUNK = 20_000


def level0_lists(index: faiss.IndexHNSW, ids: np.ndarray) -> np.ndarray:
    """The level-0 neighbour lists of ``ids`` (copied): one row of 2*M slots each, -1 where free."""
    hnsw = index.hnsw
    neighbours = faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())
    return neighbours[_slots(hnsw, ids)]


def _slots(hnsw, ids: np.ndarray) -> np.ndarray:
    offsets = faiss.rev_swig_ptr(hnsw.offsets.data(), hnsw.offsets.size())
    first = offsets[ids].astype(np.int64) + hnsw.cum_nb_neighbors(0)
    return first[:, None] + np.arange(hnsw.nb_neighbors(0))


def link_nearest(index: faiss.IndexHNSW, rows: np.ndarray, start: int, links: int, ef: int,
                 progress: Callable[[int, int], None] | None = None, from_rows: bool = True) -> int:
    """Give rows ``start`` .. ``start + len(rows)`` of ``index`` links to their ``links`` nearest neighbours.

    ``rows`` are those rows' vectors, already in ``index``. Neighbours are found by searching
    ``index`` with efSearch ``ef``, from each row's own node (``from_rows``) or from the top
    of the graph, a chunk of rows at a time in a fixed random order; each chunk's links are
    in the graph before the next chunk searches, which makes later searches better. Links
    go only into free slots. Returns how many links were added.
    """
    if links < 1 or len(rows) == 0:
        return 0
    hnsw = index.hnsw
    if not hnsw.neighbors.is_owned:
        raise ValueError("the HNSW graph is memory-mapped; open a private copy to change it")
    neighbours = faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())  # a view: writes go to FAISS
    parameters = faiss.SearchParametersHNSW()
    parameters.efSearch = max(ef, links + 1)
    order = np.random.default_rng(0).permutation(len(rows))
    added = 0
    for done in range(0, len(rows), CHUNK):
        chunk = np.sort(order[done: done + CHUNK])
        ids = chunk + start
        queries = np.ascontiguousarray(rows[chunk], dtype=np.float32)
        if from_rows:
            _, found = search_from_rows(index, queries, ids, links + 1, parameters)
        else:
            _, found = index.search(queries, links + 1, params=parameters)
        slots = _slots(hnsw, ids)
        lists = neighbours[slots]
        added += _fill_free_slots(lists, ids, found)
        neighbours[slots] = lists
        if progress:
            progress(min(done + CHUNK, len(rows)), len(rows))
    return added


def _fill_free_slots(lists: np.ndarray, ids: np.ndarray, found: np.ndarray) -> int:
    """Append each row's ``found`` IDs that are new to its list (not itself, not listed) in place."""
    width = lists.shape[1]
    free = lists < 0
    used = np.where(free.any(axis=1), free.argmax(axis=1), width)  # FAISS stops reading a list at its first -1
    listed = (found[:, :, None] == lists[:, None, :]).any(axis=2)
    new = ~listed & (found >= 0) & (found != ids[:, None])
    position = used[:, None] + np.cumsum(new, axis=1) - 1
    new &= position < width
    row, column = np.nonzero(new)
    lists[row, position[row, column]] = found[row, column]
    return len(row)


def search_from_rows(index: faiss.IndexHNSW, queries: np.ndarray, row_ids: Sequence[int] | np.ndarray, k: int,
                     parameters: faiss.SearchParametersHNSW | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` for ``queries`` that are the index's own rows ``row_ids``, started at those rows.

    Returns (scores, ids) as ``index.search`` does. A query's own row may or may not be
    among them. ``parameters`` may set efSearch (at least ``k`` is used); an ID selector
    here would be no use, as the search starts outside the selected IDs.
    """
    if parameters is None or parameters.efSearch < k:
        # Unlike FAISS's top-down search, this one does not widen a list shorter than k.
        wider = faiss.SearchParametersHNSW()
        wider.efSearch = k
        parameters = wider
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    starts = np.array(row_ids, dtype=np.int32)
    # FAISS's HNSW minimises the negated inner product; a row's with itself is its squared norm.
    start_distances = -np.square(queries).sum(axis=1)
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    index.search_level_0(len(queries), faiss.swig_ptr(queries), k, faiss.swig_ptr(starts),
                         faiss.swig_ptr(start_distances), faiss.swig_ptr(scores), faiss.swig_ptr(ids),
                         1, 1, parameters)
    return scores, ids
