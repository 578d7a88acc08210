"""A sharded store (``embstore shard``): one rows file per word-ID range, and HNSW graphs of them.

Searched in this process shard by shard (``RowShard.of_file``) and merged, the answers equal the
unsharded store's exact search, pair for pair; word changes keep every shard's rows equal to the
store's rows in the same commit; ``check`` finds a damaged, missing or hostile shard record or
file and ``repair`` writes the shards again; a writer racing the sharding never leaves a layout
of other rows. The same layout on a real Ray cluster is in ``test_ray.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from embstore import Store
from embstore.distributed.shards import RowShard, merge_hits, recall
from embstore.errors import CatalogMismatchError, QueryError, StoreChangedError
from embstore.repair import repair_store
from embstore.storage.check import check_store

K = 10


def shard_files(db):
    return sorted(p.name for p in db.parent.iterdir() if ".shard" in p.name)


def exact_and_sharded(store: Store, ids: list[int], graph: bool = False):
    """(the store's exact hits, the shard files' hits merged) for the words ``ids``."""
    queries = store.searcher.vectors(ids)
    exclude = [{i} for i in ids]
    whole = store.searcher.search("exact", queries, K, exclude)
    layout = store.shard_layout()
    shards = [RowShard.of_file(store, number, graph) for number in range(layout.shards)]
    kind = "hnsw" if graph else "exact"
    return whole, merge_hits([shard.search(queries, K, exclude, kind) for shard in shards], K)


def assert_shards_hold_the_rows(store: Store) -> None:
    """Every shard file's rows are the store's rows of its range, and the ranges cover the store."""
    layout = store.shard_layout()
    assert layout.ranges[0][0] == 0 and layout.ranges[-1][1] == len(store)
    for number, (start, stop) in enumerate(layout.ranges):
        shard = RowShard.of_file(store, number)
        assert np.array_equal(shard.rows, store.searcher.rows[start:stop])
        assert np.array_equal(shard.norms, store.searcher.norms[start:stop])


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_sharded_exact_search_equals_the_whole_store(store_copy, shards):
    with Store.open(store_copy) as store:
        records = store.shard(shards)
        assert len(records) == shards and len(shard_files(store_copy)) == shards
        assert store.shard_layout().ranges == [(len(store) * s // shards, len(store) * (s + 1) // shards)
                                               for s in range(shards)]
        ids = list(range(0, len(store), 89))
        whole, merged = exact_and_sharded(store, ids)
        assert merged == whole  # same IDs, same float32 scores, same order
        assert_shards_hold_the_rows(store)
    assert check_store(store_copy).ok


def test_stored_graphs_answer_with_high_recall_and_are_not_rebuilt(store_copy):
    with Store.open(store_copy) as store:
        store.shard(2, graphs=True)
        layout = store.shard_layout()
        assert len(layout.graphs) == 2 and not layout.stale_graphs
        shard = RowShard.of_file(store, 1, graph=True)
        assert shard.graph.ntotal == layout.ranges[1][1] - layout.ranges[1][0]
        assert "build_seconds" in layout.graphs[1].params  # the graph read is the one the shard command built
        ids = list(range(0, len(store), 97))
        exact, approximate = exact_and_sharded(store, ids, graph=True)
    found, expected = recall(approximate, exact)
    assert expected == K * len(ids) and 0.95 <= found / expected <= 1.0
    report = check_store(store_copy)
    assert report.ok and sum("graph" in line for line in report.checked) == 2


def test_word_changes_rewrite_the_shard_rows_in_the_same_commit(store_copy):
    rng = np.random.default_rng(5)
    with Store.open(store_copy) as store:
        store.shard(3, graphs=True)
        store.add_words(["shardword1", "shardword2"], rng.normal(size=(2, store.dimension)).astype(np.float32))
        layout = store.shard_layout()
        assert layout.ranges[-1][1] == len(store) == 20_002
        assert layout.stale_graphs and not layout.graphs  # the graphs hold older rows: never searched
        assert_shards_hold_the_rows(store)
        store.add_words(["king"], rng.normal(size=(1, store.dimension)).astype(np.float32), on_duplicate="replace")
        assert_shards_hold_the_rows(store)
        store.delete_words(["the", "shardword1", store.vocabulary()[10_000]])  # IDs renumber in every shard
        assert_shards_hold_the_rows(store)
        before = shard_files(store_copy)
        store.rename_word("queen", "queen_renamed")  # the rows do not change: nor do the files
        assert shard_files(store_copy) == before
        whole, merged = exact_and_sharded(store, list(range(0, len(store), 101)))
        assert merged == whole
        shard = RowShard.of_file(store, 0, graph=True)  # a stale graph is built again in memory
        assert shard.graph is not None and shard.graph.ntotal == store.shard_layout().ranges[0][1]
    report = check_store(store_copy)
    assert report.ok and "shards" in report.stale
    assert any("HNSW graphs are stale" in note for note in report.notes)
    assert len(shard_files(store_copy)) == 6  # 3 rows files and 3 stale graphs: nothing left over
    rows_files = [name for name in shard_files(store_copy) if "-exact." in name]
    repaired = repair_store(store_copy)
    assert any("wrote the HNSW graphs of the 3 shards again" in a for a in repaired.actions)
    assert [name for name in shard_files(store_copy) if "-exact." in name] == rows_files  # kept: they were whole
    with Store.open(store_copy) as store:
        assert store.shard_layout().graphs and not store.shard_layout().stale_graphs
    assert check_store(store_copy).ok


def test_a_writer_that_commits_during_sharding_makes_it_start_again(store_copy):
    """The second process deletes words while the first writes its shard files: the first
    commit finds the rows changed, is redone on the new rows, and the layout covers them."""
    with Store.open(store_copy) as store:
        interrupted = []

        def progress(what, done, total):
            if not interrupted:
                interrupted.append(done)
                subprocess.run([sys.executable, "-m", "embstore_cli", "delete", "king", "queen", "--db",
                                str(store_copy)], check=True, capture_output=True)

        store.shard(4, progress=progress)
        assert interrupted and len(store) == 19_998 and "king" not in store
        assert store.shard_layout().ranges[-1][1] == 19_998
        assert_shards_hold_the_rows(store)
    assert len(shard_files(store_copy)) == 4  # the files of the first attempt were removed
    assert check_store(store_copy).ok


def test_a_reader_opened_before_a_reshard_gets_a_clear_error_not_other_rows(store_copy):
    with Store.open(store_copy) as writer:
        writer.shard(2)
    old = Store.open(store_copy)
    try:
        with Store.open(store_copy) as writer:
            writer.shard(3)  # removes the 2-shard files the old reader's generation names
        with pytest.raises(StoreChangedError, match="changed while shard 0 was being loaded"):
            RowShard.of_file(old, 0)
        old.refresh()
        assert old.shard_layout().shards == 3
    finally:
        old.close()


def test_check_finds_each_kind_of_damage_and_repair_writes_the_shards_again(store_copy):
    with Store.open(store_copy) as store:
        store.shard(3)
    first = store_copy.parent / shard_files(store_copy)[0]
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0x10  # a flipped bit in the middle: only the SHA-256 can see it
    first.write_bytes(bytes(data))
    report = check_store(store_copy)
    assert not report.ok and "shards" in report.damaged
    assert any("does not match the checksum" in p for p in report.problems)
    assert repair_store(store_copy).remaining == []
    assert check_store(store_copy).ok

    conn = sqlite3.connect(store_copy, isolation_level=None)
    conn.execute("UPDATE shard_files SET stop = stop - 1 WHERE number = 0")  # a range that leaves a gap
    conn.close()
    report = check_store(store_copy)
    assert any("shard 1 starts at word ID" in p for p in report.problems)
    with Store.open(store_copy) as store:  # queries are unaffected; the sharded search is refused
        assert store.nearest("king", k=1).neighbours[0].word == "prince"
        with pytest.raises(CatalogMismatchError, match="shard 1 starts at word ID"):
            store.shard_layout()
        with pytest.raises(CatalogMismatchError, match="shard layout is damaged.*embstore repair"):
            store.delete_words(["king"])  # a change would leave shard files of other rows: refused
        assert "king" in store
    assert repair_store(store_copy).remaining == []

    conn = sqlite3.connect(store_copy, isolation_level=None)
    conn.execute("DELETE FROM shard_files")  # records lost: meta.shards still says the store is sharded
    conn.close()
    assert any("lost the records of its 3 shard files" in p for p in check_store(store_copy).problems)
    repaired = repair_store(store_copy)
    assert repaired.remaining == [] and check_store(store_copy).ok
    with Store.open(store_copy) as store:
        assert store.shard_layout().shards == 3
        assert_shards_hold_the_rows(store)
    assert len(shard_files(store_copy)) == 3  # the unreferenced files were removed as leftovers


def test_a_shard_file_shortened_under_a_reader_is_an_error_not_a_crash(store_copy):
    with Store.open(store_copy) as store:
        store.shard(2)
        victim = store_copy.parent / shard_files(store_copy)[1]
        with open(victim, "r+b") as handle:
            handle.truncate(victim.stat().st_size // 2)
        with pytest.raises(CatalogMismatchError, match="bytes but the catalog recorded"):
            RowShard.of_file(store, 1)


def test_a_hostile_record_never_opens_or_removes_a_file_outside_the_store(store_copy, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    victim = outside / "victim.txt"
    victim.write_text("precious")
    with Store.open(store_copy) as store:
        store.shard(2)
    conn = sqlite3.connect(store_copy, isolation_level=None)
    conn.execute("UPDATE shard_files SET file = ? WHERE number = 0", (os.path.relpath(victim, store_copy.parent),))
    conn.close()
    report = check_store(store_copy)
    assert any("which is not a file of this store" in p for p in report.problems)
    with Store.open(store_copy) as store:
        with pytest.raises(CatalogMismatchError, match="not a file of this store"):
            RowShard.of_file(store, 0)
    assert repair_store(store_copy).remaining == []
    with Store.open(store_copy) as store:
        store.drop_shards()
        store.shard(2)
        store.delete_words(["king"])
    assert victim.read_text() == "precious"
    link = store_copy.parent / shard_files(store_copy)[0]
    link.unlink()
    link.symlink_to(victim)  # a shard file replaced by a link to a file outside: never followed
    assert any("symbolic link" in p for p in check_store(store_copy).problems)
    assert repair_store(store_copy).remaining == [] and victim.read_text() == "precious"


def test_load_replace_and_drop_remove_the_shard_files(store_copy, glove_small):
    with Store.open(store_copy) as store:
        store.shard(3, graphs=True)
        assert store.drop_shards() == 3
        assert store.shard_layout() is None and shard_files(store_copy) == []
        store.shard(2)
    Store.load(glove_small, store_copy, replace=True, limit=5_000)
    assert shard_files(store_copy) == []
    with Store.open(store_copy) as store:
        assert store.shard_layout() is None and len(store) == 5_000
    assert check_store(store_copy).ok


def test_bad_requests_get_one_clear_error(store_copy, run, tmp_path, glove_small):
    tiny = tmp_path / "tiny.db"
    Store.load(glove_small, tiny, limit=10)
    with Store.open(tiny) as store:
        with pytest.raises(QueryError, match="10 words cannot make 11 shards"):
            store.shard(11)
        for wrong in (0, 5000, "3", 2.0):
            with pytest.raises(QueryError, match="1 to 4,096 shards"):
                store.shard(wrong)
    sq8 = tmp_path / "sq8.db"
    Store.load(glove_small, sq8, storage="sq8", limit=2_000)
    result = run("shard", "--shards", "2", "--db", sq8)
    assert result.exit_code == 1 and "keeps only sq8 codes; sharding needs exact rows" in result.output
    result = run("shard", "--shards", "2", "--drop", "--db", store_copy)
    assert result.exit_code == 2 and "--drop removes the shards; give it alone" in result.output
    result = run("shard", "--graphs", "--db", store_copy)
    assert result.exit_code == 2 and "--graphs needs --shards N" in result.output
    assert shard_files(store_copy) == [] and list(tmp_path.glob("*.shard*")) == []


def test_graphs_after_a_change_keep_the_rows_files_unless_they_are_damaged(store_copy, run):
    with Store.open(store_copy) as store:
        store.shard(2, graphs=True)
        store.delete_words(["king"])
        rows_files = [name for name in shard_files(store_copy) if "-exact." in name]
        store.shard(2, graphs=True)
        assert [name for name in shard_files(store_copy) if "-exact." in name] == rows_files
        assert len(shard_files(store_copy)) == 4 and store.shard_layout().graphs
        victim = store_copy.parent / rows_files[0]
        data = bytearray(victim.read_bytes())
        data[-10] ^= 1  # in the last 64 KiB: the fingerprint an open checks sees it
        victim.write_bytes(bytes(data))
        store.shard(2)
        assert victim.name not in shard_files(store_copy) and len(shard_files(store_copy)) == 2
        assert_shards_hold_the_rows(store)
    assert check_store(store_copy).ok


def test_the_cli_writes_shows_and_drops_the_layout(store_copy, run):
    result = run("shard", "--db", store_copy)
    assert result.exit_code == 0 and "not sharded" in result.output
    assert json.loads(run("shard", "--json", "--db", store_copy).output) == {
        "shards": 0, "graphs": False, "stale_graphs": False, "bytes": 0, "problems": [], "files": []}
    result = run("shard", "--shards", "3", "--db", store_copy)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("3 shards, ") and lines[1].startswith("  shard 0: word IDs 0 .. 6,665 (6,666 rows")
    assert "shards          3 shard files" in run("info", "--db", store_copy).output
    shown = run("shard", "--json", "--db", store_copy)
    layout = json.loads(shown.output)
    assert layout["shards"] == 3 and [f["stop"] for f in layout["files"]] == [6_666, 13_333, 20_000]
    assert sorted(f["file"] for f in layout["files"]) == shard_files(store_copy)
    assert layout["problems"] == []
    assert "Used by: embstore nearest --batch FILE --ray ADDRESS --shards 3" in run("shard", "--db", store_copy).output
    (store_copy.parent / shard_files(store_copy)[1]).unlink()  # found by a look at the files, before any check
    shown = run("shard", "--db", store_copy).output
    assert "Damaged: shard 1's rows small.db.shard0001-exact." in shown and "is missing" in shown
    assert "damaged: shard 1's rows" in run("info", "--db", store_copy).output
    result = run("shard", "--shards", "2", "--graphs", "--db", store_copy)
    assert result.exit_code == 0 and "Replaced the layout of 3 shards" in result.stderr
    assert "with HNSW graphs" in result.stdout
    result = run("shard", "--shards", "2", "--db", store_copy)
    assert "Removed the stored HNSW graphs" in result.stderr and len(shard_files(store_copy)) == 2
    run("delete", "king", "--db", store_copy)
    result = run("shard", "--shards", "1", "--db", store_copy)
    assert result.stdout.startswith("1 shard, ") and "(19,999 rows, " in result.stdout
    result = run("shard", "--drop", "--db", store_copy)
    assert result.exit_code == 0 and result.output == "Dropped 1 shard\n" and shard_files(store_copy) == []


def test_a_store_named_like_a_shard_keeps_its_files_and_so_does_the_sharded_store(tmp_path, glove_small):
    """A store ``b.db.shard0000`` beside ``b.db``: neither takes the other's files for leftovers."""
    first, second = tmp_path / "b.db", tmp_path / "b.db.shard0000"
    Store.load(glove_small, first, limit=1_000)
    Store.load(glove_small, second, limit=500)
    with Store.open(first) as store:
        store.shard(2)
    for db in (first, second, first):
        assert check_store(db).leftovers == []
        repair_store(db)
    for db in (first, second):
        assert check_store(db).ok
        with Store.open(db) as store:
            assert store.nearest("the", k=1).neighbours
    with Store.open(first) as store:
        assert_shards_hold_the_rows(store)


