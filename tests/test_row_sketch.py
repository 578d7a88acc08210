"""The rows' sketch (``load --sketch``): its bound holds for any rows, and a sketched store answers
exactly what the full scan, gensim and a float64 brute force answer, whatever the rows, the query,
the damage or the changes made since."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embstore import CatalogMismatchError, Store, StoreError
from embstore import row_sketch
from embstore.row_norms import row_norms
from embstore.search import engine
from embstore.storage import index_files
from embstore.storage.check import check_store

DIMENSION = 160


def write_w2v_binary(path: Path, words: list[str], rows: np.ndarray) -> None:
    with open(path, "wb") as out:
        out.write(f"{len(words)} {rows.shape[1]}\n".encode())
        for word, row in zip(words, rows.astype("<f4")):
            out.write(word.encode() + b" " + row.tobytes() + b"\n")


def lifted_rows(small_matrix, count: int, dimension: int = DIMENSION, seed: int = 3) -> np.ndarray:
    """GloVe's real rows lifted to ``dimension`` by a fixed random map, plus noise (the benchmark's recipe)."""
    rng = np.random.default_rng(seed)
    glove = small_matrix[1][:count].astype(np.float64)
    lifted = glove @ rng.standard_normal((glove.shape[1], dimension)) / np.sqrt(glove.shape[1])
    return (lifted + 0.3 * rng.standard_normal(lifted.shape) * np.abs(lifted).mean()).astype(np.float32)


@pytest.fixture(scope="module")
def twin_stores(tmp_path_factory, small_matrix):
    """The same 20,000 lifted GloVe rows (with exact ties and a far longer copy) as a plain store and a
    sketched one, and a gensim view of the file."""
    tmp = tmp_path_factory.mktemp("sketch")
    words = small_matrix[0]
    rows = lifted_rows(small_matrix, len(words))
    rows[101] = rows[100]  # identical rows: ties broken by the lower ID
    rows[102] = rows[100] * 1000  # same direction, far longer
    write_w2v_binary(tmp / "v.bin", words, rows)  # a header count: the writer hashes ahead
    Store.load(tmp / "v.bin", tmp / "plain.db")
    Store.load(tmp / "v.bin", tmp / "sketched.db", sketch=True)
    return tmp, words, rows


def brute_force(rows: np.ndarray, query: np.ndarray, k: int, skip=()) -> list[int]:
    unit = rows.astype(np.float64) / np.linalg.norm(rows.astype(np.float64), axis=1)[:, None]
    scores = unit @ (query / np.linalg.norm(query))
    scores[list(skip)] = -np.inf
    return list(np.argsort(-scores, kind="stable")[:k])


def rescored_counts(monkeypatch) -> list[int]:
    """How many rows each exact query scored in full (``engine._rescored``'s candidates)."""
    seen: list[int] = []
    original = engine._rescored

    def counting(rows, norms, query, candidates, fetch):
        seen.append(len(candidates))
        return original(rows, norms, query, candidates, fetch)

    monkeypatch.setattr(engine, "_rescored", counting)
    return seen


def test_a_sketched_store_answers_exactly_as_the_full_scan_and_gensim(twin_stores, monkeypatch):
    tmp, words, rows = twin_stores
    from gensim.models import KeyedVectors

    theirs = KeyedVectors.load_word2vec_format(str(tmp / "v.bin"), binary=True)
    seen = rescored_counts(monkeypatch)
    rng = np.random.default_rng(8)
    with Store.open(tmp / "plain.db") as plain, Store.open(tmp / "sketched.db") as sketched:
        assert sketched.searcher._sketch is not None and plain.searcher._sketch is None
        for word in [words[i] for i in rng.choice(len(words), 40, replace=False)] + [words[100], words[101]]:
            for k in (1, 10, 50):
                seen.clear()
                mine = sketched.nearest(word, k=k)
                assert len(seen) == 3 and seen[-1] < len(words) // 8  # probe, first look, then few rows: not all
                assert mine == plain.nearest(word, k=k), (word, k)
                gensim = theirs.most_similar(word, topn=k)
                assert [n.score for n in mine.neighbours] == pytest.approx([s for _, s in gensim], abs=1e-6)
                for neighbour, (theirs_word, _) in zip(mine.neighbours, gensim):  # the same, or a tie in float32
                    assert neighbour.word == theirs_word or \
                        abs(theirs.similarity(word, theirs_word) - neighbour.score) < 1e-6
        tie = sketched.nearest(words[100], k=2).words()
        assert tie == [words[101], words[102]]  # the lower ID first, as the full scan orders them
        for restrict in (500, 5000):
            assert sketched.nearest(words[3], k=10, restrict=restrict) == plain.nearest(words[3], k=10, restrict=restrict)
        for _ in range(5):
            vector = rng.standard_normal(DIMENSION).astype(np.float32)
            assert sketched.nearest_to_vector(vector, k=10) == plain.nearest_to_vector(vector, k=10)
            assert sketched.nearest_to_vector(vector, k=10).words() == [words[i] for i in brute_force(rows, vector, 10)]
        for positive, negative in ((["king", "woman"], ["man"]), (["paris"], []), (["good", "better"], ["bad"])):
            assert sketched.most_similar(positive, negative, k=10) == plain.most_similar(positive, negative, k=10)
        assert sketched.analogy("man", "king", "woman") == plain.analogy("man", "king", "woman")
        assert sketched.nearest("king", k=len(words) + 5) == plain.nearest("king", k=len(words) + 5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rank=st.sampled_from([2, 8, 40, 160]), scale=st.sampled_from([1e-20, 1.0, 1e18]),
       query_row=st.booleans())
def test_the_bound_holds_for_any_rows_and_queries(seed, rank, scale, query_row):
    """Low-rank rows (a tight sketch) to full-rank noise (a loose one), tiny and huge lengths, odd rows
    near 1e-22 whose squares are subnormal: every row's float64 cosine is within the bound."""
    rng = np.random.default_rng(seed)
    n, d = 600, 128
    rows = (rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) + 0.05 * rng.standard_normal((n, d)))
    rows = (rows * rng.uniform(0.1, 10, (n, 1)) * scale).astype(np.float32)
    rows[0] = 0
    rows[0, 0] = 3e-22  # a one-hot row whose square is subnormal
    norms = row_norms(rows)  # the store's lengths (float64 where float32 underflows or overflows)
    unit = np.divide(rows, norms[:, None])
    basis = row_sketch.directions(unit[::3])
    orthogonality, column = row_sketch.basis_error(basis)
    projections, residuals, (leak, longest, widest) = row_sketch.sketch_block(rows, norms, basis, orthogonality, column)
    sketch = row_sketch.Sketch(basis, projections, residuals, leak, longest, widest)  # (held: for people only)
    query = unit[rng.integers(n)] if query_row else rng.standard_normal(d).astype(np.float32)
    query = engine.unit(query)
    bound, slack = row_sketch.bounds(sketch, query, n)
    cosines = unit.astype(np.float64) @ query.astype(np.float64)
    assert (cosines <= bound.astype(np.float64) + slack).all()


