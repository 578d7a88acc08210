"""Splitting a stream of queries into numbered blocks, the unit of work of a batch job."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Generic, Iterable, Iterator, TypeVar

Item = TypeVar("Item")

DEFAULT_BLOCK = 1_000  # queries per block: one batched search (one BLAS call) each


@dataclass(frozen=True)
class Block(Generic[Item]):
    """``items`` are the queries ``start`` .. ``start + len(items)`` of the job; ``number`` counts from 0."""

    number: int
    start: int
    items: list


def split_blocks(items: Iterable[Item], size: int = DEFAULT_BLOCK) -> Iterator[Block]:
    """Yield the items in blocks of ``size`` (the last may be shorter), reading lazily."""
    if size < 1:
        raise ValueError("a block holds at least one query")
    iterator = iter(items)
    for number in itertools.count():
        chunk = list(itertools.islice(iterator, size))
        if not chunk:
            return
        yield Block(number, number * size, chunk)


def id_ranges(count: int, size: int = DEFAULT_BLOCK) -> Iterator[Block]:
    """Blocks of word IDs 0 .. count-1, each given as its (start, stop) range, not a list of IDs."""
    for number, start in enumerate(range(0, count, size)):
        yield Block(number, start, [(start, min(start + size, count))])
