"""The catalog's schema: sqlite-utils migrations, registered in order and recorded in the catalog.

A step that has been released is never changed: a new one is added. sqlite-utils is
imported only when a schema is created or changed; opening a store to query it does not
need it (it is ~60 ms of a cold `embstore nearest`).
"""

from __future__ import annotations

import functools
import operator
import zlib
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

APPLICATION_ID = 0x456D6273  # 'Embs', in the SQLite header: marks an embstore catalog
FORMAT_VERSION = 1
MIGRATION_SET = "embstore"
MIGRATIONS_TABLE = "_sqlite_migrations"  # where sqlite-utils records the migrations it applied
WORD_INDEXES_MIGRATION = "0002_index_words"
WORD_INDEXES = ("words_by_word", "words_by_folded")


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


def index_words(db: sqlite_utils.Database) -> None:
    """The word lookup B-trees. A separate step so that a new store can bulk-insert its
    words first and build them once, sorted, which is several times faster than row by row."""
    db["words"].create_index(["word"], unique=True, index_name=WORD_INDEXES[0])
    # 'folded' is NULL when folding changes nothing (every GloVe word), which keeps
    # this index small; lookups ask for word = f OR folded = f.
    db["words"].create_index(["folded"], index_name=WORD_INDEXES[1])


def _only_folded_words_indexed(db: sqlite_utils.Database) -> None:
    """``words_by_folded`` holds only the words whose folded form differs (a partial index):
    on most vocabularies that is few of them, and a 3M-word load no longer sorts 3M NULLs
    (2.3 s). ``word = f OR folded = f`` still searches it: ``folded = f`` implies NOT NULL."""
    db.execute(f"DROP INDEX IF EXISTS {WORD_INDEXES[1]}")
    _create_folded_index(db)


def _create_folded_index(db: sqlite_utils.Database) -> None:
    db.execute(f"CREATE INDEX {WORD_INDEXES[1]} ON words(folded) WHERE folded IS NOT NULL")


def build_word_indexes(db: sqlite_utils.Database) -> None:
    """The word lookup B-trees as the current schema has them (``index_words`` is the released
    step that first made them): built once, sorted, after a bulk insert dropped them."""
    db["words"].create_index(["word"], unique=True, index_name=WORD_INDEXES[0])
    _create_folded_index(db)


def _index_staleness(db: sqlite_utils.Database) -> None:
    # Superseded by 0004: staleness is now derived from the rows generation.
    db["index_files"].add_column("stale", int, not_null_default=0)


def _index_rows_generation(db: sqlite_utils.Database) -> None:
    """Each index file records the generation of the rows it was built from; the store
    records the generation of its rows. An index whose generation differs is stale."""
    db["index_files"].add_column("rows_generation", int)
    db.execute("INSERT OR IGNORE INTO meta(key, value) SELECT 'rows_generation', value FROM meta "
               "WHERE key = 'generation'")
    db.execute("UPDATE index_files SET rows_generation = CASE WHEN stale THEN -1 ELSE "
               "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'rows_generation') END")


DIGEST_MODULUS = 1_000_000_007
# The words table in one line: count, sum of row digests, and their sum weighted by ID (so that a
# word moved to another ID shows); the modulus keeps the sum in 64 bits at any vocabulary size.
WORDS_DIGEST_SQL = (f"count(*) || ':' || CAST(total(digest) AS INTEGER) || ':' || "
                    f"coalesce(sum((digest * (id + 1)) % {DIGEST_MODULUS}), 0) FROM words")


