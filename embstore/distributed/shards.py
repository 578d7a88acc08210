"""Exact search split by word-ID range: one shard's top k, and the exact merge of all shards'.

A shard is the rows ``start .. stop`` of the store's exact rows file. Each shard answers a
batch of query vectors with the same engine call as the whole store (``exact_top_k``, with
the rows' stored lengths), so its scores are the unsharded scores of those rows; the merge
keeps, per query, the k best of all shards' k best by score, equal scores by lower word ID.
"""

from __future__ import annotations

from typing import Collection, Sequence

import numpy as np

from ..errors import QueryError
from ..search.engine import exact_top_k
from ..search.searcher import EXACT, Hits


class RowShard:
    """The exact rows ``start .. stop`` of one store, copied into memory, and their search."""

    def __init__(self, store, start: int, stop: int):
        searcher = store.searcher
        if store.storage != EXACT:
            raise QueryError(f"a store that keeps only {store.storage} codes cannot be sharded; shard the exact rows")
        if not 0 <= start <= stop <= searcher.size:
            raise QueryError(f"shard {start}..{stop} is outside the store's {searcher.size:,} rows")
        self.start, self.stop = start, stop
        self.rows = np.array(searcher.rows[start:stop])  # only this range's pages of the mapped file are read
        self.norms = np.array(searcher.norms[start:stop]) if searcher.raw_rows else None

    def search(self, queries: np.ndarray, k: int, exclude: Sequence[Collection[int]]) -> Hits:
        """Top ``k`` (word ID, cosine) in this shard for each unit query; ``exclude`` holds word IDs."""
        if self.stop == self.start:
            return [[] for _ in range(len(queries))]
        local = [{i - self.start for i in skip if self.start <= i < self.stop} for skip in exclude]
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
