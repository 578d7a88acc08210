"""The catalog's words table: word <-> ID lookups, bulk inserts, and the renumbering after deletes.

A mixin of ``Catalog`` (it uses only ``self.conn``). IDs are dense, 0..n-1, in frequency
order, and a word's rank equals its ID.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

if TYPE_CHECKING:
    import sqlite_utils

import numpy as np

from ..errors import CatalogDamagedError

from .schema import WORD_INDEXES, WORDS_DIGEST_SQL, build_word_indexes, word_digest, word_digests

RENUMBER_IN_PLACE = 20_000  # up to this many later words, renumber them in place
_PLACEHOLDER_LIMIT = 256  # up to this many values, lookups bind one parameter each; beyond, one JSON array


def fold(word: str) -> str:
    """The case-folded form used for case-insensitive lookup."""
    return word.casefold()


def _stored_fold(word: str) -> str | None:
    """What the ``folded`` column holds: the folded form, or NULL when it is the word itself."""
    folded = word.casefold()
    return None if folded == word else folded


def _stored_folds(words: Sequence[str]) -> Iterable[str | None] | None:
    """``_stored_fold`` of each word, or None when folding changes none of them (GloVe's words:
    one C call finds that, and the insert then leaves the column to its default, NULL)."""
    try:
        joined = "\n".join(words)
    except TypeError:
        joined = None
    if joined is not None and joined.casefold() == joined:
        return None
    return map(_stored_fold, words)


class WordQueries:
    if TYPE_CHECKING:
        conn: sqlite3.Connection
        db: sqlite_utils.Database

    def insert_words(self, ids: Sequence[int], words: Sequence[str], ranks: Sequence[int],
                     norms: Sequence[float], counts: Sequence[int] | None = None) -> None:
        """Insert new words; ``counts`` (a fastText model's, say) go in with them."""
        if isinstance(norms, np.ndarray):
            norms = norms.tolist()  # Python floats bind faster
        columns = {"id": ids, "word": words, "rank": ranks, "norm": norms, "digest": word_digests(words, norms)}
        folded = _stored_folds(words)
        if folded is not None:  # binding a NULL per row costs ~1 us of the ~2.5 an insert takes
            columns["folded"] = folded
        if counts is not None:
            columns["count"] = counts
        self.conn.executemany(
            f"INSERT INTO words({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", zip(*columns.values()))

    def words_digest(self) -> str:
        """What the words table holds, in one line: the count, the sum of the rows' digests and
        their sum weighted by ID (so a word moved to another ID shows). One SQL pass."""
        return self.conn.execute(f"SELECT {WORDS_DIGEST_SQL}").fetchone()[0]

    def record_words_digest(self) -> None:
        """Record ``words_digest`` in the metadata; every commit that changes words calls this."""
        self.conn.execute("INSERT INTO meta(key, value) VALUES ('words_digest', ?) ON CONFLICT(key) DO UPDATE SET "
                          "value = excluded.value", (self.words_digest(),))

    def rows_with_wrong_digests(self, batch: int = 65_536) -> int:
        """How many rows' stored digest differs from their word and norm (O(N), for ``check``)."""
        wrong = 0
        cursor = self.conn.execute("SELECT word, norm, digest FROM words")
        while rows := cursor.fetchmany(batch):
            words, norms, digests = zip(*rows)
            ok = [isinstance(w, str) and isinstance(n, float) for w, n in zip(words, norms)]
            computed = word_digests([w if good else "" for w, good in zip(words, ok)],
                                    [n if good else 0.0 for n, good in zip(norms, ok)])
            wrong += sum(1 for c, d, good in zip(computed, digests, ok) if not good or c != d)
        return wrong

    def delete_all_words(self) -> None:
        """Empty the words table for a bulk insert. Its indexes go too, so that the insert does
        not update them row by row; ``finish_bulk_insert`` builds them again, once and sorted."""
        self.conn.execute("DELETE FROM words")
        for name in WORD_INDEXES:
            self.conn.execute(f"DROP INDEX IF EXISTS {name}")

    def delete_words_renumbering(self, doomed: Sequence[int]) -> None:
        """Delete the words with IDs ``doomed`` and move each later word down by the number of
        deleted IDs below it, so that IDs stay dense and in the old order; ranks follow IDs.

        O(N log N) at most. A short tail is renumbered in one ascending pass, where each
        word's new ID is always free already (its old holder was deleted or has moved down
        before it). A long one (at 400k words, one row update costs ~10 us, mostly B-tree
        moves) is copied out with its new IDs, deleted, and inserted back in order with the
        word indexes dropped and rebuilt sorted, as a bulk load does: 4.1 -> 1.2 s at 400k.
        """
        doomed_ids = np.unique(np.asarray(doomed, dtype=np.int64))
        if not len(doomed_ids):
            return
        first = int(doomed_ids[0])
        self.conn.executemany("DELETE FROM words WHERE id = ?", [(int(i),) for i in doomed_ids])
        tail = self.conn.execute("SELECT count(*) FROM words WHERE id > ?", (first,)).fetchone()[0]
        if tail <= RENUMBER_IN_PLACE:
            later = np.fromiter((row[0] for row in self.conn.execute(
                "SELECT id FROM words WHERE id > ? ORDER BY id", (first,))), dtype=np.int64, count=tail)
            new_ids = (later - np.searchsorted(doomed_ids, later)).tolist()
            self.conn.executemany("UPDATE words SET id = ?, rank = ? WHERE id = ?", zip(new_ids, new_ids, later.tolist()))
            return
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS renumbered_words(id INTEGER PRIMARY KEY, word TEXT, "
                          "folded TEXT, norm REAL, digest INTEGER, count INTEGER)")
        self.conn.execute("DELETE FROM temp.renumbered_words")
        self.conn.execute("INSERT INTO temp.renumbered_words(id, word, folded, norm, digest, count) SELECT ? + "
                          "row_number() OVER (ORDER BY id) - 1, word, folded, norm, digest, count FROM words "
                          "WHERE id > ? ORDER BY id", (first, first))
        for name in WORD_INDEXES:
            self.conn.execute(f"DROP INDEX IF EXISTS {name}")
        self.conn.execute("DELETE FROM words WHERE id > ?", (first,))
        self.conn.execute("INSERT INTO words(id, word, folded, rank, norm, digest, count) SELECT id, word, folded, "
                          "id, norm, digest, count FROM temp.renumbered_words ORDER BY id")
        self.conn.execute("DELETE FROM temp.renumbered_words")
        build_word_indexes(self.db)

    def record_counts(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Set the count of each (word, count) whose word is stored; other words are ignored."""
        self.conn.executemany("UPDATE words SET count = ? WHERE word = ?", ((c, w) for w, c in pairs))

    def has_counts(self) -> bool:
        """Whether the words table has its count column (migration 0006): a store from before it
        that this process cannot write is read as it is, without one."""
        return self.conn.execute("SELECT 1 FROM pragma_table_info('words') WHERE name = 'count'").fetchone() is not None

    def count_stats(self) -> tuple[int, int]:
        """(words with a count, words without one)."""
        if not self.has_counts():
            return 0, self.conn.execute("SELECT count(*) FROM words").fetchone()[0]
        with_count, total = self.conn.execute("SELECT count(count), count(*) FROM words").fetchone()
        return with_count, total - with_count

    def counts_for_ids(self, ids: Sequence[int]) -> list[int | None]:
        if not self.has_counts():
            return [None] * len(ids)
        payload = json.dumps([int(i) for i in ids])
        found = dict(self.conn.execute(
            "SELECT id, count FROM words WHERE id IN (SELECT value FROM json_each(?))", (payload,)))
        return [found.get(int(i)) for i in ids]

    def counts_in_order(self) -> bool:
        """Whether counts never rise from one ID to the next (words without a count aside)."""
        return self.conn.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM (SELECT count, lag(count) OVER (ORDER BY id) AS before FROM words "
            "WHERE count IS NOT NULL) WHERE count > before)").fetchone()[0] == 1

    def word_bounds(self) -> tuple[int, int | None, int | None]:
        """(count, smallest id, largest id) in constant time: the count every commit records with
        the words' digest (meta.words_digest), the IDs from the ends of the primary key. A table
        without that record is counted (O(N)). ``check`` counts and digests every row."""
        low = self.conn.execute("SELECT min(id) FROM words").fetchone()[0]
        high = self.conn.execute("SELECT max(id) FROM words").fetchone()[0]
        recorded = self.conn.execute("SELECT value FROM meta WHERE key = 'words_digest'").fetchone()
        count = recorded[0].split(":", 1)[0] if recorded and isinstance(recorded[0], str) else ""
        if not count.isdigit():
            return self.word_stats()
        return int(count), low, high

    def word_stats(self) -> tuple[int, int | None, int | None]:
        """Return (count, smallest id, largest id)."""
        count, low, high = self.conn.execute("SELECT count(*), min(id), max(id) FROM words").fetchone()
        return count, low, high

    def ids_for_words(self, words: Iterable[str]) -> dict[str, int]:
        """Exact lookup: the words found, with their IDs."""
        words = list(words)
        if len(words) <= _PLACEHOLDER_LIMIT:  # a cached statement per size: fastest for one query
            sql = f"SELECT word, id FROM words WHERE word IN ({','.join('?' * len(words))})"
            return dict(self.conn.execute(sql, words))
        return dict(self.conn.execute(
            "SELECT word, id FROM words WHERE word IN (SELECT value FROM json_each(?))", (json.dumps(words),)
        ))

    def id_for_word(self, word: str) -> int | None:
        """The ID of ``word`` exactly as written, or None."""
        row = self.conn.execute("SELECT id FROM words WHERE word = ?", (word,)).fetchone()
        return row[0] if row else None

    def most_frequent_folded_match(self, word: str) -> tuple[int, str] | None:
        """The most frequent word whose case-folded form equals that of ``word``."""
        row = self.conn.execute(
            "SELECT id, word FROM words WHERE word = :f OR folded = :f ORDER BY id LIMIT 1", {"f": fold(word)}
        ).fetchone()
        return (row[0], row[1]) if row else None

    def words_for_ids(self, ids: Iterable[int]) -> dict[int, str]:
        ids = [int(i) for i in ids]
        if len(ids) <= _PLACEHOLDER_LIMIT:
            return dict(self.conn.execute(f"SELECT id, word FROM words WHERE id IN ({','.join('?' * len(ids))})", ids))
        return dict(self.conn.execute(
            "SELECT id, word FROM words WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)
        ))

    def norms_for_ids(self, ids: Sequence[int]) -> np.ndarray:
        payload = json.dumps([int(i) for i in ids])
        found = dict(self.conn.execute(
            "SELECT id, norm FROM words WHERE id IN (SELECT value FROM json_each(?))", (payload,)
        ))
        return np.array([found[int(i)] for i in ids], dtype=np.float64)

    def iter_words(self, batch: int = 50_000) -> Iterator[tuple[list[int], list[str], np.ndarray]]:
        """Yield (ids, words, norms) in ID order, in batches; CatalogDamagedError where a row cannot be read."""
        try:
            cursor = self.conn.execute("SELECT id, word, norm FROM words ORDER BY id")
            while True:
                rows = cursor.fetchmany(batch)
                if not rows:
                    return
                ids, words, norms = zip(*rows)
                yield list(ids), list(words), np.array(norms, dtype=np.float64)
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            raise CatalogDamagedError(f"the words table cannot be read ({exc}); run 'embstore check'") from None

    def vocabulary(self) -> list[str]:
        """All words, position i holding the word with ID i (IDs are dense)."""
        try:
            return [row[0] for row in self.conn.execute("SELECT word FROM words ORDER BY id")]
        except sqlite3.DatabaseError as exc:
            raise CatalogDamagedError(f"the words table cannot be read ({exc}); run 'embstore check'") from None

    def joined_words(self, separator: str) -> str:
        """Every word in ID order, joined by ``separator`` in one SQLite call."""
        return self.conn.execute(
            "SELECT group_concat(word, ?) FROM (SELECT word FROM words NOT INDEXED ORDER BY id)", (separator,)
        ).fetchone()[0] or ""

    def words_with_folded_prefix(self, prefix: str, limit: int) -> list[tuple[str, int]]:
        """Words whose folded form starts with ``prefix``, most frequent first: (word, rank)."""
        upper = prefix + "\U0010ffff"
        return list(self.conn.execute(
            "SELECT word, rank FROM words WHERE (word >= :low AND word < :high) OR (folded >= :low AND folded < :high) "
            "ORDER BY id LIMIT :limit",
            {"low": prefix, "high": upper, "limit": limit},
        ))

    def words_with_folded_forms(self, forms: Iterable[str]) -> list[tuple[str, int]]:
        payload = json.dumps(list(forms))
        return list(self.conn.execute(
            "SELECT word, rank FROM words WHERE word IN (SELECT value FROM json_each(:forms)) "
            "OR folded IN (SELECT value FROM json_each(:forms)) ORDER BY id",
            {"forms": payload},
        ))

    def update_norms(self, ids: Sequence[int], norms: Sequence[float]) -> None:
        words = self.words_for_ids(ids)
        self.conn.executemany("UPDATE words SET norm = ?, digest = ? WHERE id = ?",
                              [(float(n), word_digest(words[int(i)], float(n)), int(i)) for i, n in zip(ids, norms)])

    def rename_word(self, word_id: int, new_word: str) -> None:
        norm = self.conn.execute("SELECT norm FROM words WHERE id = ?", (word_id,)).fetchone()[0]
        self.conn.execute("UPDATE words SET word = ?, folded = ?, digest = ? WHERE id = ?",
                          (new_word, _stored_fold(new_word), word_digest(new_word, norm), word_id))

    def reset_ranks(self) -> int:
        """Make every rank equal its ID again; returns how many were wrong."""
        return self.conn.execute("UPDATE words SET rank = id WHERE rank IS NOT id").rowcount
