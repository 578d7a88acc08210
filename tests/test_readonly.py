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
import time
from pathlib import Path

import pytest

from embstore import Store
from old_store import make_old_store

SETPRIV = shutil.which("setpriv")
NOBODY = [SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if SETPRIV else []


def _nobody_can_run_python() -> bool:
    if os.geteuid() != 0 or SETPRIV is None:
        return False
    probe = subprocess.run([*NOBODY, sys.executable, "-c", "import embstore"], capture_output=True, cwd="/",
                           env={**os.environ, "HOME": "/nonexistent"})
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _nobody_can_run_python(),
                                reason="needs root, setpriv, and a Python the user nobody may run")


def as_nobody(*arguments: str) -> subprocess.CompletedProcess:
    command = [*NOBODY, sys.executable, "-m", "embstore_cli", *arguments]
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


READER = """
import json, sys, time
import numpy as np
from embstore import Store
db, seconds = sys.argv[1], float(sys.argv[2])
store = Store.open(db)
errors, checked, messages = 0, 0, []
deadline = time.time() + seconds
refreshed = 0.0
while time.time() < deadline:
    try:
        if time.time() - refreshed > 1.0:  # a reader keeps its generation for a while between refreshes
            store.refresh()
            refreshed = time.time()
        words = set(store)
        for kind in ("exact", "sq8"):
            result = store.nearest("king", k=5, index=kind)
            assert all(n.word in words for n in result.neighbours), result
            for n in result.neighbours:
                true = float(np.dot(store.unit_vector("king"), store.unit_vector(n.word)))
                assert abs(true - n.score) < (1e-5 if kind == "exact" or result.notes else 0.05), (n, true)
        assert abs(store.similarity("king", "queen") - 0.7839) < 1e-3
        checked += 1
    except Exception as exc:
        errors += 1
        messages.append(repr(exc)[:200])
print(json.dumps({"errors": errors, "checked": checked, "messages": messages[:3]}))
"""


def test_a_read_only_reader_stays_whole_while_the_owner_writes(shared_store, tmp_path):
    """No other process holds the store open, so the reader can share no WAL index: it reads a
    snapshot of the catalog, and moves to each new generation the owner commits."""
    script = shared_store.parent / "reader.py"
    script.write_text(READER)
    os.chmod(script, 0o644)
    reader = subprocess.Popen([*NOBODY, sys.executable, str(script), str(shared_store), "14"], cwd="/",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "HOME": "/nonexistent"})
    source = shared_store.parent / "source.txt"
    for round_ in range(6):
        with Store.open(shared_store) as owner:
            owner.add_words([f"extra{round_}"], owner.vector("of")[None, :] * 2)
            owner.delete_words(["and", "the"] if round_ % 3 == 0 else [f"extra{round_ - 1}"])
            owner.build_index("sq8")
        if round_ % 3 == 2:  # every page of the catalog rewritten
            Store.load(source, shared_store, replace=True)
            with Store.open(shared_store) as owner:
                owner.build_index("sq8")
        for file in shared_store.parent.iterdir():
            os.chmod(file, 0o644)
        time.sleep(0.7)
    out, err = reader.communicate(timeout=120)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["errors"] == 0 and report["checked"] > 5, (report, err[-2000:])


def test_a_read_only_store_from_before_exact_storage_answers_info_and_check():
    """A store written by embstore 0.1 that this user cannot write is read as it is (its
    catalog cannot take migration 0006): queries, info, vector and check all work."""
    folder = Path(tempfile.mkdtemp(prefix="embstore-ro-old-", dir="/tmp"))
    try:
        make_old_store(folder / "old")
        os.chmod(folder, 0o755)
        os.chmod(folder / "old", 0o755)
        for file in (folder / "old").iterdir():
            os.chmod(file, 0o644)
        db = str(folder / "old" / "old.db")
        before = _snapshot(folder / "old")
        nearest = as_nobody("nearest", "president", "-k", "3", "--json", "--db", db)
        assert nearest.returncode == 0, nearest.stderr
        assert [n["word"] for n in json.loads(nearest.stdout)["neighbours"]] == ["former", "general", "chief"]
        info = as_nobody("info", "--db", db)
        assert info.returncode == 0 and "before embstore 0.2" in info.stdout, info.stderr
        check = as_nobody("check", "--db", db)
        assert check.returncode == 0 and "row values: unit length" in check.stdout, check.stdout + check.stderr
        assert _snapshot(folder / "old") == before
    finally:
        shutil.rmtree(folder, ignore_errors=True)
