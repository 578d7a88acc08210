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


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.endswith(("-wal", "-shm"))}


@pytest.mark.parametrize("arguments, seconds_in", [
    (["index", "build", "--kind", "hnsw", "--no-bench"], 1.5),
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
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
