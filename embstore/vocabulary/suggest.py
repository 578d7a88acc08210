"""'Did you mean' suggestions for an unknown word, drawn from the vocabulary."""

from __future__ import annotations

import difflib
import string

from ..storage.catalog import Catalog
from ..storage.catalog_words import fold

_LETTERS = string.ascii_lowercase + "-'"


def _single_edits(word: str) -> set[str]:
    """Every string one deletion, transposition, substitution or insertion away."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    letters = set(_LETTERS) | set(word)
    deletes = {a + b[1:] for a, b in splits if b}
    transposes = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in letters}
    inserts = {a + c + b for a, b in splits for c in letters}
    return deletes | transposes | replaces | inserts


def suggest_words(catalog: Catalog, word: str, limit: int = 5) -> list[str]:
    """Up to ``limit`` vocabulary words close to ``word``, closest and most frequent first."""
    folded = fold(word)
    candidates: dict[str, int] = {}
    if len(folded) <= 40:
        candidates.update(catalog.words_with_folded_forms(_single_edits(folded)))
    for length in range(len(folded), 2, -1):
        if len(candidates) >= limit * 4:
            break
        candidates.update(catalog.words_with_folded_prefix(folded[:length], limit * 4))
    # Similarity in steps of 0.1, then frequency: 'kings' before the rare 'kinga'.
    scored = [
        (round(difflib.SequenceMatcher(None, folded, fold(candidate)).ratio(), 1), -rank, candidate)
        for candidate, rank in candidates.items()
    ]
    scored.sort(reverse=True)
    return [candidate for ratio, _, candidate in scored if ratio >= 0.6][:limit]
