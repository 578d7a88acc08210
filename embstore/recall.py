"""Measure what an approximate index costs: recall@k against exact search, latency, analogy accuracy.

Exact ground truth comes from the exact rows in blocks (FAISS's blocked BLAS search),
never from the index being measured.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import numpy as np

from .queries import exact_top_k, search_top_k
from . import index_kinds

if TYPE_CHECKING:
    from .store import Store


def measure_index(store: "Store", kind: str, *, queries: int = 1000, k: int = 10,
                  analogies: str | os.PathLike | None = None, seed: int = 0) -> dict:
    """Recall@k of ``kind`` on ``queries`` random vocabulary words (the word itself excluded),
    mean and p99 single-query latency of the FAISS search and of ``Store.nearest``, and,
    given a questions-words file, 3CosAdd accuracy with the index against the exact rows.
    """
    faiss_index, record = store._approximate_index(kind)
    rng = np.random.default_rng(seed)
    count = min(queries, len(store))
    ids = np.sort(rng.choice(len(store), count, replace=False))
    vectors = store._rows[ids]
    exclude = [{int(i)} for i in ids]
    truth = exact_top_k(store._rows, vectors, k, exclude)
    parameters = index_kinds.search_parameters(kind, record.params, None)
    found = search_top_k(faiss_index, vectors, k, exclude, parameters)
    recall = float(np.mean([
        len({i for i, _ in f} & {i for i, _ in t}) / max(1, len(t)) for f, t in zip(found, truth)
    ]))
    search_ms = []
    for vector, skip in zip(vectors[:200], exclude[:200]):
        started = time.perf_counter()
        search_top_k(faiss_index, vector[None, :], k, [skip], parameters)
        search_ms.append(1000 * (time.perf_counter() - started))
    words = store.catalog.words_for_ids(ids[:200].tolist())
    api_ms = []
    for word_id in ids[:200].tolist():
        started = time.perf_counter()
        store.nearest(words[word_id], k=k, index=kind)
        api_ms.append(1000 * (time.perf_counter() - started))
    figures = {
        f"recall@{k}": recall, "queries": count,
        "search_mean_ms": float(np.mean(search_ms)), "search_p99_ms": float(np.percentile(search_ms, 99)),
        "api_mean_ms": float(np.mean(api_ms)), "api_p99_ms": float(np.percentile(api_ms, 99)),
        "bytes": record.bytes, "bytes_vs_exact": record.bytes / store.catalog.index_file("exact").bytes,
    }
    if analogies is not None:
        exact = store.evaluate_analogies(analogies, index="exact")
        approximate = store.evaluate_analogies(analogies, index=kind)
        figures.update({
            "analogy_accuracy": approximate.total.accuracy, "exact_analogy_accuracy": exact.total.accuracy,
            "analogy_points_lost": 100 * ((exact.total.accuracy or 0) - (approximate.total.accuracy or 0)),
            "analogy_seconds": approximate.seconds,
        })
    return figures
