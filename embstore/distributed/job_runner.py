"""Run a batch job here or on a Ray cluster, the same blocks in the same order either way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from .blocks import DEFAULT_BLOCK, Block, split_blocks
from .jobs import BlockAnswer, JobSpec, Progress, run_here

if TYPE_CHECKING:
    from ..store import Store


def run_job(store: "Store", spec: JobSpec, blocks: Iterable[Block], address: str | None = None, *,
            progress: Progress | None = None, max_retries: int | None = None) -> Iterator[BlockAnswer]:
    """Each block's answer, in input order: computed here when ``address`` is None, else as
    Ray tasks on the cluster at ``address`` (needs ``embstore[ray]``; ``max_retries``: how
    often a task lost with a node is run again)."""
    if address is None:
        return run_here(store, spec, blocks, progress)
    from .ray_jobs import DEFAULT_RETRIES, run_on_ray

    return run_on_ray(address, store, spec, blocks, progress=progress,
                      max_retries=DEFAULT_RETRIES if max_retries is None else max_retries)


def analogy_hits_runner(store: "Store", address: str, block: int = DEFAULT_BLOCK, *,
                        progress: Progress | None = None, max_retries: int | None = None):
    """A ``Store.analogy_hits`` that splits the (a, b, c) ID rows into blocks run as Ray tasks
    (what ``eval analogies --ray`` searches with)."""

    def analogy_hits(ids: np.ndarray, k: int, method: str = "add", id_limit: int | None = None,
                     kind: str | None = None):
        spec = JobSpec("analogy_hits", {"k": k, "method": method, "id_limit": id_limit, "index": kind})
        hits = []
        for answer in run_job(store, spec, split_blocks(np.asarray(ids).tolist(), block), address,
                              progress=progress, max_retries=max_retries):
            hits.extend(answer.results)
        return hits

    return analogy_hits
