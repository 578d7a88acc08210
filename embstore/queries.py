"""The query engine: one search over unit rows, with two ways to score an analogy.

Works on IDs and unit vectors only; turning words into IDs and back is the store's job.
Semantics follow gensim's KeyedVectors:

* ``most_similar`` (3CosAdd): the query is the normalised mean of the unit vectors of
  the positive words minus the negative ones; candidates are ranked by cosine.
* ``most_similar_cosmul`` (3CosMul, Levy & Goldberg 2014): candidates are ranked by
  prod((1 + cos(x, p)) / 2) / (prod((1 + cos(x, n)) / 2) + 1e-6).
* The query words themselves are never returned.

Many queries go through one FAISS call (3CosAdd) or one matrix product per block of
rows (3CosMul), never a Python loop over the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection, Sequence

import faiss
import numpy as np

from .errors import QueryError

COSMUL_EPSILON = 1e-6
SCORE_BLOCK_BYTES = 64 << 20  # memory bound for one block of exact scores


@dataclass(frozen=True)
class Neighbour:
    """One answer: a word and its score (cosine for nearest and 3CosAdd)."""

    word: str
    score: float


@dataclass
class QueryResult:
    """The answer to one query. ``notes`` says how query words were resolved, if not exactly."""

    query: str
    neighbours: list[Neighbour]
    notes: list[str] = field(default_factory=list)


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (float32). Raises QueryError for a zero vector."""
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector.astype(np.float64)))
    if norm == 0.0 or not np.isfinite(norm):
        raise QueryError("cannot search with a zero or non-finite vector")
    return (vector / norm).astype(np.float32)


def mean_direction(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """gensim's ``get_mean_vector(pre_normalize=True, post_normalize=True)`` for unit rows.

    ``positive`` and ``negative`` are (p, d) and (m, d) unit rows; the result is the
    unit-length weighted mean with weights +1 and -1, accumulated in float32 as gensim does.
    """
    total = np.zeros(positive.shape[1] if len(positive) else negative.shape[1], dtype=np.float32)
    for row in positive:
        total += row
    for row in negative:
        total -= row
    count = len(positive) + len(negative)
    if count == 0:
        raise QueryError("a query needs at least one word")
    total = total / np.float32(count)
    norm = np.linalg.norm(total)
    if norm == 0:
        raise QueryError("the query words cancel out: their mean vector is zero")
    return (total / norm).astype(np.float32)


def _search_parameters(id_limit: int | None) -> faiss.SearchParameters | None:
    if id_limit is None:
        return None
    parameters = faiss.SearchParameters()
    parameters.sel = faiss.IDSelectorRange(0, int(id_limit))
    return parameters


def search_top_k(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]],
    id_limit: int | None = None,
) -> list[list[tuple[int, float]]]:
    """Top ``k`` (id, score) for each row of ``queries`` in one FAISS call, skipping ``exclude[i]``.

    Only IDs below ``id_limit`` are considered when it is given.
    """
    if k < 1:
        raise QueryError("k must be at least 1")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    extra = max((len(e) for e in exclude), default=0)
    ceiling = index.ntotal if id_limit is None else min(index.ntotal, int(id_limit))
    fetch = max(1, min(k + extra, ceiling))
    parameters = _search_parameters(id_limit if id_limit is not None and id_limit < index.ntotal else None)
    if parameters is None:
        scores, ids = index.search(queries, fetch)
    else:
        scores, ids = index.search(queries, fetch, params=parameters)
    results = []
    for row_scores, row_ids, skip in zip(scores.tolist(), ids.tolist(), exclude):
        kept = [(i, s) for i, s in zip(row_ids, row_scores) if i >= 0 and i not in skip]
        results.append(kept[:k])
    return results


def _merge_top_k(best_scores, best_ids, scores, ids, k):
    """Keep the ``k`` highest of two (q, *) score arrays, sorted high to low."""
    all_scores = np.concatenate([best_scores, scores], axis=1)
    all_ids = np.concatenate([best_ids, ids], axis=1)
    if all_scores.shape[1] > k:
        top = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
        all_scores = np.take_along_axis(all_scores, top, axis=1)
        all_ids = np.take_along_axis(all_ids, top, axis=1)
    order = np.argsort(-all_scores, axis=1, kind="stable")
    return np.take_along_axis(all_scores, order, axis=1), np.take_along_axis(all_ids, order, axis=1)


def cosmul_top_k(
    rows: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]],
    id_limit: int | None = None,
) -> list[list[tuple[int, float]]]:
    """3CosMul top ``k`` for a batch of queries, exactly, over unit ``rows``.

    ``positive`` is (q, p, d) and ``negative`` (q, m, d): each query's unit term vectors.
    Rows are scored in blocks of bounded memory, one matrix product per block.
    """
    if k < 1:
        raise QueryError("k must be at least 1")
    queries, p, d = positive.shape
    m = negative.shape[1]
    limit = rows.shape[0] if id_limit is None else min(rows.shape[0], int(id_limit))
    extra = max((len(e) for e in exclude), default=0)
    keep = min(k + extra, limit)
    terms = np.concatenate([positive, negative], axis=1).reshape(queries * (p + m), d).T.copy()
    block = max(1, SCORE_BLOCK_BYTES // (4 * max(1, terms.shape[1]) * 3))
    best_scores = np.full((queries, 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((queries, 0), dtype=np.int64)
    for start in range(0, limit, block):
        stop = min(start + block, limit)
        sims = (rows[start:stop] @ terms).reshape(stop - start, queries, p + m)
        shifted = (1 + sims) / 2
        scores = np.prod(shifted[:, :, :p], axis=2) / (np.prod(shifted[:, :, p:], axis=2) + COSMUL_EPSILON)
        scores = np.ascontiguousarray(scores.T, dtype=np.float32)
        ids = np.broadcast_to(np.arange(start, stop, dtype=np.int64), scores.shape)
        best_scores, best_ids = _merge_top_k(best_scores, best_ids, scores, ids, keep)
    results = []
    for row_scores, row_ids, skip in zip(best_scores.tolist(), best_ids.tolist(), exclude):
        kept = [(i, s) for i, s in zip(row_ids, row_scores) if i not in skip]
        results.append(kept[:k])
    return results
