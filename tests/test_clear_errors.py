"""Input that used to end in a traceback or a hang gets one clear 'Error:' line and exit code 1,
or is accepted where accepting is right."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from embstore import Store


def cli(*arguments, input: bytes | None = None, env: dict | None = None, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "embstore_cli", *map(str, arguments)], input=input,
                          capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})


def one_error(completed, *fragments: str) -> str:
    err = completed.stderr.decode("utf-8", "replace")
    assert completed.returncode == 1, (completed.returncode, err)
    assert "Traceback" not in err and err.count("Error:") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


@pytest.mark.parametrize("head, what", [
    (struct.pack("<ii", 793712314, 12) + bytes(64), "fastText model whose arguments are damaged"),
    (b"PK\x03\x04" + bytes(40), "zip archive"),
    (b"\x28\xb5\x2f\xfd" + bytes(40), "zstandard"),
    (b"\x80\x04\x95" + bytes(40), "pickle"),
])
def test_foreign_files_are_named(tmp_path, head, what):
    source = tmp_path / "input.bin"
    source.write_bytes(head)
    one_error(cli("load", source, "--db", tmp_path / "s.db"), what)
    assert not (tmp_path / "s.db").exists()


def test_a_byte_order_mark_is_skipped_with_a_note(tmp_path, sample_lines):
    source = tmp_path / "bom.txt"
    source.write_bytes(b"\xef\xbb\xbf" + "".join(sample_lines[:300]).encode())
    completed = cli("load", source, "--db", tmp_path / "s.db")
    assert completed.returncode == 0 and b"byte order mark" in completed.stderr
    with Store.open(tmp_path / "s.db") as store:
        assert "the" in store and store.vocabulary()[0] == "the"


def test_glove_format_forced_on_a_word2vec_file_says_line_one_is_a_header(tmp_path):
    source = tmp_path / "w2v.txt"
    source.write_text("2 3\nthe 0.1 0.2 0.3\nof 0.3 0.1 0.2\n")
    one_error(cli("load", source, "--format", "glove", "--db", tmp_path / "s.db"), "line 2", "word2vec header")


def test_bad_batch_and_vector_files(tmp_path, small_store_path):
    batch = tmp_path / "batch.txt"
    batch.write_bytes(b"king\nqu\xffeen\n")
    one_error(cli("nearest", "--batch", batch, "--db", small_store_path), "line 2", "UTF-8")
    for name, content in {"number.jsonl": json.dumps({"word": 5, "vector": [0.1] * 50}),
                          "list.jsonl": json.dumps({"word": ["a"], "vector": [0.1] * 50}),
                          "deep.jsonl": '{"word": ' + "[" * 100_000 + "]" * 100_000 + "}",
                          "surrogate.jsonl": '{"word": "a\\ud800b", "vector": [' + ", ".join(["0.1"] * 50) + "]}"
                          }.items():
        path = tmp_path / name
        path.write_text(content + "\n")
        one_error(cli("add", "--file", path, "--db", small_store_path))


def test_negative_values_are_values_not_options(store_copy):
    values = ["-0.25"] * 49 + ["0.5"]
    completed = cli("add", "zzneg", *values, "--db", store_copy)
    assert completed.returncode == 0, completed.stderr
    with Store.open(store_copy) as store:
        assert store.vector("zzneg")[0] == pytest.approx(-0.25)


def test_settings_and_paths_that_cannot_work(tmp_path, small_store_path):
    one_error(cli("nearest", "king", "--db", small_store_path, env={"EMBSTORE_BUSY_TIMEOUT": "abc"}),
              "EMBSTORE_BUSY_TIMEOUT")
    one_error(cli("nearest", "king", "--db", ""), "empty")
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    one_error(cli("nearest", "king", "--db", fifo, timeout=20), "not a regular file")
    one_error(cli("load", small_store_path, "--db", fifo, "--replace", timeout=20))
    completed = cli("nearest", "queen", "-k", "2147483648", "--db", small_store_path)
    assert completed.returncode == 2 and b"Traceback" not in completed.stderr


def test_table_cells_are_bounded_and_escaped(store_copy):
    with Store.open(store_copy) as store:
        store.add_words(["x" * 100_000], store.vector("queen")[None, :] * 1.01)
    completed = cli("nearest", "queen", "-k", "3", "--db", store_copy)
    assert completed.returncode == 0 and max(map(len, completed.stdout.splitlines())) < 200
    as_json = json.loads(cli("nearest", "queen", "-k", "3", "--json", "--db", store_copy).stdout)
    assert any(len(n["word"]) == 100_000 for n in as_json["neighbours"])  # JSON keeps the word whole


@pytest.fixture()
def small_disk(tmp_path):
    """A real 3 MB file system (tmpfs), where a write runs out of space."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_catalog_that_fills_the_disk_is_one_error_naming_the_store(small_disk):
    """Many one-dimensional words: the rows file is small and the catalog (written by the word
    process) is what fills the disk. The error names the store, not the temporary catalog,
    and does not send the user to check a file that is gone; a replacement (written in the
    loader's own process, in the live catalog) says the same and leaves the old store whole."""
    rows = 120_000
    source = small_disk.parent / "many.txt"
    source.write_text("".join(f"word{i} {i % 97 + 1}.5\n" for i in range(rows)), encoding="utf-8")
    err = one_error(cli("load", source, "--db", small_disk / "new.db"), "the disk is full", "new.db", "Free some space")
    assert ".tmp" not in err and "embstore check" not in err
    assert list(small_disk.iterdir()) == []
    small = small_disk.parent / "small.txt"
    small.write_text("".join(f"w{i} {i + 1}.0\n" for i in range(1000)), encoding="utf-8")
    db = small_disk / "s.db"
    assert cli("load", small, "--db", db).returncode == 0
    err = one_error(cli("load", source, "--db", db, "--replace"), "the disk is full", "s.db", "nothing was changed")
    from embstore import Store
    from embstore.storage.check import check_store

    assert check_store(db).ok
    with Store.open(db) as store:
        assert len(store.vocabulary()) == 1000