def test_a_poor_basis_still_gives_exact_answers(tmp_path, small_matrix, monkeypatch):
    """The bound holds for any stored basis: directions chosen at random only cost speed."""
    rng = np.random.default_rng(4)
    words, rows = small_matrix[0][:3000], lifted_rows(small_matrix, 3000, 128)
    write_w2v_binary(tmp_path / "v.bin", words, rows)
    Store.load(tmp_path / "v.bin", tmp_path / "plain.db")
    monkeypatch.setattr(row_sketch, "directions", lambda sample, width=row_sketch.WIDTH: np.linalg.qr(
        rng.standard_normal((sample.shape[1], width)))[0].astype(np.float32))
    Store.load(tmp_path / "v.bin", tmp_path / "random.db", sketch=True)
    with Store.open(tmp_path / "plain.db") as plain, Store.open(tmp_path / "random.db") as sketched:
        assert sketched.searcher._sketch is not None
        for word in words[::150]:
            assert sketched.nearest(word, k=10) == plain.nearest(word, k=10)


def test_isotropic_rows_fall_back_to_the_full_scan_with_the_same_answers(tmp_path, monkeypatch):
    """Full-rank noise: the probe of every 64th row sees the sketch would rule out too little."""
    rng = np.random.default_rng(6)
    n = 66_000
    rows = rng.standard_normal((n, 128)).astype(np.float32)
    words = [f"w{i}" for i in range(n)]
    write_w2v_binary(tmp_path / "v.bin", words, rows)
    report = Store.load(tmp_path / "v.bin", tmp_path / "s.db", sketch=True)
    assert any("directions hold only" in note and "sketch --drop" in note for note in report.notes), report.notes
    seen = rescored_counts(monkeypatch)
    with Store.open(tmp_path / "s.db") as store:
        for i in (0, 777, 65_999):
            seen.clear()
            assert store.nearest(words[i], k=10).words() == [words[j] for j in brute_force(rows, rows[i], 10, {i})]
            assert len(seen) == 2 and seen[1] < 100  # the probe's few rows, then the full scan's near-ties
        for i in (65_599, 65_984):  # restricted to the first rows: the probe reads only those (or it failed)
            assert store.nearest(words[i], k=10, restrict=65_600).words() == \
                [words[j] for j in brute_force(rows[:65_600], rows[i], 10, {i} - {65_984})]