@pytest.mark.parametrize("damage", [
    "UPDATE shard_files SET number = NULL WHERE number = 1",
    "UPDATE shard_files SET number = 'abc' WHERE number = 1",
    "UPDATE shard_files SET number = 1.5 WHERE number = 1",
    "UPDATE shard_files SET kind = NULL WHERE number = 0",
    "UPDATE shard_files SET shards = 5000; UPDATE meta SET value = '5000' WHERE key = 'shards'",
    "UPDATE meta SET value = '99999999999999999999' WHERE key = 'shards'",
    "DROP TABLE shard_files",
])
def test_repair_mends_any_damaged_record_in_one_pass(store_copy, run, damage):
    with Store.open(store_copy) as store:
        store.shard(2, graphs=True)
    conn = sqlite3.connect(store_copy, isolation_level=None)
    conn.executescript(damage)
    conn.close()
    assert not check_store(store_copy).ok
    for command in (["shard"], ["info"], ["repair"]):
        result = run(*command, "--db", store_copy)
        assert "Traceback" not in result.output and not isinstance(result.exception, Exception) \
            or isinstance(result.exception, SystemExit), result.output
    report = check_store(store_copy)
    assert report.ok and report.leftovers == [], report.problems + [p.name for p in report.leftovers]
    with Store.open(store_copy) as store:
        layout = store.shard_layout()
        assert len(store) == 20_000
        if layout is not None:
            assert_shards_hold_the_rows(store)
    result = run("shard", "--drop", "--db", store_copy)
    assert result.exit_code == 0 and shard_files(store_copy) == []


def test_a_flag_is_not_a_number_of_shards(store_copy):
    with Store.open(store_copy) as store:
        with pytest.raises(QueryError, match="1 to 4,096 shards"):
            store.shard(True)
    assert shard_files(store_copy) == []
