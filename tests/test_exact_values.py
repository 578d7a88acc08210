"""Vectors come back exactly as loaded; exports round-trip byte for byte; stores from before
exact storage keep opening; word counts; the strict API's errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors as GensimKeyedVectors
from hypothesis import given, settings
from hypothesis import strategies as st

from embstore import FormatError, QueryError, Store, StoreClosedError, UnknownWordError
from embstore.formats.float_text import format_rows, shortest_digits
from embstore.storage.check import check_store
from old_store import make_old_store



def write_w2v_binary(path: Path, words: list[str], rows: np.ndarray) -> None:
    with open(path, "wb") as out:
        out.write(f"{len(words)} {rows.shape[1]}\n".encode())
        for word, row in zip(words, rows.astype("<f4")):
            out.write(word.encode() + b" " + row.tobytes() + b"\n")


def test_binary_values_come_back_bit_for_bit(tmp_path):
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((300, 20)).astype(np.float32) * rng.uniform(0.01, 100, (300, 1)).astype(np.float32)
    rows[0] = [7, 8, 9] + [0] * 17  # the row from the issue: unit storage gave back 6.9999995
    words = [f"w{i}" for i in range(300)]
    write_w2v_binary(tmp_path / "v.bin", words, rows)
    Store.load(tmp_path / "v.bin", tmp_path / "s.db")
    with Store.open(tmp_path / "s.db") as store:
        for i in (0, 1, 150, 299):
            assert store.vector(words[i]).tobytes() == rows[i].tobytes()
        chunks = list(store.iter_vectors())
        assert np.concatenate([c[1] for c in chunks]).tobytes() == rows.tobytes()
        # Cosine still divides by the norm: a scaled row has the same neighbours and scores.
        unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        expected = np.argsort(-(unit @ unit[0]), kind="stable")[1:6]
        result = store.nearest("w0", k=5)
        assert [w for w, _ in result] == [words[i] for i in expected]
        assert np.allclose([s for _, s in result], (unit @ unit[0])[expected], atol=1e-6)


def test_text_values_are_the_float32_parse_of_the_file(small_store, small_matrix):
    words, matrix = small_matrix
    for i in (0, 1, 77, 19_999):
        assert small_store.vector(words[i]).tobytes() == matrix[i].tobytes()


@pytest.mark.parametrize("format_name", ["word2vec", "word2vec-bin", "glove"])
def test_export_load_export_is_byte_identical(tmp_path, small_store, format_name):
    first = tmp_path / "first.out"
    small_store.export(first, format_name)
    Store.load(first, tmp_path / "again.db", format="glove" if format_name == "glove" else None)
    with Store.open(tmp_path / "again.db") as again:
        second = tmp_path / "second.out"
        again.export(second, format_name)
        assert second.read_bytes() == first.read_bytes()
        for word in ("the", "king", "queen"):
            assert again.vector(word).tobytes() == small_store.vector(word).tobytes()


def test_text_export_is_what_gensim_writes_and_reads(tmp_path, small_store):
    """gensim's own save writes str(np.float32); ours writes the same digits, and gensim reads
    our export back to the identical float32 values."""
    words = small_store.vocabulary()[:500]
    out = tmp_path / "ours.txt"
    small_store.export(out, "word2vec", words)
    theirs = GensimKeyedVectors.load_word2vec_format(str(out), binary=False)
    ours = np.stack([small_store.vector(w) for w in words])
    assert np.array_equal(theirs.vectors.view(np.uint32), ours.view(np.uint32))
    gensim_out = tmp_path / "gensim.txt"
    theirs.save_word2vec_format(str(gensim_out), binary=False)
    for mine, gensim_line in zip(out.read_text().splitlines()[1:], gensim_out.read_text().splitlines()[1:]):
        mine_values, gensim_values = mine.split(" ")[1:], gensim_line.split(" ")[1:]
        assert [np.float32(v) for v in mine_values] == [np.float32(v) for v in gensim_values]
        assert [significant(v) for v in mine_values] == [significant(v) for v in gensim_values]


def significant(text: str) -> int:
    """Significant digits of a decimal text: '0.0418' -> 3, '1.0' -> 1, '-3e+20' -> 1."""
    mantissa = text.lower().split("e")[0].lstrip("-").replace(".", "").lstrip("0").rstrip("0")
    return max(1, len(mantissa))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=64))
def test_shortest_text_reads_back_exactly_and_is_as_short_as_numpy(bits):
    values = np.array(bits, dtype=np.uint32).view(np.float32)
    values = values[np.isfinite(values)]
    if not len(values):
        return
    line = format_rows(["w"], values[None, :])[0]
    back = np.array(line.split(" ")[1:], dtype=np.float64).astype(np.float32)
    assert back.view(np.uint32).tolist() == values.view(np.uint32).tolist()
    digits = shortest_digits(values)
    assert digits.tolist() == [significant(str(value)) for value in values]


def test_a_store_from_before_exact_storage_still_opens_and_answers(tmp_path):
    """A store written by embstore 0.1 (unit rows) opens, upgrades its catalog, answers as a
    new load of the same file does, and says its vectors are within an ulp."""
    old = tmp_path / "old"
    make_old_store(old)
    Store.load(old / "source.txt", tmp_path / "new.db", format="glove")
    with Store.open(old / "old.db") as before, Store.open(tmp_path / "new.db") as now:
        assert "before embstore 0.2" in before.info().vectors
        assert now.info().vectors.startswith("exact")
        for word in ("the", "president", "city"):
            assert before.nearest(word, k=5).words() == now.nearest(word, k=5).words()
            assert np.allclose(before.vector(word), now.vector(word), rtol=3e-7, atol=0)
        before.add_words(["newword"], np.arange(1, 51, dtype=np.float32))
        assert np.allclose(before.vector("newword"), np.arange(1, 51), rtol=3e-7)
        assert before.nearest("newword", k=1).neighbours[0].word == now.nearest_to_vector(np.arange(1, 51), k=1)[0].word
    conn = sqlite3.connect(old / "old.db")
    assert dict(conn.execute("SELECT key, value FROM meta"))["row_values"] == "unit length"


def test_counts_are_stored_and_shown(tmp_path, run):
    source = tmp_path / "v.txt"
    words = ["alpha", "beta", "gamma", "delta"]
    source.write_text("".join(f"{w} {i + 1} {i + 2}\n" for i, w in enumerate(words)))
    counts = tmp_path / "vocab.txt"
    counts.write_text("alpha 40\nbeta 30\ngamma 20\nunknownword 5\n")
    Store.load(source, tmp_path / "s.db", format="glove", counts=counts)
    conn = sqlite3.connect(tmp_path / "s.db")
    assert dict(conn.execute("SELECT word, count FROM words")) == {"alpha": 40, "beta": 30, "gamma": 20, "delta": None}
    result = run("info", "--db", tmp_path / "s.db")
    assert "3 words, from" in result.output
    result = run("load", source, "--db", tmp_path / "t.db", "--counts", counts, "--format", "glove")
    assert "1 of 4 words have no count" in result.output
    bad = tmp_path / "bad.txt"
    bad.write_text("alpha 4\nbeta four\n")
    with pytest.raises(FormatError, match="bad.txt, line 2: expected 'word count'"):
        Store.load(source, tmp_path / "u.db", format="glove", counts=bad)
    assert not (tmp_path / "u.db").exists()


def test_api_errors_are_the_projects_own(small_store_path, tmp_path):
    store = Store.open(small_store_path)
    for bad_k in (None, -1, 2.5, "3"):
        with pytest.raises(QueryError, match="k \\(the number of answers\\) must be a whole number"):
            store.nearest("king", k=bad_k)
    assert store.nearest("king", k=0).neighbours == []
    with pytest.raises(QueryError, match="restrict must be a whole number"):
        store.nearest("king", restrict=0)
    with pytest.raises(TypeError, match="use nearest_many"):
        store.nearest(["king", "queen"])
    with pytest.raises(TypeError, match="not a string"):
        store.most_similar("king")
    with pytest.raises(UnknownWordError) as caught:
        store.nearest("War")
    assert isinstance(caught.value, KeyError) and "war" in caught.value.suggestions
    store.close()
    for use in (lambda: store.nearest("king"), lambda: len(store), lambda: "king" in store, store.info,
                lambda: store.vector("king"), lambda: store.add_words(["x"], np.ones(50))):
        with pytest.raises(StoreClosedError, match="is closed; open it again"):
            use()


def test_add_words_takes_a_1d_vector_for_one_word_and_says_what_shape_it_needs(store_copy):
    with Store.open(store_copy) as store:
        store.add_words(["brandnew"], np.arange(50, dtype=np.float32) + 1)
        assert store.vector("brandnew").tolist() == list(range(1, 51))
        with pytest.raises(QueryError, match=r"a 2-D array of shape \(2, 50\); got shape \(50,\)"):
            store.add_words(["one", "two"], np.ones(50))
        with pytest.raises(QueryError, match="vectors must be numbers"):
            store.add_words(["one"], ["a"] * 50)


@pytest.mark.parametrize("damage", ["DELETE FROM meta WHERE key = 'row_values'",
                                    "UPDATE meta SET value = 'unit length' WHERE key = 'row_values'"])
def test_check_finds_and_repair_mends_a_wrong_row_values_record(store_copy, damage):
    """Saying unit rows for rows as loaded would rank by raw products: check must see it."""
    from embstore.repair import repair_store
    from embstore.storage.check import check_store

    with Store.open(store_copy) as store:
        before = store.nearest("king", k=10).words()
    conn = sqlite3.connect(store_copy)
    conn.execute(damage)
    conn.commit()
    conn.close()
    report = check_store(store_copy)
    assert not report.ok and any("meta.row_values" in p for p in report.problems), report.problems
    repaired = repair_store(store_copy)
    assert any("recorded what the exact rows are" in a for a in repaired.actions), repaired.actions
    assert check_store(store_copy).ok
    with Store.open(store_copy) as store:
        assert store.nearest("king", k=10).words() == before


def test_tiny_and_huge_vectors_rank_and_a_length_past_float32_is_refused(tmp_path, store_copy):
    """Squares of values below ~1e-19 underflow float32 and above ~1e19 overflow it: such a
    row's length is computed in float64 (gensim would divide by 0 or inf), so it ranks like
    the same direction at any scale. A length float32 cannot hold at all is refused (or
    skipped with zero_vectors='skip')."""
    with Store.open(store_copy) as store:
        king = store.vector("king").astype(np.float64)
        for scale in (1e-25, 1e25):
            store.add_words([f"king{scale:g}"], (king * scale).astype(np.float32))
            result = store.nearest(f"king{scale:g}", k=3)
            assert result.words()[0] == "king" and result[0].score == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(QueryError, match="float32 cannot hold"):
            store.add_words(["odd"], np.full(50, 1e38, np.float32))
    source = tmp_path / "v.txt"
    source.write_text("good 1 2\ntiny 1e-30 2e-30\nhuge 3e38 3e38\nfine 2 1\n")
    with pytest.raises(FormatError, match="line 3: the vector of 'huge' has a length float32 cannot hold"):
        Store.load(source, tmp_path / "s.db", format="glove")
    report = Store.load(source, tmp_path / "s.db", format="glove", zero_vectors="skip")
    assert report.words == 3 and report.zero_vectors_skipped == 1
    with Store.open(tmp_path / "s.db") as store:
        assert store.nearest("tiny", k=1)[0] == ("good", pytest.approx(1.0, abs=1e-6))


def test_a_missing_row_values_record_stops_opening_until_repaired(store_copy):
    from embstore import CatalogMismatchError
    from embstore.repair import repair_store

    conn = sqlite3.connect(store_copy)
    conn.execute("UPDATE meta SET value = 'garbage' WHERE key = 'row_values'")
    conn.commit()
    conn.close()
    with pytest.raises(CatalogMismatchError, match="meta.row_values is 'garbage'.*embstore repair"):
        Store.open(store_copy)
    repair_store(store_copy)
    with Store.open(store_copy) as store:
        assert store.nearest("king", k=1).words() == ["prince"]


def test_repair_tells_unit_length_vectors_as_loaded_from_an_old_stores_unit_rows(tmp_path):
    """Vectors that were unit length in the file are 'as loaded' (their recorded norms are 1);
    an old store's unit rows are not (its recorded norms are the original lengths)."""
    from embstore.repair import repair_store

    rng = np.random.default_rng(3)
    rows = rng.standard_normal((50, 8)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    write_w2v_binary(tmp_path / "u.bin", [f"u{i}" for i in range(50)], rows)
    Store.load(tmp_path / "u.bin", tmp_path / "u.db")
    old = tmp_path / "old"
    make_old_store(old)
    for db in (tmp_path / "u.db", old / "old.db"):
        Store.open(db).close()  # an old store is upgraded (migration 0006) when opened
        conn = sqlite3.connect(db)
        stated = dict(conn.execute("SELECT key, value FROM meta"))["row_values"]
        conn.execute("DELETE FROM meta WHERE key = 'row_values'")
        conn.commit()
        conn.close()
        repair_store(db)
        conn = sqlite3.connect(db)
        assert dict(conn.execute("SELECT key, value FROM meta"))["row_values"] == stated
        conn.close()
    with Store.open(tmp_path / "u.db") as store:
        assert store.vector("u7").tobytes() == rows[7].tobytes()


def test_compressed_exports_are_byte_identical_run_to_run(tmp_path, small_store):
    small_store.export(tmp_path / "a.txt.gz", "word2vec", small_store.vocabulary()[:300])
    small_store.export(tmp_path / "b.txt.gz", "word2vec", small_store.vocabulary()[:300])
    assert (tmp_path / "a.txt.gz").read_bytes() == (tmp_path / "b.txt.gz").read_bytes()
    assert b".tmp" not in (tmp_path / "a.txt.gz").read_bytes()[:64]  # no temporary name in the gzip header


def test_counts_files_take_any_white_space_and_refuse_absurd_counts(tmp_path):
    source = tmp_path / "v.txt"
    source.write_text("alpha 1 2\nbeta 2 1\n")
    counts = tmp_path / "c.txt"
    counts.write_bytes(b"\xef\xbb\xbfalpha\t7\nbeta  5\n")
    Store.load(source, tmp_path / "s.db", format="glove", counts=counts)
    conn = sqlite3.connect(tmp_path / "s.db")
    assert dict(conn.execute("SELECT word, count FROM words")) == {"alpha": 7, "beta": 5}
    counts.write_text("alpha 99999999999999999999999\n")
    with pytest.raises(FormatError, match="line 1: expected 'word count'"):
        Store.load(source, tmp_path / "t.db", format="glove", counts=counts)


@pytest.mark.parametrize("dimension", [3, 300, 8193])
def test_catalog_norms_are_float64_lengths_of_the_rows_as_loaded(tmp_path, dimension):
    """The loader sums squares in float64 without a float64 copy of the block (einsum's cast); wider
    than its 8,192-value buffer it casts first. Either way each norm is, bit for bit, the float64
    sum of squares of the float32 values: here against math.fsum's exactly rounded sum, within
    the rounding a float64 sum of this many terms can make (float32 would be off by ~1e-7)."""
    import math

    from embstore.row_norms import float64_norms

    rng = np.random.default_rng(dimension)
    rows = (rng.standard_normal((40, dimension)) * rng.choice([1e-18, 1e-3, 1, 1e3, 1e17], (40, 1))).astype(np.float32)
    words = [f"w{i}" if i % 3 else f"W{i}" for i in range(len(rows))]
    source = tmp_path / "rows.bin"
    source.write_bytes(f"{len(rows)} {dimension}\n".encode()
                       + b"".join(w.encode() + b" " + r.tobytes() + b"\n" for w, r in zip(words, rows)))
    if dimension <= 8192:
        wide = rows.astype(np.float64)  # the loader's way before it cast through einsum: the same bits
        assert np.array_equal(float64_norms(rows), np.sqrt(np.einsum("ij,ij->i", wide, wide)))
    whole = float64_norms(rows)  # a row's norm does not depend on the block it is in
    assert all(np.array_equal(float64_norms(rows[i:i + 1]), whole[i:i + 1]) for i in (0, 17, 39))
    assert np.array_equal(float64_norms(rows[5:23]), whole[5:23])
    Store.load(source, tmp_path / "s.db")
    conn = sqlite3.connect(tmp_path / "s.db")
    stored = conn.execute("SELECT word, norm, folded FROM words ORDER BY id").fetchall()
    assert [w for w, _, _ in stored] == words
    for (word, norm, folded), row in zip(stored, rows):
        exact = math.sqrt(math.fsum(float(v) * float(v) for v in row))
        assert norm == pytest.approx(exact, rel=1e-13, abs=0)
        assert folded == (word.casefold() if word != word.casefold() else None)
    store = Store.open(tmp_path / "s.db")
    assert store.nearest("w1", k=3).neighbours[0].score <= 1.0 + 1e-6
    store.close()


@pytest.mark.parametrize("dimension", [3, 300, 8193])
def test_a_word_added_records_the_norm_a_load_records(tmp_path, dimension):
    """``add`` (and its replacements) record each vector's float64 norm with the loader's
    function, so a word's catalog norm, and the digest made from it, are the same bits whether
    it was loaded or added. (They came from np.linalg.norm, whose pairwise sum can differ from
    the loader's in the last bit.)"""
    rng = np.random.default_rng(dimension + 1)
    rows = (rng.standard_normal((30, dimension)) * rng.choice([1e-3, 1, 1e3], (30, 1))).astype(np.float32)
    words = [f"w{i}" for i in range(len(rows))]
    source = tmp_path / "rows.bin"
    source.write_bytes(f"{len(rows)} {dimension}\n".encode()
                       + b"".join(w.encode() + b" " + r.tobytes() + b"\n" for w, r in zip(words, rows)))
    Store.load(source, tmp_path / "loaded.db")
    first = tmp_path / "first.bin"
    first.write_bytes(f"1 {dimension}\n".encode() + b"w0 " + (rows[0] * 3).tobytes() + b"\n")
    Store.load(first, tmp_path / "added.db")
    with Store.open(tmp_path / "added.db") as store:
        store.add_words(words, rows, on_duplicate="replace")  # w0 replaced, the others added
    loaded = sqlite3.connect(tmp_path / "loaded.db").execute("SELECT word, norm FROM words ORDER BY id").fetchall()
    added = sqlite3.connect(tmp_path / "added.db").execute("SELECT word, norm FROM words ORDER BY id").fetchall()
    assert added == loaded
    assert check_store(tmp_path / "added.db").ok


def test_a_fortran_ordered_array_added_records_the_norms_a_load_records(tmp_path):
    """einsum sums a Fortran-ordered block in another order: ``add`` makes its rows C-ordered first
    (the hostile tester found 151 of 199 norms a bit off)."""
    rows = np.random.default_rng(5).standard_normal((200, 300)).astype(np.float32)
    source = tmp_path / "rows.bin"
    source.write_bytes(b"200 300\n" + b"".join(f"w{i} ".encode() + r.tobytes() + b"\n" for i, r in enumerate(rows)))
    Store.load(source, tmp_path / "loaded.db")
    first = tmp_path / "first.bin"
    first.write_bytes(b"1 300\nw0 " + rows[0].tobytes() + b"\n")
    Store.load(first, tmp_path / "added.db")
    with Store.open(tmp_path / "added.db") as store:
        store.add_words([f"w{i}" for i in range(1, 200)], np.asfortranarray(rows[1:]))
    loaded = sqlite3.connect(tmp_path / "loaded.db").execute("SELECT word, norm FROM words ORDER BY id").fetchall()
    added = sqlite3.connect(tmp_path / "added.db").execute("SELECT word, norm FROM words ORDER BY id").fetchall()
    assert added == loaded


def test_a_query_vector_longer_than_float32_can_hold_is_searched_by_its_direction(small_store):
    """Its norm (over 3.4e38) is no float32: dividing float32 values by it gave every value 0 and
    every score 0. It is made unit length in float64."""
    king = small_store.vector("king")
    direction = king / np.abs(king).max()
    huge = (direction * np.float32(3e38)).astype(np.float32)
    assert np.isfinite(huge).all() and np.linalg.norm(huge.astype(np.float64)) > 3.5e38
    got = small_store.nearest_to_vector(huge, k=5)
    expected = small_store.nearest_to_vector(direction, k=5)
    assert [n.word for n in got.neighbours] == [n.word for n in expected.neighbours]
    np.testing.assert_allclose([n.score for n in got.neighbours], [n.score for n in expected.neighbours], rtol=1e-6)
