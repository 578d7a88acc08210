"""Memory-mapped exact rows: constant-time opening, files changed under an open store, old layouts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from embstore import CatalogMismatchError, Store
from embstore.storage.index_files import ROWS_OFFSET, open_exact_rows
from old_store import make_old_store



def exact_file(db: Path) -> Path:
    return next(db.parent.glob(db.name + ".exact.*.faiss"))


def test_a_file_truncated_under_an_open_store_is_a_clear_error_not_a_crash(store_copy):
    """A mapped page past a file's end raises SIGBUS, which would kill the process: every read
    of the rows first checks (fstat) that the held file has not shrunk."""
    script = textwrap.dedent(f"""
        import os, sys
        from embstore import Store, CatalogMismatchError
        store = Store.open({str(store_copy)!r})
        first = store.nearest("king", k=3).words()
        path = next(p for p in os.listdir({str(store_copy.parent)!r}) if ".exact." in p)
        os.truncate(os.path.join({str(store_copy.parent)!r}, path), 200_000)
        for query in (lambda: store.nearest("king", k=3), lambda: store.nearest_many(["a", "b", "c", "d", "e"]),
                      lambda: store.vector("queen"), lambda: store.similarity("king", "queen")):
            try:
                query()
            except CatalogMismatchError as exc:
                assert "shrank after it was opened" in str(exc), exc
            else:
                sys.exit("no error")
        print("ok", first)
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, (completed.returncode, completed.stdout, completed.stderr[-2000:])
    assert completed.stdout.startswith("ok ['prince', 'queen', 'ii']")
    with pytest.raises(CatalogMismatchError, match="bytes but the catalog recorded"):
        Store.open(store_copy)


def test_opening_maps_the_rows_and_a_query_makes_no_copy(store_copy):
    """Opening maps the rows and checks their file's ends, so opening time does not grow with
    the vocabulary; a single query divides by the stored norms instead of copying the rows."""
    with Store.open(store_copy) as store:
        rows = store.searcher.rows
        assert isinstance(rows, np.ndarray) and rows.base is not None  # a view of the mapping
        assert store.searcher._unit is None  # no unit copy for a single query either
        store.nearest("king", k=5)
        assert store.searcher._unit is None


def test_readers_share_the_mapped_rows(store_copy):
    """Stores opened on the same file hold views of a shared file mapping, not private copies
    (PSS across processes is measured by the benchmark)."""
    import mmap

    with Store.open(store_copy) as one, Store.open(store_copy) as two:
        for store in (one, two):
            rows = store.searcher.rows
            assert not rows.flags.owndata and rows.ctypes.data % 64 == 0
            assert isinstance(rows.base, mmap.mmap)


def test_a_layout_1_store_opens_read_into_memory_and_changes_write_layout_2(tmp_path):
    db = make_old_store(tmp_path / "old")
    before = exact_file(db).read_bytes()
    assert not before.startswith(b"embstore rows")
    with Store.open(db) as store:
        assert store.searcher.rows.flags.owndata  # read, not mapped
        answer = store.nearest("president", k=5).words()
        store.rename_word("year", "yr")  # no rows change: the file stays
        assert exact_file(db).read_bytes() == before
        store.add_words(["fresh"], np.ones(50, dtype=np.float32))
    assert exact_file(db).read_bytes().startswith(b"embstore rows")
    with Store.open(db) as store:
        assert not store.searcher.rows.flags.owndata
        assert store.nearest("president", k=5).words() == answer


def test_batch_answers_equal_single_answers_without_a_unit_copy(store_copy, small_matrix):
    words, matrix = small_matrix
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    asked = [words[i] for i in range(0, 20_000, 997)]
    with Store.open(store_copy) as store:
        batch = store.nearest_many(asked, k=10)
        assert store.searcher._unit is None  # blocks of rows are normalised one at a time
        for word, result in zip(asked, batch):
            i = words.index(word)
            scores = unit @ unit[i]
            scores[i] = -np.inf
            expected = np.argsort(-scores, kind="stable")[:10]
            assert result.words() == [words[j] for j in expected]
            assert np.allclose([s for _, s in result], scores[expected], atol=1e-6)
            assert result.words() == store.nearest(word, k=10).words()


def test_header_and_norms_of_a_written_file(store_copy):
    path = exact_file(store_copy)
    size = path.stat().st_size
    assert size == ROWS_OFFSET + 20_000 * 50 * 4 + 20_000 * 4
    exact = open_exact_rows(path, rows=20_000, size=size, checksum=None, dimension=50)
    assert exact.mapped and exact.rows.ctypes.data % 64 == 0
    assert np.array_equal(exact.norms, np.linalg.norm(exact.rows, axis=1).astype(np.float32))
    with pytest.raises(CatalogMismatchError, match="holds 20,000 rows of dimension 50"):
        open_exact_rows(path, rows=20_001, size=size, checksum=None, dimension=50)
    os.truncate(path, size - 4)
    with pytest.raises(CatalogMismatchError):
        open_exact_rows(path, rows=20_000, size=size - 4, checksum=None, dimension=50)


@pytest.mark.parametrize("case", ["as declared", "duplicates", "limit", "glove"])
def test_the_recorded_checksum_is_the_sha256_of_the_file_on_disk(tmp_path, case):
    """A load whose row count is the header's hashes the rows as they are written; any other
    count reads the file back. Either way the catalog must hold the file's real SHA-256."""
    import hashlib
    import sqlite3

    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(500)] + (["w7", "w9"] if case == "duplicates" else [])
    rows = rng.standard_normal((len(words), 7)).astype(np.float32)
    if case == "glove":
        source = tmp_path / "v.txt"
        source.write_text("".join(w + " " + " ".join(map(repr, r.tolist())) + "\n" for w, r in zip(words, rows)))
    else:
        source = tmp_path / "v.bin"
        source.write_bytes(f"{len(words)} 7\n".encode() + b"".join(w.encode() + b" " + r.tobytes() + b"\n"
                                                                   for w, r in zip(words, rows)))
    db = tmp_path / "s.db"
    report = Store.load(source, db, limit=123 if case == "limit" else None)
    assert report.words == (123 if case == "limit" else 500)
    path = exact_file(db)
    with sqlite3.connect(db) as conn:
        recorded = conn.execute("SELECT checksum FROM index_files WHERE kind = 'exact'").fetchone()[0]
    assert recorded == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    opened = open_exact_rows(path, rows=report.words, size=path.stat().st_size, checksum=recorded, dimension=7)
    kept = rows[:report.words] if case != "duplicates" else rows[:500]
    assert np.array_equal(np.asarray(opened.rows), kept)
