"""The store as a whole: catalog/index agreement at open, default paths, info, replacement."""

from __future__ import annotations

import mmap
import sqlite3

import numpy as np
import pytest

from embstore import CatalogMismatchError, Store, StoreError, resolve_store_path
from embstore.storage.schema import FORMAT_VERSION
from embstore.storage.index_files import flat_rows


def index_file(db):
    return next(p for p in db.parent.iterdir() if p.name.endswith(".faiss"))


def test_catalog_holds_metadata_and_index_record(store_copy):
    conn = sqlite3.connect(store_copy)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["dimension"] == "50" and meta["metric"] == "cosine"
    assert int(meta["format_version"]) == FORMAT_VERSION
    kind, rows, size, checksum = conn.execute("SELECT kind, rows, bytes, checksum FROM index_files").fetchone()
    assert (kind, rows) == ("exact", 20_000)
    assert size == index_file(store_copy).stat().st_size and checksum.startswith("sha256:")
    # Frequency ranks follow file order; IDs equal FAISS row numbers.
    assert conn.execute("SELECT id, rank FROM words WHERE word = 'the'").fetchone() == (0, 0)
    applied = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert applied == ["0001_create_catalog", "0002_index_words", "0003_index_staleness",
                       "0004_index_rows_generation", "0005_word_digests", "0006_word_counts_and_row_values",
                       "0007_subword_files", "0008_shard_files", "0009_only_folded_words_indexed"]


def test_a_store_from_before_word_digests_upgrades_when_opened(store_copy):
    """Migration 0005 adds each word's digest to a store made before it, and records their sum."""
    conn = sqlite3.connect(store_copy, isolation_level=None)
    conn.execute("ALTER TABLE words DROP COLUMN digest")
    conn.execute("ALTER TABLE words DROP COLUMN count")
    conn.execute("DROP TABLE subword_files")
    conn.execute("DROP TABLE shard_files")
    conn.execute("DROP INDEX words_by_folded")
    conn.execute("CREATE INDEX words_by_folded ON words(folded)")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name IN ('0005_word_digests', "
                 "'0006_word_counts_and_row_values', '0007_subword_files', '0008_shard_files', "
                 "'0009_only_folded_words_indexed')")
    conn.execute("DELETE FROM meta WHERE key = 'words_digest'")
    conn.close()
    with Store.open(store_copy) as store:
        assert store.nearest("king", k=1).neighbours[0].word == "prince"
    from embstore.storage.check import check_store

    report = check_store(store_copy)
    assert report.ok, report.problems
    conn = sqlite3.connect(store_copy)
    assert conn.execute("SELECT count(*) FROM words WHERE digest IS NULL").fetchone()[0] == 0
    folded_index = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'words_by_folded'").fetchone()[0]
    assert folded_index.endswith("WHERE folded IS NOT NULL")  # 0009: only the words folding changes
    swapped = conn.execute("SELECT id, word, folded, norm, digest FROM words WHERE id IN (7, 9) ORDER BY id").fetchall()
    conn.execute("UPDATE words SET word = '#tmp' WHERE id = 7")
    for (_, word, folded, norm, digest), target in zip(swapped, (9, 7)):
        conn.execute("UPDATE words SET word = ?, folded = ?, norm = ?, digest = ? WHERE id = ?",
                     (word, folded, norm, digest, target))
    conn.commit()
    conn.close()
    report = check_store(store_copy)  # two whole rows swapped their IDs: only the recorded sum can tell
    assert not report.ok and any("digest its last commit recorded" in p for p in report.problems), report.problems


def test_truncated_index_is_refused_with_repair_hint(store_copy):
    path = index_file(store_copy)
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(CatalogMismatchError, match="bytes but the catalog recorded .*embstore repair"):
        Store.open(store_copy)