def test_changes_keep_the_sketch_and_its_answers_exact(twin_stores, tmp_path):
    source, words, rows = twin_stores
    for name in ("plain.db", "sketched.db"):
        for file in source.iterdir():
            if file.name.startswith(name):
                shutil.copy(file, tmp_path / file.name)
    rng = np.random.default_rng(9)
    new = rng.standard_normal((3, DIMENSION)).astype(np.float32)
    for name in ("plain.db", "sketched.db"):
        with Store.open(tmp_path / name) as store:
            store.add_words(["new0", "new1", "new2"], new)
            store.delete_words([words[5], words[6]])
            store.rename_word(words[7], "renamed_word_x")
    with Store.open(tmp_path / "plain.db") as plain, Store.open(tmp_path / "sketched.db") as sketched:
        assert sketched.searcher._sketch is not None
        for word in ["new0", "new2", "renamed_word_x", words[8], words[100]]:
            assert sketched.nearest(word, k=10) == plain.nearest(word, k=10)
    assert check_store(tmp_path / "sketched.db").ok


def sketched_file(db: Path) -> Path:
    return next(db.parent.glob(db.name + ".exact.*.faiss"))


def test_the_file_is_layout_3_and_check_covers_the_sketch(twin_stores, tmp_path, run):
    source = twin_stores[0]
    db = copy_store(source, "sketched.db", tmp_path)
    path = sketched_file(db)
    header = index_files.HEADER.unpack(path.read_bytes()[:index_files.HEADER.size])
    rows = 20_000
    assert header[1] == index_files.SKETCHED_LAYOUT and header[6] == index_files.sketch_offset(rows, DIMENSION)
    assert path.stat().st_size == index_files.rows_file_size(rows, DIMENSION, sketched=True)
    assert index_files.sketch_offset(rows, DIMENSION) % 64 == 0
    assert check_store(db).ok
    shown = run("info", "--db", db).output
    assert "sketch          64 directions a row, holding 9" in shown and "(5.0 MiB): single exact queries read it" \
        in shown, shown
    assert "\nsketch " not in run("info", "--db", source / "plain.db").output
    with open(path, "r+b") as handle:  # one residual bound in the middle made smaller
        handle.seek(index_files.sketch_offset(rows, DIMENSION) + 4 * 64 * (DIMENSION + rows) + 4 * 9000)
        handle.write(struct.pack("<f", 0.0))
    report = check_store(db)
    assert not report.ok and any("checksum" in problem for problem in report.problems), report.problems
    result = run("check", "--db", db)
    assert result.exit_code == 1


