"""SIGKILL during load and load --append: the store is always the old state or the new one, never a mixture."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from embstore import Store
from embstore.storage.check import check_store

KILLS_PER_KIND = 30  # 60 kills in all


def start(arguments):
    return subprocess.Popen([sys.executable, "-m", "embstore_cli", *map(str, arguments)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def full_run_seconds(arguments) -> float:
    started = time.perf_counter()
    assert start(arguments).wait() == 0
    return time.perf_counter() - started


def kill_at(arguments, delay: float) -> int:
    process = start(arguments)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    return process.wait()


@pytest.fixture(scope="module")
def sources(tmp_path_factory, sample_lines):
    folder = tmp_path_factory.mktemp("crash")
    base = folder / "base.txt"
    base.write_text("".join(sample_lines[:15000]), encoding="utf-8")
    more = folder / "more.txt"
    more.write_text("".join(sample_lines[14000:20000]), encoding="utf-8")  # 1,000 old words, 5,000 new
    words = [l.split(" ", 1)[0] for l in sample_lines[:20000]]
    return base, more, words


def test_killed_first_load_leaves_no_valid_looking_store(tmp_path, sources):
    base, _, words = sources
    duration = full_run_seconds(["load", base, "--db", tmp_path / "timing.db"])
    rng = random.Random(1)
    completed = 0
    for trial in range(KILLS_PER_KIND):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        db = folder / "s.db"
        kill_at(["load", base, "--db", db], rng.uniform(0, duration))
        if db.exists():
            completed += 1
            with Store.open(db) as store:
                assert list(store) == words[:15000]
            assert check_store(db).ok
        else:
            assert not any(p.name == "s.db" for p in folder.iterdir())
    print(f"\nkilled first loads: {KILLS_PER_KIND}, of which {completed} had already committed")
    assert completed < KILLS_PER_KIND  # the kills did land inside loads


def test_killed_append_keeps_old_or_new_vocabulary(tmp_path, sources):
    base, more, words = sources
    seed = tmp_path / "seed"
    seed.mkdir()
    Store.load(base, seed / "s.db")
    old, new = words[:15000], words[:20000]

    def fresh_copy(name):
        folder = tmp_path / name
        shutil.copytree(seed, folder)
        return folder / "s.db"

    duration = full_run_seconds(["load", more, "--append", "--db", fresh_copy("timing")])
    rng = random.Random(2)
    outcomes = {"old": 0, "new": 0}
    for trial in range(KILLS_PER_KIND):
        db = fresh_copy(f"t{trial}")
        kill_at(["load", more, "--append", "--db", db], rng.uniform(0, duration))
        with Store.open(db) as store:
            vocabulary = list(store)
        assert vocabulary in (old, new)
        outcomes["old" if vocabulary == old else "new"] += 1
        report = check_store(db)
        assert report.ok, report.problems
    print(f"\nkilled appends: {KILLS_PER_KIND}, outcomes {outcomes}")
    assert outcomes["old"] > 0  # some kills landed before the commit
