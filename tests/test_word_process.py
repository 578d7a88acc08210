"""A new store's words go into its catalog through a second process (storage/word_inserter.py)
when its file is large (a smaller file's go in through the loader's own process, which is
quicker there: WordsHere). It never outlives its loader, never commits a part of a load,
prints no traceback when Ctrl-C reaches both, and its failure is one clear error that leaves
no store."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embstore import Store
from embstore.storage.check import check_store
from embstore.writes.loading import WORDS_PROCESS_BYTES
from test_interrupt import as_at_a_terminal

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "glove.6B.50d.50k.txt.gz"


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """A GloVe text file large enough for the word process: the sample's 50,000 lines, then the
    same again with each word given a suffix (100,000 lines, 43 MB; a word whose copy is already there is a duplicate)."""
    lines = gzip.open(SAMPLE, "rt", encoding="utf-8").readlines()
    path = tmp_path_factory.mktemp("big") / "big.txt"
    path.write_text("".join(lines) + "".join(line.replace(" ", "_2 ", 1) for line in lines), encoding="utf-8")
    assert path.stat().st_size >= WORDS_PROCESS_BYTES
    return path


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def start_load(db: Path, source: Path) -> tuple[subprocess.Popen, int]:
    """A load of ``source``, and the PID of its word process once it has one."""
    process = subprocess.Popen([sys.executable, "-m", "embstore_cli", "load", str(source), "--db", str(db)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=as_at_a_terminal)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = children(process.pid)
        if found:
            time.sleep(0.2)  # into the load: the words are streaming
            return process, found[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.005)
    raise AssertionError("the load started no word process")


def gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # exited; its parent (init, or the test) has yet to reap it
            return True
        time.sleep(0.01)
    return False


def test_a_load_killed_takes_its_word_process_with_it(tmp_path, big):
    db = tmp_path / "s.db"
    loader, words = start_load(db, big)
    loader.send_signal(signal.SIGKILL)
    loader.wait()
    assert gone(words), "the word process outlived its killed loader"
    assert not db.exists()


def test_ctrl_c_stops_both_without_a_traceback(tmp_path, big):
    db = tmp_path / "s.db"
    loader, words = start_load(db, big)
    os.killpg(loader.pid, signal.SIGINT)  # what the terminal does: the whole foreground group
    out, err = loader.communicate(timeout=60)
    assert loader.returncode == 130, err
    assert err.strip() == "Interrupted.", err  # no traceback from either process
    assert gone(words)
    assert not db.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # the temporary catalog and rows file are gone too


def test_a_word_process_that_dies_is_one_clear_error(tmp_path, big):
    db = tmp_path / "s.db"
    loader, words = start_load(db, big)
    os.kill(words, signal.SIGKILL)
    out, err = loader.communicate(timeout=60)
    assert loader.returncode == 1
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    assert err.startswith("Error: could not write the words into the new catalog") and "killed by signal 9" in err, err
    assert not db.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_the_store_it_writes_equals_one_written_in_process(tmp_path, big):
    """Word by word, ID by ID, norm by norm: the catalog the process fills is the one a
    replacement (which inserts the words in the loader's own process) fills, and its first
    50,000 words are those a new store of the sample (small: WordsHere) holds."""
    first = tmp_path / "first.db"
    Store.load(big, first)  # a new store of a large file: the word process
    second = tmp_path / "second.db"
    Store.load(big, second, limit=10)
    Store.load(big, second, replace=True)  # a replacement: in process, inside its transaction
    third = tmp_path / "third.db"
    Store.load(SAMPLE, third)  # a new store of a small file: in process, WordsHere
    import sqlite3

    rows = [sqlite3.connect(db).execute("SELECT id, word, folded, rank, norm, digest, count FROM words ORDER BY id")
            .fetchall() for db in (first, second, third)]
    assert len(rows[0]) > 99_000 and rows[0] == rows[1] and rows[2] == rows[0][:50_000]
    assert check_store(first).ok and check_store(second).ok and check_store(third).ok


def test_a_numpy_or_embstore_in_the_working_directory_is_not_imported(tmp_path, big):
    """The word process imports the loader's own packages, whatever folder the load runs in."""
    (tmp_path / "numpy.py").write_text("raise ImportError('a numpy.py in the working directory')\n")
    (tmp_path / "embstore").mkdir()
    (tmp_path / "embstore" / "__init__.py").write_text("raise SystemExit('another embstore')\n")
    console_script = Path(sys.executable).parent / "embstore"  # as a user runs it: no folder on sys.path
    done = subprocess.run([str(console_script), "load", str(big), "--db", str(tmp_path / "s.db"), "--limit", "1000"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert check_store(tmp_path / "s.db").ok


def test_a_word_process_gone_before_the_last_flush_is_one_clear_error(tmp_path):
    """Its last frames may still sit in the pipe's buffer when it ends: closing the pipe then
    fails too, and must give the same StoreError (not a BrokenPipeError, which the CLI would
    take for a closed stdout and end silently)."""
    import pytest

    from embstore import StoreError
    from embstore.storage.word_inserter import WordInserter

    words = WordInserter(tmp_path / "missing" / "x.db")  # no catalog there: the process fails at once
    words.process.wait(timeout=60)
    words.insert_words(range(0, 2), ["a", "b"], range(0, 2), [1.0, 2.0])
    with pytest.raises(StoreError, match="could not write the words into the new catalog: "):
        words.finish_bulk_insert()


def test_a_compressed_file_is_judged_by_what_it_holds(tmp_path, big):
    """The big file gzipped is 15 MB on disk but 43 MB of text: its words go through the process
    (gzip records the size it decompresses to); the gzipped sample (8 MB, 21 MB of text) does not."""
    packed = tmp_path / "big.txt.gz"
    with open(big, "rb") as source, gzip.open(packed, "wb", compresslevel=1) as out:
        out.write(source.read())
    assert packed.stat().st_size < WORDS_PROCESS_BYTES
    loader, words = start_load(tmp_path / "s.db", packed)
    loader.send_signal(signal.SIGKILL)
    loader.wait()
    assert gone(words)
    small = subprocess.Popen([sys.executable, "-m", "embstore_cli", "load", str(SAMPLE), "--db", str(tmp_path / "t.db")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = set()
    while small.poll() is None:
        seen.update(children(small.pid))
        time.sleep(0.005)
    assert small.returncode == 0 and not seen  # inserted in the loader's own process
