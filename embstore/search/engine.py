"""The query engine: one search over unit rows, with two ways to score an analogy.

Works on IDs and unit vectors only; turning words into IDs and back is ``word_queries``' job.
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

import contextlib
import os
from typing import Collection, Sequence

import numpy as np

from .. import row_sketch
from ..errors import QueryError
from ..lazy_modules import faiss, lazy_module

hnsw_links = lazy_module("embstore.search.hnsw_links")  # approximate searches only
index_kinds = lazy_module("embstore.search.index_kinds")

COSMUL_EPSILON = 1e-6
FLOAT32_MAX = float(np.finfo(np.float32).max)
SCORE_BLOCK_BYTES = 64 << 20  # memory bound for one block of exact scores


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (float32). Raises QueryError for a zero vector."""
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector.astype(np.float64)))
    if norm == 0.0 or not np.isfinite(norm):
        raise QueryError("cannot search with a zero or non-finite vector")
    if norm > FLOAT32_MAX:  # a float32 norm would be inf, and every value 0
        return (vector.astype(np.float64) / norm).astype(np.float32)
    return (vector / norm).astype(np.float32)


def mean_direction(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """gensim's ``get_mean_vector(pre_normalize=True, post_normalize=True)`` for unit rows.

    ``positive`` and ``negative`` are (p, d) and (m, d) unit rows; the result is the
    unit-length weighted mean with weights +1 and -1, accumulated in float32 as gensim does.
    """
    if len(positive) + len(negative) == 0:
        raise QueryError("a query needs at least one word")
    dimension = positive.shape[1] if len(positive) else negative.shape[1]
    return mean_directions(np.reshape(positive, (1, -1, dimension)), np.reshape(negative, (1, -1, dimension)))[0]


def mean_directions(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """``mean_direction`` for a batch: (q, p, d) and (q, m, d) unit rows in, (q, d) unit directions out.

    Same float32 operations in the same order as gensim's mean vector, for every query at once.
    """
    total = np.zeros((positive.shape[0], positive.shape[2]), dtype=np.float32)
    for column in range(positive.shape[1]):
        total += positive[:, column]
    for column in range(negative.shape[1]):
        total -= negative[:, column]
    total /= np.float32(positive.shape[1] + negative.shape[1])
    norms = np.linalg.norm(total, axis=1)
    if (norms == 0).any():
        raise QueryError("the query words cancel out: their mean vector is zero")
    return (total / norms[:, None]).astype(np.float32)


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


@contextlib.contextmanager
def _blas_blocks(query_block: int, row_block: int):
    """Set FAISS's BLAS search block sizes for one call.

    FAISS's defaults (4,096 queries x 1,024 rows) write a 16 MB score block that spills
    out of cache; 256 x 4,096 (4 MB) measured 1.6x faster here for 300k x 50 rows.
    """
    saved = faiss.cvar.distance_compute_blas_query_bs, faiss.cvar.distance_compute_blas_database_bs
    faiss.cvar.distance_compute_blas_query_bs, faiss.cvar.distance_compute_blas_database_bs = query_block, row_block
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_query_bs, faiss.cvar.distance_compute_blas_database_bs = saved


class _OneThreadFor:
    """``with _OneThreadFor(queries):`` runs FAISS on one OpenMP thread when there is one query.

    A single query gains nothing from a thread team and pays for waking it (measured
    0.59 vs 0.89 ms per HNSW query here). A class, not a generator context manager: at
    0.1 ms a query, the generator's cost shows.
    """

    __slots__ = ("_threads",)

    def __init__(self, queries: int):
        self._threads = faiss.omp_get_max_threads() if queries == 1 else None

    def __enter__(self) -> None:
        if self._threads is not None:
            faiss.omp_set_num_threads(1)

    def __exit__(self, *exc) -> None:
        if self._threads is not None:
            faiss.omp_set_num_threads(self._threads)


def _candidates_needed(k: int, exclude: Sequence[Collection[int]], available: int) -> int:
    """How many answers to ask for so that ``k`` remain after each query's exclusions."""
    if k < 1:
        raise QueryError("k must be at least 1")
    extra = max((len(e) for e in exclude), default=0)
    return max(1, min(k + extra, available))


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
    norms: np.ndarray | None = None,
    sketch: row_sketch.Sketch | None = None,
) -> list[list[tuple[int, float]]]:
    """Exact top ``k`` (id, cosine) for unit ``queries`` against unit ``rows``, or against
    rows as loaded with their lengths ``norms`` (a query's scores are divided by them; a
    batch normalises a block of rows at a time, ``_scaled_batch``). With the rows' ``sketch``
    a single query reads the sketch and only the rows it cannot rule out (``_sketched_scan``).

    One query is a BLAS matrix-vector product and a threshold selection; a batch
    goes through one call of FAISS's blocked BLAS search. Only the first
    ``id_limit`` rows are searched when given; ``exclude[i]`` is skipped for query i.

    BLAS finds the candidates; the answers' scores are then computed again by
    ``fixed_order_scores``. A BLAS product's last bits depend on where a row falls in the
    kernel's blocks (the rows' range, the batch's size, the threads): a row scored alone,
    in a batch or in a shard could differ in its last bit, and two close words could swap.
    Every row within twice ``score_error_bound`` of the k-th BLAS score is scored again (a
    row further down scores below the k rows above it by either measure), and so is every
    row too short for that bound (``tiny_rows``), so the answer is the exact top k by the
    fixed-order score, ties by lower ID, however the rows are split or batched (a shard's
    answers merge into the whole store's, bit for bit).
    """
    searched = rows if id_limit is None else rows[: int(id_limit)]
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    fetch = _candidates_needed(k, exclude, searched.shape[0])
    margin = 2 * score_error_bound(searched.shape[1])
    tiny = tiny_rows(searched, norms)
    wider = min(searched.shape[0], fetch + RESCORE_SLACK)
    if len(queries) <= 4:
        answers = [_sketched_scan(searched, norms, sketch, query, fetch, margin, tiny) if sketch is not None
                   else _rescored_scan(searched, norms, query, fetch, margin, tiny) for query in queries]
    else:
        if norms is not None:
            ids_rows, score_rows = _scaled_batch(searched, norms, queries, wider)
        else:
            with _blas_blocks(query_block=256, row_block=4096):
                found_scores, found_ids = faiss.knn(queries, searched, wider, metric=faiss.METRIC_INNER_PRODUCT)
            ids_rows, score_rows = found_ids.tolist(), found_scores.tolist()
        answers = []
        for query, ids, scores in zip(queries, ids_rows, score_rows):
            ids, scores = np.asarray(ids, dtype=np.int64), np.asarray(scores, dtype=np.float32)
            kept = ids >= 0
            ids, scores = ids[kept], scores[kept]
            _, candidates = _near_ties(ids, scores, fetch, margin, complete=not len(ids) == wider < searched.shape[0])
            if candidates is None or (len(tiny) and np.isin(ids, tiny).any()):  # or a tiny row's BLAS score: scan
                answers.append(_rescored_scan(searched, norms, query, fetch, margin, tiny))
            else:
                answers.append(_rescored(searched, norms, query, np.concatenate([candidates, tiny]), fetch))
    return _drop_excluded([a[0] for a in answers], [a[1] for a in answers], exclude, k)


RESCORE_SLACK = 8  # candidates a batch keeps past the ones asked for, to hold the near-ties


def score_error_bound(dimension: int) -> float:
    """How far a float32 cosine from BLAS and one from ``fixed_order_scores`` can be apart, at
    most: each sum of ``dimension`` float32 products is within gamma = d u / (1 - d u) of the
    exact dot, relative to sum |q_i x_i| / |x| <= 1 for a unit query (u = 2**-24, the unit
    roundoff), plus a few roundings for the norms and the division; doubled for the two.
    Holds while no product is subnormal: see ``tiny_rows`` for the rows where that can fail."""
    u = 2.0 ** -24
    gamma = dimension * u / (1 - dimension * u) if dimension * u < 0.5 else 1.0
    return 2 * (gamma + 4 * u) + 1e-12


def fixed_order_scores(rows: np.ndarray, norms: np.ndarray | None, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The cosines of rows ``ids`` with the unit ``query``: each row divided by its norm (when
    given: rows as loaded, which may be as short as 1e-42, whose raw products would be
    subnormal), times the query, summed by numpy's pairwise sum along the row (the same
    additions in the same order for a row, whatever the other rows). C order matters: over a
    Fortran-ordered block numpy would sum down the columns instead."""
    picked = np.ascontiguousarray(rows[ids], dtype=np.float32)
    if norms is not None:
        lengths = norms[ids]
        np.divide(picked, lengths[:, None], out=picked)
        short = np.flatnonzero(lengths < np.finfo(np.float32).tiny)  # a subnormal float32 norm is coarse:
        if len(short):  # such rows are made unit length in float64 from their own values
            wide = np.asarray(rows[ids[short]], dtype=np.float64)
            picked[short] = wide / np.sqrt(np.add.reduce(wide * wide, axis=1))[:, None]
    return np.add.reduce(np.multiply(picked, query, out=picked), axis=1)


def tiny_rows(rows: np.ndarray, norms: np.ndarray | None) -> np.ndarray:
    """IDs of rows as loaded so short that a BLAS product of the raw row with a unit query may
    have subnormal terms (each loses up to 2**-149), past ``score_error_bound``: always
    scored again. None in any real embedding; found by a hostile test with rows of 1e-42."""
    if norms is None:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(norms[: rows.shape[0]] < rows.shape[1] * TINY_NORM_PER_DIMENSION)


TINY_NORM_PER_DIMENSION = 2.0 ** -149 / 2.0 ** -24 * 64  # underflow's error under a 64th of the unit roundoff


def _rescored(rows, norms, query, candidates: np.ndarray, fetch: int) -> tuple[list[int], list[float]]:
    """The best ``fetch`` of ``candidates`` by ``fixed_order_scores``, ties by lower ID."""
    if not len(candidates):  # no row scored (NaN rows: the caller finds them damaged)
        return [], []
    candidates = np.sort(candidates)  # sorted: equal scores keep the lower ID first
    candidates = candidates[np.concatenate(([True], candidates[1:] != candidates[:-1]))]  # np.unique imports numpy.ma
    scores = fixed_order_scores(rows, norms, candidates, query)
    order = np.argsort(-scores, kind="stable")[:fetch]
    return candidates[order].tolist(), scores[order].tolist()


def _near_ties(ids: np.ndarray, scores: np.ndarray, fetch: int, margin: float,
               complete: bool) -> tuple[float, np.ndarray | None]:
    """From BLAS's best (``ids``, their ``scores``, best first): the threshold ``margin`` below
    the ``fetch``-th score, and the IDs at or above it; None for those when the list may end
    before the threshold (it is not ``complete``, every row, and its last score still passes)."""
    if not len(scores):  # no row scored at all (every score NaN: damaged rows, which the caller sees)
        return -np.inf, ids if complete else None
    threshold = scores[min(fetch, len(scores)) - 1] - margin
    if not complete and scores[-1] >= threshold:
        return threshold, None
    return threshold, ids[scores >= threshold]


def _rescored_scan(rows, norms, query, fetch: int, margin: float, tiny: np.ndarray) -> tuple[list[int], list[float]]:
    """One query: a BLAS matrix-vector product over every row, then ``_rescored`` of every row
    within ``margin`` of the ``fetch``-th score, and of the ``tiny`` rows."""
    scores = rows @ query
    if norms is not None:
        scores /= norms[: len(scores)]
    if len(tiny):
        scores[tiny] = -np.inf  # their BLAS scores mean nothing; they are scored again anyway
    top = top_k_indices(scores, min(len(scores), fetch + RESCORE_SLACK))
    threshold, candidates = _near_ties(top, scores[top], fetch, margin, complete=len(top) == len(scores))
    if candidates is None:  # more near-ties than the slack holds: a pass over every score
        candidates = np.flatnonzero(scores >= threshold)
    return _rescored(rows, norms, query, np.concatenate([candidates, tiny]), fetch)


SKETCH_FIRST_LOOK = 64  # rows scored in full, past the ones asked for, to set the sketch's threshold
SKETCH_MOST_ROWS = 8  # past 1/8 of the rows left to score, a full scan is cheaper


def _sketched_scan(rows, norms, sketch, query, fetch: int, margin: float, tiny: np.ndarray
                   ) -> tuple[list[int], list[float]]:
    """``_rescored_scan``'s answer, reading the rows' sketch instead of every row.

    Every row's cosine is at most its sketch bound plus a slack (``row_sketch.bounds``; and a
    ``fixed_order_scores`` score at most half of ``margin`` above the cosine). The rows with the
    best bounds are scored in full; the ``fetch``-th of those scores is a threshold that the
    answers reach, so every row whose bound is below it (less the slack and the margin) is left
    out, and the rest are scored: the same ``_rescored`` answer, ties and all, as a scan of every
    row. A sketch that rules out too few rows falls back to that scan.

    Damage (the sketch is in the rows file, whose SHA-256 only ``check`` reads) is looked for on
    the way, at no extra pass: bounds that are not numbers, rows read whose sketch cannot be a
    healthy one (``row_sketch.healthy``: every 16th row, as the pass reads it, and every row scored), an
    answer scoring above its bound. Any of these raises ``row_sketch.SketchDamaged``. A few bytes
    changed inside one row's entry, or damage that keeps each entry's length (a sign flipped), can
    still hide rows: only ``check`` finds that, as for the rows themselves."""
    count = rows.shape[0]
    if not _sketch_pays(rows, norms, sketch, query, fetch, margin):
        return _rescored_scan(rows, norms, query, fetch, margin, tiny)
    bound, slack = row_sketch.bounds(sketch, query, count, norms, SKETCH_CHECK_STRIDE)  # every 4 KiB page checked
    if not np.isfinite(bound.sum(dtype=np.float64)):
        raise row_sketch.SketchDamaged("its bounds are not numbers")
    first = top_k_indices(bound, min(count, fetch + SKETCH_FIRST_LOOK))
    ids, scores = _rescored(rows, norms, query, np.concatenate([first, tiny]), fetch)
    if len(ids) < fetch or not np.isfinite(scores[-1]):  # NaN rows: the full scan's answer, and its damage
        return _rescored_scan(rows, norms, query, fetch, margin, tiny)
    candidates = np.flatnonzero(bound >= np.float32(scores[-1] - slack - margin))
    if len(candidates) > count // SKETCH_MOST_ROWS:
        return _rescored_scan(rows, norms, query, fetch, margin, tiny)
    if not row_sketch.consistent(sketch, np.concatenate([candidates, first]), norms):
        raise row_sketch.SketchDamaged("a row's sketch cannot be a healthy one")
    ids, scores = _rescored(rows, norms, query, np.concatenate([candidates, first, tiny]), fetch)
    found = np.asarray(ids, dtype=np.int64)
    plain = ~np.isin(found, tiny)
    if (np.asarray(scores)[plain] > bound[found[plain]] + slack + margin).any():
        raise row_sketch.SketchDamaged("a row scored above its bound")
    return ids, scores


SKETCH_PROBE_STRIDE = 64  # the probe reads every 64th row (at least 1,024 rows; every row of a small store)
# The pass over the sketch checks every 16th row as it reads each block: a row's sketch is 256
# bytes, so every 4 KiB page of projections, and of residuals, holds a row it checks (the probe's
# every 64th left 3 pages in 4 unchecked).
SKETCH_CHECK_STRIDE = 16


def _sketch_pays(rows, norms, sketch, query, fetch: int, margin: float) -> bool:
    """Whether the sketch is likely to rule out most rows for ``query``, judged from every
    ``SKETCH_PROBE_STRIDE``-th row (a few milliseconds at 3M rows): a query far from the
    sketch's directions (a random vector, say), or rows the sketch holds little of, leave most
    rows in, and a full scan is then cheaper than the sketch's pass and the scan. Only speed
    depends on this, never an answer. The rows it reads are checked for damage on the way (the
    pass over the whole sketch checks every page)."""
    stride = max(1, min(SKETCH_PROBE_STRIDE, rows.shape[0] // 1024))
    searched = slice(0, rows.shape[0], stride)  # the rows searched only (restrict: the first ones)
    sample = row_sketch.Sketch(sketch.basis, sketch.projections[searched], sketch.residuals[searched], sketch.leak,
                               sketch.longest, sketch.widest)
    count = len(sample.residuals)
    if not row_sketch.healthy(sample.projections, sample.residuals, norms[searched]):
        raise row_sketch.SketchDamaged("a row's sketch cannot be a healthy one")
    bound, slack = row_sketch.bounds(sample, query, count)
    if not np.isfinite(bound.sum(dtype=np.float64)):
        raise row_sketch.SketchDamaged("its bounds are not numbers")
    first = top_k_indices(bound, min(count, fetch + SKETCH_FIRST_LOOK))
    _, scores = _rescored(rows, norms, query, first * stride, fetch)
    if len(scores) < fetch:
        return True
    kept = np.count_nonzero(bound >= np.float32(scores[-1] - slack - margin))
    return kept <= count // SKETCH_MOST_ROWS


SCALED_BLOCK_ROWS = 65_536  # rows made unit length at a time for a batch over rows as loaded


def _scaled_batch(rows: np.ndarray, norms: np.ndarray, queries: np.ndarray, fetch: int) -> tuple[list, list]:
    """Top ``fetch`` (ids, scores) per query over rows as loaded.

    Each block of rows is divided by its norms (gensim's unit rows, one block at a time into
    one reused buffer, so no copy of all the rows is made) and scored with one BLAS matrix
    product; a running ``fetch``-th best per query means only scores that beat it are merged,
    which after the first block are few. (FAISS's knn spends 3/4 of its time selecting; at
    3M x 300 and 1,000 queries this is about 4x faster.)"""
    count = rows.shape[0]
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    # rows per block: the block's scores stay within SCORE_BLOCK_BYTES, whatever the batch
    step = max(1024, min(SCALED_BLOCK_ROWS, SCORE_BLOCK_BYTES // (4 * len(queries))))
    buffer = np.empty((min(step, count), rows.shape[1]), dtype=np.float32)
    best_scores = np.full((len(queries), fetch), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), fetch), -1, dtype=np.int64)
    for start in range(0, count, step):
        block = rows[start: start + step]
        unit_block = np.divide(block, norms[start: start + len(block), None], out=buffer[: len(block)])
        scores = queries @ unit_block.T  # (queries, block)
        if start == 0 and scores.shape[1] > fetch:
            top = np.argpartition(-scores, fetch - 1, axis=1)[:, :fetch]
            best_scores = np.take_along_axis(scores, top, axis=1)
            best_ids = top.astype(np.int64)
            order = np.argsort(-best_scores, axis=1, kind="stable")
            best_scores = np.take_along_axis(best_scores, order, axis=1)
            best_ids = np.take_along_axis(best_ids, order, axis=1)
            continue
        query_rows, columns = np.nonzero(scores > best_scores[:, -1][:, None])
        if len(query_rows):
            best_scores, best_ids = _keep_best(best_scores, best_ids, query_rows, scores[query_rows, columns],
                                               columns.astype(np.int64) + start, fetch)
    return best_ids.tolist(), best_scores.tolist()


def search_top_k(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]],
    parameters: faiss.SearchParameters | None = None,
    id_limit: int | None = None,
    row_ids: Sequence[int] | None = None,
    row_parameters: faiss.SearchParameters | None = None,
) -> list[list[tuple[int, float]]]:
    """Top ``k`` (id, score) for each row of ``queries`` through any FAISS index, in one call.

    ``parameters`` carries the index's search-time settings and, where the index accepts
    one, an ID range. Without a range, IDs at or past ``id_limit`` are filtered out of a
    larger result instead. ``exclude[i]`` is skipped for query i. ``row_ids`` says that
    the queries are those stored rows (word queries): an HNSW search then starts at each
    query's own node, with ``row_parameters``, unless IDs are limited.
    """
    queries = index_kinds.fitted(queries, index.d)  # some kinds store zero-padded rows
    limited = id_limit is not None and id_limit < index.ntotal
    fetch = _candidates_needed(k, exclude, int(id_limit) if limited else index.ntotal)
    if limited and (parameters is None or getattr(parameters, "sel", None) is None):
        fetch = min(index.ntotal, 2 * fetch * -(-index.ntotal // int(id_limit)))
    if isinstance(parameters, faiss.SearchParametersHNSW) and parameters.efSearch < fetch:
        wider = faiss.SearchParametersHNSW()  # a candidate list shorter than k would return fewer than k
        wider.efSearch, wider.sel = fetch, parameters.sel
        parameters = wider
    with _OneThreadFor(len(queries)):
        if row_ids is not None and not limited and isinstance(index, faiss.IndexHNSW):
            scores, ids = hnsw_links.search_from_rows(index, queries, row_ids, fetch, row_parameters)
        elif parameters is None:
            scores, ids = index.search(queries, fetch)
        else:
            scores, ids = index.search(queries, fetch, params=parameters)
    if limited:
        ids = np.where(ids < id_limit, ids, -1)
    return _drop_excluded(ids.tolist(), scores.tolist(), exclude, k)


def _keep_best(best_scores, best_ids, query_rows, scores, ids, keep):
    """Merge (query_rows[i], scores[i], ids[i]) candidates into each query's ``keep`` best."""
    queries = best_scores.shape[0]
    all_rows = np.concatenate([np.repeat(np.arange(queries), keep), query_rows])
    all_scores = np.concatenate([best_scores.ravel(), scores])
    all_ids = np.concatenate([best_ids.ravel(), ids])
    order = np.lexsort((-all_scores, all_rows))
    starts = np.searchsorted(all_rows[order], np.arange(queries))
    take = order[starts[:, None] + np.arange(keep)[None, :]]
    return all_scores[take], all_ids[take]


