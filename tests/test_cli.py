"""The CLI as a user meets it: tables by default, JSON on request, notes on stderr."""

from __future__ import annotations

import json

import numpy as np


def test_nearest_table_and_json(run, small_store_path, small_store):
    table = run("nearest", "king", "-k", "3", "--db", small_store_path)
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split() == ["#", "word", "cosine"]
    expected = small_store.nearest("king", k=3).neighbours
    assert [line.split()[1] for line in lines[2:]] == [n.word for n in expected]
    payload = json.loads(run("nearest", "king", "-k", "3", "--db", small_store_path, "--json").output)
    assert [n["word"] for n in payload["neighbours"]] == [n.word for n in expected]
    assert payload["neighbours"][0]["score"] == expected[0].score


def test_nearest_several_words_one_call(run, small_store_path):
    payload = json.loads(run("nearest", "king", "water", "-k", "2", "--db", small_store_path, "--json").output)
    assert [p["query"] for p in payload] == ["king", "water"]


def test_one_unknown_word_does_not_cost_the_others(small_store_path, small_store):
    """nearest king qwzxv queen: the known words are answered, the unknown one is an error on
    stderr (with suggestions), and the exit status says something failed."""
    from click.testing import CliRunner

    from embstore_cli.app import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["nearest", "king", "qwzxv", "queen", "-k", "2", "--db", str(small_store_path)])
    assert result.exit_code == 1
    assert "Error: unknown word 'qwzxv'" in result.stderr
    headings = [line for line in result.stdout.splitlines() if line and line[0].isalpha()]
    assert headings == ["king", "queen"]
    for word in ("king", "queen"):
        assert all(n.word in result.stdout for n in small_store.nearest(word, k=2).neighbours)
    as_json = runner.invoke(cli, ["nearest", "king", "qwzxv", "-k", "2", "--db", str(small_store_path), "--json"])
    assert as_json.exit_code == 1
    king, unknown = json.loads(as_json.stdout)  # stdout is still one JSON document
    assert [n["word"] for n in king["neighbours"]] == small_store.nearest("king", k=2).words()
    assert king["error"] is None
    assert unknown == {"query": "qwzxv", "neighbours": [], "notes": [], "error": "unknown word 'qwzxv'"}
    kingg = runner.invoke(cli, ["nearest", "kingg", "--db", str(small_store_path), "--json"])
    assert kingg.exit_code == 1
    assert json.loads(kingg.stdout)["error"].startswith("unknown word 'kingg'; did you mean 'king'")
    assert "did you mean" in kingg.stderr


