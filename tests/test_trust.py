"""What a user must be able to trust: a write that raced another changes nothing, a reader keeps
its generation, a stale index is never searched, files outside the store are never touched,
export never overwrites the store, a bare string is never read as its letters, repair never
drops changes silently, and a default index never names a dropped one."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embstore import QueryError, Store, StoreChangedError, StoreError
from embstore.repair import repair_store
from embstore.storage.check import check_store

SMALL_HNSW = {"m": 8, "ef_construction": 32}


# -- helpers --------------------------------------------------------------------------


def parse(lines):
    """(words, float32 rows) read here, independently of embstore."""
    words = [line.split(" ", 1)[0] for line in lines]
    rows = np.array([[float(v) for v in line.split()[1:]] for line in lines], dtype=np.float32)
    return words, rows


def unit(rows):
    rows = rows.astype(np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_store(folder: Path, lines, name="s.db", source_name="base.txt"):
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / source_name
    source.write_text("".join(lines), encoding="utf-8")
    db = folder / name
    Store.load(source, db)
    return db, source


@pytest.fixture()
def small(tmp_path, sample_lines):
    """A 3,000-word store of real GloVe rows and the file it was loaded from."""
    return make_store(tmp_path, sample_lines[:3000])


def catalog_state(db: Path) -> dict:
    """Everything the catalog holds, read through SQLite (never a plain open() of the catalog)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {"meta": dict(conn.execute("SELECT key, value FROM meta")),
                "words": conn.execute("SELECT id, word, rank, norm FROM words ORDER BY id").fetchall(),
                "indexes": conn.execute("SELECT * FROM index_files ORDER BY kind").fetchall()}
    finally:
        conn.close()


def sql(db: Path, *statements):
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def files_beside(db: Path) -> dict[str, str]:
    """{name: SHA-256} of every file beside the store except the catalog and its -wal/-shm."""
    skip = {db.name, f"{db.name}-wal", f"{db.name}-shm", f"{db.name}-journal"}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in db.parent.iterdir() if p.is_file() and p.name not in skip}


def index_path(db: Path, kind: str) -> Path:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return db.parent / conn.execute("SELECT file FROM index_files WHERE kind = ?", (kind,)).fetchone()[0]
    finally:
        conn.close()


def answers(result):
    return [(n.word, n.score) for n in result.neighbours]


