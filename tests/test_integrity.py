"""embstore check finds each kind of damage precisely; embstore repair rebuilds what it can."""

from __future__ import annotations

import shutil
import re
import sqlite3

import pytest

from embstore import Store
from embstore.storage.schema import FORMAT_VERSION
from embstore.storage.check import check_store


@pytest.fixture()
def store(tmp_path, sample_lines):
    source = tmp_path / "src.txt"
    source.write_text("".join(sample_lines[:2000]), encoding="utf-8")
    db = tmp_path / "s.db"
    Store.load(source, db)
    return db, source


def exact_file(db):
    conn = sqlite3.connect(db)
    name = conn.execute("SELECT file FROM index_files WHERE kind = 'exact'").fetchone()[0]
    conn.close()
    return db.parent / name


def test_healthy_store_passes(run, store):
    db, _ = store
    result = run("check", "--db", db)
    assert result.exit_code == 0, result.output
    assert "ok       exact index" in result.output and "PROBLEM" not in result.output


def test_check_json_healthy_and_damaged(run, store):
    """--json gives the same verdict as the text, as one JSON object (the damaged kinds as a list)."""
    import json

    db, _ = store
    healthy = run("check", "--json", "--db", db)
    assert healthy.exit_code == 0, healthy.output
    report = json.loads(healthy.stdout)
    assert report["ok"] is True and report["problems"] == [] and report["damaged"] == []
    path = exact_file(db)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    damaged = run("check", "--json", "--db", db)
    assert damaged.exit_code == 1, damaged.output
    report = json.loads(damaged.stdout)
    assert report["ok"] is False and report["damaged"] == ["rows"]
    assert any("checksum" in problem for problem in report["problems"])


@pytest.mark.parametrize("damage,message", [
    ("truncate", "bytes but the catalog recorded"),
    ("flip", "does not match the checksum in the catalog"),
    ("swap", "bytes but the catalog recorded"),
    ("delete_row", "holds 2,000 rows for 1,999 words"),
    ("delete_file", "is missing"),
])
def test_each_damage_is_reported_and_repaired(run, store, tmp_path, sample_lines, damage, message):
    db, source = store
    index = exact_file(db)
    if damage == "truncate":
        index.write_bytes(index.read_bytes()[:-100])
    elif damage == "flip":
        data = bytearray(index.read_bytes())
        data[1000] ^= 1
        index.write_bytes(bytes(data))
    elif damage == "swap":  # another store's index file in its place
        other_source = tmp_path / "other.txt"
        other_source.write_text("".join(sample_lines[:1500]), encoding="utf-8")
        Store.load(other_source, tmp_path / "other.db")
        shutil.copy(exact_file(tmp_path / "other.db"), index)
    elif damage == "delete_row":
        conn = sqlite3.connect(db)
        conn.execute("DELETE FROM words WHERE word = 'king'")
        conn.commit()
        conn.close()
    else:
        index.unlink()
    result = run("check", "--db", db)
    assert result.exit_code == 1
    assert message in result.output and f"in {db}; 'embstore repair --db {db}' rebuilds" in result.output
    assert re.search(r"\b(1 problem|[2-9] problems) in ", result.output)
    repaired = run("repair", "--db", db)
    assert repaired.exit_code == 0, repaired.output
    assert f"reloaded the store from its source {source}" in repaired.output
    assert check_store(db).ok
    with Store.open(db) as fixed:
        assert len(fixed) == 2000 and "king" in fixed


def test_repair_rebuilds_a_damaged_approximate_index(run, store):
    db, source = store
    with Store.open(db) as opened:
        record = opened.build_index("sq8")
    (db.parent / record.file).write_bytes(b"not an index")
    assert "sq8 index" in run("check", "--db", db).output
    repaired = run("repair", "--db", db)
    assert "rebuilt the sq8 index from the exact rows" in repaired.output
    assert check_store(db).ok


def test_repair_with_file_records_it_cannot_read_keeps_the_rows_it_may_not_know(run, store):
    """Found by test_fuzz_damage: a flipped byte renamed a column of shard_files, so the catalog's
    file names could not be read, and repair, deciding whether a reload would lose newer rows,
    raised OperationalError (a traceback). With no names read, the store's rows file may be
    newer than the catalog: the reload is refused, with the way to force it."""
    db, source = store
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE shard_files RENAME COLUMN file TO fxle")
    rows = exact_file(db)
    rows.write_bytes(rows.read_bytes()[:-4])  # damaged rows: a reload is the only repair
    repaired = run("repair", "--db", db)
    assert repaired.exit_code == 1 and "Traceback" not in repaired.output, repaired.output
    assert "--discard-changes" in repaired.output and rows.exists()


def test_repair_without_source_says_what_to_do(run, store):
    db, source = store
    source.unlink()
    exact_file(db).unlink()
    repaired = run("repair", "--db", db)
    assert repaired.exit_code == 1
    assert "source file" in repaired.output and "--replace" in repaired.output


def test_leftovers_are_noted_and_removed(run, store):
    db, _ = store
    (db.parent / f".{db.name}.exact.deadbeef.faiss.tmp").write_bytes(b"half")
    (db.parent / f"{db.name}.exact.cafebabe.faiss").write_bytes(b"orphan")
    checked = run("check", "--db", db)
    assert checked.exit_code == 0 and checked.output.count("leftover from an interrupted write") == 2
    assert "removed leftover" in run("repair", "--db", db).output
    assert not any(p.name.endswith(("deadbeef.faiss.tmp", "cafebabe.faiss")) for p in db.parent.iterdir())


def test_foreign_and_newer_databases(run, store, tmp_path):
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t(x)").connection.commit()
    result = run("check", "--db", foreign)
    assert result.exit_code == 1 and "not an embstore store" in result.output
    db, _ = store
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION + 1),))
    conn.commit()
    conn.close()
    result = run("check", "--db", db)
    assert result.exit_code == 1 and "newer embstore" in result.output
