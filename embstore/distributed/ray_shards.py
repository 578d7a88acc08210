"""Sharded exact search on Ray: one actor per shard holds its rows; a batch fans out to all.

Imports Ray: use only with a cluster. Each actor opens the store by path (a path every node
sees) and reads its shard into memory: the file of its shard when the store is sharded
into that many (``embstore shard``), else its ID range of the exact rows file; a query batch's unit vectors
are put once in Ray's object store, every shard answers its top k, and the driver merges
the lists exactly (``shards.merge_hits``). An actor lost with its node is restarted by Ray
(``max_restarts``) and reloads its shard; the calls it lost are retried (``max_task_retries``).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..errors import StoreChangedError
from ..results import Neighbour, QueryResult
from ..search.searcher import Hits
from ..store import Store
from ..storage.shard_files import shard_ranges
from .ray_support import connect, lost_work_error
from .shards import merge_hits, recall

DEFAULT_RESTARTS = 3


class _ShardActor:
    def __init__(self, path: str, generation: int, number: int, start: int, stop: int, graph: bool,
                 from_file: bool):
        from .ray_jobs import open_for_task
        from .shards import RowShard

        store = open_for_task(path, generation)
        self.generation = store.generation
        self.shard = None
        if self.generation != generation:  # the store changed: every search reports it
            return
        self.shard = RowShard.of_file(store, number, graph) if from_file else RowShard.of_range(store, start, stop,
                                                                                              graph)

    def search(self, queries: np.ndarray, k: int, exclude: list, kind: str) -> tuple[int, Hits]:
        if self.shard is None:
            return self.generation, []
        return self.generation, self.shard.search(queries, k, exclude, kind)


class RayShards:
    """``shards`` actors over the exact rows of ``store``, on the cluster at ``address``; with
    ``graph=True`` each also holds an HNSW graph of its rows.

    A store sharded into ``shards`` files (``Store.shard``) gives each actor its shard's file,
    and its stored graph when that holds the current rows; otherwise each actor copies its
    word-ID range of the one exact rows file, and builds its graph when it loads. ``source``
    says which, for the user. ``search`` (exact) gives the same (id, score) lists as the
    store's own exact search; ``nearest_many`` the same QueryResults as
    ``Store.nearest_many(..., index="exact")``."""

    def __init__(self, address: str, store: Store, shards: int, *, graph: bool = False,
                 max_restarts: int = DEFAULT_RESTARTS):
        layout = store.shard_layout()
        from_file = layout is not None and layout.shards == shards
        self.ranges = layout.ranges if from_file else shard_ranges(len(store), shards)
        if from_file:
            self.source = f"{shards} shard files of the store"
            if graph:
                self.source += " with their stored HNSW graphs" if layout.graphs else \
                    (", each building an HNSW graph of its rows (the stored graphs are stale: 'embstore shard "
                     f"--shards {shards} --graphs' writes them again)" if layout.stale_graphs else
                     f", each building an HNSW graph of its rows ('embstore shard --shards {shards} --graphs' "
                     "stores them)")
        else:
            self.source = (f"{shards} word-ID ranges of the exact rows file, copied into each shard"
                           + (f" (the store's own layout has {layout.shards} shards)" if layout else
                              f" ('embstore shard --shards {shards}' writes a file per shard)"))
        self.ray = ray = connect(address)
        self.store = store
        # num_cpus=0: a shard holds memory, not a CPU (4 shards fit a 2-CPU cluster). Shard i is
        # placed on live node i mod nodes; "soft": if that node is lost, Ray restarts it elsewhere.
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = sorted(node["NodeID"] for node in ray.nodes() if node.get("Alive"))
        actor = ray.remote(_ShardActor)
        path = os.fspath(store.path.resolve())
        self.actors = [actor.options(num_cpus=0, max_restarts=max_restarts, max_task_retries=max_restarts,
                                     scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[number % len(nodes)],
                                                                                        soft=True)
                                     ).remote(path, store.generation, number, start, stop, graph, from_file)
                       for number, (start, stop) in enumerate(self.ranges)]

    def search(self, queries: np.ndarray, k: int, exclude: Sequence[set[int]], kind: str = "exact") -> Hits:
        ray = self.ray
        queries_ref = ray.put(np.ascontiguousarray(queries, dtype=np.float32))
        exclude = [set(skip) for skip in exclude]
        try:
            answers = ray.get([actor.search.remote(queries_ref, k, exclude, kind) for actor in self.actors])
        except ray.exceptions.RayError as exc:
            raise lost_work_error(ray, exc, "a shard search") from None
        if any(generation != self.store.generation for generation, _ in answers):
            raise StoreChangedError("the store changed while its shards were loaded; open the shards again")
        return merge_hits([hits for _, hits in answers], k)

    def nearest_many(self, words: Sequence[str], k: int = 10, on_unknown: str = "raise",
                     case_insensitive: bool = False, kind: str = "exact",
                     measure_recall: bool = False) -> list[QueryResult] | tuple[list[QueryResult], tuple[int, int]]:
        """``Store.nearest_many`` searched by the shards (``kind`` exact or hnsw). With
        ``measure_recall``, also the exact search, and returns (results, (found, exact answers))."""
        resolved = self.store.resolve_many(list(words), on_unknown, case_insensitive)
        known = [r for r in resolved if not isinstance(r, Exception)]
        ids = [r.id for r in known]
        searcher = self.store.searcher
        queries, exclude = searcher.vectors(ids), [{i} for i in ids]
        searched = self.search(queries, k, exclude, kind) if ids else []
        hits = iter(searched)
        results = []
        for r in resolved:
            if isinstance(r, Exception):
                results.append(QueryResult(r.word, [], error=str(r)))
                continue
            found = next(hits)
            words_of = self.store.vocab.words_for(i for i, _ in found)
            results.append(QueryResult(r.asked, [Neighbour(words_of[i], float(s)) for i, s in found],
                                       [r.note] if r.note else []))
        if measure_recall:
            return results, recall(searched, self.search(queries, k, exclude) if ids else [])
        return results

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []

    def __enter__(self) -> "RayShards":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