def test_analogy_unknown_word_as_json(small_store_path):
    from click.testing import CliRunner

    from embstore_cli.app import cli

    result = CliRunner().invoke(cli, ["analogy", "man", "king", "qwzxv", "--db", str(small_store_path), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"] == "unknown word 'qwzxv'"
    assert "Error: unknown word 'qwzxv'" in result.stderr


def test_analogy_both_methods(run, small_store_path):
    for method in ("add", "mul"):
        result = run("analogy", "man", "king", "woman", "-k", "1", "--method", method, "--db", small_store_path, "--json")
        assert result.exit_code == 0
        assert json.loads(result.output)["neighbours"][0]["word"] == "queen"


def test_similarity_odd_one_out_vector(run, small_store_path, small_store):
    out = run("similarity", "king", "queen", "--db", small_store_path)
    assert float(out.output) == round(small_store.similarity("king", "queen"), 4)
    odd = run("odd-one-out", "france", "germany", "italy", "banana", "--db", small_store_path, "--json")
    assert json.loads(odd.output)["odd_one_out"] == "banana"
    vector = run("vector", "king", "--db", small_store_path)
    values = np.array(vector.output.split()[1:], dtype=np.float32)
    np.testing.assert_allclose(values, small_store.vector("king"), rtol=1e-6)


def test_vector_pipes_into_nearest(run, small_store_path):
    vector = run("vector", "paris", "--db", small_store_path).output
    result = run("nearest", "--vector", "-k", "2", "--db", small_store_path, "--json", input=vector)
    assert [n["word"] for n in json.loads(result.output)["neighbours"]][0] == "paris"


def test_case_fallback_note_goes_to_stderr(small_store_path):
    from click.testing import CliRunner

    from embstore_cli.app import cli

    result = CliRunner().invoke(cli, ["nearest", "Paris", "-k", "1", "--db", str(small_store_path), "--json"])
    assert result.exit_code == 0
    assert "using 'paris'" in result.stderr
    assert json.loads(result.stdout)["neighbours"]  # stdout stays clean JSON


def test_info_json(run, small_store_path):
    info = json.loads(run("info", "--db", small_store_path, "--json").output)
    assert info["words"] == 20_000 and info["indexes"][0]["kind"] == "exact"


def test_load_json_report(run, tmp_path, glove_small):
    result = run("load", glove_small, "--db", tmp_path / "s.db", "--limit", "50", "--json")
    report = json.loads(result.output)
    assert report["words"] == 50 and report["format"] == "glove" and report["dimension"] == 50


def test_load_replace_says_which_indexes_and_shards_it_removed(run, store_copy, glove_small):
    from embstore import Store

    assert run("index", "build", "--kind", "sq8", "--db", store_copy).exit_code == 0
    assert run("shard", "--shards", "2", "--db", store_copy).exit_code == 0
    result = run("load", glove_small, "--replace", "--db", store_copy)
    assert result.exit_code == 0, result.output
    assert ("note: removed the sq8 index built from the old rows; build again with: embstore index build --kind sq8"
            in result.stderr)
    assert "note: removed the shard layout of the old rows; make it again with: embstore shard --shards 2" in result.stderr
    with Store.open(store_copy) as store:
        assert store.shard_layout() is None and [i["kind"] for i in store.info().indexes] == ["exact"]
    again = run("load", glove_small, "--replace", "--db", store_copy)  # nothing left to remove: no note
    assert again.exit_code == 0 and "removed" not in again.stderr


def test_load_replace_over_damaged_index_records_names_only_real_kinds(run, store_copy, glove_small):
    """Kinds from a damaged catalog (bytes, NULL, a number, an unknown name) are removed with
    the old rows but are no advice: found by test_fuzz_damage (a bytes kind made sorting raise)."""
    import sqlite3

    assert run("index", "build", "--kind", "sq8", "--db", store_copy).exit_code == 0
    with sqlite3.connect(store_copy) as conn:
        template = conn.execute("SELECT * FROM index_files WHERE kind = 'sq8'").fetchone()
        columns = [c[1] for c in conn.execute("PRAGMA table_info(index_files)")]
        for bad in (b"", None, 7, "no-such-kind"):
            row = dict(zip(columns, template), kind=bad)
            row["file"] = f"{row['file']}-{columns.index('kind')}-{bad!r}"
            conn.execute(f"INSERT OR REPLACE INTO index_files({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                         list(row.values()))
    shown = run("info", "--db", store_copy)  # also found by test_fuzz_damage: info added ' *' to a bytes kind
    assert shown.exit_code == 0 and "b''" in shown.output and "None" in shown.output, shown.output
    described = json.loads(run("info", "--json", "--db", store_copy).stdout)
    assert {"b''", "None", "7"} <= {index["kind"] for index in described["indexes"]}
    result = run("load", glove_small, "--replace", "--db", store_copy)
    assert result.exit_code == 0, result.output
    assert "note: removed the sq8 index built from the old rows; build again with: embstore index build --kind sq8" \
        in result.stderr and "no-such-kind" not in result.stderr


def test_repair_removes_index_records_whose_kind_is_not_text(run, store_copy):
    """Found by a hostile test: repair named the BLOB and NULL kinds it removed but deleted by
    their repr, which matched nothing, and failed on every run."""
    import sqlite3

    with sqlite3.connect(store_copy) as conn:
        conn.execute("INSERT INTO index_files(kind, file) VALUES (?, 'x')", (b"",))
        conn.execute("INSERT INTO index_files(kind, file) VALUES (NULL, 'n')")
    repaired = run("repair", "--db", store_copy)
    assert repaired.exit_code == 0, repaired.output
    assert "unknown kind b''" in repaired.output and "unknown kind None" in repaired.output
    with sqlite3.connect(store_copy) as conn:
        assert conn.execute("SELECT kind FROM index_files").fetchall() == [("exact",)]
    assert run("check", "--db", store_copy).exit_code == 0
    again = run("repair", "--db", store_copy)
    assert again.exit_code == 0 and "nothing needed repair" in again.output


def test_hints_name_the_store_they_were_given(run, store_copy):
    """Found by a new user: 'build it with: embstore index build --kind hnsw' without the --db
    of the command would build an index in the default store."""
    import shlex

    result = run("nearest", "king", "--index", "hnsw", "--db", store_copy)
    assert result.exit_code == 1
    assert f"build it with: embstore index build --kind hnsw --db {shlex.quote(str(store_copy))}" in result.output
    result = run("index", "default", "hnsw", f"--db={store_copy}")
    assert f"embstore index build --kind hnsw --db {shlex.quote(str(store_copy))}" in result.output
