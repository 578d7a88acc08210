"""A store that this process cannot write (a folder and files owned by another user, as on a
lab's shared disk) answers every query and `check`, and a write gets one clear line.

The tests run as root, so the reader drops to the user `nobody` with setpriv: a real
permission boundary, not a mock."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from embstore import Store

SETPRIV = shutil.which("setpriv")
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None,
                                reason="needs root and setpriv to read as another user")


def as_nobody(*arguments: str) -> subprocess.CompletedProcess:
    command = [SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m", "embstore_cli",
               *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/",
                          env={**os.environ, "HOME": "/nonexistent"})


@pytest.fixture()
def shared_store(sample_lines):
    folder = Path(tempfile.mkdtemp(prefix="embstore-ro-", dir="/tmp"))
    try:
        source = folder / "source.txt"
        source.write_text("".join(sample_lines[:4000]), encoding="utf-8")
        db = folder / "s.db"
        Store.load(source, db)
        with Store.open(db) as store:
            store.build_index("sq8")
            store.build_index("hnsw", m=8, ef_construction=32)
        os.chmod(folder, 0o755)  # root's folder and files: others may read, not write
        for file in folder.iterdir():
            os.chmod(file, 0o644)
        yield db
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_another_users_store_answers_every_query_and_check(shared_store):
    before = _snapshot(shared_store.parent)
    with Store.open(shared_store) as store:
        expected = {kind: [[n.word, round(n.score, 4)] for n in store.nearest("king", k=5, index=kind).neighbours]
                    for kind in ("exact", "sq8", "hnsw")}
        similarity = store.similarity("king", "queen")
    for kind, answer in expected.items():
        completed = as_nobody("nearest", "king", "-k", "5", "--index", kind, "--json", "--db", str(shared_store))
        assert completed.returncode == 0, completed.stderr
        got = json.loads(completed.stdout)
        assert [[n["word"], round(n["score"], 4)] for n in got["neighbours"]] == answer
    completed = as_nobody("similarity", "king", "queen", "--db", str(shared_store))
    assert completed.returncode == 0 and abs(float(completed.stdout) - similarity) < 1e-4, completed.stderr
    completed = as_nobody("check", "--db", str(shared_store))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert _snapshot(shared_store.parent) == before  # reading wrote nothing


def test_a_write_to_a_read_only_store_says_so_in_one_line(shared_store):
    before = _snapshot(shared_store.parent)
    for arguments in (["delete", "king"], ["rename", "king", "kingg"], ["index", "drop", "sq8"],
                      ["index", "build", "--kind", "ivf", "--nlist", "8"], ["repair"]):
        completed = as_nobody(*arguments, "--db", str(shared_store))
        assert completed.returncode == 1, (arguments, completed.stdout, completed.stderr)
        assert "read-only" in completed.stderr and "Traceback" not in completed.stderr, completed.stderr
        assert completed.stderr.count("Error:") == 1
    assert _snapshot(shared_store.parent) == before


def test_read_only_reader_beside_a_writer_that_holds_the_store_open(shared_store):
    """With -wal and -shm present and owned by root (a root process has the store open), the
    read-only reader shares the WAL index and still answers."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom embstore import Store\n"
        f"store = Store.open({str(shared_store)!r})\nstore.nearest('king')\nprint('open', flush=True)\n"
        "sys.stdin.read()\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        completed = as_nobody("nearest", "queen", "-k", "3", "--db", str(shared_store))
        assert completed.returncode == 0, completed.stderr
        assert "lady" in completed.stdout and "elizabeth" in completed.stdout
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
