"""What queries give back: answers, and how a query word was matched to the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple


class Neighbour(NamedTuple):
    """One answer: a word and its score (cosine for nearest and 3CosAdd). A tuple, as in
    gensim: ``for word, score in store.nearest("king")`` and ``== ("queen", 0.78)`` work."""

    word: str
    score: float


@dataclass
class QueryResult:
    """The answer to one query. ``notes`` says how query words were resolved, if not exactly,
    and which index answered, if not the one asked for.

    In a batch asked with ``on_unknown="report"``, a query with an unknown word has no
    neighbours and ``error`` says which word.
    """

    query: str
    neighbours: list[Neighbour]
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def __iter__(self) -> Iterator[Neighbour]:
        """The answers, best first: ``for word, score in result``."""
        return iter(self.neighbours)

    def __len__(self) -> int:
        return len(self.neighbours)

    def __getitem__(self, position):
        return self.neighbours[position]

    def words(self) -> list[str]:
        return [n.word for n in self.neighbours]


@dataclass(frozen=True)
class Resolved:
    """A query word and the vocabulary word it was resolved to. On a fastText store a word
    outside the vocabulary is resolved to the vector built from its character n-grams:
    ``id`` is -1, ``built`` holds that vector and ``ngrams`` how many n-grams made it."""

    asked: str
    word: str
    id: int
    built: Any = field(default=None, compare=False, repr=False)
    ngrams: int = 0

    @property
    def in_vocabulary(self) -> bool:
        return self.id >= 0

    @property
    def note(self) -> str | None:
        if self.built is not None:
            return (f"{self.asked!r} is not in the vocabulary: vector built from its {self.ngrams} character "
                    "n-grams")
        if self.asked == self.word:
            return None
        return f"{self.asked!r} is not in the vocabulary; using {self.word!r} (case-insensitive match)"