def cli(*args, cwd=None, timeout=60):
    """The real command line in a subprocess: (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "embstore_cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, check=False)
    return done.returncode, done.stdout, done.stderr


# -- 1. an index build that overlaps a delete -------------------------------------------


@pytest.mark.parametrize("kind", ["sq8", "hnsw"])
def test_index_build_from_an_older_generation_fails_and_changes_nothing(small, kind):
    db, _ = small
    params = SMALL_HNSW if kind == "hnsw" else {}
    with Store.open(db) as setup:
        setup.build_index(kind, **params)
    first, second = Store.open(db), Store.open(db)
    try:
        assert second.delete_words(["queen", "paris", "water"]) == 3  # commits; the index is now stale
        before_files, before_catalog = files_beside(db), catalog_state(db)
        with pytest.raises(StoreChangedError, match="changed while the .* index was being built; run it again"):
            first.build_index(kind, **params)  # built from the rows of the generation before the delete
        assert files_beside(db) == before_files  # no new index file, no temporary left
        assert catalog_state(db) == before_catalog
        report = check_store(db)
        assert report.ok, report.problems
        assert report.stale == {kind}
        with Store.open(db) as fresh:
            asked, exact = fresh.nearest("king", k=10, index=kind), fresh.nearest("king", k=10, index="exact")
            assert answers(asked) == answers(exact) and "paris" not in {n.word for n in exact.neighbours}
            assert any(f"the {kind} index is stale" in note for note in asked.notes), asked.notes
        # The writer that failed has moved to the newest generation: building again works.
        first.build_index(kind, **params)
        with Store.open(db) as fresh:
            assert not fresh.nearest("king", k=10, index=kind).notes

        # The same race with the delete committed in the middle of the build itself.
        expected = {}

        def delete_meanwhile(done, total):
            if not expected:
                with Store.open(db) as other:
                    other.delete_words(["france"])
                expected["files"], expected["catalog"] = files_beside(db), catalog_state(db)

        with Store.open(db) as third, pytest.raises(StoreChangedError):
            third.build_index(kind, progress=delete_meanwhile, **params)
        assert expected, "the build never reported progress"
        assert files_beside(db) == expected["files"] and catalog_state(db) == expected["catalog"]
        report = check_store(db)
        assert report.ok and report.stale == {kind} and not report.leftovers, report.problems
        assert first.refresh() is True
        first.build_index(kind, **params)
    finally:
        first.close()
        second.close()
    report = check_store(db)
    assert report.ok and not report.stale and not report.leftovers, report.problems
    with Store.open(db) as fresh:
        asked = fresh.nearest("king", k=10, index=kind)
        assert not asked.notes and "france" not in fresh and len(fresh) == 2996


# -- 2. a reader keeps its generation after the writer removed its files --------------------


def test_reader_answers_from_its_generation_after_its_files_were_removed(small, sample_lines):
    db, _ = small
    words, rows = parse(sample_lines[:3000])
    position = {w: i for i, w in enumerate(words)}
    matrix = unit(rows)
    with Store.open(db) as setup:
        setup.build_index("sq8")
        setup.build_index("hnsw", **SMALL_HNSW)
    reader = Store.open(db)
    try:
        held = [Path(index["file"]) for index in reader.info().indexes]
        assert sorted(p.name.split(".")[2] for p in held) == ["exact", "hnsw", "sq8"]
        with Store.open(db) as writer:
            new = np.random.default_rng(5).standard_normal((2, 50)).astype(np.float32)
            writer.add_words(["zzznew1", "zzznew2"], new)  # rewrites all three files
            writer.delete_words(["queen", "paris"])  # rewrites the exact file again
        assert not [p for p in held if p.exists()], "the writer left the old files behind"
        assert reader.info().words == 3000
        for probe in ("king", "queen", "paris", words[-1]):
            truth = matrix @ matrix[position[probe]]
            truth[position[probe]] = -np.inf
            best = [words[i] for i in np.argsort(-truth)[:10]]
            exact = reader.nearest(probe, k=10, index="exact")
            assert [n.word for n in exact.neighbours] == best
            np.testing.assert_allclose([n.score for n in exact.neighbours], truth[np.argsort(-truth)[:10]], atol=1e-5)
            for kind, tolerance in (("hnsw", 1e-5), ("sq8", 0.05)):
                result = reader.nearest(probe, k=10, index=kind)  # the first use of this file, after its removal
                assert not result.notes, result.notes
                got = [n.word for n in result.neighbours]
                assert all(w in position for w in got), got  # no zzznew*: they are not of this generation
                assert len(set(got) & set(best)) >= 6, (kind, probe, got, best)
                for n in result.neighbours:
                    assert abs(truth[position[n.word]] - n.score) <= tolerance, (kind, n)
        np.testing.assert_allclose(reader.vector("paris"), rows[position["paris"]], rtol=1e-5, atol=1e-6)
        assert reader.refresh() is True
        assert len(reader) == 3000 and "queen" not in reader and "zzznew2" in reader
        assert any("stale" in note for note in reader.nearest("king", index="hnsw").notes)
    finally:
        reader.close()
    assert check_store(db).ok


# -- 3. a stale index is reported and never searched -----------------------------------------


def test_a_stale_index_is_reported_and_answered_exactly_without_being_rewritten(small, run):
    db, _ = small
    with Store.open(db) as setup:
        setup.build_index("sq8")
        setup.build_index("hnsw", **SMALL_HNSW)
        setup.set_default_index("hnsw")
        setup.delete_words(["queen", "paris", "water", "london", "river"])
    stale_files = {kind: index_path(db, kind) for kind in ("hnsw", "sq8")}
    stamps = {kind: (path.stat().st_mtime_ns, path.stat().st_size) for kind, path in stale_files.items()}
    before_files, before_indexes = files_beside(db), catalog_state(db)["indexes"]
    with Store.open(db) as store:
        info = {index["kind"]: index["stale"] for index in store.info().indexes}
        assert info == {"exact": False, "hnsw": True, "sq8": True}
        for kind in ("hnsw", "sq8", None):
            for probe in ("king", "computer", "music"):
                asked, exact = store.nearest(probe, k=10, index=kind), store.nearest(probe, k=10, index="exact")
                assert answers(asked) == answers(exact)
                assert any(f"the {kind or 'hnsw'} index is stale" in note for note in asked.notes), asked.notes
            many = store.nearest_many(["king", "good"], k=5, index=kind)
            assert [answers(r) for r in many] == [answers(r) for r in store.nearest_many(["king", "good"], k=5,
                                                                                         index="exact")]
            assert all(r.notes for r in many)
            analogy = store.analogy("man", "king", "woman", k=5, index=kind)
            assert answers(analogy) == answers(store.analogy("man", "king", "woman", k=5, index="exact"))
            assert analogy.notes
    listed = run("index", "list", "--db", db)
    assert listed.exit_code == 0
    rows = {line.split()[0]: line for line in listed.stdout.splitlines() if line.split()}
    assert "stale" in rows["hnsw"] and "stale" in rows["sq8"] and "stale" not in rows["exact"], listed.stdout
    assert "stale" in run("info", "--db", db).stdout
    # Nothing was built or rewritten by the queries.
    for kind, path in stale_files.items():
        assert path.exists() and (path.stat().st_mtime_ns, path.stat().st_size) == stamps[kind]
    assert files_beside(db) == before_files and catalog_state(db)["indexes"] == before_indexes
    report = check_store(db)
    assert report.ok and report.stale == {"hnsw", "sq8"}, report.problems


# -- 4. delete renumbers densely ------------------------------------------------------------


def test_delete_renumbers_densely_and_answers_like_a_fresh_load(small, sample_lines, tmp_path):
    db, _ = small
    lines = sample_lines[:3000]
    words, _ = parse(lines)
    doomed_ids = sorted(np.random.default_rng(11).choice(np.arange(1, 3000), 100, replace=False).tolist())
    doomed = [words[i] for i in doomed_ids]
    with Store.open(db) as store:
        assert store.delete_words(doomed) == 100
    gone = set(doomed_ids)
    kept_lines = [line for i, line in enumerate(lines) if i not in gone]
    kept = [w for i, w in enumerate(words) if i not in gone]
    fresh_db, _ = make_store(tmp_path / "fresh", kept_lines, name="fresh.db")
    moved = [i + 1 for i in doomed_ids if i + 1 < 3000 and i + 1 not in gone]  # right after a deleted word
    spread = [i for i in range(0, 3000, 53) if i not in gone]
    probes = list(dict.fromkeys([kept[0], kept[-1]] + [words[i] for i in moved[:30] + spread]))[:50]
    assert len(probes) == 50
    with Store.open(db) as changed, Store.open(fresh_db) as fresh:
        assert list(changed) == list(fresh) == kept
        assert [changed.resolve(w).id for w in probes] == [kept.index(w) for w in probes]
        for restrict in (None, 500):
            got = changed.nearest_many(probes, k=10, restrict=restrict)
            want = fresh.nearest_many(probes, k=10, restrict=restrict)
            for g, w in zip(got, want):
                assert [n.word for n in g.neighbours] == [n.word for n in w.neighbours], g.query
                np.testing.assert_allclose([n.score for n in g.neighbours], [n.score for n in w.neighbours],
                                           atol=1e-6, rtol=0)
        for probe in probes[:10]:
            assert answers(changed.nearest(probe, k=10)) == answers(fresh.nearest(probe, k=10))
        assert answers(changed.analogy("man", "king", "woman")) == answers(fresh.analogy("man", "king", "woman"))
    assert check_store(db).ok


# -- 5. files outside the store are never touched -------------------------------------------


HOSTILE = ["relative", "absolute", "parent-own-pattern", "sibling-store"]
COMMANDS = {
    "index drop": ["index", "drop", "hnsw"],
    "index build": ["index", "build", "--kind", "hnsw", "--m", "8", "--ef-construction", "32", "--no-bench"],
    "repair": ["repair"],
    "load --replace": ["load", "{source}", "--replace"],
}


@pytest.fixture()
def hostile_template(tmp_path, sample_lines):
    """A store s.db with an hnsw index, and beside it another store other.db with one."""
    folder = tmp_path / "template"
    db, _ = make_store(folder, sample_lines[:1000])
    other, _ = make_store(folder, sample_lines[1000:1600], name="other.db", source_name="other.txt")
    for path in (db, other):
        with Store.open(path) as store:
            store.build_index("hnsw", **SMALL_HNSW)
    return folder


@pytest.mark.parametrize("kind", ["hnsw", "exact"])
@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_catalog_naming_files_outside_the_store_never_touches_them(tmp_path, run, hostile_template, kind,
                                                                     hostile):
    for command, arguments in COMMANDS.items():
        case = tmp_path / f"case-{command.replace(' ', '')}"
        folder = case / "store"
        shutil.copytree(hostile_template, folder)
        db = folder / "s.db"
        own = index_path(db, kind)
        outside = tmp_path / "outside"
        outside.mkdir(exist_ok=True)
        if hostile == "relative":
            victim = case / "victim.txt"
            victim.write_text("not yours\n")
            name = "../victim.txt"
        elif hostile == "absolute":  # a valid FAISS file of the right shape, elsewhere
            victim = outside / f"victim-{kind}-{command.replace(' ', '')}.faiss"
            shutil.copy(own, victim)
            name = str(victim)
        elif hostile == "parent-own-pattern":  # this store's own pattern, one folder up
            victim = case / own.name
            shutil.copy(own, victim)
            name = f"../{own.name}"
        else:  # the other store's file of that kind, in the same folder
            victim = index_path(folder / "other.db", kind)
            name = victim.name
        content = victim.read_bytes()
        sql(db, f"UPDATE index_files SET file = '{name}' WHERE kind = '{kind}'")
        result = run(*[a.format(source=folder / "base.txt") for a in arguments], "--db", db)
        assert victim.exists() and victim.read_bytes() == content, (command, name, result.output)
        assert check_store(folder / "other.db").ok, command
        if command in ("repair", "load --replace"):
            assert result.exit_code == 0, (command, result.output)
            report = check_store(db)
            assert report.ok and not report.leftovers, (command, report.problems)
            assert name not in {r[1] for r in catalog_state(db)["indexes"]}
        elif kind == "exact":  # the rows themselves: refused until repair
            assert result.exit_code == 1 and "not a file of this store" in result.output, (command, result.output)
        else:  # a damaged approximate index is set aside: the command works and never touches the victim
            assert result.exit_code == 0, (command, result.output)
            with Store.open(db) as store:
                assert store.nearest("king", k=3).neighbours


def test_two_stores_in_one_folder_never_remove_each_others_files(tmp_path, sample_lines, run):
    folder = tmp_path / "both"
    big, big_source = make_store(folder, sample_lines[:2000], name="emb.db", source_name="big.txt")
    small, small_source = make_store(folder, sample_lines[2000:3000], name="emb.db.small", source_name="small.txt")
    for path in (big, small):
        with Store.open(path) as store:
            store.build_index("hnsw", **SMALL_HNSW)
    # Leftovers of an interrupted write to emb.db.small: its own to remove, never emb.db's.
    (folder / ".emb.db.small.hnsw.0badc0de.faiss.tmp").write_bytes(b"partial")
    (folder / "emb.db.small.sq8.0badc0de.faiss").write_bytes(b"unreferenced")
    assert check_store(big).leftovers == []
    assert [p.name for p in check_store(small).leftovers] == [".emb.db.small.hnsw.0badc0de.faiss.tmp",
                                                              "emb.db.small.sq8.0badc0de.faiss"]

    def own_files(db):
        prefixes = (f"{db.name}.", f".{db.name}.")
        names = {p.name for p in folder.iterdir()}
        return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names
                if n.startswith(prefixes) and not n.startswith((f"{db.name}.small", f".{db.name}.small"))
                and not n.endswith(("-wal", "-shm"))}

    def writes(source, lines):
        first, second = lines[0].split(" ", 1)[0], lines[1].split(" ", 1)[0]
        return [("delete", first), ("index", "build", "--kind", "sq8", "--no-bench"), ("index", "drop", "hnsw"),
                ("rename", second, second + "_renamed"), ("repair",), ("load", source, "--replace"),
                ("index", "build", "--kind", "hnsw", "--m", "8", "--no-bench")]

    for target, source, other, lines in ((big, big_source, small, sample_lines[:2000]),
                                         (small, small_source, big, sample_lines[2000:3000])):
        other_files = own_files(other)
        assert len(other_files) >= 2
        for arguments in writes(source, lines):
            result = run(*arguments, "--db", target)
            assert result.exit_code == 0, (target.name, arguments, result.output)
            assert own_files(other) == other_files, (target.name, arguments)
            assert check_store(target).ok and check_store(other).ok, (target.name, arguments)
    # Repairing emb.db.small (above) removed its own leftovers.
    assert not (folder / ".emb.db.small.hnsw.0badc0de.faiss.tmp").exists()
    assert not (folder / "emb.db.small.sq8.0badc0de.faiss").exists()
    with Store.open(big) as one, Store.open(small) as two:
        assert len(one) == 2000 and len(two) == 1000
        assert one.nearest("king", k=3).neighbours and two.nearest(two.vocabulary()[5], k=3).neighbours


def test_a_file_another_writer_is_writing_is_never_taken_for_a_leftover(small, run):
    db, _ = small
    busy = db.with_name(f".{db.name}.hnsw.0123abcd.faiss.tmp")
    busy.write_bytes(b"being written")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX);"
        "print('locked', flush=True); sys.stdin.read()"), str(busy)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert check_store(db).leftovers == []
        for arguments in (("delete", "the"), ("index", "build", "--kind", "sq8", "--no-bench"), ("repair",),
                          ("load", db.with_name("base.txt"), "--replace")):
            result = run(*arguments, "--db", db)
            assert result.exit_code == 0, (arguments, result.output)
            assert busy.read_bytes() == b"being written", arguments
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert [p.name for p in check_store(db).leftovers] == [busy.name]  # its writer is gone: now it is one
    assert run("repair", "--db", db).exit_code == 0
    assert not busy.exists() and check_store(db).ok


# -- 6. a --db that is a symbolic link --------------------------------------------------------


def test_a_db_symlink_writes_beside_the_real_catalog(tmp_path, sample_lines, run):
    real_dir, link_dir = tmp_path / "real", tmp_path / "links"
    real, source = make_store(real_dir, sample_lines[:1000], name="emb.db")
    link_dir.mkdir()
    link = link_dir / "emb.db"
    link.symlink_to(os.path.relpath(real, link_dir))
    values = [str(v) for v in np.linspace(0.1, 1, 50)]
    commands = [("index", "build", "--kind", "sq8", "--no-bench"), ("delete", "the"), ("add", "zzznew", *values),
                ("rename", "of", "of_renamed"), ("index", "build", "--kind", "hnsw", "--m", "8", "--no-bench"),
                ("index", "drop", "sq8"), ("repair",), ("load", source, "--replace"),
                ("index", "build", "--kind", "sq8", "--no-bench")]
    for arguments in commands:
        result = run(*arguments, "--db", link)
        assert result.exit_code == 0, (arguments, result.output)
        assert sorted(p.name for p in link_dir.iterdir()) == ["emb.db"] and link.is_symlink(), arguments
        assert check_store(link).ok and check_store(real).ok, arguments
    with Store.open(link) as store:
        assert store.info().path == str(real)
        assert {Path(index["file"]).parent for index in store.info().indexes} == {real_dir}
        assert len(store) == 1000 and "sq8" in {index["kind"] for index in store.info().indexes}
    assert any(p.name.startswith("emb.db.sq8.") for p in real_dir.iterdir())
    # A link to a store that does not exist yet: the load creates it at the link's target.
    dangling = link_dir / "new.db"
    dangling.symlink_to(real_dir / "new.db")
    assert run("load", source, "--db", dangling).exit_code == 0
    assert dangling.is_symlink() and (real_dir / "new.db").is_file()
    assert sorted(p.name for p in link_dir.iterdir()) == ["emb.db", "new.db"]
    assert any(p.name.startswith("new.db.exact.") for p in real_dir.iterdir())


# -- 7. export never overwrites the store or a non-regular file --------------------------------


def test_export_refuses_the_stores_own_files_and_non_regular_outputs(small, tmp_path, sample_lines):
    db, _ = small
    with Store.open(db) as setup:
        setup.build_index("sq8")
    # Another process holds the store open, so that its -wal and -shm files exist.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from embstore import Store; s = Store.open(sys.argv[1]); s.nearest('king');"
        "print('open', flush=True); sys.stdin.read()"), str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        assert (tmp_path / "s.db-wal").exists() and (tmp_path / "s.db-shm").exists()
        (tmp_path / "folder").mkdir()
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        (tmp_path / "alias.txt").symlink_to("s.db")
        exact = index_path(db, "exact").name
        sq8 = index_path(db, "sq8").name
        targets = ["s.db", "./s.db", str(db), "s.db-wal", "s.db-shm", exact, sq8, "s.db.hnsw.0123abcd.faiss",
                   "alias.txt", "folder", str(fifo), "/dev/null"]
        kept = {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
                for name in ("s.db", "s.db-wal", exact, sq8)}
        for target in targets:
            code, out, err = cli("export", target, "--format", "glove", "--db", "s.db", cwd=tmp_path, timeout=30)
            errors = [line for line in err.splitlines() if line.startswith("Error:")]
            # A directory is refused by click's own argument check (dir_okay=False) before embstore's,
            # as a usage error: exit code 2 and a 'Usage:' line. Refused all the same; see the report.
            expected_code = (1, 2) if target == "folder" else (1,)
            assert code in expected_code and len(errors) == 1 and "Traceback" not in err, (target, code, err)
            assert out == "", target
            assert {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in kept} == kept, target
            assert not (tmp_path / "s.db.hnsw.0123abcd.faiss").exists()
        assert (tmp_path / "folder").is_dir() and os.listdir(tmp_path / "folder") == []
        with Store.open(db) as store:  # the library refuses them itself, whatever the command line checks
            for target in ("s.db", "s.db-wal", exact, "folder", fifo, "/dev/null"):
                with pytest.raises(StoreError, match="refusing to export"):
                    store.export(target if isinstance(target, Path) or target.startswith("/") else tmp_path / target,
                                 "glove")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert check_store(db).ok


def test_export_to_stdout_writes_only_the_vectors(small, sample_lines, tmp_path):
    db, _ = small
    code, out, err = cli("export", "-", "--format", "glove", "--db", db)
    assert code == 0, err
    lines = out.splitlines()
    words, rows = parse(sample_lines[:3000])
    assert [line.split(" ", 1)[0] for line in lines[:3000]] == words
    _, exported = parse([line + "\n" for line in lines[:3000]])
    np.testing.assert_allclose(exported, rows, rtol=1e-5, atol=1e-5)
    # Standard output is the export itself: nothing else may be written to it, or it does not
    # load back. (embstore prints its 'Wrote N words to' message there, after the vectors.)
    assert lines[3000:] == [], lines[3000:]
    copy = tmp_path / "copy.txt"
    copy.write_text(out, encoding="utf-8")
    code, _, err = cli("load", copy, "--db", tmp_path / "copy.db")
    assert code == 0, err


# -- 8. a bare string is never read as a list of its letters -------------------------------------


def test_methods_taking_several_words_refuse_a_bare_string(small, tmp_path):
    db, _ = small
    before = catalog_state(db)
    out = tmp_path / "out.txt"
    with Store.open(db) as store:
        assert {"a", "i", "1"} <= set(store.vocabulary())
        calls = {
            "delete_words": lambda: store.delete_words("ai1"),
            "delete_words bytes": lambda: store.delete_words(b"ai1"),
            "add_words": lambda: store.add_words("xyz", np.ones((3, 50), dtype=np.float32)),
            "nearest_many": lambda: store.nearest_many("king"),
            "resolve_many": lambda: store.resolve_many("king"),
            "most_similar positive": lambda: store.most_similar(positive="king"),
            "most_similar negative": lambda: store.most_similar(positive=["king"], negative="man"),
            "doesnt_match": lambda: store.doesnt_match("king"),
            "analogy_many string": lambda: store.analogy_many("man"),
            "analogy_many one triple": lambda: store.analogy_many(("man", "king", "woman")),
            "export": lambda: store.export(out, "glove", words="king"),
            "iter_vectors": lambda: list(store.iter_vectors(words="king")),
        }
        refused = {}
        for name, call in calls.items():
            try:
                call()
            except TypeError:
                refused[name] = True
            else:
                refused[name] = False
        assert all(refused.values()), [name for name, ok in refused.items() if not ok]
        assert len(store) == 3000 and all(w in store for w in ("a", "i", "1"))
    assert catalog_state(db) == before
    assert not out.exists()
    assert check_store(db).ok


# -- 9. repair never drops changes silently ---------------------------------------------------


def damage_rows(db: Path, how: str) -> None:
    exact = index_path(db, "exact")
    if how == "missing":
        exact.unlink()
    else:
        data = bytearray(exact.read_bytes())
        data[len(data) // 2: len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2: len(data) // 2 + 64])
        exact.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
@pytest.mark.parametrize("how", ["library", "cli"])
def test_repair_of_the_rows_refuses_to_drop_changes_unless_told(small, sample_lines, run, damage, how):
    db, _ = small
    words, _ = parse(sample_lines[:3000])
    with Store.open(db) as store:
        store.build_index("hnsw", **SMALL_HNSW)
        store.add_words(["zzznew1", "zzznew2"], np.random.default_rng(3).standard_normal((2, 50)))
        store.delete_words(["queen", "paris", "water"])
        store.rename_word("king", "kingly")
    damage_rows(db, damage)
    assert not check_store(db).ok
    before_files, before = files_beside(db), catalog_state(db)
    if how == "library":
        report = repair_store(db)
        remaining = " ".join(report.remaining)
        assert not any("reloaded" in action for action in report.actions), report.actions
    else:
        result = run("repair", "--db", db)
        assert result.exit_code == 1
        remaining = result.output
    for counted in ("2 added", "3 deleted", "1 renamed", "discard"):
        assert counted in remaining, remaining
    after = catalog_state(db)
    assert files_beside(db) == before_files
    assert after["words"] == before["words"] and after["indexes"] == before["indexes"]
    changed_meta = {k for k in set(after["meta"]) | set(before["meta"]) if after["meta"].get(k) != before["meta"].get(k)}
    assert changed_meta <= {"generation"}, changed_meta
    if how == "library":
        report = repair_store(db, discard_changes=True)
        assert any("reloaded" in action for action in report.actions) and not report.remaining, report
    else:
        result = run("repair", "--discard-changes", "--db", db)
        assert result.exit_code == 0, result.output
    report = check_store(db)
    assert report.ok and not report.stale, report.problems
    with Store.open(db) as store:
        assert list(store) == words  # the source as loaded: the changes were discarded, as asked
        assert not store.nearest("king", index="hnsw").notes  # the approximate index was rebuilt
        assert store.info().changes_since_load == {"added": 0, "deleted": 0, "replaced": 0, "renamed": 0}


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_repair_reloads_damaged_rows_by_itself_when_nothing_changed_since_the_load(small, sample_lines, damage):
    db, _ = small
    words, rows = parse(sample_lines[:3000])
    with Store.open(db) as store:
        store.build_index("sq8")
    damage_rows(db, damage)
    report = repair_store(db)
    assert any("reloaded" in action for action in report.actions) and not report.remaining, report
    assert check_store(db).ok
    with Store.open(db) as store:
        assert list(store) == words and not store.nearest("king", index="sq8").notes
        np.testing.assert_allclose(store.vector("king"), rows[words.index("king")], rtol=1e-5, atol=1e-6)


def test_rank_damage_and_a_dangling_default_are_found_and_fixed_in_place(small, run):
    db, _ = small
    with Store.open(db) as store:
        store.rename_word("king", "kingly")  # a change since the load that a reload would lose
        store.build_index("hnsw", **SMALL_HNSW)
        store.set_default_index("hnsw")
        store.drop_index("hnsw")
        assert store.index_kind(None) == "exact"
    assert "default_index" not in catalog_state(db)["meta"]
    sql(db, "UPDATE words SET rank = rank + 1 WHERE id = 5",
        "INSERT INTO meta(key, value) VALUES ('default_index', 'hnsw') "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
    report = check_store(db)
    assert not report.ok and {"ranks", "default"} <= report.damaged, report.problems
    assert any("rank" in p for p in report.problems) and any("'hnsw' does not exist" in p for p in report.problems)
    assert run("check", "--db", db).exit_code == 1
    with Store.open(db) as store:  # queries still work, from the exact rows, and say why
        asked = store.nearest("queen", k=5)
        assert answers(asked) == answers(store.nearest("queen", k=5, index="exact"))
        assert any("default index hnsw does not exist" in note for note in asked.notes)
    repaired = repair_store(db)
    assert not repaired.remaining, repaired
    assert not any("reloaded" in action for action in repaired.actions), repaired.actions
    report = check_store(db)
    assert report.ok, report.problems
    state = catalog_state(db)
    assert "default_index" not in state["meta"] and all(row[0] == row[2] for row in state["words"])
    with Store.open(db) as store:
        assert "kingly" in store and "king" not in store  # the change since the load survived
        assert not store.nearest("queen", k=5).notes


# -- 10. 'index default hnsw' racing 'index drop hnsw' -----------------------------------------


def test_default_index_racing_its_drop_never_leaves_a_dangling_default(small, run):
    db, _ = small
    with Store.open(db) as setup:
        setup.build_index("hnsw", **SMALL_HNSW)
    first, second = Store.open(db), Store.open(db)
    try:
        first.drop_index("hnsw")
        assert "hnsw" in {index["kind"] for index in second.info().indexes}  # still its generation
        with pytest.raises(QueryError, match="no hnsw index"):
            second.set_default_index("hnsw")
        assert "default_index" not in catalog_state(db)["meta"] and check_store(db).ok
        assert second.index_kind(None) == "exact" and not second.nearest("king").notes
        # The other order: the default is set, then a writer that read an older generation drops it.
        first.build_index("hnsw", **SMALL_HNSW)
        second.refresh()
        third = Store.open(db)
        try:
            second.set_default_index("hnsw")
            third.drop_index("hnsw")
        finally:
            third.close()
        assert "default_index" not in catalog_state(db)["meta"] and check_store(db).ok
        second.refresh()
        assert second.index_kind(None) == "exact" and not second.nearest("king").notes
    finally:
        first.close()
        second.close()
    result = run("index", "default", "hnsw", "--db", db)
    assert result.exit_code == 1 and "no hnsw index" in result.output
    # And as two real processes started together, a few times.
    for _ in range(2):
        with Store.open(db) as store:
            store.build_index("hnsw", **SMALL_HNSW)
        racers = [subprocess.Popen([sys.executable, "-m", "embstore_cli", *arguments, "--db", str(db)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for arguments in (["index", "default", "hnsw"], ["index", "drop", "hnsw"])]
        outcomes = [(r.wait(timeout=60), r.stderr.read()) for r in racers]
        assert outcomes[1][0] == 0, outcomes
        assert outcomes[0][0] == 0 or "no hnsw index" in outcomes[0][1], outcomes
        assert "Traceback" not in outcomes[0][1] + outcomes[1][1]
        report = check_store(db)
        assert report.ok and "default_index" not in catalog_state(db)["meta"], report.problems


@pytest.mark.parametrize("failure", ["damaged", "interrupted"])
def test_a_refresh_that_fails_leaves_the_reader_whole_on_its_generation(small, failure, monkeypatch):
    """The newest generation is opened beside the old one and swapped in only when whole: a
    damaged file or a Ctrl-C half-way leaves the reader answering its own generation."""
    db, _ = small
    reader = Store.open(db)
    try:
        before = (answers(reader.nearest("king", k=5)), reader.similarity("king", "queen"), len(reader))
        with Store.open(db) as writer:
            writer.delete_words(["the", ",", ".", "of", "to"])
        if failure == "damaged":
            exact = index_path(db, "exact")
            data = bytearray(exact.read_bytes())
            data[-7] ^= 0xFF
            exact.write_bytes(bytes(data))
            with pytest.raises(StoreError):
                reader.refresh()
        else:
            from embstore.storage import store_files

            def interrupted(*args, **kwargs):
                raise KeyboardInterrupt

            monkeypatch.setattr(store_files.StoreFiles, "_read_rows", classmethod(interrupted))
            with pytest.raises(KeyboardInterrupt):
                reader.refresh()
            monkeypatch.undo()
        assert (answers(reader.nearest("king", k=5)), reader.similarity("king", "queen"), len(reader)) == before
        assert "the" in reader and reader.vocabulary()[0] == "the"
        if failure == "interrupted":
            assert reader.refresh() and "the" not in reader and len(reader) == before[2] - 5
    finally:
        reader.close()