SKETCH_NOTE = "the rows' sketch cannot be used"


@pytest.mark.parametrize("damage", ["nan", "zeroed half", "scaled down", "zeroed basis", "residuals zeroed"])
def test_a_damaged_sketch_is_set_aside_and_every_row_answers_with_a_note(twin_stores, tmp_path, damage):
    """Damage the fingerprint of the file's ends does not cover: the answers stay those of the plain
    store, and say why every row was read."""
    source, words, _ = twin_stores
    plain = copy_store(source, "plain.db", tmp_path)
    db = copy_store(source, "sketched.db", tmp_path)
    path = sketched_file(db)
    rows = 20_000
    start = index_files.sketch_offset(rows, DIMENSION)
    projections_at = start + 4 * 64 * DIMENSION
    residuals_at = projections_at + 4 * 64 * rows
    with open(path, "r+b") as handle:
        if damage == "nan":  # some rows' projections: their bounds are no numbers
            handle.seek(projections_at + 4 * 64 * 500)
            handle.write(np.full(64 * 10, np.nan, dtype="<f4").tobytes())
        elif damage == "zeroed half":  # the first half's projections
            handle.seek(projections_at)
            handle.write(bytes(4 * 64 * rows // 2))
        elif damage == "scaled down":  # every projection halved: bounds too low, no NaN
            handle.seek(projections_at)
            values = np.frombuffer(handle.read(4 * 64 * rows), dtype="<f4") / 2
            handle.seek(projections_at)
            handle.write(values.astype("<f4").tobytes())
        elif damage == "zeroed basis":
            handle.seek(start)
            handle.write(bytes(4 * 64 * DIMENSION))
        else:  # residuals of rows 1000-2999 (before the ends covered by the fingerprint)
            handle.seek(residuals_at + 4 * 1000)
            handle.write(bytes(4 * 2000))
    with Store.open(plain) as expected, Store.open(db) as store:
        for word in (words[500], words[1500], words[3], words[100], words[12_000]):
            answer = store.nearest(word, k=10)
            assert answer.neighbours == expected.nearest(word, k=10).neighbours
            assert any(SKETCH_NOTE in note and "embstore repair" in note for note in answer.notes), answer.notes
        vector = np.ones(DIMENSION, dtype=np.float32)
        assert store.nearest_to_vector(vector, k=5).neighbours == expected.nearest_to_vector(vector, k=5).neighbours
    report = check_store(db)
    assert not report.ok and any("checksum" in problem for problem in report.problems)


def test_a_damaged_trailer_sets_the_sketch_aside_when_opened(twin_stores, tmp_path):
    source, words, _ = twin_stores
    db = copy_store(source, "sketched.db", tmp_path)
    path = sketched_file(db)
    size = path.stat().st_size
    with open(path, "r+b") as handle:  # the trailer's leak made NaN
        handle.seek(size - index_files.SKETCH_TRAILER.size + 24)
        handle.write(struct.pack("<d", float("nan")))
    with pytest.raises(CatalogMismatchError, match="not the file the catalog recorded"):  # the ends' fingerprint
        Store.open(db)
    opened = index_files.open_exact_rows(path, rows=20_000, size=size, checksum=None, dimension=DIMENSION)
    assert opened.sketch is None and opened.sketch_problem == "its trailer is damaged"  # without it


def test_bad_sketch_requests_get_one_clear_error(tmp_path, glove_small, run):
    result = run("load", glove_small, "--db", tmp_path / "a.db", "--sketch")
    assert result.exit_code == 1 and "at least 128 dimensions" in result.output and "without --sketch" in result.output
    assert not (tmp_path / "a.db").exists()
    with pytest.raises(StoreError, match="choose one of the two"):
        Store.load(glove_small, tmp_path / "b.db", sketch=True, storage="sq8")
    Store.load(glove_small, tmp_path / "c.db")
    result = run("load", glove_small, "--db", tmp_path / "c.db", "--append", "--sketch")
    assert result.exit_code == 2 and "'embstore sketch' adds one afterwards" in result.output


def test_a_reload_by_repair_keeps_the_sketch(twin_stores, tmp_path):
    source = twin_stores[0]
    db = copy_store(source, "sketched.db", tmp_path)
    path = sketched_file(db)
    with open(path, "r+b") as handle:
        handle.seek(index_files.ROWS_OFFSET + 4 * 1000)
        handle.write(b"\x01\x02\x03\x04")
    from embstore.repair import repair_store

    repair_store(db)
    assert check_store(db).ok
    with Store.open(db) as store:
        assert store.searcher._sketch is not None


def copy_store(source: Path, name: str, into: Path) -> Path:
    for file in source.iterdir():
        if file.name.startswith(name):
            shutil.copy(file, into / file.name)
    return into / name


def test_sketch_can_be_added_to_and_removed_from_a_loaded_store(twin_stores, tmp_path, run):
    """The rows and their indexes stay; the answers stay; a reload by repair keeps what was chosen."""
    source, words, _ = twin_stores
    db = copy_store(source, "plain.db", tmp_path)
    probes = [words[i] for i in (0, 100, 4321, 19_999)]
    with Store.open(db) as store:
        before = [store.nearest(word, k=10) for word in probes]
        store.build_index("sq8")
        assert not store.sketched
        assert store.set_sketch() is True and store.sketched
        assert store.set_sketch() is False
        assert [store.nearest(word, k=10) for word in probes] == before
        assert not any(index["stale"] for index in store.info().indexes)
    assert check_store(db).ok
    header = index_files.HEADER.unpack(sketched_file(db).read_bytes()[:index_files.HEADER.size])
    assert header[1] == index_files.SKETCHED_LAYOUT
    with open(sketched_file(db), "r+b") as handle:  # damaged rows: repair reloads the source, with the sketch
        handle.seek(index_files.ROWS_OFFSET + 4 * 777)
        handle.write(b"\x01\x02\x03\x04")
    from embstore.repair import repair_store

    repair_store(db)
    with Store.open(db) as store:
        assert store.sketched and [store.nearest(word, k=10) for word in probes] == before
    result = run("sketch", "--drop", "--db", db)
    assert result.exit_code == 0 and result.output == "Removed the sketch\n"
    assert run("sketch", "--drop", "--db", db).output == "The store has no sketch; nothing was changed\n"
    with Store.open(db) as store:
        assert not store.sketched and [store.nearest(word, k=10) for word in probes] == before
    header = index_files.HEADER.unpack(sketched_file(db).read_bytes()[:index_files.HEADER.size])
    assert header[1] == index_files.ROWS_LAYOUT
    result = run("sketch", "--db", db)
    assert result.exit_code == 0 and result.output.startswith(f"Wrote the sketch of 20,000 rows of {DIMENSION}, holding ")
    assert check_store(db).ok


def test_sketch_of_a_store_it_cannot_help_is_one_clear_error(store_copy, run):
    result = run("sketch", "--db", store_copy)
    assert result.exit_code == 1 and "at least 128 dimensions" in result.output and "Traceback" not in result.output


def test_a_killed_sketch_leaves_the_store_without_it_or_with_a_whole_one(twin_stores, tmp_path):
    """SIGKILL at random moments of `embstore sketch`: the store opens, check passes, and it has
    the old file or the whole new one, with the same answers."""
    import random
    import subprocess
    import sys
    import time

    source, words, _ = twin_stores
    with Store.open(source / "plain.db") as store:
        expected = store.nearest(words[42], k=10)
    command = [str(Path(sys.executable).with_name("embstore")), "sketch", "--db"]
    rng = random.Random(7)
    outcomes = []
    for trial in range(8):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        db = copy_store(source, "plain.db", folder)
        process = subprocess.Popen([*command, str(db)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if trial:
            time.sleep(rng.uniform(0.2, 1.5))
            process.kill()
        process.wait(timeout=120)  # the first one runs to the end
        report = check_store(db)
        assert report.ok or all("leftover" in note for note in report.notes), report.problems
        with Store.open(db) as store:
            outcomes.append(store.sketched)
            assert store.nearest(words[42], k=10) == expected
    assert False in outcomes and True in outcomes, outcomes  # kills before the commit, and runs that finished


def test_every_command_is_listed_for_the_lazy_loader():
    """The CLI imports a command's module only when the command is named (``COMMAND_MODULES``): a
    command missing there exists only once another test has imported its module."""
    import importlib
    import pkgutil

    import embstore_cli
    from embstore_cli.main import COMMAND_MODULES, cli

    for module in pkgutil.iter_modules(embstore_cli.__path__):
        if module.name != "__main__":  # (that one runs the CLI)
            importlib.import_module(f"embstore_cli.{module.name}")
    assert set(cli.commands) == set(COMMAND_MODULES)
    for name, module in COMMAND_MODULES.items():
        assert cli.commands[name].callback.__module__ == f"embstore_cli.{module}", name


def test_a_change_or_a_sketch_never_rewrites_damaged_rows_under_a_fresh_checksum(twin_stores, tmp_path, run):
    """A row damaged on disk (past the file's fingerprinted ends): rewriting every row would record
    a new SHA-256 over it, and check would then pass. The write refuses and changes nothing."""
    source, words, _ = twin_stores
    db = copy_store(source, "plain.db", tmp_path)
    with open(sketched_file(db), "r+b") as handle:
        handle.seek(index_files.ROWS_OFFSET + 4 * DIMENSION * 10_000)
        handle.write(np.full(DIMENSION, 7.0, dtype="<f4").tobytes())
    for arguments in (["sketch"], ["delete", words[3]]):
        result = run(*arguments, "--db", db)
        assert result.exit_code == 1, result.output
        assert "does not match its checksum: the rows are damaged" in result.output and "nothing was changed" in result.output
    with Store.open(db) as store:
        with pytest.raises(CatalogMismatchError, match="would write them again as they are"):
            store.add_words(["fresh_word_x"], np.ones((1, DIMENSION), dtype=np.float32))
        assert len(store) == 20_000 and not store.sketched
    assert not check_store(db).ok  # still found


@pytest.mark.parametrize("damage", ["basis", "trailer", "truncated"])
def test_repair_writes_a_damaged_sketch_again_from_intact_rows_without_the_source(twin_stores, tmp_path, damage):
    """The record keeps the SHA-256 of the file's part before the sketch: check tells a damaged
    sketch from damaged rows, and repair mends the sketch with no reload (the source is gone)."""
    source, words, _ = twin_stores
    plain = copy_store(source, "plain.db", tmp_path)
    (tmp_path / "src").mkdir()
    shutil.copy(source / "v.bin", tmp_path / "src" / "v.bin")
    Store.load(tmp_path / "src" / "v.bin", tmp_path / "s.db", sketch=True)
    (tmp_path / "src" / "v.bin").unlink()
    db = tmp_path / "s.db"
    with Store.open(db) as store:
        store.delete_words([words[19_999]])  # a change since the load, which a reload would lose
    path = sketched_file(db)
    size = path.stat().st_size
    start = index_files.sketch_offset(19_999, DIMENSION)
    with open(path, "r+b") as handle:
        if damage == "basis":
            handle.seek(start)
            handle.write(bytes(4 * 64 * DIMENSION))
        elif damage == "trailer":
            handle.seek(size - 40)
            handle.write(b"\xff" * 8)
        else:
            handle.truncate(size - 1000)
    report = check_store(db)
    assert not report.ok and report.damaged == {"sketch"}, report.problems
    assert "the rows before it are intact" in report.problems[0]
    from embstore.repair import repair_store

    repaired = repair_store(db)
    assert any("wrote the rows' sketch again" in action for action in repaired.actions), repaired
    assert not repaired.remaining, repaired.remaining
    assert check_store(db).ok
    with Store.open(db) as store, Store.open(plain) as expected:
        assert store.sketched and len(store) == 19_999
        for word in (words[0], words[100], words[7_777]):
            answer = store.nearest(word, k=10)
            assert not answer.notes and answer.neighbours == expected.nearest(word, k=10).neighbours


def test_damaged_rows_before_the_sketch_are_still_damaged_rows(twin_stores, tmp_path):
    source, words, _ = twin_stores
    db = copy_store(source, "sketched.db", tmp_path)
    with open(sketched_file(db), "r+b") as handle:
        handle.seek(index_files.ROWS_OFFSET + 4 * DIMENSION * 9_000)
        handle.write(b"\x01\x02\x03\x04")
    report = check_store(db)
    assert report.damaged == {"rows"}, report.problems


def test_a_zeroed_page_anywhere_in_the_sketch_is_found_by_the_first_query(tmp_path, small_matrix):
    """One 4 KiB page of projections or residuals zeroed (an ordinary disk fault), at any offset:
    the probe checks every 16th row, so each page holds a row it checks."""
    words, rows = small_matrix[0][:20_000], lifted_rows(small_matrix, 20_000)
    write_w2v_binary(tmp_path / "v.bin", words, rows)
    Store.load(tmp_path / "v.bin", tmp_path / "plain.db")
    Store.load(tmp_path / "v.bin", tmp_path / "s.db", sketch=True)
    seed = sketched_file(tmp_path / "s.db").read_bytes()
    start = index_files.sketch_offset(20_000, DIMENSION)
    projections_at = start + 4 * 64 * DIMENSION
    residuals_at = projections_at + 4 * 64 * 20_000
    with Store.open(tmp_path / "plain.db") as plain:
        # pages holding rows 39-55 and 77-93: no multiple of 19 (the stride a probe of every 64th row
        # would take at 20,000 rows), each a multiple of 16; and a page of residuals
        for page in (projections_at + 39 * 256 + 10, projections_at + 77 * 256 + 10, residuals_at + 4096 * 2):
            damaged = bytearray(seed)
            damaged[page: page + 4096] = bytes(4096)
            sketched_file(tmp_path / "s.db").write_bytes(bytes(damaged))
            first = (page - projections_at) // 256 if page < residuals_at else (page - residuals_at) // 4
            with Store.open(tmp_path / "s.db") as store:
                for row in (first + 2, first + 9):  # words whose own sketch is zeroed
                    answer = store.nearest_to_vector(rows[row], k=3)
                    assert answer.neighbours == plain.nearest_to_vector(rows[row], k=3).neighbours
                    assert any(SKETCH_NOTE in note for note in answer.notes), (page, answer)


def test_a_store_whose_sketch_alone_is_damaged_still_takes_changes_with_a_new_sketch(twin_stores, tmp_path):
    """The rows are intact (their own SHA-256): a change rewrites them with a sketch made anew."""
    source, words, _ = twin_stores
    db = copy_store(source, "sketched.db", tmp_path)
    start = index_files.sketch_offset(20_000, DIMENSION)
    with open(sketched_file(db), "r+b") as handle:
        handle.seek(start + 4 * 64 * DIMENSION + 4096 * 5)
        handle.write(bytes(4096))
    with Store.open(db) as store:
        store.delete_words([words[11]])
        assert store.sketched and not store.nearest(words[12], k=5).notes
    assert check_store(db).ok


def test_a_wrong_record_of_the_rows_checksum_is_found_and_repaired(twin_stores, tmp_path):
    import json
    import sqlite3

    source, words, _ = twin_stores
    db = copy_store(source, "sketched.db", tmp_path)
    with sqlite3.connect(db) as conn:
        params = json.loads(conn.execute("SELECT params FROM index_files WHERE kind = 'exact'").fetchone()[0])
        params["rows_checksum"] = "sha256:" + "0" * 64
        conn.execute("UPDATE index_files SET params = ? WHERE kind = 'exact'", (json.dumps(params),))
    report = check_store(db)
    assert report.damaged == {"sketch"} and "checksum of the rows before the sketch" in report.problems[0]
    from embstore.repair import repair_store

    repaired = repair_store(db)
    assert not repaired.remaining and check_store(db).ok