def word_digests(words: Sequence[str], norms: Sequence[float]) -> list[int]:
    """A 20-bit digest of each word's text and norm (stored per row; see ``WORDS_DIGEST_SQL``)."""
    encoded = map(operator.methodcaller("encode", "utf-8", "surrogatepass"), words)
    crc = np.fromiter(map(zlib.crc32, encoded), np.uint64, len(words))  # no Python frame per word
    mixed = crc ^ (np.asarray(norms, dtype=np.float64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    mixed ^= mixed >> np.uint64(31)
    mixed *= np.uint64(0xBF58476D1CE4E5B9)
    mixed ^= mixed >> np.uint64(29)
    return (mixed & np.uint64(0xFFFFF)).tolist()


def word_digest(word: str, norm: float) -> int:
    return word_digests([word], [norm])[0]


def _word_digests(db: sqlite_utils.Database) -> None:
    """Each word's digest of its text and norm, so that ``check`` can tell a word, an ID or a
    norm changed outside embstore (the catalog records their sum at every commit)."""
    db["words"].add_column("digest", int)
    db.conn.create_function("embstore_word_digest", 2, word_digest, deterministic=True)
    db.execute("UPDATE words SET digest = embstore_word_digest(word, norm)")
    db.execute(f"INSERT OR REPLACE INTO meta(key, value) SELECT 'words_digest', {WORDS_DIGEST_SQL}")


UNIT_ROWS = "unit length"  # meta.row_values of stores written before 0.2 (see store_meta.RAW_ROWS)


def _word_counts_and_row_values(db: sqlite_utils.Database) -> None:
    """A count per word (``load --counts``; NULL when the file gave none). Stores written
    before this step hold unit rows: meta.row_values says so, and new loads record rows as
    loaded, so a vector is given back bit for bit."""
    db["words"].add_column("count", int)
    db.execute("INSERT OR IGNORE INTO meta(key, value) SELECT 'row_values', ? WHERE EXISTS "
               "(SELECT 1 FROM meta WHERE key = 'dimension')", (UNIT_ROWS,))


def _subword_files(db: sqlite_utils.Database) -> None:
    """fastText stores: the file of n-gram bucket rows that gives any word a vector, with what
    its hashing needs (minn, maxn, bucket, the hash) in ``params``."""
    db["subword_files"].create(
        {"name": str, "file": str, "rows": int, "dimension": int, "bytes": int, "checksum": str,
         "fingerprint": str, "params": str, "created_at": str},
        pk="name",
    )


def _shard_files(db: sqlite_utils.Database) -> None:
    """A sharded store (``embstore shard``): per shard, the word-ID range ``start .. stop`` and
    the file that holds its rows (kind 'exact') or an HNSW graph of them (kind 'hnsw'), with
    the generation of the rows it holds. The words table stays the one source of words and IDs."""
    db["shard_files"].create(
        {"kind": str, "number": int, "shards": int, "start": int, "stop": int, "file": str, "bytes": int,
         "checksum": str, "fingerprint": str, "params": str, "rows_generation": int, "created_at": str},
        pk=("kind", "number"),
    )


# The schema's history, in order. Never change a step that has been released: add one.
MIGRATION_STEPS = (
    ("0001_create_catalog", _create_catalog),
    (WORD_INDEXES_MIGRATION, index_words),
    ("0003_index_staleness", _index_staleness),
    ("0004_index_rows_generation", _index_rows_generation),
    ("0005_word_digests", _word_digests),
    ("0006_word_counts_and_row_values", _word_counts_and_row_values),
    ("0007_subword_files", _subword_files),
    ("0008_shard_files", _shard_files),
    ("0009_only_folded_words_indexed", _only_folded_words_indexed),
)


# SQL that finds a row when a step's work is in the schema: repair re-records a step whose
# record was lost but whose work is there (applying it again would fail: 'duplicate column').
APPLIED_MARKERS = {
    "0001_create_catalog": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'words'",
    WORD_INDEXES_MIGRATION: "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'words_by_word'",
    "0003_index_staleness": "SELECT 1 FROM pragma_table_info('index_files') WHERE name = 'stale'",
    "0004_index_rows_generation": "SELECT 1 FROM pragma_table_info('index_files') WHERE name = 'rows_generation'",
    "0005_word_digests": "SELECT 1 FROM pragma_table_info('words') WHERE name = 'digest'",
    "0006_word_counts_and_row_values": "SELECT 1 FROM pragma_table_info('words') WHERE name = 'count'",
    "0007_subword_files": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'subword_files'",
    "0008_shard_files": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shard_files'",
    "0009_only_folded_words_indexed": f"SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = "
                                      f"'{WORD_INDEXES[1]}' AND sql LIKE '%WHERE%'",
}


@functools.lru_cache(maxsize=None)
def migrations() -> "Migrations":
    """The steps registered as sqlite-utils migrations."""
    from sqlite_utils.migrations import Migrations

    registered = Migrations(MIGRATION_SET)
    for name, step in MIGRATION_STEPS:
        registered(name=name)(step)
    return registered


def known_migrations() -> list[str]:
    return [name for name, _ in MIGRATION_STEPS]
