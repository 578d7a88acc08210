"""What one block of a batch job computes, the same in this process and in a Ray worker.

A job is a ``JobSpec`` (which query, with which options) applied to ``Block``s of
queries; ``answer_block`` runs one block through the store's batched API (one search per
block) and returns plain results that pickle. Running the same blocks in the same order
gives the same output whether they run here or on a cluster, because each block is
answered by the same call on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np

from ..errors import StoreChangedError
from .blocks import Block

if TYPE_CHECKING:
    from ..store import Store

JOBS = ("nearest", "analogy", "neighbours", "analogy_hits")


@dataclass(frozen=True)
class JobSpec:
    """``job``: one of JOBS; ``options``: keyword arguments of the store method it calls."""

    job: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BlockAnswer:
    number: int
    generation: int  # the store generation that answered
    results: list


def answer_block(store: "Store", spec: JobSpec, block: Block) -> BlockAnswer:
    """The results of ``block`` in query order: QueryResults (nearest, analogy, neighbours),
    or (id, score) lists (analogy_hits, the search under ``eval analogies``)."""
    options = spec.options
    if spec.job == "nearest":
        results = store.nearest_many(block.items, **options)
    elif spec.job == "analogy":
        results = store.analogy_many([tuple(q) for q in block.items], **options)
    elif spec.job == "neighbours":
        (start, stop), = block.items
        results = store.nearest_many(store.vocabulary()[start:stop], **options)
    elif spec.job == "analogy_hits":
        results = store.analogy_hits(np.asarray(block.items, dtype=np.int64).reshape(-1, 3), **options)
    else:
        raise ValueError(f"unknown job {spec.job!r}; expected one of {', '.join(JOBS)}")
    return BlockAnswer(block.number, store.generation, results)


def checked_generation(answer: BlockAnswer, generation: int) -> BlockAnswer:
    """``answer`` if the generation the job started on answered it; StoreChangedError otherwise."""
    if answer.generation != generation:
        raise StoreChangedError(f"the store changed during the job (generation {generation} -> "
                                f"{answer.generation}); run the job again")
    return answer


Progress = Callable[[int, int], None]  # (blocks done, queries done)


def run_here(store: "Store", spec: JobSpec, blocks: Iterable[Block],
             progress: Progress | None = None) -> Iterator[BlockAnswer]:
    """Answer ``blocks`` one after the other in this process, in order."""
    queries = 0
    for done, block in enumerate(blocks, 1):
        answer = answer_block(store, spec, block)
        queries += len(answer.results)
        if progress:
            progress(done, queries)
        yield answer
