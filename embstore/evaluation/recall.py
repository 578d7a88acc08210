"""Measure what an approximate index costs: recall@k against exact search, latency, analogy accuracy.

Exact ground truth comes from the exact rows in blocks (FAISS's blocked BLAS search),
never from the index being measured. An answer counts as found when its exact score reaches
the k-th true one (ties: any of many identical vectors is a true neighbour).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..errors import QueryError

from ..search.engine import exact_top_k, fixed_order_scores, search_top_k
from ..search.searcher import RERANKED_KINDS

if TYPE_CHECKING:
    from ..search.searcher import Searcher
    from ..vocabulary.vocabulary import Vocabulary


LATENCY_QUERIES = 200  # this many of the query words are also timed one by one
TURN_QUERIES = 25  # search, nearest() and a reference take turns in blocks of this many queries


def query_ids(words: int, queries: int = 1000, seed: int = 0, pool: int | None = None) -> np.ndarray:
    """The IDs ``measure_index`` asks about: distinct random words, sorted, drawn from the
    whole vocabulary or from its ``pool`` most frequent words."""
    drawn_from = min(words, pool or words)
    return np.sort(np.random.default_rng(seed).choice(drawn_from, min(queries, drawn_from), replace=False))


TIED = 1e-6  # an answer scoring within this of the k-th true score is as near as the k-th itself


def _recall(rows: np.ndarray, query: np.ndarray, found: list, truth: list) -> float:
    """The share of ``truth`` (the exact top k) that ``found`` matches, counting an answer as
    right when its exact score reaches the k-th true score: among identical vectors any of the
    copies is a true nearest word, whichever ID the exact search listed. None to find (a store of
    one word): none missed."""
    if not truth:
        return 1.0
    if not found:
        return 0.0
    ids = np.array([i for i, _ in found], dtype=np.int64)
    scores = fixed_order_scores(rows, None, ids, query)
    return min(len(truth), int(np.count_nonzero(scores >= truth[-1][1] - TIED))) / len(truth)


def measure_index(searcher: "Searcher", vocabulary: "Vocabulary", kind: str, *,
                  nearest: Callable[..., object] | None = None, queries: int = 1000, k: int = 10,
                  analogies: str | os.PathLike | None = None, seed: int = 0, pool: int | None = None,
                  reference: Callable[[str], object] | None = None, index_bytes: int | None = None) -> dict:
    """Recall@k of ``kind`` on ``queries`` random vocabulary words (the word itself excluded),
    mean and p99 single-query latency of the FAISS search and of ``nearest(word, k=, index=)``
    (``Store.nearest``, when given), and,
    given a questions-words file, 3CosAdd accuracy with the index against the exact rows.
    ``pool`` draws the words from that many most frequent words instead of all of them.
    ``reference(word)``, say another library's nearest-word query, is timed on the same
    words in turns with ours, so that both see the same machine (``reference_mean_ms``).
    """
    choice = searcher.choose(kind)
    if choice.kind != kind:
        raise QueryError(f"the {kind} index cannot be measured: {choice.note}")
    faiss_index = searcher.index(kind)
    if kind in searcher.damaged:  # found so on opening
        raise QueryError(f"the {kind} index cannot be measured: {searcher.damaged[kind]} (embstore repair)")
    ids = query_ids(searcher.size, queries, seed, pool)
    count = len(ids)
    vectors = searcher.unit_rows[ids]
    exclude = [{int(i)} for i in ids]
    truth = exact_top_k(searcher.unit_rows, vectors, k, exclude)
    parameters, word_parameters = searcher.parameters(kind, None)
    reranked = kind in RERANKED_KINDS  # the codes propose, the exact rows re-score (``Searcher._reranked``)
    if reranked:
        found = searcher.search(kind, vectors, k, exclude)
    else:
        found = search_top_k(faiss_index, vectors, k, exclude, parameters, None, ids, word_parameters)  # as nearest()
    recall = float(np.mean([_recall(searcher.unit_rows, vectors[j], f, t) for j, (f, t) in enumerate(zip(found, truth))]))
    # Time an evenly spread subset: the IDs are sorted, and frequent words (low IDs) are
    # answered faster by graph and cluster indexes than rare ones.
    timed = np.arange(count)[:: max(1, count // LATENCY_QUERIES)][:LATENCY_QUERIES]
    words = vocabulary.words_for(ids[timed].tolist())
    laps: dict[str, list[float]] = {"search": [], "api": [], "reference": []}

    def lap(name: str, run: Callable[[], object]) -> None:
        started = time.perf_counter()
        run()
        laps[name].append(1000 * (time.perf_counter() - started))

    # The three take turns in blocks of TURN_QUERIES: each runs in its own steady state (a
    # full scan between two graph searches would flush the caches they share), and all
    # three see the same machine load. nearest() asks the words half a round away from
    # the ones just searched, whose part of the index would still be cached.
    turns = len(timed)
    for start in range(0, turns, TURN_QUERIES):
        block = range(start, min(start + TURN_QUERIES, turns))
        for turn in block:
            position = timed[turn]
            if reranked:
                lap("search", lambda: searcher.search(kind, vectors[position][None, :], k, [exclude[position]]))
            else:
                lap("search", lambda: search_top_k(faiss_index, vectors[position][None, :], k, [exclude[position]],
                                                   parameters, None, ids[position: position + 1], word_parameters))
        for turn in block if nearest is not None else ():
            word = words[int(ids[timed[(turn + turns // 2) % turns]])]
            lap("api", lambda: nearest(word, k=k, index=kind))
        for turn in block if reference is not None else ():
            word = words[int(ids[timed[(turn + turns // 2) % turns]])]
            lap("reference", lambda: reference(word))
    figures = {
        f"recall@{k}": recall, "queries": count, "timed_queries": len(timed),
        "drawn_from": min(pool or searcher.size, searcher.size),
    }
    if index_bytes is not None:  # the file's size, against the float32 rows
        figures.update(bytes=index_bytes, bytes_vs_exact=index_bytes / (4 * searcher.size * searcher.dimension))
    for name, times in laps.items():
        if times:
            figures[f"{name}_mean_ms"] = float(np.mean(times))
            figures[f"{name}_p99_ms"] = float(np.percentile(times, 99))
    if analogies is not None:
        from .evaluate import evaluate_analogies

        exact = evaluate_analogies(searcher, vocabulary, analogies, index="exact")
        approximate = evaluate_analogies(searcher, vocabulary, analogies, index=kind)
        figures.update({
            "analogy_accuracy": approximate.total.accuracy, "exact_analogy_accuracy": exact.total.accuracy,
            "analogy_points_lost": 100 * ((exact.total.accuracy or 0) - (approximate.total.accuracy or 0)),
            "analogy_seconds": approximate.seconds,
        })
    return figures
