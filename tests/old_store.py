"""A store as embstore 0.1 wrote it, built for the tests (stores are built, never committed).

Before exact storage (migration 0006, rows layout 2) a store held unit-length rows, computed
in float64 and cast to float32, in FAISS's own IndexFlatIP serialisation (rows at byte 45),
kept each word's original norm in the catalog, and had no count column, no meta.row_values
and no fingerprint in its exact record. ``make_old_store`` loads ``source.txt`` with today's
code and turns the result into exactly that: the same catalog schema (migrations 0001-0005)
and the same file layout and values.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import faiss
import numpy as np

from embstore import Store

SOURCE = Path(__file__).parent / "fixtures" / "old_store" / "source.txt"  # GloVe 6B 50d's first 300 lines


def make_old_store(folder: Path) -> Path:
    """Build the 0.1 store ``folder/old.db`` (with its ``source.txt`` copy beside it); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "source.txt"
    source.write_bytes(SOURCE.read_bytes())
    db = folder / "old.db"
    Store.load(source, db, format="glove")
    conn = sqlite3.connect(db, isolation_level=None)
    name = conn.execute("SELECT file FROM index_files WHERE kind = 'exact'").fetchone()[0]
    norms = np.array([n for (n,) in conn.execute("SELECT norm FROM words ORDER BY id")])
    new_file = folder / name
    with Store.open(db) as store:
        raw = np.array(store.searcher.rows, dtype=np.float64)
    unit = (raw / norms[:, None]).astype(np.float32)  # as the 0.1 loader computed them
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    old_file = folder / name.replace(name.split(".")[-2], "0a1b2c3d")
    faiss.write_index(index, str(old_file))
    data = old_file.read_bytes()
    conn.execute("UPDATE index_files SET file = ?, bytes = ?, checksum = ?, params = ? WHERE kind = 'exact'",
                 (old_file.name, len(data), "sha256:" + hashlib.sha256(data).hexdigest(),
                  json.dumps({"faiss": "IndexFlatIP"})))
    conn.execute("ALTER TABLE words DROP COLUMN count")
    conn.execute("DROP TABLE subword_files")
    conn.execute("DROP TABLE shard_files")
    conn.execute("DROP INDEX words_by_folded")  # 0.1's index held every word's folded form, NULLs too
    conn.execute("CREATE INDEX words_by_folded ON words(folded)")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name IN ('0006_word_counts_and_row_values', "
                 "'0007_subword_files', '0008_shard_files', '0009_only_folded_words_indexed')")
    conn.execute("DELETE FROM meta WHERE key IN ('row_values', 'counts_source')")
    conn.close()
    new_file.unlink()
    return db
