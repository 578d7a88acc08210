"""The errors embstore raises. Each one reads as a complete sentence for the user."""

from __future__ import annotations

from typing import Sequence


class EmbstoreError(Exception):
    """Base class: anything embstore reports to a user as a one-line error."""


class InterruptedAfterCommit(KeyboardInterrupt):
    """Ctrl-C arrived while a COMMIT ran, and Python raised it after the commit had gone
    through: the change is in the store, so the files it names must be kept."""


class FormatError(EmbstoreError):
    """An embedding file is malformed. Carries the file, the line and what was wrong."""

    def __init__(
        self, path: str, line: int | None, problem: str, hint: str | None = None, unit: str = "line"
    ):
        self.path = str(path)
        self.line = None if line is None else int(line)
        self.problem = problem
        self.hint = hint
        where = f"{self.path}, {unit} {line}" if line is not None else self.path
        message = f"{where}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class UnknownWordError(EmbstoreError, KeyError):
    """A word is not in the vocabulary. ``suggestions`` holds close vocabulary words."""

    def __init__(self, word: str, suggestions: Sequence[str] = (), reason: str | None = None):
        self.word = word
        self.suggestions = list(suggestions)
        message = f"unknown word {word!r}" + (f" ({reason})" if reason else "")
        if self.suggestions:
            message += "; did you mean " + ", ".join(repr(s) for s in self.suggestions) + "?"
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class StoreError(EmbstoreError):
    """The store cannot be opened or written: missing, foreign, too new or busy."""


class StoreNotFoundError(StoreError):
    pass


class NotAStoreError(StoreError):
    pass


class StoreBusyError(StoreError):
    pass


class StoreChangedError(StoreBusyError):
    """Another process committed a change between this write's reading and its commit."""


class StoreClosedError(StoreError):
    """The store was closed; open it again to use it."""


class StoreReadOnlyError(StoreError):
    """The store can be read here but not written (read-only file, folder or mount)."""


class CatalogMismatchError(StoreError):
    """The SQLite catalog and an index file disagree."""


class CatalogDamagedError(CatalogMismatchError):
    """The catalog is embstore's, but SQLite cannot read or write it as it is."""


class QueryError(EmbstoreError, ValueError):
    """A query cannot be answered as asked (empty word list, bad k, ...)."""
