"""Ctrl-C (SIGINT) during a long operation stops it within a second or two and leaves the
store exactly as it was."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import pytest

from embstore import Store
from embstore.storage.check import check_store


def as_at_a_terminal() -> None:
    """In the child: Ctrl-C's default action, as a terminal gives it. A test run started in the
    background of a non-interactive shell (as a CI script may be) has SIGINT ignored, and the
    child would inherit that: seen in a fresh clone, where the interrupted load ran to exit 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.endswith(("-wal", "-shm"))}


@pytest.mark.parametrize("arguments, seconds_in", [
    # A slower build than the default's (about 2 s here), so that Ctrl-C lands in it
    (["index", "build", "--kind", "hnsw", "--ef-construction", "128", "--link-ef", "128", "--no-bench"], 1.5),
    (["load", "{source}", "--replace"], 1.2),
])
def test_ctrl_c_stops_quickly_and_leaves_the_store_as_it_was(tmp_path, small_store_path, glove_small, arguments,
                                                             seconds_in):
    folder = tmp_path / "store"
    folder.mkdir()
    for file in small_store_path.parent.iterdir():
        if file.name.startswith(small_store_path.name):
            shutil.copy(file, folder / file.name)
    db = folder / small_store_path.name
    big = tmp_path / "big.txt"  # a replace that takes several seconds
    big.write_bytes(glove_small.read_bytes() * 8)
    before = snapshot(folder)
    with Store.open(db) as store:
        words = list(store)
    command = [a.replace("{source}", str(big)) for a in arguments]
    process = subprocess.Popen([sys.executable, "-m", "embstore_cli", *command, "--db", str(db)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_at_a_terminal)
    time.sleep(seconds_in)
    assert process.poll() is None, "the operation ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    started = time.perf_counter()
    _, err = process.communicate(timeout=30)
    stopped_in = time.perf_counter() - started
    assert stopped_in < 2.5, stopped_in
    assert process.returncode == 130 and b"Interrupted" in err and b"Traceback" not in err, err
    assert snapshot(folder) == before
    assert check_store(db).ok
    with Store.open(db) as store:
        assert list(store) == words


def test_a_chunk_of_nothing_but_duplicates_loads(tmp_path, glove_small, small_matrix):
    """4 MiB chunks after the first copy hold only words already seen: nothing to write for them."""
    repeated = tmp_path / "repeated.txt"
    repeated.write_bytes(glove_small.read_bytes() * 3)
    report = Store.load(repeated, tmp_path / "r.db")
    assert report.words == 20_000 and report.duplicates == 40_000
    with Store.open(tmp_path / "r.db") as store:
        assert list(store) == small_matrix[0]


class _InterruptAfterCommit:
    """The catalog's own connection, except that a real SIGINT reaches this process the moment a
    COMMIT returns: Python raises KeyboardInterrupt there, as it does for a Ctrl-C pressed while
    SQLite was committing."""

    def __init__(self, conn):
        self.__dict__["_conn"] = conn

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def __setattr__(self, name, value):
        setattr(self._conn, name, value)

    def execute(self, sql, *args):
        result = self._conn.execute(sql, *args)
        if sql == "COMMIT":
            signal.raise_signal(signal.SIGINT)
        return result


def _interrupt_every_commit(monkeypatch):
    """From now on, a real SIGINT arrives as each catalog COMMIT returns (see _InterruptAfterCommit)."""
    from embstore.storage import catalog as catalog_module

    signal.signal(signal.SIGINT, signal.default_int_handler)
    original = catalog_module.Catalog.write_transaction

    def interrupted(self):
        self.conn = _InterruptAfterCommit(self.conn)
        return original(self)

    monkeypatch.setattr(catalog_module.Catalog, "write_transaction", interrupted)


@pytest.mark.parametrize("change", ["replace", "add", "create"])
def test_ctrl_c_during_the_commit_keeps_what_was_committed(tmp_path, monkeypatch, sample_lines, change):
    """Ctrl-C landing while the COMMIT runs: the change is in the catalog by the time Python
    raises it, so its files must stay (a store whose catalog names a deleted file was the bug).
    A new store committed only to its temporary catalog leaves nothing behind."""
    import numpy as np

    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("".join(sample_lines[:300]), encoding="utf-8")
    second.write_text("".join(sample_lines[300:700]), encoding="utf-8")
    db = tmp_path / "s.db"
    if change != "create":
        Store.load(first, db)
    _interrupt_every_commit(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        if change == "add":
            with Store.open(db) as store:
                store.add_words(["zzznew"], np.ones((1, 50), dtype=np.float32))
        else:
            Store.load(second, db, replace=change == "replace")
    monkeypatch.undo()
    if change == "create":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["first.txt", "second.txt"]
        return
    report = check_store(db)
    assert report.ok, report.problems
    with Store.open(db) as store:
        expected = 400 if change == "replace" else 301
        assert len(store) == expected
        assert ("zzznew" in store) == (change == "add")
        store.nearest(store.vocabulary()[0], k=3)


def test_the_cli_says_when_an_interrupt_came_after_the_commit(run, tmp_path, monkeypatch, sample_lines):
    source = tmp_path / "words.txt"
    source.write_text("".join(sample_lines[:300]), encoding="utf-8")
    db = tmp_path / "s.db"
    Store.load(source, db)
    _interrupt_every_commit(monkeypatch)
    word = sample_lines[0].split(" ")[0]
    result = run("delete", word, "--db", db)
    assert result.exit_code == 130 and "after the change was committed" in result.output, result.output
    monkeypatch.undo()
    with Store.open(db) as store:
        assert word not in store and len(store) == 299
    assert check_store(db).ok
