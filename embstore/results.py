"""What queries give back: answers, and how a query word was matched to the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, NamedTuple


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
    """A query word and the vocabulary word it was resolved to."""

    asked: str
    word: str
    id: int

    @property
    def note(self) -> str | None:
        if self.asked == self.word:
            return None
        return f"{self.asked!r} is not in the vocabulary; using {self.word!r} (case-insensitive match)"