def test_changed_index_bytes_are_found(store_copy):
    """Opening checks the file's ends in constant time; a byte changed in the middle of the rows
    is found by verify=True and by check, which read every byte."""
    from embstore.storage.check import check_store

    path = index_file(store_copy)
    pristine = path.read_bytes()
    data = bytearray(pristine)
    data[-10] ^= 0xFF  # inside the stored norms, at the end of the file
    path.write_bytes(bytes(data))
    with pytest.raises(CatalogMismatchError, match="not the file the catalog recorded"):
        Store.open(store_copy)
    data = bytearray(pristine)
    data[len(data) // 2] ^= 0x01  # one bit of one row value
    path.write_bytes(bytes(data))
    Store.open(store_copy).close()  # sizes, header and ends agree: a constant-time open proceeds
    with pytest.raises(CatalogMismatchError, match="checksum"):
        Store.open(store_copy, verify=True)
    report = check_store(store_copy)
    assert not report.ok and any("checksum" in p for p in report.problems), report.problems


def test_exact_rows_are_mapped_aligned_and_equal_what_faiss_parses(store_copy):
    from embstore.storage.index_files import faiss_part

    path = index_file(store_copy)
    with Store.open(store_copy) as store:
        rows = store.searcher.rows
        assert rows.flags["ALIGNED"] and not rows.flags["WRITEABLE"] and rows.ctypes.data % 64 == 0
        assert isinstance(rows.base, mmap.mmap) or isinstance(getattr(rows.base, "obj", None), mmap.mmap)
        norms = store.searcher.norms
    parsed_index = faiss_part(path)  # FAISS reads its own part of the file as it is
    parsed = flat_rows(parsed_index)
    assert rows.shape == parsed.shape == (20_000, 50) and np.array_equal(rows, parsed)
    assert np.array_equal(norms, np.linalg.norm(parsed, axis=1).astype(np.float32))


@pytest.mark.parametrize("where, message", [(0, "cannot be read"), (20, "of dimension 51"),
                                            (40, "layout its header describes"), (100, "layout its header")])
def test_changed_header_bytes_are_refused(store_copy, where, message):
    path = index_file(store_copy)
    data = bytearray(path.read_bytes())
    data[where] ^= 0x01  # embstore's header (0-63) or FAISS's (83-127): never read past
    path.write_bytes(bytes(data))
    with pytest.raises(CatalogMismatchError, match=message):
        Store.open(store_copy)


def test_missing_index_file(store_copy):
    index_file(store_copy).unlink()
    with pytest.raises(CatalogMismatchError, match="missing"):
        Store.open(store_copy)


def test_deleted_catalog_row_is_detected(store_copy):
    """Opening takes the count every commit records (constant time); a row deleted in the
    middle by another program is found by check, and by any answer that needs its word."""
    from embstore.errors import CatalogDamagedError
    from embstore.storage.check import check_store

    conn = sqlite3.connect(store_copy)
    conn.execute("DELETE FROM words WHERE word = 'queen'")
    conn.execute("DELETE FROM words WHERE id = (SELECT max(id) FROM words)")
    conn.commit()
    conn.close()
    with pytest.raises(CatalogMismatchError, match="catalog lists 20,000 words \\(IDs 0..19998\\)"):
        Store.open(store_copy)  # the last row: the ends of the IDs disagree with the recorded count
    conn = sqlite3.connect(store_copy)
    conn.execute("INSERT INTO words(id, word, folded, rank, norm, digest) VALUES (19999, 'zzzlast', NULL, 19999, 1.0, 0)")
    conn.commit()
    conn.close()
    with Store.open(store_copy) as store:
        with pytest.raises(CatalogDamagedError, match="no word with ID"):
            store.nearest("king", k=5)  # queen, its second neighbour, has no row
    report = check_store(store_copy)
    assert not report.ok and any("19,999 words" in p or "digest" in p for p in report.problems), report.problems


def test_newer_format_version_is_refused(store_copy):
    conn = sqlite3.connect(store_copy)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer embstore"):
        Store.open(store_copy)


def test_default_path_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("EMBSTORE_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_store_path(None) == tmp_path / "xdg" / "embstore" / "store.db"
    monkeypatch.setenv("EMBSTORE_DB", str(tmp_path / "env.db"))
    assert resolve_store_path(None) == tmp_path / "env.db"
    assert resolve_store_path(tmp_path / "explicit.db") == tmp_path / "explicit.db"


def test_cli_uses_environment_store(run, monkeypatch, tmp_path, glove_small):
    monkeypatch.setenv("EMBSTORE_DB", str(tmp_path / "env.db"))
    assert run("load", glove_small, "--limit", "2000").exit_code == 0
    assert (tmp_path / "env.db").exists()
    result = run("nearest", "king", "-k", "1")
    assert result.exit_code == 0 and "prince" in result.output


def test_replace_swaps_the_whole_vocabulary_and_removes_old_index(tmp_path, glove_small):
    db = tmp_path / "s.db"
    Store.load(glove_small, db, limit=1000)
    old_index = index_file(db)
    Store.load(glove_small, db, limit=300, replace=True)
    assert not old_index.exists()
    assert len([p for p in tmp_path.iterdir() if p.suffix == ".faiss"]) == 1
    with Store.open(db) as store:
        assert len(store) == 300
        assert store.info().indexes[0]["rows"] == 300
        # the word indexes, dropped for the bulk insert, are back, and lookups use them
        plan = store.catalog.conn.execute("EXPLAIN QUERY PLAN SELECT id FROM words WHERE word = ?", ("a",)).fetchall()
        assert "words_by_word" in str(plan)
        indexes = {r[0] for r in store.catalog.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"words_by_word", "words_by_folded"} <= indexes


def test_info_reports_source_and_sizes(small_store, glove_small):
    info = small_store.info()
    assert info.words == 20_000 and info.dimension == 50
    assert info.source == str(glove_small.resolve()) and info.source_format == "glove"
    assert info.indexes[0]["bytes_on_disk"] == 128 + 20_000 * 50 * 4 + 20_000 * 4  # header, rows, norms


def test_refresh_sees_a_catalog_put_in_place_of_the_one_it_probes(tmp_path, sample_lines):
    """refresh() keeps one probe connection for the generation; a catalog file replaced under
    the same path (another inode) must still be seen, not the old file through the old probe."""
    import os
    import shutil

    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (tmp_path / "one.txt").write_text("".join(sample_lines[:300]), encoding="utf-8")
    (tmp_path / "two.txt").write_text("".join(sample_lines[300:500]), encoding="utf-8")
    Store.load(tmp_path / "one.txt", first / "s.db")
    Store.load(tmp_path / "two.txt", second / "s.db")
    with Store.open(first / "s.db") as reader:
        assert not reader.refresh() and not reader.refresh()  # the probe is made and kept
        for file in second.iterdir():
            if file.name != "s.db":
                shutil.copy(file, first / file.name)
        os.replace(second / "s.db", first / "s.db")
        assert reader.refresh()
        assert len(reader) == 200 and reader.vocabulary()[0] == sample_lines[300].split(" ", 1)[0]


def test_a_catalog_overwritten_in_place_gives_errors_not_a_crash(tmp_path, sample_lines):
    """cp of a smaller store over an open one keeps the inode and shortens the file: SQLite must
    report it (no memory map of the catalog, which would raise SIGBUS), and refresh must not crash."""
    import subprocess
    import sys
    import textwrap

    (tmp_path / "big.txt").write_text("".join(sample_lines[:3000]), encoding="utf-8")
    (tmp_path / "small.txt").write_text("".join(sample_lines[:50]), encoding="utf-8")
    (tmp_path / "other").mkdir()
    Store.load(tmp_path / "big.txt", tmp_path / "s.db")
    Store.load(tmp_path / "small.txt", tmp_path / "other" / "s.db")
    script = textwrap.dedent(f"""
        import shutil
        from embstore import Store, EmbstoreError
        store = Store.open({str(tmp_path / "s.db")!r})
        words = store.vocabulary()[2000:2100]
        store.nearest(words[0], k=3)
        shutil.copyfile({str(tmp_path / "other" / "s.db")!r}, {str(tmp_path / "s.db")!r})
        outcomes = set()
        for word in words:
            try:
                store.nearest(word, k=3)
                outcomes.add("answered")
            except EmbstoreError as exc:
                outcomes.add(type(exc).__name__)
            try:
                store.refresh()
            except EmbstoreError as exc:
                outcomes.add(type(exc).__name__)
        print(sorted(outcomes))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])


def test_case_insensitive_lookups_search_the_partial_folded_index(store_copy):
    """words_by_folded holds only words that folding changes; the lookups still search it, not the table."""
    with Store.open(store_copy) as store:
        store.add_words(["Zürich", "STRASSE"], np.ones((2, 50), dtype=np.float32))
        assert store.nearest("zürich", k=1, case_insensitive=True).query == "zürich"
        assert store.resolve_many(["strasse", "ZÜRICH"], case_insensitive=True)[0].word == "STRASSE"
        assert store.resolve_many(["zÜrich"], case_insensitive=True)[0].word == "Zürich"
    conn = sqlite3.connect(store_copy)
    assert conn.execute("SELECT count(*) FROM words INDEXED BY words_by_folded WHERE folded IS NOT NULL"
                        ).fetchone()[0] == 2
    for query, parameters in [
        ("SELECT id FROM words WHERE word = :f OR folded = :f ORDER BY id LIMIT 1", {"f": "zürich"}),
        ("SELECT word FROM words WHERE (word >= :low AND word < :high) OR (folded >= :low AND folded < :high)",
         {"low": "zü", "high": "zü\U0010ffff"}),
        ("SELECT word FROM words WHERE word IN (SELECT value FROM json_each(:f)) OR folded IN "
         "(SELECT value FROM json_each(:f))", {"f": '["zürich"]'}),
    ]:
        plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query, parameters))
        assert "USING INDEX words_by_folded" in plan and "SCAN words" not in plan, plan
