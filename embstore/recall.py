"""Measure what an approximate index costs: recall@k against exact search, latency, analogy accuracy.

Exact ground truth comes from the exact rows in blocks (FAISS's blocked BLAS search),
never from the index being measured.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Callable

import numpy as np

from .queries import exact_top_k, search_top_k
from . import index_kinds

if TYPE_CHECKING:
    from .store import Store


LATENCY_QUERIES = 200  # this many of the query words are also timed one by one
TURN_QUERIES = 25  # search, nearest() and a reference take turns in blocks of this many queries


def query_ids(words: int, queries: int = 1000, seed: int = 0, pool: int | None = None) -> np.ndarray:
    """The IDs ``measure_index`` asks about: distinct random words, sorted, drawn from the
    whole vocabulary or from its ``pool`` most frequent words."""
    drawn_from = min(words, pool or words)
    return np.sort(np.random.default_rng(seed).choice(drawn_from, min(queries, drawn_from), replace=False))


def measure_index(store: "Store", kind: str, *, queries: int = 1000, k: int = 10,
                  analogies: str | os.PathLike | None = None, seed: int = 0, pool: int | None = None,
                  reference: Callable[[str], object] | None = None) -> dict:
    """Recall@k of ``kind`` on ``queries`` random vocabulary words (the word itself excluded),
    mean and p99 single-query latency of the FAISS search and of ``Store.nearest``, and,
    given a questions-words file, 3CosAdd accuracy with the index against the exact rows.
    ``pool`` draws the words from that many most frequent words instead of all of them.
    ``reference(word)``, say another library's nearest-word query, is timed on the same
    words in turns with ours, so that both see the same machine (``reference_mean_ms``).
    """
    faiss_index, record = store._approximate_index(kind)
    ids = query_ids(len(store), queries, seed, pool)
    count = len(ids)
    vectors = store._rows[ids]
    exclude = [{int(i)} for i in ids]
    truth = exact_top_k(store._rows, vectors, k, exclude)
    parameters, word_parameters = index_kinds.search_parameters(kind, record.params, None)
    found = search_top_k(faiss_index, vectors, k, exclude, parameters, None, ids, word_parameters)  # as nearest()
    recall = float(np.mean([
        len({i for i, _ in f} & {i for i, _ in t}) / max(1, len(t)) for f, t in zip(found, truth)
    ]))
    # Time an evenly spread subset: the IDs are sorted, and frequent words (low IDs) are
    # answered faster by graph and cluster indexes than rare ones.
    timed = np.arange(count)[:: max(1, count // LATENCY_QUERIES)][:LATENCY_QUERIES]
    words = store.catalog.words_for_ids(ids[timed].tolist())
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
            lap("search", lambda: search_top_k(faiss_index, vectors[position][None, :], k, [exclude[position]],
                                               parameters, None, ids[position: position + 1], word_parameters))
        for turn in block:
            word = words[int(ids[timed[(turn + turns // 2) % turns]])]
            lap("api", lambda: store.nearest(word, k=k, index=kind))
        for turn in block if reference is not None else ():
            word = words[int(ids[timed[(turn + turns // 2) % turns]])]
            lap("reference", lambda: reference(word))
    figures = {
        f"recall@{k}": recall, "queries": count, "timed_queries": len(timed),
        "drawn_from": min(pool or len(store), len(store)),
        "bytes": record.bytes, "bytes_vs_exact": record.bytes / (4 * len(store) * store.dimension),
    }
    for name, times in laps.items():
        if times:
            figures[f"{name}_mean_ms"] = float(np.mean(times))
            figures[f"{name}_p99_ms"] = float(np.percentile(times, 99))
    if analogies is not None:
        exact = store.evaluate_analogies(analogies, index="exact")
        approximate = store.evaluate_analogies(analogies, index=kind)
        figures.update({
            "analogy_accuracy": approximate.total.accuracy, "exact_analogy_accuracy": exact.total.accuracy,
            "analogy_points_lost": 100 * ((exact.total.accuracy or 0) - (approximate.total.accuracy or 0)),
            "analogy_seconds": approximate.seconds,
        })
    return figures
