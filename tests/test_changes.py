"""add, append, delete and rename leave a store that answers exactly as a fresh load of the result."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from embstore import QueryError, Store, UnknownWordError
from embstore.search.hnsw_links import level0_lists

PROBES = ["king", "water", "paris", "good", "music"]


@pytest.fixture()
def base(tmp_path, sample_lines):
    """A 3,000-word store and the (words, rows) it was loaded from."""
    lines = sample_lines[:3000]
    source = tmp_path / "base.txt"
    source.write_text("".join(lines), encoding="utf-8")
    db = tmp_path / "base.db"
    Store.load(source, db)
    words = [l.split(" ", 1)[0] for l in lines]
    rows = np.array([[float(v) for v in l.split()[1:]] for l in lines], dtype=np.float32)
    return db, words, rows


def fresh_equivalent(tmp_path, words, rows):
    path = tmp_path / "fresh.txt"
    path.write_text("".join(w + " " + " ".join(repr(float(v)) for v in r) + "\n" for w, r in zip(words, rows)),
                    encoding="utf-8")
    db = tmp_path / "fresh.db"
    Store.load(path, db, replace=True)
    return db


def assert_same_answers(changed_db, fresh_db, probes):
    with Store.open(changed_db) as changed, Store.open(fresh_db) as fresh:
        assert list(changed) == list(fresh)
        for word in probes:
            ours = [(n.word, round(n.score, 5)) for n in changed.nearest(word, k=10).neighbours]
            theirs = [(n.word, round(n.score, 5)) for n in fresh.nearest(word, k=10).neighbours]
            assert ours == theirs
            np.testing.assert_allclose(changed.vector(word), fresh.vector(word), rtol=1e-6)
        assert [n.word for n in changed.analogy("man", "king", "woman", k=5).neighbours] == \
               [n.word for n in fresh.analogy("man", "king", "woman", k=5).neighbours]


def test_add_delete_rename_equal_a_fresh_load(tmp_path, base, sample_lines):
    db, words, rows = base
    extra_words = [l.split(" ", 1)[0] for l in sample_lines[5000:5020]]
    extra_rows = np.array([[float(v) for v in l.split()[1:]] for l in sample_lines[5000:5020]], dtype=np.float32)
    with Store.open(db) as store:
        assert store.add_words(extra_words, extra_rows) == {"added": 20, "replaced": 0, "skipped": 0}
        assert store.delete_words(["the", "queen", extra_words[3]]) == 3
        store.rename_word("prince", "princeling")
        replacement = rows[words.index("paris")] * 2 + 0.5
        assert store.add_words(["water"], replacement[None, :], on_duplicate="replace")["replaced"] == 1
    final_words = [w for w in words + extra_words if w not in {"the", "queen", extra_words[3]}]
    final_rows = np.concatenate([rows, extra_rows])[[i for i, w in enumerate(words + extra_words)
                                                     if w not in {"the", "queen", extra_words[3]}]]
    final_words = ["princeling" if w == "prince" else w for w in final_words]
    final_rows[final_words.index("water")] = replacement
    assert_same_answers(db, fresh_equivalent(tmp_path, final_words, final_rows), PROBES + ["princeling"])
    with Store.open(db) as store:
        ids = store.catalog.ids_for_words(final_words)
        assert [ids[w] for w in final_words] == list(range(len(final_words)))  # FAISS IDs = catalog IDs


def test_append_file_with_duplicate_policies(tmp_path, base, sample_lines, run):
    db, words, rows = base
    more = tmp_path / "more.txt"
    more.write_text("".join(sample_lines[2990:3100]), encoding="utf-8")  # 10 old words, 100 new
    refused = run("load", more, "--append", "--on-duplicate", "error", "--db", db)
    assert refused.exit_code == 1 and "already in the store" in refused.output
    result = run("load", more, "--append", "--db", db, "--json")
    assert json.loads(result.output) == {"added": 100, "replaced": 0, "skipped": 10, "words": 3100}
    lines = sample_lines[:3100]
    fresh = fresh_equivalent(tmp_path, [l.split(" ", 1)[0] for l in lines],
                             np.array([[float(v) for v in l.split()[1:]] for l in lines], dtype=np.float32))
    assert_same_answers(db, fresh, PROBES)


def test_approximate_indexes_follow_changes(tmp_path, base, sample_lines):
    db, words, rows = base
    with Store.open(db) as store:
        store.build_index("sq8")
        store.add_words(["newword"], rows[:1] + 1.0)
        record = store.catalog.index_file("sq8")
        assert record.rows == 3001 and not store.info().indexes[1]["stale"]  # appended rows were added
        assert store.nearest_to_vector(rows[0] + 1.0, k=1, index="sq8").neighbours[0].word == "newword"
        store.delete_words(["newword"])
        assert store.info().indexes[1]["stale"]
        stale_file = store.catalog.index_file("sq8").file
        answer = store.nearest("king", k=5, index="sq8")  # answered by the exact rows, nothing is built
        assert answer.neighbours == store.nearest("king", k=5, index="exact").neighbours
        assert any("sq8 index is stale" in note for note in answer.notes)
        assert store.catalog.index_file("sq8").file == stale_file and store.info().indexes[1]["stale"]
        store.build_index("sq8")
        assert not store.info().indexes[1]["stale"] and store.catalog.index_file("sq8").rows == 3000
        assert not store.nearest("king", k=5, index="sq8").notes


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "sq8", "pq"])
def test_added_words_reach_every_index_kind(base, kind):
    db, words, rows = base
    with Store.open(db) as store:
        store.build_index(kind, **({"nlist": 16} if kind == "ivf" else {}))
        store.nearest("king", index=kind)  # opened (memory-mapped) before the change
        store.add_words(["newword"], rows[:1] * 3.0)
        record = store.catalog.index_file(kind)
        assert record.rows == 3001 and not store.info().indexes[1]["stale"]
        assert store.nearest_to_vector(rows[0], k=1, index=kind).neighbours[0].word in {"newword", words[0]}
        assert "newword" in {n.word for n in store.nearest(words[0], k=3, index=kind).neighbours}


def test_added_words_get_hnsw_links_to_their_nearest_neighbours(base):
    db, words, rows = base
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    near = np.random.default_rng(3).normal(scale=0.05, size=(40, 50)).astype(np.float32) + unit[:40]
    every = np.vstack([unit, near / np.linalg.norm(near, axis=1, keepdims=True)])
    listed = {}
    for links in (0, 8):
        copy = db.with_name(f"links{links}.db")
        with Store.open(db) as original:
            original.export(copy.with_suffix(".txt"), "glove")
        Store.load(copy.with_suffix(".txt"), copy)
        with Store.open(copy) as store:
            store.build_index("hnsw", m=8, ef_construction=64, knn_links=links)
            store.add_words([f"near{i}" for i in range(40)], near)
            index = faiss.read_index(str(copy.parent / store.catalog.index_file("hnsw").file))
        assert index.ntotal == 3040
        shares = []
        for i, row in zip(range(3000, 3040), level0_lists(index, np.arange(3000, 3040))):
            scores = every @ every[i]
            scores[i] = -np.inf
            shares.append(len(set(np.argsort(-scores)[:5].tolist()) & set(row.tolist())) / 5)
        listed[links] = np.mean(shares)
    assert listed[8] >= 0.95 and listed[8] - listed[0] >= 0.2, listed


def test_change_errors_leave_store_untouched(base):
    db, words, rows = base
    before = sorted(p.name for p in db.parent.iterdir())
    with Store.open(db) as store:
        with pytest.raises(QueryError, match="already in the store"):
            store.add_words(["king"], rows[:1])
        with pytest.raises(QueryError, match="dimension"):
            store.add_words(["zz"], np.ones((1, 7), dtype=np.float32))
        with pytest.raises(QueryError, match="all zeros"):
            store.add_words(["zz"], np.zeros((1, 50), dtype=np.float32))
        with pytest.raises(UnknownWordError):
            store.delete_words(["king", "qwzxv"])
        with pytest.raises(QueryError, match="already in the store"):
            store.rename_word("king", "queen")
        assert len(store) == 3000
    assert sorted(p.name for p in db.parent.iterdir()) == before


def test_cli_add_file_delete_rename(run, base, tmp_path):
    db, words, rows = base
    tsv = tmp_path / "new.tsv"
    tsv.write_text("alpha\t" + " ".join(["0.5"] * 50) + "\n" +
                   json.dumps({"word": "beta", "vector": [0.25] * 50}) + "\n", encoding="utf-8")
    assert "Added 2" in run("add", "--file", tsv, "--db", db).output
    assert run("add", "gamma", *(["1"] * 50), "--db", db).exit_code == 0
    assert "Deleted 1" in run("delete", "alpha", "--db", db).output
    assert run("rename", "beta", "bet", "--db", db).exit_code == 0
    checked = run("check", "--db", db)
    assert checked.exit_code == 0, checked.output
    with Store.open(db) as store:
        assert len(store) == 3002 and "bet" in store and "alpha" not in store
        np.testing.assert_allclose(store.vector("gamma"), np.ones(50), rtol=1e-6)


@pytest.mark.parametrize("in_place_limit", [0, 10**9])
def test_both_renumbering_paths_equal_a_fresh_load(tmp_path, base, monkeypatch, in_place_limit):
    """A long tail of later words is renumbered by copy and sorted reinsert, a short one row
    by row; both must leave exactly what a fresh load of the remaining words gives."""
    from embstore.storage import catalog_words

    monkeypatch.setattr(catalog_words, "RENUMBER_IN_PLACE", in_place_limit)
    db, words, rows = base
    doomed = ["the", "of", "queen"] + words[100:3000:97]
    with Store.open(db) as store:
        assert store.delete_words(doomed) == len(set(doomed))
        catalog = store.catalog.conn.execute("SELECT id, word, rank, norm FROM words ORDER BY id").fetchall()
        assert [row[0] for row in catalog] == list(range(len(catalog))) == [row[2] for row in catalog]
        indexes = {r[0] for r in store.catalog.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"words_by_word", "words_by_folded"} <= indexes  # rebuilt after the bulk path dropped them
        assert store.catalog.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    keep = [i for i, w in enumerate(words) if w not in set(doomed)]
    fresh = fresh_equivalent(tmp_path, [words[i] for i in keep], rows[keep])
    assert_same_answers(db, fresh, ["king", "water", "paris", "good", "music"])
    with Store.open(fresh) as other:
        theirs = other.catalog.conn.execute("SELECT id, word, rank FROM words ORDER BY id").fetchall()
    assert [row[:3] for row in catalog] == theirs
