"""Search split by word-ID range: one shard's top k, and the exact merge of all shards'.

A shard is the rows ``start .. stop``: a range of the store's exact rows file, or the file
of one shard of a sharded store (``embstore shard``). Each shard answers a
batch of query vectors with the same engine call as the whole store (``exact_top_k``, with
the rows' stored lengths), so its scores are the unsharded scores of those rows; the merge
keeps, per query, the k best of all shards' k best by score, equal scores by lower word ID.
A shard can also hold an HNSW graph of its rows (stored by ``embstore shard --graphs``, or
built when the shard loads);
its answers are approximate, and ``recall`` measures them against the exact ones.
"""

from __future__ import annotations

from typing import Collection, Sequence

import numpy as np

from ..errors import CatalogMismatchError, QueryError, StoreChangedError
from ..lazy_modules import lazy_module
from ..search.engine import exact_top_k, search_top_k
from ..search.searcher import EXACT, Hits

index_kinds = lazy_module("embstore.search.index_kinds")
shard_files = lazy_module("embstore.storage.shard_files")

SHARD_KINDS = (EXACT, "hnsw")


class RowShard:
    """The exact rows of word IDs ``start .. start + len(rows)``, held in memory, and their
    search; with ``graph``, also an HNSW graph of them (and its search ``parameters``)."""

    def __init__(self, rows: np.ndarray, norms: np.ndarray | None, start: int, graph=None, parameters=None):
        self.rows, self.norms, self.start, self.stop = rows, norms, start, start + len(rows)
        self.graph, self.parameters = graph, parameters

    @classmethod
    def of_range(cls, store, start: int, stop: int, graph: bool = False) -> "RowShard":
        """IDs ``start .. stop`` of the store's exact rows file, copied into memory (only that
        range's pages of the mapped file are read); with ``graph``, an HNSW graph built of them."""
        searcher = store.searcher
        if store.storage != EXACT:
            raise QueryError(f"a store that keeps only {store.storage} codes cannot be sharded; shard the exact rows")
        if not 0 <= start <= stop <= searcher.size:
            raise QueryError(f"shard {start}..{stop} is outside the store's {searcher.size:,} rows")
        rows = np.array(searcher.rows[start:stop])
        norms = np.array(searcher.norms[start:stop]) if searcher.raw_rows else None
        shard = cls(rows, norms, start)
        if graph:
            shard.build_graph()
        return shard

    @classmethod
    def of_file(cls, store, number: int, graph: bool = False) -> "RowShard":
        """Shard ``number`` of the store's shard layout (``embstore shard``): its rows file read
        into memory, and with ``graph`` its stored HNSW graph (built here if the stored one is
        stale or was never built). The store must be at the generation the layout was read at."""
        layout = store.shard_layout()
        if layout is None or not 0 <= number < layout.shards:
            raise QueryError(f"{store.path} has no shard {number} (embstore shard --shards N splits it)")
        record = layout.exact[number]
        try:
            mapped = shard_files.open_rows(store.path, record, store.dimension)
            rows = np.array(mapped.rows)  # in memory: a file shortened later cannot fault the process
            norms = np.array(mapped.norms) if store.searcher.raw_rows and mapped.norms is not None else None
            del mapped
            stored = layout.graphs[number] if graph and layout.graphs else None
            loaded = shard_files.open_graph(store.path, stored, store.dimension) if stored else None
        except CatalogMismatchError:
            if not store.is_newest():  # a writer replaced the files after this generation was opened
                raise StoreChangedError(f"the store {store.path} changed while shard {number} was being loaded; "
                                        "open it again") from None
            raise
        shard = cls(rows, norms, record.start)
        if stored is not None:
            shard.graph = loaded
            shard.parameters = index_kinds.search_parameters("hnsw", stored.params, None)[0]
        elif graph:
            shard.build_graph()
        return shard

    def build_graph(self) -> None:
        if self.stop == self.start:
            return
        unit = self.rows / self.norms[:, None] if self.norms is not None else self.rows
        params = index_kinds.resolve_parameters("hnsw", index_kinds.SHARD_GRAPH_SETTINGS, len(unit), unit.shape[1])
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