def test_a_disk_too_full_to_open_the_store_is_one_error_saying_so(small_disk, sample_lines):
    """Found by a hostile test: with no room for SQLite's -wal and -shm files, every command
    (queries too) said the store 'is not an embstore database'; and with a little room, a
    write said 'cannot use: No space left on device' (the writer's cleanup hid the error)."""
    source = small_disk.parent / "source.txt"
    source.write_text("".join(sample_lines[:2000]), encoding="utf-8")
    db = small_disk / "s.db"
    assert cli("load", source, "--db", db).returncode == 0
    word = sample_lines[0].split(" ")[0]
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(bytes(4096))
        except OSError:
            pass
    for command in (["nearest", word], ["info"], ["check"], ["add", "newword", *["1"] * 50]):
        one_error(cli(*command, "--db", db), "the disk is full", "s.db", "Free some space")
    filler.unlink()
    with open(filler, "wb", buffering=0) as handle:  # room to open the store, not to write its new rows
        handle.write(bytes(max(0, os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize - 300_000)))
    err = one_error(cli("add", "newword", *["1"] * 50, "--db", db))
    assert "No space left" in err or "disk is full" in err
    assert "cannot use" not in err
    filler.unlink()
    from embstore.storage.check import check_store

    assert check_store(db).ok


def test_a_full_disk_is_one_error_naming_the_file_and_leaves_the_store_whole(small_disk, sample_lines):
    source = small_disk.parent / "source.txt"
    source.write_text("".join(sample_lines[:5000]), encoding="utf-8")
    big = small_disk.parent / "big.txt"
    big.write_text("".join(sample_lines[:20000]), encoding="utf-8")
    db = small_disk / "s.db"
    assert cli("load", source, "--db", db).returncode == 0
    before = sorted(p.name for p in small_disk.iterdir())
    one_error(cli("load", big, "--db", small_disk / "other.db"), "No space left", "other.db")
    one_error(cli("index", "build", "--kind", "hnsw", "--db", db), "cannot write", "s.db.hnsw")
    assert sorted(p.name for p in small_disk.iterdir()) == before  # nothing half-written is left
    from embstore.storage.check import check_store

    assert check_store(db).ok


def test_a_mistyped_command_names_the_closest_one(run):
    result = run("neareset", "king")
    assert result.exit_code == 2 and "No such command 'neareset'. Did you mean 'nearest'?" in result.output
    result = run("skecth")
    assert "Did you mean 'sketch'?" in result.output
    assert "Did you mean" not in run("zzzz").output
    assert "Did you mean 'sketch'?" in run("SKETCH").output  # whatever the case
