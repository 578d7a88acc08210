"""Batch-job blocks run as Ray tasks. Imports Ray: use only when a job runs on a cluster.

Each task opens the store by its path (every node must see the same files there: a shared
file system, or one machine) and keeps it open for the next task of the same worker; only
the path, the options and the block's queries travel, not the rows. The driver gets the
blocks' answers back in input order, with at most a few blocks per CPU in flight, so memory
stays bounded whatever the job's size. A task lost with its node is run again by Ray
(``max_retries``); if it cannot be, the job stops with ClusterError.
"""

from __future__ import annotations

import collections
import os
from typing import Iterable, Iterator

from ..store import Store
from .blocks import Block
from .jobs import BlockAnswer, JobSpec, Progress, answer_block, checked_generation
from .ray_support import cluster_cpus, connect, lost_work_error

ray = None  # the module, bound by ``_remote`` once connected
DEFAULT_RETRIES = 3
BLOCKS_PER_CPU = 2  # blocks in flight per CPU of the cluster

_open_stores: dict[str, Store] = {}  # in a worker: the stores its tasks opened, by path


def open_for_task(path: str, generation: int) -> Store:
    """The store at ``path`` at ``generation``, opened once per worker process."""
    store = _open_stores.get(path)
    if store is None:
        store = _open_stores[path] = Store.open(path)
    if store.generation != generation:
        store.refresh()
    return store


def _answer_task(path: str, generation: int, spec: JobSpec, block: Block) -> BlockAnswer:
    return answer_block(open_for_task(path, generation), spec, block)


_remote_answer = None


def _remote(ray_module):
    global ray, _remote_answer
    ray = ray_module
    if _remote_answer is None:
        _remote_answer = ray.remote(_answer_task)
    return _remote_answer


def run_on_ray(address: str, store: Store, spec: JobSpec, blocks: Iterable[Block], *,
               max_retries: int = DEFAULT_RETRIES, progress: Progress | None = None) -> Iterator[BlockAnswer]:
    """Answer ``blocks`` as Ray tasks on the cluster at ``address``, yielding them in order.

    Raises ClusterError when the cluster cannot be reached or a block is lost beyond its
    retries, StoreChangedError when the store moved to another generation during the job."""
    task = _remote(connect(address)).options(max_retries=max_retries, retry_exceptions=False, num_cpus=1)
    window = BLOCKS_PER_CPU * cluster_cpus(ray)
    path = os.fspath(store.path.resolve())
    pending: collections.deque = collections.deque()
    done = queries = 0

    def collect() -> BlockAnswer:
        nonlocal done, queries
        try:
            answer = ray.get(pending.popleft())
        except ray.exceptions.RayError as exc:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise lost_work_error(ray, exc, "a block of the job") from None
        checked_generation(answer, store.generation)
        done, queries = done + 1, queries + len(answer.results)
        if progress:
            progress(done, queries)
        return answer

    for block in blocks:
        pending.append(task.remote(path, store.generation, spec, block))
        if len(pending) >= window:
            yield collect()
    while pending:
        yield collect()
