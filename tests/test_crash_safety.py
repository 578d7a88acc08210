"""SIGKILL at random moments of every write command: the store is always the old state or the
new one, never a mixture, and it passes ``check``.

Killed here: ``load`` and ``load --append`` (15,000 words), and on small stores (4,000 real
GloVe words, copied for each trial from seeds built once per module) ``delete``, ``rename``,
``add --file``, ``delete`` on a sharded store, ``shard``, ``index build`` of each kind, ``index drop``, ``index default``, ``repair``,
``export`` and ``load --storage sq8`` (a new store, and ``--replace`` of an exact one).

After each kill: ``check`` passes; the vocabulary, every vector, the index list and the
default index are exactly those before the command or those after it; ``nearest`` through
the exact rows equals numpy's brute force over the same words, and every approximate index
present answers with words of the current vocabulary, scores that are the true cosines (within
what its compression allows) and top-5 sets that overlap the true ones (a stale index must
say so and answer from the exact rows). One trial in five then runs the command again to
completion and checks that it reaches the after state. An export is absent, or complete and
whole (it loads back); a killed repair may leave damage, but a second repair must mend it
without losing a word or an index.

Each command is killed KILLS times, 20 by default (the load tests 30). For a slower, more
thorough run (which also kills the word2vec text export) set EMBSTORE_KILLS:

    EMBSTORE_KILLS=100 python -m pytest -q tests/test_crash_safety.py

A kill moment is drawn uniformly in [0, d], d being one uninterrupted run of the command
measured first; in every other trial, uniformly in [i, d] instead, i being the time the
interpreter takes to start and import embstore (most of a short run), so that more kills
land inside the work itself. The commands run with OMP_NUM_THREADS=1 so that their length
does not swing with the load on the machine. A failure names the trial, the kill moment and
the folder kept for inspection.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import faiss
import numpy as np
import pytest

from embstore import Store
from embstore.storage.check import check_store

KILLS = int(os.environ.get("EMBSTORE_KILLS", "20"))
KILLS_PER_KIND = max(30, KILLS)  # the load tests on 15,000 words
SEED_WORDS = 4_000
ADDED_WORDS = 300
KINDS = ("hnsw", "ivf", "sq8", "pq")
RERUN_EVERY = 5  # one trial in this many runs the command again to completion afterwards
# hnsw at 4,000 words: a quicker graph than the defaults (which take seconds); how it is built is
# not what these tests are about.
HNSW = {"m": 16, "ef_construction": 40, "knn_links": 4}
HNSW_OPTIONS = ["--m", "16", "--ef-construction", "40", "--knn-links", "4"]
# FAISS's OpenMP threads spin while they wait: on 2 busy cores a build can take ten times as long.
# One thread keeps every run's length, and so the spread of the kill moments, steady.
ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1"}
K = 5
# How far an index's score may be from the true cosine, and the true top-N its top-5 is compared
# with (pq keeps 10 bytes a row: its neighbours are near, not the very nearest).
SCORE_TOLERANCE = {"exact": 1e-5, "hnsw": 1e-5, "ivf": 1e-5, "sq8": 0.05, "pq": 0.35}
COMPARED_TOP = {"exact": K, "hnsw": K, "ivf": K, "sq8": K, "pq": 25}
MIN_MEAN_OVERLAP = 3


def start(arguments):
    return subprocess.Popen([sys.executable, "-m", "embstore_cli", *map(str, arguments)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENVIRONMENT)


def full_run_seconds(arguments) -> float:
    started = time.perf_counter()
    assert start(arguments).wait() == 0, arguments
    return time.perf_counter() - started


def run_to_completion(arguments) -> None:
    done = subprocess.run([sys.executable, "-m", "embstore_cli", *map(str, arguments)], capture_output=True,
                          text=True, env=ENVIRONMENT)
    assert done.returncode == 0, f"{arguments} failed after the kill:\n{done.stdout}\n{done.stderr}"


def kill_at(arguments, delay: float) -> int:
    process = start(arguments)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    return process.wait()


# -- the load tests (15,000 words) -------------------------------------------------------


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
        shutil.rmtree(folder)
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
        shutil.rmtree(db.parent)
    print(f"\nkilled appends: {KILLS_PER_KIND}, outcomes {outcomes}")
    assert outcomes["old"] > 0  # some kills landed before the commit


# -- small stores: what the truth is -----------------------------------------------------


class Truth:
    """The vectors of every word a store in these tests may hold, parsed without embstore."""

    def __init__(self, lines: list[str]):
        self.vectors: dict[str, np.ndarray] = {}
        for line in lines:
            word, *values = line.split(" ")
            self.vectors[word] = np.array(values, dtype=np.float32)

    def alias(self, new: str, old: str) -> None:
        self.vectors[new] = self.vectors[old]

    def matrix(self, words) -> np.ndarray:
        return np.stack([self.vectors[w] for w in words])

    def unit_matrix(self, words) -> np.ndarray:
        matrix = self.matrix(words).astype(np.float64)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@dataclass(frozen=True)
class State:
    """A whole state a store may be in: its words in ID order, index kinds, default, storage."""

    name: str
    words: tuple[str, ...]
    kinds: frozenset[str]
    default: str = "exact"
    storage: str = "exact"

    def describe(self) -> str:
        return (f"{self.name}: {len(self.words):,} words ({', '.join(self.words[:3])}, ..., "
                f"{', '.join(self.words[-2:])}), indexes {sorted(self.kinds)}, default {self.default}, "
                f"storage {self.storage}")


def observed_state(store: Store) -> State:
    info = store.info()
    return State("found", tuple(store), frozenset(i["kind"] for i in info.indexes), info.default_index, info.storage)


def matching_state(found: State, states: list[State]) -> str:
    for state in states:
        if (state.words, state.kinds, state.default, state.storage) == (
                found.words, found.kinds, found.default, found.storage):
            return state.name
    explained = [found.describe()] + [state.describe() for state in states]
    for state in states:
        if state.words != found.words:
            first = next((i for i, (a, b) in enumerate(zip(state.words, found.words)) if a != b),
                         min(len(state.words), len(found.words)))
            explained.append(f"  vs {state.name}: the words first differ at ID {first}")
    raise AssertionError("the store is in neither state:\n" + "\n".join(explained))


def assert_check_passes(db: Path) -> None:
    report = check_store(db)
    assert report.ok, "check found problems:\n" + "\n".join(report.problems)


def assert_vectors_are_true(store: Store, truth: Truth) -> None:
    for words, vectors in store.iter_vectors():
        np.testing.assert_allclose(vectors, truth.matrix(words), rtol=1e-5, atol=1e-6,
                                   err_msg=f"stored vectors differ from the source ({words[0]}..{words[-1]})")


def assert_answers_are_right(store: Store, truth: Truth, candidates: list[str]) -> None:
    """Exact answers equal brute force; every other index answers near-truly, or says it is stale."""
    info = store.info()
    words = list(store)
    position = {w: i for i, w in enumerate(words)}
    unit = truth.unit_matrix(words)
    probes = [w for w in candidates if w in position] + [words[-1]]
    compressed_rows = info.storage != "exact"
    exact_answers, true_tops = {}, {}
    for probe in probes:
        cosines = unit @ unit[position[probe]]
        cosines[position[probe]] = -np.inf
        order = np.argsort(-cosines)
        true_tops[probe] = cosines, order
        result = store.nearest(probe, k=K, index="exact")
        exact_answers[probe] = result
        assert_answer_words(result, probe, position, "exact")
        if compressed_rows:
            continue
        assert not result.notes, result
        np.testing.assert_allclose([n.score for n in result.neighbours], cosines[order[:K]], atol=1e-5,
                                   err_msg=f"exact nearest {probe!r}: {result.neighbours}")
        for n in result.neighbours:
            assert abs(cosines[position[n.word]] - n.score) <= SCORE_TOLERANCE["exact"], (probe, n)
    approximate = [(i["kind"], i["stale"]) for i in info.indexes if i["kind"] != "exact"]
    if compressed_rows:
        approximate = [(info.storage, False)] + [(kind, stale) for kind, stale in approximate if kind != info.storage]
    for kind, stale in approximate:
        overlaps = []
        for probe in probes:
            result = exact_answers[probe] if kind == info.storage else store.nearest(probe, k=K, index=kind)
            if stale:
                assert any("stale" in note for note in result.notes), (kind, result)
                assert result.neighbours == exact_answers[probe].neighbours, (kind, result, exact_answers[probe])
                continue
            assert_answer_words(result, probe, position, kind)
            assert not result.notes or kind == info.storage, (kind, result)
            cosines, order = true_tops[probe]
            for n in result.neighbours:
                assert abs(cosines[position[n.word]] - n.score) <= SCORE_TOLERANCE[kind], (
                    f"{kind} nearest {probe!r}: {n} but the true cosine is {cosines[position[n.word]]:.5f}")
            top = {words[i] for i in order[:COMPARED_TOP[kind]]}
            overlaps.append(len(top & {n.word for n in result.neighbours}))
        if overlaps:
            assert np.mean(overlaps) >= MIN_MEAN_OVERLAP, (
                f"{kind}: top-{K} answers share on average {np.mean(overlaps):.2f} words with the true "
                f"top-{COMPARED_TOP[kind]} ({overlaps})")
    default = store.nearest(probes[0], k=K)
    assert_answer_words(default, probes[0], position, f"default ({info.default_index})")


def assert_answer_words(result, probe: str, position: dict[str, int], kind: str) -> None:
    answered = [n.word for n in result.neighbours]
    assert len(answered) == K and len(set(answered)) == K, f"{kind} nearest {probe!r}: {result}"
    assert probe not in answered and all(w in position for w in answered), (
        f"{kind} nearest {probe!r}: {answered} are not all other words of the current vocabulary")
    scores = [n.score for n in result.neighbours]
    assert scores == sorted(scores, reverse=True), f"{kind} nearest {probe!r}: scores out of order {scores}"


def verify_store(db: Path, states: list[State], truth: Truth, probes: list[str]) -> str:
    """Check a store after a kill; returns the name of the state it is in."""
    assert db.exists(), f"no catalog at {db} any more"
    assert_check_passes(db)
    with Store.open(db) as store:
        name = matching_state(observed_state(store), states)
        if store.storage == "exact":
            assert_vectors_are_true(store, truth)
        assert_answers_are_right(store, truth, probes)
    return name


# -- small stores: the seeds and the kill loop -------------------------------------------


@dataclass
class World:
    folder: Path
    base: Path  # the seed's source: 4,000 GloVe lines
    extra_lines: list[str]  # the 300 lines after them
    words: list[str]
    truth: Truth
    plain: Path  # the folder of a store of the base words, exact rows only
    indexed: Path  # the same with hnsw (the default), ivf, sq8 and pq indexes
    startup: float  # seconds to start the interpreter and import the CLI

    def probes(self) -> list[str]:
        return [self.words[i] for i in (3, 250, 777, 1500, 2222, 3100, SEED_WORDS - 1)]

    def state(self, name: str, words=None, kinds=None, default: str = "hnsw", storage: str = "exact") -> State:
        kinds = ("exact", *KINDS) if kinds is None else kinds
        return State(name, tuple(self.words if words is None else words), frozenset(kinds), default, storage)


def seconds_to_start() -> float:
    return min(full_run_seconds(["--version"]) for _ in range(2))


@contextlib.contextmanager
def one_faiss_thread():
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def build_indexes(db: Path, kinds=KINDS, change: Callable[[Store], None] = lambda store: None) -> None:
    with one_faiss_thread(), Store.open(db) as store:
        for kind in kinds:
            store.build_index(kind, **(HNSW if kind == "hnsw" else {}))
        store.set_default_index("hnsw")
        change(store)


@pytest.fixture(scope="module")
def world(tmp_path_factory, sample_lines) -> World:
    folder = tmp_path_factory.mktemp("kill")
    lines = sample_lines[:SEED_WORDS + ADDED_WORDS]
    base = folder / "base.txt"
    base.write_text("".join(lines[:SEED_WORDS]), encoding="utf-8")
    plain = folder / "plain"
    Store.load(base, plain / "s.db")
    indexed = folder / "indexed"
    shutil.copytree(plain, indexed)
    build_indexes(indexed / "s.db")
    return World(folder, base, lines[SEED_WORDS:], [l.split(" ", 1)[0] for l in lines[:SEED_WORDS]],
                 Truth(lines), plain, indexed, seconds_to_start())


def derived_seed(world: World, name: str, change: Callable[[Store], None]) -> Path:
    """A seed folder: a copy of the indexed seed changed by ``change``."""
    folder = world.folder / name
    if not folder.exists():
        shutil.copytree(world.indexed, folder)
        with Store.open(folder / "s.db") as store:
            change(store)
    return folder


def kill_trials(tmp_path: Path, label: str, world: World, prepare: Callable[[Path], list],
                verify: Callable[[Path], str], *, rng_seed: int, full_outcome: str = "after",
                rerun: Callable[[Path, str, list], None] | None = None) -> collections.Counter:
    """Kill the command ``prepare(folder)`` sets up and returns, once per trial, at a random
    moment; ``verify(folder)`` checks what is left and names the outcome (``full_outcome``
    after the uninterrupted run that measures the command's length); in one trial in
    RERUN_EVERY, ``rerun(folder, outcome, arguments)`` then finishes the job. Every failure is
    collected; the test fails at the end with all of them."""
    timing = tmp_path / "timing"
    arguments = prepare(timing)
    duration = full_run_seconds(arguments)
    assert verify(timing) == full_outcome
    shutil.rmtree(timing)
    rng = random.Random(rng_seed)
    outcomes: collections.Counter = collections.Counter()
    exited, failures = 0, []
    for trial in range(KILLS):
        folder = tmp_path / f"t{trial}"
        arguments = prepare(folder)
        low = 0.0 if trial % 2 == 0 else min(world.startup, 0.8 * duration)
        delay = rng.uniform(low, duration)
        code = kill_at(arguments, delay)
        exited += code == 0
        try:
            outcome = verify(folder)
            outcomes[outcome] += 1
            if rerun is not None and trial % RERUN_EVERY == RERUN_EVERY - 1:
                rerun(folder, outcome, arguments)
        except AssertionError as exc:
            outcomes["FAILED"] += 1
            failures.append(f"{label}: trial {trial}, SIGKILL {delay:.3f}s after the start of a {duration:.3f}s "
                            f"run (exit code {code}); the files are kept in {folder}:\n{exc}")
            continue
        shutil.rmtree(folder)
    print(f"\n{label}: {KILLS} kills in a {duration:.2f}s run (start-up and imports {world.startup:.2f}s); "
          f"outcomes {dict(outcomes)}; {exited} had exited before their kill")
    assert not failures, f"{len(failures)} of {KILLS} kills failed; the first ones:\n\n" + "\n\n".join(failures[:3])
    return outcomes


def store_changing_trials(tmp_path: Path, label: str, world: World, seed: Path, command: list,
                          before: State, after: State, *, rng_seed: int, probes: list[str] | None = None
                          ) -> collections.Counter:
    """Kill ``command`` (with --db added) on copies of ``seed``: each must leave ``before`` or ``after``."""
    probes = world.probes() if probes is None else probes

    def prepare(folder: Path) -> list:
        shutil.copytree(seed, folder)
        return [*command, "--db", folder / "s.db"]

    def verify(folder: Path) -> str:
        return verify_store(folder / "s.db", [before, after], world.truth, probes)

    def rerun(folder: Path, outcome: str, arguments: list) -> None:
        if outcome == "before":
            run_to_completion(arguments)
            assert verify(folder) == "after"

    outcomes = kill_trials(tmp_path, label, world, prepare, verify, rng_seed=rng_seed, rerun=rerun)
    assert outcomes["before"] > 0, "no kill landed before the commit"
    return outcomes


# -- word changes ------------------------------------------------------------------------


def test_killed_delete_leaves_old_or_new_words(tmp_path, world):
    doomed = world.words[5::100]  # 40 words all along the vocabulary: the later IDs are renumbered
    before = world.state("before")
    after = world.state("after", [w for w in world.words if w not in set(doomed)])
    store_changing_trials(tmp_path, "delete", world, world.indexed, ["delete", *doomed], before, after, rng_seed=11)


def test_killed_delete_on_a_sharded_store_leaves_shard_rows_equal_to_the_rows(tmp_path, world):
    """check compares every shard file's rows with the store's rows of its range: after any kill
    they are the old rows or the new ones, never a mixture."""
    seed = derived_seed(world, "sharded", lambda store: store.shard(3, graphs=True))
    doomed = world.words[7::150]
    before = world.state("before")
    after = world.state("after", [w for w in world.words if w not in set(doomed)])
    store_changing_trials(tmp_path, "delete (sharded)", world, seed, ["delete", *doomed], before, after, rng_seed=13)


def test_killed_shard_leaves_no_layout_or_a_whole_one(tmp_path, world):
    def prepare(folder: Path) -> list:
        shutil.copytree(world.indexed, folder)
        return ["shard", "--shards", "4", "--graphs", "--db", folder / "s.db"]

    def verify(folder: Path) -> str:
        db = folder / "s.db"
        assert verify_store(db, [world.state("same")], world.truth, world.probes()) == "same"
        with Store.open(db) as store:
            layout = store.shard_layout()
            if layout is None:
                return "before"
            assert layout.shards == 4 and len(layout.graphs) == 4 and layout.ranges[-1][1] == len(store)
        return "after"

    def rerun(folder: Path, outcome: str, arguments: list) -> None:
        run_to_completion(arguments)
        assert verify(folder) == "after"

    outcomes = kill_trials(tmp_path, "shard --shards 4 --graphs", world, prepare, verify, rng_seed=14, rerun=rerun)
    assert outcomes["before"] > 0, "no kill landed before the commit"


def test_killed_rename_leaves_old_or_new_spelling(tmp_path, world):
    old = world.words[1234]
    new = f"{old}_renamed"
    world.truth.alias(new, old)
    before = world.state("before")
    after = world.state("after", [new if w == old else w for w in world.words])
    store_changing_trials(tmp_path, "rename", world, world.indexed, ["rename", old, new], before, after,
                          rng_seed=12, probes=[*world.probes(), old, new])


def test_killed_add_leaves_old_or_new_words(tmp_path, world):
    """300 new words (TSV and JSON lines): the current indexes are extended in the same commit."""
    vectors_file = tmp_path.parent / f"{tmp_path.name}-added.txt"
    lines = []
    for number, line in enumerate(world.extra_lines):
        word, *values = line.split()
        if number % 6 == 5:
            lines.append(json.dumps({"word": word, "vector": [float(v) for v in values]}) + "\n")
        else:
            lines.append(word + "\t" + " ".join(values) + "\n")
    vectors_file.write_text("".join(lines), encoding="utf-8")
    added = [line.split(" ", 1)[0] for line in world.extra_lines]
    before = world.state("before")
    after = world.state("after", world.words + added)
    store_changing_trials(tmp_path, "add", world, world.indexed, ["add", "--file", vectors_file], before, after,
                          rng_seed=13, probes=[*world.probes(), added[0], added[150]])


# -- index commands ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_killed_index_build_leaves_no_index_or_a_whole_one(tmp_path, world, kind):
    """hnsw is built with --default (two changes in one commit); ivf with its recall measured
    afterwards (a second commit)."""
    seed = derived_seed(world, f"without-{kind}", lambda store: store.drop_index(kind))
    others = {"exact", *KINDS} - {kind}
    before = world.state("before", kinds=others, default="exact" if kind == "hnsw" else "hnsw")
    after = world.state("after")
    command = ["index", "build", "--kind", kind]
    if kind == "hnsw":
        command += ["--default", *HNSW_OPTIONS]
    if kind != "ivf":
        command.append("--no-bench")
    store_changing_trials(tmp_path, f"index build --kind {kind}", world, seed, command, before, after,
                          rng_seed=20 + KINDS.index(kind))


def test_killed_index_drop_leaves_the_index_or_none(tmp_path, world):
    """Dropping the default index also resets the default, in the same commit."""
    before = world.state("before")
    after = world.state("after", kinds={"exact", *KINDS} - {"hnsw"}, default="exact")
    store_changing_trials(tmp_path, "index drop hnsw", world, world.indexed, ["index", "drop", "hnsw"], before,
                          after, rng_seed=30)


def test_killed_index_default_leaves_old_or_new_default(tmp_path, world):
    before = world.state("before")
    after = world.state("after", default="ivf")
    store_changing_trials(tmp_path, "index default ivf", world, world.indexed, ["index", "default", "ivf"], before,
                          after, rng_seed=31)


# -- repair ------------------------------------------------------------------------------


def repair_seed(world: World, name: str, damage: Callable[[Path], None], change=lambda store: None) -> Path:
    """A store like the indexed seed but without pq (quicker to rebuild), whose recorded source
    file is gone (repair must work in place), damaged."""
    folder = world.folder / name
    if folder.exists():
        return folder
    source = world.folder / f"{name}-source.txt"
    shutil.copy(world.base, source)
    Store.load(source, folder / "s.db")
    source.unlink()
    build_indexes(folder / "s.db", REPAIR_KINDS, change)
    damage(folder)
    return folder


def remove_index_files(kinds):
    def damage(folder: Path) -> None:
        for kind in kinds:
            for file in folder.glob(f"s.db.{kind}.*.faiss"):
                file.unlink()
    return damage


def leave_leftovers(folder: Path) -> None:
    (folder / ".s.db.exact.0123abcd.faiss.tmp").write_bytes(os.urandom(5000))
    (folder / ".s.db.5eed5eed.tmp").write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    shutil.copy(next(folder.glob("s.db.ivf.*.faiss")), folder / "s.db.ivf.0badc0de.faiss")


REPAIR_KINDS = ("hnsw", "ivf", "sq8")
REPAIRS = {
    # The hnsw and sq8 files are gone: check fails until repair rebuilds them from the exact rows.
    "missing-index-files": (remove_index_files(["hnsw", "sq8"]), lambda store: None, None),
    # A word was deleted after the indexes were built (hnsw, ivf and sq8 are stale), and an
    # interrupted writer left temporaries and an unreferenced index file.
    "stale-and-leftovers": (leave_leftovers, lambda store: store.delete_words(["would"]), "would"),
}


@pytest.mark.parametrize("damage", sorted(REPAIRS))
def test_killed_repair_never_loses_words_and_a_second_repair_finishes(tmp_path, world, damage):
    make_damage, change, deleted = REPAIRS[damage]
    seed = repair_seed(world, f"repair-{damage}", make_damage, change)
    words = [w for w in world.words if w != deleted]
    repaired = world.state("repaired", words, kinds=("exact", *REPAIR_KINDS))
    before_report = check_store(seed / "s.db")
    assert not before_report.ok or before_report.stale, "the seed needs no repair"

    def prepare(folder: Path) -> list:
        shutil.copytree(seed, folder)
        return ["repair", "--db", folder / "s.db"]

    def verify(folder: Path) -> str:
        db = folder / "s.db"
        report = check_store(db)
        outcome = "check passed"
        if not report.ok:
            run_to_completion(["repair", "--db", db])
            outcome = "check failed; a second repair fixed it"
        with Store.open(db) as store:
            found = observed_state(store)
        assert found.words == repaired.words, "repair changed the vocabulary:\n" + found.describe()
        assert found.kinds == repaired.kinds, (
            f"after the killed repair ({outcome}) the store has the indexes {sorted(found.kinds)}, not "
            f"{sorted(repaired.kinds)}: repair lost an index it was rebuilding, and "
            f"{'the second repair' if report.problems else 'check'} did not notice (default now {found.default})")
        verify_store(db, [repaired], world.truth, world.probes())  # every index still there, and answering
        return outcome

    def rerun(folder: Path, outcome: str, arguments: list) -> None:
        run_to_completion(arguments)
        report = check_store(folder / "s.db")
        assert report.ok and not report.stale and not report.leftovers, (
            f"after a complete repair: problems {report.problems}, stale {report.stale}, "
            f"leftovers {report.leftovers}")
        verify_store(folder / "s.db", [repaired], world.truth, world.probes())

    kill_trials(tmp_path, f"repair ({damage})", world, prepare, verify, rng_seed=40 + sorted(REPAIRS).index(damage),
                full_outcome="check passed", rerun=rerun)


# -- export ------------------------------------------------------------------------------

EXPORT_NAMES = {"glove": "out.txt", "word2vec": "out.vec", "word2vec-bin": "out.bin", "npy": "out.npy"}
# word2vec text is glove text with a header line (the same writer): killed in the slower runs only.
EXPORTS_KILLED = sorted(EXPORT_NAMES) if KILLS > 20 else ["glove", "npy", "word2vec-bin"]


def exported(output: Path, format_name: str, folder: Path) -> tuple[list[str], np.ndarray] | None:
    """The words and vectors of a complete export at ``output`` (None if there is none)."""
    if format_name == "npy":
        words_file = output.with_name(output.name[:-4] + ".vocab.txt")
        if not output.exists():
            return None  # killed before the matrix was renamed into place: no export yet
        assert words_file.exists(), f"{output.name} exists without its word list"
        matrix = np.load(output)
        words = words_file.read_text(encoding="utf-8").splitlines()
        assert matrix.shape == (len(words), 50), (
            f"{output.name} holds {matrix.shape} rows for {len(words)} words in {words_file.name}")
        return words, matrix
    if not output.exists():
        return None
    back = folder / "back" / "b.db"
    Store.load(output, back, format=format_name)
    with Store.open(back) as store:
        words = list(store)
        matrix = np.concatenate([vectors for _, vectors in store.iter_vectors()])
    shutil.rmtree(back.parent)
    return words, matrix


@pytest.mark.parametrize("format_name", EXPORTS_KILLED)
def test_killed_export_leaves_no_file_or_a_complete_one(tmp_path, world, format_name):
    """Half the trials export over an older export of 500 words: afterwards there is that one,
    the new one, or (npy, between the two renames) a word list without its matrix."""
    store_folder = tmp_path / "store"
    shutil.copytree(world.indexed, store_folder)
    db = store_folder / "s.db"
    old_folder = tmp_path / "old"
    old_folder.mkdir()
    old_words = world.words[:500]
    with Store.open(db) as store:
        store.export(old_folder / EXPORT_NAMES[format_name], format_name, old_words)
    old_files = list(old_folder.iterdir())
    states = {"new": world.words, "old": old_words}
    trial_number = iter(range(10 ** 6))

    def prepare(folder: Path) -> list:
        folder.mkdir()
        if next(trial_number) % 2:
            for file in old_files:
                shutil.copy(file, folder / file.name)
        return ["export", folder / EXPORT_NAMES[format_name], "--format", format_name, "--db", db]

    def verify(folder: Path) -> str:
        assert_check_passes(db)
        found = exported(folder / EXPORT_NAMES[format_name], format_name, folder)
        if found is None:
            return "no export"
        words, matrix = found
        name = next((n for n, expected in states.items() if words == expected), None)
        assert name is not None, f"the export holds {len(words):,} words, neither the old nor the new ones"
        np.testing.assert_allclose(matrix, world.truth.matrix(words), rtol=1e-5, atol=1e-6)
        return name

    def rerun(folder: Path, outcome: str, arguments: list) -> None:
        run_to_completion(arguments)
        assert verify(folder) == "new"

    outcomes = kill_trials(tmp_path, f"export --format {format_name}", world, prepare, verify,
                           rng_seed=50 + sorted(EXPORT_NAMES).index(format_name), full_outcome="new", rerun=rerun)
    assert outcomes["no export"] + outcomes["old"] > 0, "no kill landed before the export was complete"
    with Store.open(db) as store:
        assert list(store) == world.words


# -- load --storage sq8 ------------------------------------------------------------------


def test_killed_sq8_load_leaves_no_store_or_a_whole_sq8_one(tmp_path, world):
    after = world.state("after", kinds={"sq8"}, default="sq8", storage="sq8")

    def prepare(folder: Path) -> list:
        folder.mkdir()
        return ["load", world.base, "--storage", "sq8", "--db", folder / "s.db"]

    def verify(folder: Path) -> str:
        db = folder / "s.db"
        if not db.exists():  # files of the unfinished load may be left beside the path: check calls them leftovers
            return "no store"
        return verify_store(db, [after], world.truth, world.probes())

    def rerun(folder: Path, outcome: str, arguments: list) -> None:
        if outcome == "no store":
            run_to_completion(arguments)
            assert verify(folder) == "after"

    outcomes = kill_trials(tmp_path, "load --storage sq8", world, prepare, verify, rng_seed=60, rerun=rerun)
    assert outcomes["no store"] > 0, "no kill landed before the store appeared"


def test_killed_sq8_load_over_a_store_leaves_the_old_one_or_a_whole_sq8_one(tmp_path, world):
    """--replace of an exact store of 4,000 words by sq8 codes of 3,000 others."""
    source = tmp_path.parent / f"{tmp_path.name}-other.txt"
    other = world.base.read_text(encoding="utf-8").splitlines(keepends=True)[1000:] + world.extra_lines
    source.write_text("".join(other[:3000]), encoding="utf-8")
    before = world.state("before", kinds={"exact"}, default="exact")
    after = world.state("after", [l.split(" ", 1)[0] for l in other[:3000]], kinds={"sq8"}, default="sq8",
                        storage="sq8")
    store_changing_trials(tmp_path, "load --replace --storage sq8", world, world.plain,
                          ["load", source, "--replace", "--storage", "sq8"], before, after, rng_seed=61)


# -- fastText models: the words and the n-gram rows commit together ------------------------


def _write_fasttext_model(path: Path, words: list[str], dimension: int, bucket: int, seed: int) -> None:
    """A skipgram model in fastText's version 12 layout with random rows."""
    import struct

    rng = np.random.default_rng(seed)
    with open(path, "wb") as out:
        out.write(struct.pack("<2i", 793712314, 12))
        out.write(struct.pack("<12id", dimension, 5, 5, 1, 5, 1, 2, 2, bucket, 3, 6, 100, 1e-4))
        out.write(struct.pack("<3iqq", len(words), len(words), 0, 10 * len(words), -1))
        out.write(b"".join(w.encode() + b"\0" + struct.pack("<qb", 10, 0) for w in words))
        out.write(b"\0" + struct.pack("<2q", len(words) + bucket, dimension))
        out.write(rng.standard_normal((len(words) + bucket, dimension), dtype=np.float32).tobytes())
        out.write(b"\0" + struct.pack("<2q", len(words), dimension))
        out.write(np.zeros((len(words), dimension), dtype=np.float32).tobytes())


def test_killed_fasttext_replace_leaves_one_model_whole(tmp_path, sources):
    from gensim.models.fasttext import load_facebook_vectors

    _, _, words = sources
    models = {}
    for name, seed, vocabulary in (("a", 1, words[:6000]), ("b", 2, words[3000:10000])):
        models[name] = tmp_path / f"{name}.bin"
        _write_fasttext_model(models[name], vocabulary, 16, 300_000, seed)
    probes = ["kingzq", "naïvety", "日本語"]
    expected = {name: (load_facebook_vectors(str(path)).index_to_key,
                       np.stack([load_facebook_vectors(str(path))[w] for w in probes])) for name, path in models.items()}
    (tmp_path / "seed").mkdir()
    Store.load(models["a"], tmp_path / "seed" / "s.db")
    duration = full_run_seconds(["load", models["b"], "--db", tmp_path / "timing.db"])
    rng = random.Random(5)
    outcomes = collections.Counter()
    for trial in range(max(10, KILLS // 2)):
        folder = tmp_path / f"f{trial}"
        folder.mkdir()
        for file in (tmp_path / "seed").iterdir():
            shutil.copy(file, folder / file.name)
        db = folder / "s.db"
        kill_at(["load", models["b"], "--db", db, "--replace"], rng.uniform(0, duration))
        report = check_store(db)
        assert report.ok, (trial, report.problems)
        with Store.open(db) as store:
            name = "a" if store.vocabulary() == expected["a"][0] else "b"
            assert store.vocabulary() == expected[name][0], trial
            built = np.stack([store.vector(w) for w in probes])
            assert np.allclose(built, expected[name][1], atol=1e-6), (trial, name)
        outcomes[name] += 1
        shutil.rmtree(folder)
    print(f"\nkilled fastText replaces: {dict(outcomes)}")
