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
    """The answer to one query. ``notes`` says how query words were resolved, if not exactly.

    In a batch asked with ``on_unknown="report"``, a query with an unknown word has no
    neighbours and ``error`` says which word.
    """

    query: str
    neighbours: list[Neighbour]
    notes: list[str] = field(default_factory=list)
    error: str | None = None


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


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``scores``, highest first.

    Exact. For long score vectors it first keeps only scores at or above a threshold
    taken from a strided sample, which is several times faster than a full
    ``argpartition``; if fewer than ``k`` survive, it falls back to ``argpartition``.
    """
    n = scores.shape[0]
    if k >= n:
        return np.argsort(-scores, kind="stable")
    if n > 65_536:
        stride = n // 8192
        sample = scores[::stride]
        position = min(len(sample) - 1, 4 * (k * len(sample)) // n + 16)
        threshold = np.partition(sample, len(sample) - 1 - position)[len(sample) - 1 - position]
        candidates = np.flatnonzero(scores >= threshold)
        if len(candidates) >= k:
            order = np.argsort(-scores[candidates], kind="stable")[:k]
            return candidates[order]
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def _drop_excluded(ids_rows, score_rows, exclude, k) -> list[list[tuple[int, float]]]:
    results = []
    for row_ids, row_scores, skip in zip(ids_rows, score_rows, exclude):
        kept = [(i, s) for i, s in zip(row_ids, row_scores) if i >= 0 and i not in skip]
        results.append(kept[:k])
    return results


def exact_top_k(
    rows: np.ndarray,
    queries: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]],
    id_limit: int | None = None,
) -> list[list[tuple[int, float]]]:
    """Exact top ``k`` (id, cosine) for unit ``queries`` against unit ``rows``.

    One query is a BLAS matrix-vector product and a threshold selection; a batch
    goes through one call of FAISS's blocked BLAS search. Only the first
    ``id_limit`` rows are searched when given; ``exclude[i]`` is skipped for query i.
    """
    if k < 1:
        raise QueryError("k must be at least 1")
    searched = rows if id_limit is None else rows[: int(id_limit)]
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    extra = max((len(e) for e in exclude), default=0)
    fetch = max(1, min(k + extra, searched.shape[0]))
    if len(queries) <= 4:
        ids_rows, score_rows = [], []
        for query in queries:
            scores = searched @ query
            top = top_k_indices(scores, fetch)
            ids_rows.append(top.tolist())
            score_rows.append(scores[top].tolist())
    else:
        scores, ids = faiss.knn(queries, searched, fetch, metric=faiss.METRIC_INNER_PRODUCT)
        ids_rows, score_rows = ids.tolist(), scores.tolist()
    return _drop_excluded(ids_rows, score_rows, exclude, k)


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
    return _drop_excluded(ids.tolist(), scores.tolist(), exclude, k)


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


def cosmul_scores(sims: np.ndarray, positives: int) -> np.ndarray:
    """3CosMul from cosines: sims is (..., p + m) with the p positive terms first."""
    shifted = (1 + sims) / 2
    return np.prod(shifted[..., :positives], axis=-1) / (np.prod(shifted[..., positives:], axis=-1) + COSMUL_EPSILON)


def cosmul_top_k(
    rows: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]],
    id_limit: int | None = None,
    group: int = 256,
) -> list[list[tuple[int, float]]]:
    """3CosMul top ``k`` for a batch of queries, exactly, over unit ``rows``.

    ``positive`` is (q, p, d) and ``negative`` (q, m, d): each query's unit term vectors.
    Queries go in groups, rows in blocks of bounded memory, one matrix product per block.
    """
    if k < 1:
        raise QueryError("k must be at least 1")
    queries, p, d = positive.shape
    m = negative.shape[1]
    searched = rows if id_limit is None else rows[: int(id_limit)]
    limit = searched.shape[0]
    extra = max((len(e) for e in exclude), default=0)
    keep = min(k + extra, limit)
    results: list[list[tuple[int, float]]] = []
    for first in range(0, queries, group):
        last = min(first + group, queries)
        count = last - first
        terms = np.concatenate([positive[first:last], negative[first:last]], axis=1)
        terms = np.ascontiguousarray(terms.reshape(count * (p + m), d).T)
        if count == 1:
            scores = cosmul_scores(searched @ terms, p)
            top = top_k_indices(scores, keep)
            results.extend(_drop_excluded([top.tolist()], [scores[top].tolist()], exclude[first:last], k))
            continue
        block = max(keep, SCORE_BLOCK_BYTES // (4 * terms.shape[1] * 2))
        best_scores = np.full((count, 0), -np.inf, dtype=np.float32)
        best_ids = np.zeros((count, 0), dtype=np.int64)
        for start in range(0, limit, block):
            stop = min(start + block, limit)
            sims = (searched[start:stop] @ terms).reshape(stop - start, count, p + m)
            scores = np.ascontiguousarray(cosmul_scores(sims, p).T, dtype=np.float32)
            ids = np.broadcast_to(np.arange(start, stop, dtype=np.int64), scores.shape)
            best_scores, best_ids = _merge_top_k(best_scores, best_ids, scores, ids, keep)
        results.extend(_drop_excluded(best_ids.tolist(), best_scores.tolist(), exclude[first:last], k))
    return results