def cosmul_top_k(
    rows: np.ndarray,
    positive_ids: np.ndarray,
    negative_ids: np.ndarray,
    k: int,
    exclude: Sequence[Collection[int]],
    id_limit: int | None = None,
) -> list[list[tuple[int, float]]]:
    """3CosMul top ``k`` for a batch of queries given by the row IDs of their terms, exactly.

    ``positive_ids`` is (q, p) and ``negative_ids`` (q, m). Cosines are computed once per
    block of rows for the distinct term words (one matrix product), then combined per
    query; a running k-th best per query means only rows that beat it are merged.
    Memory is bounded by the block sizes, not by the vocabulary. Large batches are
    split across threads (numpy releases the GIL in this work).
    """
    searched = rows if id_limit is None else rows[: int(id_limit)]
    keep = _candidates_needed(k, exclude, searched.shape[0])
    queries = positive_ids.shape[0]
    workers = min(os.cpu_count() or 1, 4) if queries >= 2_000 else 1
    bounds = np.linspace(0, queries, workers + 1).astype(int)
    parts = [(positive_ids[lo:hi], negative_ids[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    if workers == 1:
        results = [_cosmul_best_ids(searched, *parts[0], keep)]
    else:
        from concurrent.futures import ThreadPoolExecutor  # a large 3CosMul batch only

        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda part: _cosmul_best_ids(searched, *part, keep), parts))
    best_scores = np.concatenate([r[0] for r in results])
    best_ids = np.concatenate([r[1] for r in results])
    return _drop_excluded(best_ids.tolist(), best_scores.tolist(), exclude, k)


def cosmul_top_k_vectors(rows: np.ndarray, positive: np.ndarray, negative: np.ndarray, k: int,
                         exclude: Sequence[Collection[int]], id_limit: int | None = None) -> list[list[tuple[int, float]]]:
    """``cosmul_top_k`` for terms given as unit vectors: ``positive`` (q, p, d), ``negative`` (q, m, d)
    (words that are no stored row, such as a fastText word built from its n-grams)."""
    searched = rows if id_limit is None else rows[: int(id_limit)]
    keep = _candidates_needed(k, exclude, searched.shape[0])
    queries, p = positive.shape[:2]
    terms = np.concatenate([positive, negative], axis=1)
    term_of = np.arange(queries * terms.shape[1]).reshape(queries, -1)
    best_scores, best_ids = _cosmul_rescored(searched, terms.reshape(-1, rows.shape[1]).astype(np.float32), term_of,
                                             p, keep)
    return _drop_excluded(best_ids.tolist(), best_scores.tolist(), exclude, k)


def _cosmul_best_ids(searched: np.ndarray, positive_ids: np.ndarray, negative_ids: np.ndarray,
                     keep: int) -> tuple[np.ndarray, np.ndarray]:
    queries, p = positive_ids.shape
    terms, term_of = np.unique(np.concatenate([positive_ids, negative_ids], axis=1), return_inverse=True)
    if terms.max(initial=-1) >= searched.shape[0]:
        raise QueryError("a query word lies outside the searched rows")
    return _cosmul_rescored(searched, np.ascontiguousarray(searched[terms], dtype=np.float32),
                            term_of.reshape(queries, -1), p, keep)


def _cosmul_rescored(searched: np.ndarray, term_vectors: np.ndarray, term_of: np.ndarray, p: int,
                     keep: int) -> tuple[np.ndarray, np.ndarray]:
    """``_cosmul_best``, with the answers' scores computed again from fixed-order cosines
    (``fixed_order_scores``), so that a question's answers and scores do not depend on the
    other questions of its batch (BLAS's last bit depends on the product's shape).

    BLAS keeps ``RESCORE_SLACK`` more candidates than asked; they are scored again and
    ranked, ties by lower ID. A row left out had a BLAS score at most the last kept one,
    and ``_cosmul_error_bound`` bounds how far its fixed-order score can be above that: if
    that is still below the ``keep``-th re-scored candidate, no row left out belongs in the
    answer. Otherwise the question is searched again keeping more candidates, in the end all.
    """
    count = searched.shape[0]
    queries = term_of.shape[0]
    wider = min(count, keep + RESCORE_SLACK)
    best_scores = np.full((queries, keep), -np.inf, dtype=np.float32)
    best_ids = np.full((queries, keep), -1, dtype=np.int64)
    pending = np.arange(queries)
    while len(pending):
        blas_scores, blas_ids, lowest = _cosmul_best(searched, term_vectors, term_of[pending], p, wider)
        again = []
        for row, query in enumerate(pending.tolist()):
            ids = blas_ids[row][blas_ids[row] >= 0]
            scores = _cosmul_fixed_scores(searched, ids, term_vectors[term_of[query]], p)
            order = np.lexsort((ids, -scores))[:keep]
            left_out = blas_scores[row, -1] if len(ids) == wider < count else None
            if left_out is not None and len(order) == keep and not (
                    left_out + _cosmul_error_bound(left_out, lowest[row], searched.shape[1], p,
                                                   term_of.shape[1] - p) < scores[order[-1]]):
                again.append(query)
                continue
            best_scores[query, : len(order)] = scores[order]
            best_ids[query, : len(order)] = ids[order]
        pending = np.array(again, dtype=np.int64)
        wider = count if wider >= keep + WIDER_RESCORE else min(count, keep + WIDER_RESCORE)
    return best_scores, best_ids


WIDER_RESCORE = 256  # 3CosMul candidates kept on a second look, before all rows


def _cosmul_fixed_scores(searched: np.ndarray, ids: np.ndarray, terms: np.ndarray, p: int) -> np.ndarray:
    """3CosMul scores of rows ``ids`` for one question's ``terms`` (first ``p`` positive), from
    ``fixed_order_scores`` cosines, combined as ``_cosmul_best`` combines BLAS's."""
    shifted = [(1 + fixed_order_scores(searched, None, ids, term)) / 2 for term in terms]
    numerator = shifted[0]
    for factor in shifted[1:p]:
        numerator = numerator * factor
    denominator = shifted[p] if len(shifted) > p else np.ones_like(numerator)
    for factor in shifted[p + 1:]:
        denominator = denominator * factor
    return numerator / (denominator + COSMUL_EPSILON)


def _cosmul_error_bound(score: float, lowest_denominator: float, dimension: int, positives: int,
                        negatives: int) -> float:
    """How far above a BLAS 3CosMul ``score`` the fixed-order score of the same row can be, for
    a row whose denominator (by BLAS) is at least ``lowest_denominator``. Each factor (1 + c) / 2
    moves by at most eta, half of ``score_error_bound``; a product of n factors, each at most
    1 + eta, moves by at most (1 + 2 eta)^n - 1; then S = N / (D + epsilon) moves by at most
    (dN + S dD) / (D + epsilon - dD); doubled, plus float32's roundings of the formula. Infinite
    when the denominator could reach 0 (a row nearly opposite a negative term)."""
    eta = score_error_bound(dimension) / 2
    moved_numerator = (1 + 2 * eta) ** positives - 1
    moved_denominator = (1 + 2 * eta) ** negatives - 1 if negatives else 0.0
    room = float(lowest_denominator) + COSMUL_EPSILON - moved_denominator
    if not room > 0:
        return float("inf")
    moved = (moved_numerator + abs(float(score)) * moved_denominator) / room
    return 2 * moved + 16 * 2.0 ** -24 * (abs(float(score)) + moved) + 1e-12


def _cosmul_best(searched: np.ndarray, term_vectors: np.ndarray, term_of: np.ndarray, p: int, keep: int,
                 row_block: int = 4096, query_group: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``keep`` best (scores, ids) per query by BLAS's cosines, sorted, over all of
    ``searched``, and each query's lowest denominator over all rows: query i's terms are
    ``term_vectors[term_of[i]]``, its first ``p`` positive, the rest negative."""
    limit = searched.shape[0]
    queries = term_of.shape[0]
    best_scores = np.full((queries, keep), -np.inf, dtype=np.float32)
    best_ids = np.full((queries, keep), -1, dtype=np.int64)
    lowest = np.full(queries, np.inf, dtype=np.float64)
    for start in range(0, limit, row_block):
        stop = min(start + row_block, limit)
        cosines = term_vectors @ searched[start:stop].T  # (terms, block): one row per term word
        for first in range(0, queries, query_group):
            group = slice(first, min(first + query_group, queries))
            shifted = [(1 + cosines[term_of[group, t]]) / 2 for t in range(term_of.shape[1])]
            numerator = shifted[0]
            for factor in shifted[1:p]:
                numerator *= factor
            denominator = shifted[p] if len(shifted) > p else np.ones_like(numerator)
            for factor in shifted[p + 1:]:
                denominator *= factor
            lowest[group] = np.minimum(lowest[group], denominator.min(axis=1))
            scores = numerator / (denominator + COSMUL_EPSILON)
            if start == 0 and scores.shape[1] > keep:  # first block: take its best directly
                top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
                top_scores = np.take_along_axis(scores, top, axis=1)
                order = np.argsort(-top_scores, axis=1, kind="stable")
                best_scores[group] = np.take_along_axis(top_scores, order, axis=1)
                best_ids[group] = np.take_along_axis(top, order, axis=1)
                continue
            threshold = best_scores[group, keep - 1]
            query_rows, columns = np.nonzero(scores > threshold[:, None])
            if len(query_rows):
                merged = _keep_best(best_scores[group], best_ids[group], query_rows,
                                    scores[query_rows, columns], columns + start, keep)
                best_scores[group], best_ids[group] = merged
    return best_scores, best_ids, lowest
