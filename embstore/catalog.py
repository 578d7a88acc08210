"""The SQLite catalog: words, their IDs, ranks and norms, the store's metadata and its index files.

Knows nothing of FAISS. The schema is created and changed only by the registered
sqlite-utils migrations below; every word travels as a bound parameter, never as SQL text.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

from .errors import NotAStoreError, StoreBusyError, StoreError
from .word_table import WordTable

APPLICATION_ID = 0x456D6273  # 'Embs', in the SQLite header: marks an embstore catalog
FORMAT_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_SECONDS = float(os.environ.get("EMBSTORE_BUSY_TIMEOUT", "10"))  # how long a writer waits for another
MMAP_BYTES = 1 << 30
_PLACEHOLDER_LIMIT = 256  # up to this many values, lookups bind one parameter each; beyond, one JSON array

MIGRATION_SET = "embstore"
MIGRATIONS_TABLE = "_sqlite_migrations"  # where sqlite-utils records the migrations it applied


def _create_catalog(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["words"].create(
        {"id": int, "word": str, "folded": str, "rank": int, "norm": float},
        pk="id",
        not_null={"word", "rank", "norm"},
    )
    db["index_files"].create(
        {
            "kind": str, "file": str, "rows": int, "bytes": int, "checksum": str,
            "params": str, "generation": int, "created_at": str, "recall": str,
        },
        pk="kind",
    )


WORD_INDEXES_MIGRATION = "0002_index_words"
WORD_INDEXES = ("words_by_word", "words_by_folded")


def _index_words(db: sqlite_utils.Database) -> None:
    # A separate step so that a new store can bulk-insert its words first and build
    # these B-trees once, sorted, which is several times faster than row by row.
    db["words"].create_index(["word"], unique=True, index_name=WORD_INDEXES[0])
    # 'folded' is NULL when folding changes nothing (every GloVe word), which keeps
    # this index small; lookups ask for word = f OR folded = f.
    db["words"].create_index(["folded"], index_name=WORD_INDEXES[1])


def _index_staleness(db: sqlite_utils.Database) -> None:
    # An approximate index that a change to the rows has made out of date is kept,
    # marked stale, and rebuilt when next used.
    db["index_files"].add_column("stale", int, not_null_default=0)


# The schema's history, in order. Never change a step that has been released: add one.
MIGRATION_STEPS = (
    ("0001_create_catalog", _create_catalog),
    (WORD_INDEXES_MIGRATION, _index_words),
    ("0003_index_staleness", _index_staleness),
)


@functools.lru_cache(maxsize=None)
def _migrations() -> "Migrations":
    """The steps registered as sqlite-utils migrations. sqlite-utils is imported here, when a
    schema is created or changed: opening a store to query it does not need it (it is
    ~60 ms of a cold `embstore nearest`)."""
    from sqlite_utils.migrations import Migrations

    registered = Migrations(MIGRATION_SET)
    for name, step in MIGRATION_STEPS:
        registered(name=name)(step)
    return registered


def fold(word: str) -> str:
    """The case-folded form used for case-insensitive lookup."""
    return word.casefold()


def _stored_fold(word: str) -> str | None:
    """What the ``folded`` column holds: the folded form, or NULL when it is the word itself."""
    folded = word.casefold()
    return None if folded == word else folded


@dataclass(frozen=True)
class IndexFileRecord:
    """One FAISS file as the catalog knows it."""

    kind: str
    file: str
    rows: int
    bytes: int
    checksum: str
    params: dict
    generation: int
    created_at: str
    recall: dict | None
    stale: bool = False


def _check_is_sqlite(path: Path) -> None:
    if path.is_dir():
        raise NotAStoreError(f"{path} is a directory, not an embstore database")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    if head != SQLITE_MAGIC:
        raise NotAStoreError(f"{path} is not an embstore database (not an SQLite file)")


class Catalog:
    """An open catalog database. Use ``create`` for a new one and ``open`` for an existing one."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn
        self._db: sqlite_utils.Database | None = None

    @property
    def db(self) -> "sqlite_utils.Database":
        """sqlite-utils' view of the connection, for schema changes."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    # -- opening ------------------------------------------------------------------

    @staticmethod
    def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            uri = path.resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS,
                                   check_same_thread=False)
        else:
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS,
                                   check_same_thread=False)
        # Read pages through a memory map instead of read() calls: looking up the 10 words of
        # an answer among 400k took 44 -> 34 us. Only address space is reserved.
        conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        return conn

    @classmethod
    def create(cls, path: Path) -> "Catalog":
        """Create a new catalog at ``path`` (which must not exist), schema and all."""
        conn = cls._connect(path)
        conn.execute("PRAGMA journal_mode=OFF")  # a new catalog is built in a temporary file
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        catalog = cls(path, conn)
        _migrations().apply(catalog.db, stop_before=WORD_INDEXES_MIGRATION)
        catalog.set_meta(format_version=FORMAT_VERSION)
        return catalog

    def finish_bulk_insert(self) -> None:
        """Build the word indexes after a bulk insert, inside the current transaction: a new
        catalog applies the migration ``create`` deferred; a replaced one rebuilds the indexes
        ``delete_all_words`` dropped."""
        if WORD_INDEXES_MIGRATION in self.applied_migrations():
            _index_words(self.db)
        _migrations().apply(self.db)

    @classmethod
    def open(cls, path: Path, readonly: bool = False) -> "Catalog":
        """Open an existing catalog, checking it is one of ours and not from a newer embstore."""
        _check_is_sqlite(path)
        try:
            conn = cls._connect(path, readonly=readonly)
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise NotAStoreError(f"{path} is not a readable SQLite database ({exc})") from None
        if application_id != APPLICATION_ID:
            conn.close()
            raise NotAStoreError(
                f"{path} is an SQLite database but not an embstore store "
                "(create one with: embstore load FILE --db PATH)"
            )
        catalog = cls(path, conn)
        version = catalog.format_version()
        if version > FORMAT_VERSION:
            conn.close()
            raise StoreError(
                f"{path} was written by a newer embstore (store format {version}; this one reads up to "
                f"{FORMAT_VERSION}): upgrade embstore to open it"
            )
        if not readonly and set(catalog.known_migrations()) - set(catalog.applied_migrations()):
            with catalog.write_transaction():
                _migrations().apply(catalog.db)
        return catalog

    def finish_creation(self) -> None:
        """Switch a freshly built catalog to WAL, sync it to disk and close it."""
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.close()
        with open(self.path, "rb+") as handle:
            os.fsync(handle.fileno())

    def close(self) -> None:
        self.conn.close()

    def format_version(self) -> int:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
        except sqlite3.DatabaseError:
            raise NotAStoreError(f"{self.path} has no embstore metadata table") from None
        if row is None:
            raise NotAStoreError(f"{self.path} has no embstore format version")
        return int(row[0])

    def hold_snapshot(self) -> None:
        """Start a read transaction that pins what this connection sees until ``release_snapshot``.

        An open store holds one, so every catalog read agrees with the index it loaded,
        whatever other processes commit meanwhile (SQLite WAL keeps the old pages for it).
        """
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            self.conn.execute("SELECT count(*) FROM meta").fetchone()

    def release_snapshot(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[None]:
        """Hold SQLite's write lock for the block; commit at its end or roll back on error."""
        self.release_snapshot()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusyError(f"store {self.path} is busy: another process is writing to it") from None
            raise
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Read several statements from one consistent snapshot."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    # -- metadata -------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def set_meta(self, **values: object) -> None:
        self.conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(key, str(value)) for key, value in values.items()],
        )

    # -- words --------------------------------------------------------------------------

    def insert_words(self, ids: Sequence[int], words: Sequence[str], ranks: Sequence[int],
                     norms: Sequence[float]) -> None:
        self.conn.executemany(
            "INSERT INTO words(id, word, folded, rank, norm) VALUES (?, ?, ?, ?, ?)",
            zip(ids, words, map(_stored_fold, words), ranks, norms),
        )

    def delete_all_words(self) -> None:
        """Empty the words table for a bulk insert. Its indexes go too, so that the insert does
        not update them row by row; ``finish_bulk_insert`` builds them again, once and sorted."""
        self.conn.execute("DELETE FROM words")
        for name in WORD_INDEXES:
            self.conn.execute(f"DROP INDEX IF EXISTS {name}")

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
        """Yield (ids, words, norms) in ID order, in batches."""
        cursor = self.conn.execute("SELECT id, word, norm FROM words ORDER BY id")
        while True:
            rows = cursor.fetchmany(batch)
            if not rows:
                return
            ids, words, norms = zip(*rows)
            yield list(ids), list(words), np.array(norms, dtype=np.float64)

    def vocabulary(self) -> list[str]:
        """All words, position i holding the word with ID i (IDs are dense)."""
        return [row[0] for row in self.conn.execute("SELECT word FROM words ORDER BY id")]

    def word_table(self) -> WordTable | None:
        """All words in a compact table by ID (IDs are dense): about 0.25 s and 5 MB at 400k words.

        SQLite joins them into one string in ID order, the table's own order; the first
        and last words and a sample between are checked against lookups by ID. If a word
        holds the newline separator or the check fails, the table is built from the list
        of words, joined by NUL instead.
        """
        count = self.word_stats()[0]
        joined = self.conn.execute(
            "SELECT group_concat(word, char(10)) FROM (SELECT word FROM words NOT INDEXED ORDER BY id)"
        ).fetchone()[0]
        table = WordTable.from_joined(joined or "", "\n", count)
        if table is not None and count:
            sample = {0, count - 1, *np.linspace(0, count - 1, 64).astype(int).tolist()}
            if self.words_for_ids(sample) != table.words_for_ids(sample):
                table = None
        if table is None:
            table = WordTable.from_joined("\0".join(self.vocabulary()), "\0", count)
        return table  # None only if some word holds a newline and another a NUL

    def id_below_rank(self, rank_limit: int) -> int:
        """One past the largest ID among the ``rank_limit`` most frequent words.

        Ranks follow IDs (loads number words in file order, appends rank after, deletes
        renumber both), so this is ``rank_limit`` capped at the word count.
        """
        return min(rank_limit, self.word_stats()[0])

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

    # -- index files ----------------------------------------------------------------

    def index_files(self) -> list[IndexFileRecord]:
        rows = self.conn.execute(
            "SELECT kind, file, rows, bytes, checksum, params, generation, created_at, recall, stale "
            "FROM index_files ORDER BY kind"
        ).fetchall()
        return [
            IndexFileRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5] or "{}"), r[6], r[7],
                            json.loads(r[8]) if r[8] else None, bool(r[9]))
            for r in rows
        ]

    def index_file(self, kind: str) -> IndexFileRecord | None:
        for record in self.index_files():
            if record.kind == kind:
                return record
        return None

    def record_index_file(self, record: IndexFileRecord) -> None:
        self.conn.execute(
            "INSERT INTO index_files(kind, file, rows, bytes, checksum, params, generation, created_at, recall, stale) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(kind) DO UPDATE SET file = excluded.file, "
            "rows = excluded.rows, bytes = excluded.bytes, checksum = excluded.checksum, params = excluded.params, "
            "generation = excluded.generation, created_at = excluded.created_at, recall = excluded.recall, "
            "stale = excluded.stale",
            (record.kind, record.file, record.rows, record.bytes, record.checksum, json.dumps(record.params),
             record.generation, record.created_at, json.dumps(record.recall) if record.recall else None,
             int(record.stale)),
        )

    def mark_stale(self, kinds: Iterable[str]) -> None:
        self.conn.executemany("UPDATE index_files SET stale = 1 WHERE kind = ?", [(k,) for k in kinds])

    def delete_words_by_id(self, ids: Iterable[int]) -> None:
        self.conn.executemany("DELETE FROM words WHERE id = ?", [(int(i),) for i in ids])

    def renumber_words(self) -> None:
        """Make IDs dense again (0..n-1, in the old order) after deletions; ranks follow IDs."""
        self.conn.execute(
            "UPDATE words SET id = -1 - (SELECT count(*) FROM words AS earlier WHERE earlier.id < words.id)"
        )
        self.conn.execute("UPDATE words SET id = -1 - id, rank = -1 - id")

    def update_norms(self, ids: Sequence[int], norms: Sequence[float]) -> None:
        self.conn.executemany("UPDATE words SET norm = ? WHERE id = ?",
                              [(float(n), int(i)) for i, n in zip(ids, norms)])

    def rename_word(self, word_id: int, new_word: str) -> None:
        self.conn.execute("UPDATE words SET word = ?, folded = ? WHERE id = ?",
                          (new_word, _stored_fold(new_word), word_id))

    def applied_migrations(self) -> list[str]:
        """The migrations applied to this catalog, in order, read from sqlite-utils' record."""
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 (MIGRATIONS_TABLE,)).fetchone():
            return []
        return [row[0] for row in self.conn.execute(
            f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY rowid", (MIGRATION_SET,))]

    def known_migrations(self) -> list[str]:
        return [name for name, _ in MIGRATION_STEPS]
