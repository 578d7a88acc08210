"""The vocabulary of one store generation: word <-> ID, case fallback, suggestions, and the
words of answers, from SQLite or from a table held in memory."""

from __future__ import annotations

import functools
import sqlite3
import unicodedata
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..errors import CatalogDamagedError, QueryError, UnknownWordError
from ..results import Resolved
from ..storage.catalog import Catalog
from .suggest import suggest_words
from .word_table import WordTable

WORDS_IN_MEMORY_AFTER = 8  # words_in_memory=None: hold the words once 1/8 of them were looked up in SQLite


def word_problem(word: object) -> str | None:
    """What makes ``word`` no word, or None. The one rule every way in applies (load, add,
    rename): a non-empty string with no white space of any Unicode kind and no control
    characters or lone surrogates. Other characters, zero-width joiners included, are kept."""
    if not isinstance(word, str):
        return f"is {type(word).__name__}, not text"
    if not word:
        return "is empty"
    if word.isprintable() and " " not in word:
        return None  # the fast path: almost every word
    bad = next((c for c in word if c.isspace() or unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is None:
        return None
    return f"holds U+{ord(bad):04X}" + (f" {unicodedata.name(bad)}" if unicodedata.name(bad, "") else
                                       " (a control character)")


def all_plain_words(words: list[str]) -> bool:
    """Whether every item of ``words`` passes ``word_problem``'s fast path (a non-empty string,
    printable, no space), checked for the whole list in a few C calls; False means "look at
    each one", not that any is bad."""
    try:
        joined = " ".join(words)  # a TypeError if any is no string
    except TypeError:
        return False
    return all(words) and joined.isprintable() and joined.count(" ") == len(words) - 1


def word_list(words: object, argument: str) -> list[str]:
    """``words`` as a list of words; a bare string (which Python would read as its letters)
    is refused with a TypeError that says what to write instead."""
    if isinstance(words, (str, bytes, bytearray)):
        raise TypeError(f"{argument} takes a list of words, not a string: write [{words!r}] for one word")
    words = list(words)
    odd = next((w for w in words if not isinstance(w, str)), None)
    if odd is not None:
        raise TypeError(f"{argument} takes words as strings, not {type(odd).__name__} {odd!r:.40}")
    try:
        "".join(words).encode("utf-8")  # one pass for the whole list: lone surrogates cannot be stored or looked up
    except UnicodeEncodeError:
        bad = next(w for w in words if not _encodable(w))
        raise QueryError(f"{bad!r:.60} is not valid UTF-8 text (it holds a lone surrogate)") from None
    return words


def _encodable(word: str) -> bool:
    try:
        word.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def load_word_table(catalog: Catalog, count: int) -> WordTable | None:
    """All words in a compact table by ID: about 0.25 s and 5 MB at 400k words.

    SQLite joins them into one string in ID order; the first and last words and a sample
    between are checked against lookups by ID. If a word holds the newline separator or
    the check fails, the words are joined by NUL instead. None only if some word holds a
    newline and another a NUL.
    """
    table = WordTable.from_joined(catalog.joined_words("\n"), "\n", count)
    if table is not None and count:
        sample = {0, count - 1, *np.linspace(0, count - 1, 64).astype(int).tolist()}
        if catalog.words_for_ids(sample) != table.words_for_ids(sample):
            table = None
    if table is None:
        table = WordTable.from_joined("\0".join(catalog.vocabulary()), "\0", count)
    return table


def _catalog_errors(method):
    """Let a catalog that SQLite cannot read end in CatalogDamagedError, the project's own."""
    @functools.wraps(method)
    def translated(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise CatalogDamagedError(f"the catalog cannot be read ({exc}); run 'embstore check'") from None
    return translated


class Vocabulary:
    """Words of one generation of the store. ``words_in_memory``: see ``Store.open``."""

    def __init__(self, catalog: Catalog, size: int, words_in_memory: bool | None = None):
        self.catalog = catalog
        self.size = size
        self.words_in_memory = words_in_memory
        self._list: list[str] | None = None
        self._table: WordTable | None = None
        self._looked_up = 0  # IDs turned into words through SQLite, for words_in_memory=None
        if words_in_memory:
            self.hold_words()

    def __len__(self) -> int:
        return self.size

    @_catalog_errors
    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.catalog.id_for_word(word) is not None

    def __iter__(self) -> Iterator[str]:
        for _, words, _ in self.catalog.iter_words():
            yield from words

    @_catalog_errors
    def words(self) -> list[str]:
        """All words in ID (= frequency) order; cached after the first call."""
        if self._list is None:
            self._list = self.catalog.vocabulary()
        return self._list

    @_catalog_errors
    def id_of(self, word: str) -> int | None:
        """The ID of ``word`` exactly as written, or None (also for text no word can be)."""
        if not _encodable(word):
            return None
        return self.catalog.id_for_word(word)

    @_catalog_errors
    def resolve_many(self, words: Sequence[str], on_unknown: str = "raise",
                     case_insensitive: bool = False, suggest: bool = True) -> list[Resolved | UnknownWordError]:
        """Each word exactly as written, with one catalog query; with ``case_insensitive``, a
        word not found is matched to its most frequent case-insensitive form (the CLI does
        this, with a note). ``on_unknown="raise"`` raises UnknownWordError (with suggestions)
        at the first unknown word; ``"report"`` puts the error in its place (without
        suggestions if not ``suggest``: the caller may still find the word a vector)."""
        if on_unknown not in ("raise", "report"):
            raise QueryError(f"on_unknown must be 'raise' or 'report', not {on_unknown!r}")
        words = word_list(words, "resolve_many")
        found = self.catalog.ids_for_words(words)
        resolved: list[Resolved | UnknownWordError] = []
        for word in words:
            if word in found:
                resolved.append(Resolved(word, word, found[word]))
                continue
            match = self.catalog.most_frequent_folded_match(word) if case_insensitive else None
            if match is None:
                error = self.unknown(word) if suggest or on_unknown == "raise" else UnknownWordError(word)
                if on_unknown == "raise":
                    raise error
                resolved.append(error)
                continue
            resolved.append(Resolved(word, match[1], match[0]))
        return resolved

    @_catalog_errors
    def exact_ids(self, words: Sequence[str]) -> dict[str, int]:
        """IDs of the words spelt exactly as stored (no case fallback)."""
        return self.catalog.ids_for_words(word_list(words, "words"))

    @_catalog_errors
    def unknown(self, word: str, reason: str | None = None) -> UnknownWordError:
        return UnknownWordError(word, suggest_words(self.catalog, word) if isinstance(word, str) else [], reason)

    @_catalog_errors
    def words_for(self, ids: Iterable[int]) -> dict[int, str]:
        """{id: word} for ``ids``, from memory or SQLite as ``words_in_memory`` says."""
        ids = list(ids)
        if self._list is not None:
            return {i: self._list[i] for i in ids}
        if self._table is None and self.words_in_memory is None:
            self._looked_up += len(ids)
            if self._looked_up * WORDS_IN_MEMORY_AFTER >= self.size:
                self.hold_words()
        if self._table is not None:
            return self._table.words_for_ids(ids)
        found = self.catalog.words_for_ids(ids)
        missing = next((i for i in ids if i not in found), None)
        if missing is not None:  # IDs are dense 0..n-1 in a whole catalog
            raise CatalogDamagedError(f"the catalog has no word with ID {missing}; run 'embstore check'")
        return found

    def hold_words(self) -> None:
        """Load the words into a table in memory; from now on answers take their words from it."""
        self._table = load_word_table(self.catalog, self.size)
        if self._table is None:  # the words cannot be packed: stay with SQLite
            self.words_in_memory = False

    @property
    def holds_words(self) -> bool:
        return self._table is not None

    @_catalog_errors
    def norms(self, ids: Sequence[int]) -> np.ndarray:
        """The stored norms (original vector lengths) of ``ids``."""
        return self.catalog.norms_for_ids(ids)

    def id_limit(self, restrict: int | None) -> int | None:
        """One past the largest ID among the ``restrict`` most frequent words (ranks follow IDs);
        None when that is every word."""
        if restrict is None:
            return None
        if restrict < 1:
            raise QueryError("restrict must be at least 1")
        return None if restrict >= self.size else int(restrict)

    @_catalog_errors
    def completions(self, prefix: str, limit: int = 50) -> list[str]:
        """Words whose case-folded form starts with ``prefix``, most frequent first."""
        return [word for word, _ in self.catalog.words_with_folded_prefix(prefix.casefold(), limit)]
