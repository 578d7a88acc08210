"""Readers in other processes query while a writer appends and deletes: no error, no torn state.
A second writer waits, then fails with a clear 'busy' message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap


from embstore import Store

READER = textwrap.dedent("""
    import json, sys, time, zlib
    import numpy as np
    from embstore import Store
    db, stop_file, base_file = sys.argv[1:4]
    base = {}
    for line in open(base_file, encoding="utf-8"):
        word, *values = line.split()
        base[word] = np.array(values, dtype=np.float32)
    def expected(word):
        if word in base:
            return base[word]
        rng = np.random.default_rng(zlib.crc32(word.encode()))
        return rng.standard_normal(50).astype(np.float32)
    served = errors = 0
    messages = []
    import os
    while not os.path.exists(stop_file):
        try:
            with Store.open(db) as store:
                words = list(store)
                sizes = {len(store), len(words)}
                if len(sizes) != 1:
                    raise AssertionError(f"catalog and index disagree: {sizes}")
                for word in words[::97] + words[-3:]:
                    np.testing.assert_allclose(store.vector(word), expected(word), rtol=1e-5, atol=1e-6)
                result = store.nearest(words[-1], k=5)
                assert len(result.neighbours) == 5 and all(n.word in set(words) for n in result.neighbours)
                served += len(words[::97]) + 4
        except Exception as exc:
            errors += 1
            messages.append(repr(exc)[:300])
    print(json.dumps({"served": served, "errors": errors, "messages": messages[:5]}))
""")

WRITER = textwrap.dedent("""
    import sys, zlib
    import numpy as np
    from embstore import Store
    db = sys.argv[1]
    for round_ in range(12):
        words = [f"extra{round_}_{i}" for i in range(40)]
        vectors = np.stack([np.random.default_rng(zlib.crc32(w.encode())).standard_normal(50).astype(np.float32)
                            for w in words])
        with Store.open(db) as store:
            store.add_words(words, vectors)
        with Store.open(db) as store:
            store.delete_words(words[::2])
    print("done")
""")


def test_readers_see_only_whole_states_while_a_writer_works(tmp_path, sample_lines):
    source = tmp_path / "base.txt"
    source.write_text("".join(sample_lines[:3000]), encoding="utf-8")
    db = tmp_path / "s.db"
    Store.load(source, db)
    stop = tmp_path / "stop"
    (tmp_path / "reader.py").write_text(READER)
    (tmp_path / "writer.py").write_text(WRITER)
    readers = [subprocess.Popen([sys.executable, str(tmp_path / "reader.py"), str(db), str(stop), str(source)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    writer = subprocess.run([sys.executable, str(tmp_path / "writer.py"), str(db)], capture_output=True, text=True,
                            timeout=300)
    stop.write_text("stop")
    reports = [json.loads(r.communicate(timeout=120)[0].strip().splitlines()[-1]) for r in readers]
    assert writer.returncode == 0, writer.stderr
    assert all(r["errors"] == 0 for r in reports), reports
    served = sum(r["served"] for r in reports)
    print(f"\nconcurrent reads checked while the writer committed 24 changes: {served:,}")
    assert served > 100
    with Store.open(db) as store:
        assert len(store) == 3000 + 12 * 20


def test_second_writer_is_told_the_store_is_busy(tmp_path, sample_lines, run):
    source = tmp_path / "base.txt"
    source.write_text("".join(sample_lines[:500]), encoding="utf-8")
    db = tmp_path / "s.db"
    Store.load(source, db)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3, sys, time
            conn = sqlite3.connect({str(db)!r}, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            print("locked", flush=True)
            time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        env = {**os.environ, "EMBSTORE_BUSY_TIMEOUT": "0.5"}
        completed = subprocess.run([sys.executable, "-m", "embstore_cli", "delete", "the", "--db", str(db)],
                                   capture_output=True, text=True, env=env, timeout=60)
        assert completed.returncode == 1
        assert "busy: another process is writing to it" in completed.stderr
        assert "Traceback" not in completed.stderr
        reader = subprocess.run([sys.executable, "-m", "embstore_cli", "nearest", "of", "-k", "1", "--db", str(db)],
                                capture_output=True, text=True, env=env, timeout=60)
        assert reader.returncode == 0  # readers are not blocked by a writer
    finally:
        holder.kill()
        holder.wait()
    with Store.open(db) as store:
        assert "the" in store and len(store) == 500
