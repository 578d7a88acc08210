"""Every bad input ends in one clear error line (file, line, problem), a non-zero exit, and no store."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

GOOD = "alpha 0.1 0.2 0.3\nbeta 0.4 0.5 0.6\ngamma 0.7 0.8 0.9\n"

CASES = {
    "wrong_count": ("glove.txt", "alpha 0.1 0.2 0.3\nbeta 0.4 0.5\ngamma 0.7 0.8 0.9\n",
                    ["line 2", "expected 3 values", "found 2"]),
    "too_many_values": ("glove.txt", "alpha 0.1 0.2 0.3\nbeta 0.4 0.5 0.6 0.7\n", ["line 2", "found 4"]),
    "not_a_number": ("glove.txt", "alpha 0.1 0.2 0.3\nbeta 0.4 abc 0.6\n", ["line 2", "value 2", "'abc'", "not a number"]),
    "nan": ("glove.txt", "alpha 0.1 0.2 0.3\nbeta 0.4 nan 0.6\n", ["line 2", "value 2", "NaN"]),
    "inf": ("w2v.txt", "2 3\nalpha 0.1 0.2 0.3\nbeta 0.4 -inf 0.6\n", ["line 3", "value 2", "infinite"]),
    "header_more": ("w2v.txt", "5 3\nalpha 0.1 0.2 0.3\nbeta 0.4 0.5 0.6\n", ["line 1", "header declares 5", "holds 2"]),
    "header_fewer": ("w2v.txt", "1 3\nalpha 0.1 0.2 0.3\nbeta 0.4 0.5 0.6\n", ["header declares 1", "holds 2"]),
    "empty": ("empty.txt", "", ["empty"]),
    "blank": ("blank.txt", "\n\n  \n", ["blank"]),
    "header_only": ("w2v.txt", "3 3\n", ["no vectors"]),
    "zero_vector": ("glove.txt", "alpha 0.1 0.2 0.3\nbeta 0 0 0\n", ["line 2", "'beta'", "all zeros", "--zero-vectors skip"]),
    "word_only": ("glove.txt", "alpha 0.1 0.2 0.3\nbeta\n", ["line 2", "found none"]),
    "pickle": ("model.kv", b"\x80\x04\x95junk", ["pickle", "save_word2vec_format"]),
}


def write(path: Path, content) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def assert_one_clear_error(result, *fragments):
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def store_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".db" in p.name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_leaves_no_store(run, tmp_path, case):
    name, content, fragments = CASES[case]
    source = write(tmp_path / name, content)
    db = tmp_path / "store" / "s.db"
    result = run("load", source, "--db", db)
    assert_one_clear_error(result, str(source), *fragments)
    assert not db.exists()
    assert not db.parent.exists() or store_files(db.parent) == []


@pytest.mark.parametrize("case", ["wrong_count", "not_a_number", "zero_vector", "header_more"])
def test_bad_file_leaves_previous_store_untouched(run, tmp_path, case):
    good = write(tmp_path / "good.txt", GOOD)
    db = tmp_path / "s.db"
    assert run("load", good, "--db", db).exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if ".db" in p.name}
    name, content, fragments = CASES[case]
    result = run("load", write(tmp_path / name, content), "--db", db, "--replace")
    assert_one_clear_error(result, *fragments)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if ".db" in p.name and not p.name.endswith(("-wal", "-shm"))}
    assert {k: v for k, v in before.items() if not k.endswith(("-wal", "-shm"))} == after
    listed = run("nearest", "alpha", "--db", db, "--json")
    assert listed.exit_code == 0 and "beta" in listed.output


def binary_file(path: Path, count: int, entries: list[tuple[bytes, list[float]]], cut: int = 0) -> Path:
    data = f"{count} 3\n".encode() + b"".join(w + b" " + struct.pack("<3f", *v) + b"\n" for w, v in entries)
    path.write_bytes(data[: len(data) - cut] if cut else data)
    return path


def test_truncated_binary(run, tmp_path):
    source = binary_file(tmp_path / "w.bin", 2, [(b"alpha", [1, 2, 3]), (b"beta", [4, 5, 6])], cut=6)
    result = run("load", source, "--db", tmp_path / "s.db")
    assert_one_clear_error(result, str(source), "entry 2", "truncated")
    assert not (tmp_path / "s.db").exists()


def test_binary_with_fewer_entries_than_header(run, tmp_path):
    source = binary_file(tmp_path / "w.bin", 3, [(b"alpha", [1, 2, 3]), (b"beta", [4, 5, 6])])
    assert_one_clear_error(run("load", source, "--db", tmp_path / "s.db"), "header declares 3", "holds 2")


def test_truncated_gzip(run, tmp_path, glove_small):
    data = gzip.compress(glove_small.read_bytes()[:300_000])
    source = tmp_path / "cut.txt.gz"
    source.write_bytes(data[: len(data) // 2])
    assert_one_clear_error(run("load", source, "--db", tmp_path / "s.db"), str(source), "truncated")
    assert not (tmp_path / "s.db").exists()


def test_directory_and_missing_path(run, tmp_path):
    assert_one_clear_error(run("load", tmp_path, "--db", tmp_path / "s.db"), "is a directory")
    assert_one_clear_error(run("load", tmp_path / "nope.txt", "--db", tmp_path / "s.db"), "nope.txt", "no such file")
    # '-' means standard input to export and --batch; load says it reads files only (was "-: no such file")
    assert_one_clear_error(run("load", "-", "--db", tmp_path / "s.db", input="a 0.1 0.2\n"),
                           "a load reads a file, not standard input: save it to a file and load that")


def test_store_path_that_is_not_a_store(run, tmp_path):
    import sqlite3

    text = write(tmp_path / "notes.db", "just some text, long enough to look like a file\n")
    assert_one_clear_error(run("nearest", "king", "--db", text), "not an embstore database")
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t(x)").connection.commit()
    assert_one_clear_error(run("info", "--db", foreign), "not an embstore store")
    good = write(tmp_path / "good.txt", GOOD)
    # Loading over a foreign database is refused too, and leaves it alone.
    assert_one_clear_error(run("load", good, "--db", foreign, "--replace"), "not an embstore store")
    assert sqlite3.connect(foreign).execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    assert_one_clear_error(run("info", "--db", tmp_path / "missing.db"), "no store at", "embstore load")


def test_existing_store_needs_replace(run, tmp_path):
    good = write(tmp_path / "good.txt", GOOD)
    db = tmp_path / "s.db"
    assert run("load", good, "--db", db).exit_code == 0
    assert_one_clear_error(run("load", good, "--db", db), "already exists", "--replace")
    assert run("load", good, "--db", db, "--replace").exit_code == 0


def test_zero_vectors_skip_and_duplicates_keep_first(run, tmp_path):
    source = write(tmp_path / "z.txt", "alpha 0.1 0.2 0.3\nbeta 0 0 0\nalpha 9 9 9\ngamma 0.7 0.8 0.9\n")
    db = tmp_path / "s.db"
    result = run("load", source, "--db", db, "--zero-vectors", "skip")
    assert result.exit_code == 0, result.output
    assert "1 duplicate word kept its first vector" in result.output
    assert "1 zero vector skipped" in result.output
    from embstore import Store

    with Store.open(db) as store:
        assert list(store) == ["alpha", "gamma"]
        assert store.vector("alpha").tolist() == pytest.approx([0.1, 0.2, 0.3], rel=1e-6)


def test_unknown_word_exit_code_and_suggestion(run, small_store_path):
    result = run("nearest", "kingg", "--db", small_store_path)
    assert_one_clear_error(result, "unknown word 'kingg'", "did you mean", "'king'")


def test_a_word_repeated_many_times_is_named_once_among_the_duplicates(tmp_path, run):
    lines = ["w0 1 0", "w5 0 1", "w5 1 1", "w5 2 1", "w5 1 2", "w5 3 1", "w5 1 3", "w7 2 2", "w7 3 3"]
    (tmp_path / "dup.txt").write_text("\n".join(lines) + "\n")
    result = run("load", str(tmp_path / "dup.txt"), "--db", str(tmp_path / "s.db"))
    assert "6 duplicate words kept their first vector (e.g. 'w5', 'w7')" in result.output


def test_duplicates_and_bad_words_far_apart_in_a_file_of_many_chunks(tmp_path):
    """The loader checks a chunk's words in a few C calls and goes word by word only for a
    chunk that fails: a duplicate of a word many chunks back must still be found."""
    from embstore import Store

    rng = np.random.default_rng(5)
    count, dimension = 12_000, 300  # 1.2 kB an entry: several of the reader's 4 MiB chunks
    words = [f"w{i}" for i in range(count)]
    words[9_000] = "w0"  # a duplicate, in a later chunk than its first
    words[2_000] = "bad\u00a0word"  # a no-break space: left out with bad_words="skip"
    rows = rng.standard_normal((count, dimension)).astype(np.float32)
    path = tmp_path / "many.bin"
    path.write_bytes(f"{count} {dimension}\n".encode() + b"".join(
        w.encode() + b" " + r.tobytes() + b"\n" for w, r in zip(words, rows)))
    report = Store.load(path, tmp_path / "s.db", bad_words="skip")
    assert (report.words, report.duplicates, report.first_duplicates) == (count - 2, 1, ["w0"])
    store = Store.open(tmp_path / "s.db")
    kept = [i for i in range(count) if i not in (2_000, 9_000)]
    assert store.vocabulary() == [words[i] for i in kept]
    assert np.array_equal(store.vector("w0"), rows[0]) and np.array_equal(store.vector("w8999"), rows[8_999])
    assert store.vocabulary()[8_999] == "w9001"  # IDs stay dense
