"""Search split by word-ID range: one shard's top k, and the exact merge of all shards'.

A shard is the rows ``start .. stop`` of the store's exact rows file. Each shard answers a
batch of query vectors with the same engine call as the whole store (``exact_top_k``, with
the rows' stored lengths), so its scores are the unsharded scores of those rows; the merge
keeps, per query, the k best of all shards' k best by score, equal scores by lower word ID.
A shard can also hold an HNSW graph of its rows (built when the shard loads, not stored);
its answers are approximate, and ``recall`` measures them against the exact ones.
"""

from __future__ import annotations

from typing import Collection, Sequence

import numpy as np

from ..errors import QueryError
from ..lazy_modules import lazy_module
from ..search.engine import exact_top_k, search_top_k
from ..search.searcher import EXACT, Hits

index_kinds = lazy_module("embstore.search.index_kinds")

SHARD_KINDS = (EXACT, "hnsw")
HNSW_SETTINGS = {"knn_links": 0, "ef_search": 96}  # plain HNSW: vector queries, a list of 96 (README, Speed)


class RowShard:
    """The exact rows ``start .. stop`` of one store, copied into memory, and their search;
    with ``graph=True`` also an HNSW graph of them."""

    def __init__(self, store, start: int, stop: int, graph: bool = False):
        searcher = store.searcher
        if store.storage != EXACT:
            raise QueryError(f"a store that keeps only {store.storage} codes cannot be sharded; shard the exact rows")
        if not 0 <= start <= stop <= searcher.size:
            raise QueryError(f"shard {start}..{stop} is outside the store's {searcher.size:,} rows")
        self.start, self.stop = start, stop
        self.rows = np.array(searcher.rows[start:stop])  # only this range's pages of the mapped file are read
        self.norms = np.array(searcher.norms[start:stop]) if searcher.raw_rows else None
        self.graph = self.parameters = None
        if graph and stop > start:
            unit = self.rows / self.norms[:, None] if self.norms is not None else self.rows
            params = index_kinds.resolve_parameters("hnsw", HNSW_SETTINGS, len(unit), unit.shape[1])
            self.graph, _ = index_kinds.build("hnsw", np.ascontiguousarray(unit, dtype=np.float32), params)
            self.parameters = index_kinds.search_parameters("hnsw", params, None)[0]

    def search(self, queries: np.ndarray, k: int, exclude: Sequence[Collection[int]], kind: str = EXACT) -> Hits:
        """Top ``k`` (word ID, cosine) in this shard for each unit query through ``kind`` (exact,
        or hnsw if the shard holds a graph); ``exclude`` holds word IDs."""
        if kind not in SHARD_KINDS or kind == "hnsw" and self.graph is None and self.stop > self.start:
            raise QueryError(f"this shard searches {' or '.join(SHARD_KINDS if self.graph else (EXACT,))}, "
                             f"not {kind!r}")
        if self.stop == self.start:
            return [[] for _ in range(len(queries))]
        local = [{i - self.start for i in skip if self.start <= i < self.stop} for skip in exclude]
        if kind == "hnsw":
            hits = search_top_k(self.graph, np.ascontiguousarray(queries, dtype=np.float32), k, local, self.parameters)
        else:
            hits = exact_top_k(self.rows, queries, k, local, norms=self.norms)
        return [[(i + self.start, s) for i, s in row] for row in hits]


def merge_hits(per_shard: Sequence[Hits], k: int) -> Hits:
    """Each query's ``k`` best of every shard's hits: highest score first, then lowest ID."""
    merged = []
    for rows in zip(*per_shard):
        candidates = [hit for row in rows for hit in row]
        candidates.sort(key=lambda hit: (-hit[1], hit[0]))
        merged.append(candidates[:k])
    return merged


def recall(approximate: Hits, exact: Hits) -> tuple[int, int]:
    """(exact answers also found, exact answers) over a batch: recall@k is their ratio."""
    found = sum(len({i for i, _ in a} & {i for i, _ in e}) for a, e in zip(approximate, exact))
    return found, sum(len(e) for e in exact)
