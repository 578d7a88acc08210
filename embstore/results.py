"""What queries give back: answers, and how a query word was matched to the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Neighbour:
    """One answer: a word and its score (cosine for nearest and 3CosAdd)."""

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
