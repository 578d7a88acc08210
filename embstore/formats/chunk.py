"""What a reader yields: words and their float32 rows, each tagged with its line or entry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows of a file: ``words[i]`` has vector ``vectors[i]`` from ``lines[i]``
    (and ``counts[i]`` occurrences, when the file records them: a fastText model does)."""

    words: list[str]
    vectors: np.ndarray
    lines: np.ndarray
    counts: np.ndarray | None = None
