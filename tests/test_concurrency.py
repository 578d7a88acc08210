"""Readers in other processes query (exactly and through sq8 and hnsw indexes) while a writer
appends, deletes and builds indexes: no error, no torn state. One reader opens the store once
and follows the writer with ``refresh``. A second writer waits, then fails with a clear 'busy'
message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

from embstore import Store

READER = textwrap.dedent("""
    import json, os, sys, time, zlib
    import numpy as np
    from embstore import Store
    mode, db, stop_file, base_file, done_file, ready_file, final_count = sys.argv[1:8]
    base = {}
    for line in open(base_file, encoding="utf-8"):
        word, *values = line.split()
        base[word] = np.array(values, dtype=np.float32)

    def expected(word):
        if word in base:
            return base[word]
        rng = np.random.default_rng(zlib.crc32(word.encode()))
        return rng.standard_normal(50).astype(np.float32)

    counts = {"served": 0, "checks": 0, "stale_answers": 0, "current_answers": 0, "errors": 0,
              "after_writer": 0, "generations": 0}
    messages = []

    def check(store):
        '''Check one generation against vectors computed here, independently of embstore.'''
        words = list(store)
        if len(store) != len(words):
            raise AssertionError(f"len(store) {len(store)} but {len(words)} words listed")
        position = {w: i for i, w in enumerate(words)}
        if len(position) != len(words):
            raise AssertionError("a word is listed twice")
        sample = words[::97] + words[-3:]
        for word in sample:
            np.testing.assert_allclose(store.vector(word), expected(word), rtol=1e-5, atol=1e-6)
        matrix = np.stack([expected(w) for w in words]).astype(np.float64)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        probes = {words[-1], words[len(words) // 2], words[7]}
        for probe in probes:
            truth = matrix @ matrix[position[probe]]
            truth[position[probe]] = -np.inf
            best = np.sort(truth)[::-1][:5]
            exact = store.nearest(probe, k=5, index="exact")
            if exact.notes or len(exact.neighbours) != 5:
                raise AssertionError(f"exact {probe}: {exact}")
            np.testing.assert_allclose([n.score for n in exact.neighbours], best, atol=1e-5)
            for n in exact.neighbours:
                if abs(truth[position[n.word]] - n.score) > 1e-5:
                    raise AssertionError(f"exact {probe}: {n} but the cosine is {truth[position[n.word]]}")
            for kind, tolerance in (("hnsw", 1e-5), ("sq8", 0.05)):
                result = store.nearest(probe, k=5, index=kind)
                if len(result.neighbours) != 5:
                    raise AssertionError(f"{kind} {probe}: {result}")
                if any("stale" in note for note in result.notes):
                    counts["stale_answers"] += 1
                    if result.neighbours != exact.neighbours:
                        raise AssertionError(f"stale {kind} {probe}: {result} differs from {exact}")
                    continue
                if result.notes:
                    raise AssertionError(f"{kind} {probe}: unexpected notes {result.notes}")
                counts["current_answers"] += 1
                for n in result.neighbours:
                    if n.word not in position or n.word == probe:
                        raise AssertionError(f"{kind} {probe}: answer {n.word!r} is not of generation "
                                             f"{store.generation}")
                    if abs(truth[position[n.word]] - n.score) > tolerance:
                        raise AssertionError(f"{kind} {probe}: {n} but the cosine is {truth[position[n.word]]}")
                if max(truth[position[n.word]] for n in result.neighbours) < best[-1] - 0.05:
                    raise AssertionError(f"{kind} {probe}: {result} is far from the exact answer {exact}")
        counts["served"] += len(sample) + 3 * len(probes)
        counts["checks"] += 1
        return len(words)

    def attempt(function):
        try:
            return function()
        except Exception as exc:
            counts["errors"] += 1
            messages.append(repr(exc)[:400])

    if mode == "open":
        def once():
            with Store.open(db) as store:
                check(store)
        while not os.path.exists(stop_file):
            attempt(once)
            if counts["checks"] and not os.path.exists(ready_file):
                open(ready_file, "w").close()
    else:
        store = Store.open(db)
        last = store.generation
        def follow():
            global last
            writer_done = os.path.exists(done_file)
            if store.refresh():
                counts["generations"] += 1
            if store.generation < last:
                raise AssertionError(f"refresh went back from generation {last} to {store.generation}")
            last = store.generation
            check(store)
            if writer_done:
                counts["after_writer"] += 1
        while not os.path.exists(stop_file):
            attempt(follow)
            if counts["checks"] and not os.path.exists(ready_file):
                open(ready_file, "w").close()
        def final():
            store.refresh()
            if check(store) != int(final_count):
                raise AssertionError(f"after the writer: {len(store)} words, not {final_count}")
            for kind in ("hnsw", "sq8"):
                result = store.nearest("the", k=3, index=kind)
                if result.notes:
                    raise AssertionError(f"{kind} is not current after the writer's last build: {result.notes}")
            counts["after_writer"] += 1
        attempt(final)
        store.close()
    print(json.dumps({**counts, "messages": messages[:5]}))
""")

WRITER = textwrap.dedent("""
    import json, os, sys, time, zlib
    import numpy as np
    from embstore import Store
    db, *ready = sys.argv[1:]
    deadline = time.monotonic() + 60
    while not all(os.path.exists(r) for r in ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    for round_ in range(12):
        words = [f"extra{round_}_{i}" for i in range(40)]
        vectors = np.stack([np.random.default_rng(zlib.crc32(w.encode())).standard_normal(50).astype(np.float32)
                            for w in words])
        with Store.open(db) as store:
            store.add_words(words, vectors)  # extends the current hnsw and sq8 indexes
        time.sleep(0.05)
        with Store.open(db) as store:
            store.delete_words(words[::2])  # leaves them stale
        time.sleep(0.05)
        if round_ == 5:
            with Store.open(db) as store:
                store.build_index("hnsw", m=8, ef_construction=32)
    with Store.open(db) as store:
        store.build_index("sq8")
        store.build_index("hnsw", m=8, ef_construction=32)
    print(json.dumps({"seconds": round(time.monotonic() - started, 2)}))
""")


def test_readers_see_only_whole_states_while_a_writer_works(tmp_path, sample_lines):
    source = tmp_path / "base.txt"
    source.write_text("".join(sample_lines[:3000]), encoding="utf-8")
    db = tmp_path / "s.db"
    Store.load(source, db)
    with Store.open(db) as store:
        store.build_index("sq8")
        store.build_index("hnsw", m=8, ef_construction=32)
    final_count = 3000 + 12 * 20
    stop, done = tmp_path / "stop", tmp_path / "writer-done"
    (tmp_path / "reader.py").write_text(READER)
    (tmp_path / "writer.py").write_text(WRITER)
    modes = ["open", "open", "refresh"]
    ready = [tmp_path / f"ready{i}" for i in range(len(modes))]
    readers = [subprocess.Popen([sys.executable, str(tmp_path / "reader.py"), mode, str(db), str(stop), str(source),
                                 str(done), str(ready[i]), str(final_count)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i, mode in enumerate(modes)]
    try:
        writer = subprocess.run([sys.executable, str(tmp_path / "writer.py"), str(db), *map(str, ready)],
                                capture_output=True, text=True, timeout=120, check=False)
        done.write_text("done")
        # The long-lived reader must go on working (refresh and query) after the writer is gone.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.write_text("stop")
        outputs = [r.communicate(timeout=120) for r in readers]
    assert all(r.returncode == 0 for r in readers), [(r.returncode, out[-1000:], err[-2000:])
                                                     for r, (out, err) in zip(readers, outputs)]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert writer.returncode == 0, writer.stderr
    assert all(r["errors"] == 0 for r in reports), [(r["errors"], r.get("messages")) for r in reports]
    served = sum(r["served"] for r in reports)
    follower = reports[-1]
    print(f"\nwriter: {writer.stdout.strip()}; readers: {reports}")
    assert served > 100 and all(r["checks"] >= 2 for r in reports), reports
    assert follower["generations"] >= 2, follower  # the long-lived reader followed the writer's commits
    assert follower["after_writer"] >= 2, follower
    assert sum(r["stale_answers"] for r in reports) and sum(r["current_answers"] for r in reports), reports
    with Store.open(db) as store:
        assert len(store) == final_count
        assert not store.nearest("the", index="hnsw").notes and not store.nearest("the", index="sq8").notes


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
                                   capture_output=True, text=True, env=env, timeout=60, check=False)
        assert completed.returncode == 1
        assert "busy: another process is writing to it" in completed.stderr
        assert "Traceback" not in completed.stderr
        reader = subprocess.run([sys.executable, "-m", "embstore_cli", "nearest", "of", "-k", "1", "--db", str(db)],
                                capture_output=True, text=True, env=env, timeout=60, check=False)
        assert reader.returncode == 0  # readers are not blocked by a writer
    finally:
        holder.kill()
        holder.wait()
    with Store.open(db) as store:
        assert "the" in store and len(store) == 500
