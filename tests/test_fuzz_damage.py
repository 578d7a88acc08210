"""Fuzz what can be damaged: random bytes of the catalog, of each index file and of the WAL,
truncated files, and random catalog values; then ``check``, ``info``, queries and ``repair``.

For every example a fresh copy of a small store (1,500 real GloVe words, with an sq8 and a
small hnsw index) is damaged once, and then:

* nothing may end in a traceback: library calls raise only ``EmbstoreError`` subclasses,
  the CLI exits 0 or 1 and never prints a traceback;
* nothing may hang (every call has a timeout);
* while ``check`` passes, every answer (nearest words and scores rounded to 4 places
  through exact, sq8 and hnsw, vectors, the word count and the word list) equals the
  undamaged store's; an approximate index that says it is stale may answer from the
  exact rows instead;
* after ``repair``, either ``check`` passes and the answers equal the undamaged store's,
  or the repair said what it could not fix (a non-empty ``remaining``, or an
  ``EmbstoreError`` sentence);
* a catalog that names a file outside the store (``../victim.txt``, an absolute path,
  the source file) never gets that file changed or removed.

Everything embstore does runs in a separate worker process (started once, restarted
after a crash or a hang), so that a hang is caught by a timeout and a crash of FAISS or
SQLite fails one example instead of killing pytest. The worker runs FAISS single-threaded,
which makes an index rebuilt by ``repair`` identical to the one it replaces. The CLI is
run in the worker through click's CliRunner, which lets every exception through.

Each of the five tests runs ``EMBSTORE_FUZZ_EXAMPLES`` hypothesis examples (25 by
default, about 20-40 s for the file on a busy 2-core machine); set it higher for a
longer run, e.g. ``EMBSTORE_FUZZ_EXAMPLES=500 python -m pytest -q tests/test_fuzz_damage.py``.
``EMBSTORE_FUZZ_TIMEOUT`` (seconds, default 45) is the time allowed to one call.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

EXAMPLES = int(os.environ.get("EMBSTORE_FUZZ_EXAMPLES", "25"))
CALL_TIMEOUT = float(os.environ.get("EMBSTORE_FUZZ_TIMEOUT", "45"))
WORDS = 1_500
STORE = "s.db"
KINDS = ("exact", "sq8", "hnsw")
PROBES = ("king", "city", "water", "president", "money", "war", "school", "music", "france", "computer")
K = 5


# ---------------------------------------------------------------------------------------
# The worker: a separate Python process that does everything embstore does in these tests.
# ---------------------------------------------------------------------------------------

def _guarded(function, *args, **kwargs) -> dict:
    """{'status': 'ok', 'value': ...}, or 'error' for an EmbstoreError, or 'crash' with the
    traceback for any other exception."""
    from embstore.errors import EmbstoreError

    try:
        return {"status": "ok", "value": function(*args, **kwargs)}
    except EmbstoreError as exc:
        return {"status": "error", "type": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the point is to report it
        return {"status": "crash", "type": type(exc).__name__, "message": str(exc)[:500],
                "traceback": traceback.format_exc()[-4000:]}


def _answer(result) -> dict:
    return {"words": [n.word for n in result.neighbours], "scores": [round(float(n.score), 4) for n in result.neighbours],
            "notes": list(result.notes)}


def _words_digest(words) -> str:
    return hashlib.sha256("\n".join(words).encode("utf-8", "surrogatepass")).hexdigest()


def _worker_answers(db: str) -> dict:
    """Every answer the tests compare, through the library; each query guarded on its own."""
    from embstore import Store

    opened = _guarded(Store.open, db)
    if opened["status"] != "ok":
        return {"open": opened}
    store = opened["value"]
    try:
        out = {"open": {"status": "ok"}, "nearest": {}, "vectors": {}}
        for kind in KINDS:
            out["nearest"][kind] = {probe: _guarded(lambda p=probe, k=kind: _answer(store.nearest(p, k=K, index=k)))
                                    for probe in PROBES}
        out["vectors"] = {probe: _guarded(lambda p=probe: [float(v) for v in store.vector(p)]) for probe in PROBES}
        out["len"] = _guarded(len, store)
        out["list"] = _guarded(lambda: _words_digest(list(store)))
        return out
    finally:
        closed = _guarded(store.close)
        if closed["status"] != "ok":
            out["close"] = closed


def _worker_check(db: str) -> dict:
    from embstore.storage.check import check_store

    report = check_store(db)
    return {"ok": report.ok, "problems": report.problems, "notes": report.notes, "stale": sorted(report.stale),
            "damaged": sorted(report.damaged)}


def _worker_repair(db: str) -> dict:
    from embstore.repair import repair_store

    report = repair_store(db)
    return {"actions": report.actions, "remaining": report.remaining}


def _worker_cli(args: list[str]) -> dict:
    from click.testing import CliRunner

    from embstore_cli.app import cli

    result = CliRunner().invoke(cli, args, catch_exceptions=True)
    crash = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        crash = "".join(traceback.format_exception(*result.exc_info))[-4000:]
    return {"exit_code": result.exit_code, "stdout": result.stdout[-20000:], "stderr": result.stderr[-4000:],
            "crash": crash}


def _worker_build(folder: str, source: str) -> list[str]:
    from embstore import Store

    db = Path(folder) / STORE
    Store.load(source, db)
    with Store.open(db) as store:
        store.build_index("sq8")
        store.build_index("hnsw", m=8, ef_construction=32)
    return sorted(p.name for p in Path(folder).iterdir())


def _worker_make_wal(work: str, template: str, old: str, new: str) -> dict:
    """In ``work`` (a copy of the store): commit a rename that stays in s.db-wal (another
    connection holds the catalog open, so no checkpoint runs when the store closes), and
    copy the catalog, its WAL and its shared-memory file into ``template``."""
    from embstore import Store

    db = Path(work) / STORE
    holder = sqlite3.connect(db)
    try:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("SELECT count(*) FROM meta").fetchone()
        with Store.open(db) as store:
            store.rename_word(old, new)
        os.makedirs(template, exist_ok=True)
        for file in Path(work).iterdir():
            shutil.copy(file, Path(template) / file.name)
    finally:
        holder.close()
    return {p.name: p.stat().st_size for p in Path(template).iterdir()}


def _worker_main() -> None:
    import faiss

    faiss.omp_set_num_threads(1)
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    # Whatever embstore, FAISS or SQLite print goes to the log, never into the replies.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    operations = {"answers": _worker_answers, "check": _worker_check, "repair": _worker_repair, "cli": _worker_cli,
                  "build": _worker_build, "make_wal": _worker_make_wal}
    for line in requests:
        request = json.loads(line)
        operation = operations[request.pop("op")]
        if operation in (_worker_answers, _worker_cli):
            reply = {"status": "ok", "value": operation(**request)}
        else:
            reply = _guarded(operation, **request)
        reply["fds"] = len(os.listdir("/proc/self/fd"))
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _worker_main()
    sys.exit(0)


# ---------------------------------------------------------------------------------------
# The tests.
# ---------------------------------------------------------------------------------------

import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_FAILURE_TYPES: dict[str, type] = {}


def fail(category: str, message: str):
    """Raise an AssertionError of a class of its own per category, so that hypothesis reports
    each distinct kind of failure with its own minimal example."""
    if category not in _FAILURE_TYPES:
        name = "Fuzz_" + "".join(c if c.isalnum() else "_" for c in category)[:80]
        _FAILURE_TYPES[category] = type(name, (AssertionError,), {})
    raise _FAILURE_TYPES[category](f"[{category}] {message}")


class Worker:
    """The worker process, started on demand; a call that takes longer than the timeout kills
    it (a hang), a worker that dies is reported with the end of its log (a crash)."""

    def __init__(self, log: Path):
        self.log = log
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                                         cwd=str(self.log.parent), start_new_session=True)

    def _log_tail(self) -> str:
        try:
            return self.log.read_bytes()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the worker's own process group
            self.proc.wait()
            self.proc.stdin.close()
            self.proc.stdout.close()
            self.proc = None

    def call(self, op: str, what: str, **args) -> dict:
        if self.proc is None:
            self._start()
        proc = self.proc
        try:
            proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # reported below as a dead worker
        ready, _, _ = select.select([proc.stdout], [], [], CALL_TIMEOUT)
        if not ready:
            self.stop()
            fail(f"hang in {what}", f"{what} did not finish in {CALL_TIMEOUT:.0f} s: {op} {args}")
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            self.stop()
            fail(f"worker died in {what}", f"the process died (exit code {code}) during {what}: {op} {args}\n"
                                           f"end of its log:\n{self._log_tail()}")
        return json.loads(line)


def guarded(worker: Worker, op: str, what: str, **args) -> dict:
    """A worker call whose exceptions other than EmbstoreError fail the test."""
    reply = worker.call(op, what, **args)
    if reply["status"] == "crash":
        fail(f"{what} raised {reply['type']}", f"{what} raised {reply['type']} (not an EmbstoreError):\n"
                                               f"{reply['traceback']}")
    return reply


def run_cli(worker: Worker, what: str, *args) -> dict:
    reply = worker.call("cli", what, args=[str(a) for a in args])["value"]
    if reply["crash"]:
        fail(f"{what}: traceback", f"embstore {' '.join(map(str, args))} ended in a traceback:\n{reply['crash']}")
    if reply["exit_code"] not in (0, 1):
        fail(f"{what}: exit code {reply['exit_code']}", f"exit code {reply['exit_code']}: {reply}")
    if "Traceback" in reply["stderr"] or "Traceback" in reply["stdout"]:
        fail(f"{what}: printed a traceback", reply["stderr"] + reply["stdout"])
    return reply


def library_answers(worker: Worker, db: Path, what: str) -> dict:
    """The library's answers, every part checked for tracebacks."""
    reply = worker.call("answers", what, db=str(db))["value"]
    parts = [("Store.open", reply["open"]), ("Store.close", reply.get("close", {"status": "ok"}))]
    for kind, answers in reply.get("nearest", {}).items():
        parts += [(f"nearest(index={kind})", answer) for answer in answers.values()]
    parts += [("vector", v) for v in reply.get("vectors", {}).values()]
    parts += [("len", reply.get("len", {})), ("list", reply.get("list", {}))]
    for name, part in parts:
        if part.get("status") == "crash":
            fail(f"{what}: {name} raised {part['type']}", f"{name} raised {part['type']} (not an EmbstoreError):\n"
                                                           f"{part['traceback']}")
    return reply


def cli_answers(worker: Worker, db: Path, what: str) -> dict:
    """{kind: reply} of ``embstore nearest PROBES... -k K --index kind --json``."""
    return {kind: run_cli(worker, f"{what}: cli nearest --index", "nearest", *PROBES, "-k", K, "--index", kind,
                          "--json", "--db", db) for kind in KINDS}


def _same_answer(got: dict, want: dict) -> bool:
    return got["words"] == want["words"] and got["scores"] == want["scores"]


def _nearest_matches(kind: str, got: dict, ref: dict, probe: str) -> bool:
    """``got`` is this kind's reference answer, or the exact one with a note that the exact rows answered."""
    if _same_answer(got, ref["nearest"][kind][probe]["value"]):
        return True
    return kind != "exact" and any("exact rows answered" in n for n in got.get("notes", [])) \
        and _same_answer(got, ref["nearest"]["exact"][probe]["value"])


def differences(lib: dict, cli: dict | None, ref: dict) -> list[str]:
    """How the answers differ from the reference ``ref`` (the library's answers of the undamaged store)."""
    found = []
    if lib["open"]["status"] != "ok":
        return [f"Store.open failed: {lib['open'].get('type')}: {lib['open'].get('message')}"]
    for kind in KINDS:
        for probe in PROBES:
            got = lib["nearest"][kind][probe]
            if got["status"] != "ok":
                found.append(f"nearest({probe!r}, index={kind!r}) failed: {got['type']}: {got['message']}")
            elif not _nearest_matches(kind, got["value"], ref, probe):
                found.append(f"nearest({probe!r}, index={kind!r}) = {got['value']}, "
                             f"undamaged {ref['nearest'][kind][probe]['value']}")
    for probe in PROBES:
        if lib["vectors"][probe] != ref["vectors"][probe]:
            found.append(f"vector({probe!r}) differs: {str(lib['vectors'][probe])[:200]}")
    for part in ("len", "list"):
        if lib[part] != ref[part]:
            found.append(f"{part}(store) = {str(lib[part])[:200]}, undamaged {str(ref[part])[:200]}")
    for kind, reply in (cli or {}).items():
        if reply["exit_code"] != 0:
            found.append(f"embstore nearest --index {kind} failed: {reply['stderr'][:300]}")
            continue
        try:
            results = json.loads(reply["stdout"])
        except ValueError:
            found.append(f"embstore nearest --index {kind} --json printed no JSON: {reply['stdout'][:300]}")
            continue
        for result in results:
            got = {"words": [n["word"] for n in result["neighbours"]],
                   "scores": [round(n["score"], 4) for n in result["neighbours"]], "notes": result["notes"]}
            if result["query"] not in PROBES or not _nearest_matches(kind, got, ref, result["query"]):
                found.append(f"embstore nearest {result['query']} --index {kind} = {got}, undamaged "
                             f"{ref['nearest'][kind].get(result['query'], {}).get('value')}")
    return found


def assert_same_answers(lib: dict, cli: dict | None, refs: list[dict], when: str, check: dict) -> None:
    """The answers equal one of ``refs`` (the undamaged store; for a damaged WAL also the
    state before its last commit, which SQLite falls back to when the commit's frames are damaged)."""
    found = [differences(lib, cli, ref) for ref in refs]
    if not all(found):
        return
    shown = "\n  ".join(found[0][:8])
    fail(f"wrong answers while check passes ({when})",
         f"check passes {when} (notes: {check['notes']}) but {len(found[0])} answers differ from the "
         f"undamaged store's:\n  {shown}")


def checked(worker: Worker, db: Path, what: str) -> dict:
    """check_store's report as a dict; a StoreError (a catalog that cannot be opened) counts as not ok."""
    reply = guarded(worker, "check", what, db=str(db))
    if reply["status"] == "error":
        return {"ok": False, "problems": [f"{reply['type']}: {reply['message']}"], "notes": [], "error": True}
    return reply["value"]


def examine(worker: Worker, db: Path, refs: list[dict], victims: dict[Path, bytes], damage: str) -> None:
    """Everything the tests ask of a damaged store at ``db`` (see the module docstring)."""
    before = checked(worker, db, "check after damage")
    run_cli(worker, "cli info", "info", "--db", db)
    run_cli(worker, "cli check", "check", "--db", db)
    cli = cli_answers(worker, db, "after damage")
    lib = library_answers(worker, db, "after damage")
    if before["ok"]:
        assert_same_answers(lib, cli, refs, f"after the damage {damage}", before)
    repaired = guarded(worker, "repair", "repair_store", db=str(db))
    after = checked(worker, db, "check after repair")
    if after["ok"]:
        lib = library_answers(worker, db, "after repair")
        cli = cli_answers(worker, db, "after repair")
        assert_same_answers(lib, cli, refs, f"after the damage {damage} and repair ({repaired})", after)
        run_cli(worker, "cli info after repair", "info", "--db", db)
    elif repaired["status"] == "ok" and not repaired["value"]["remaining"]:
        fail("repair neither fixed nor said",
             f"after the damage {damage}, repair reported nothing remaining ({repaired['value']}) "
             f"but check still finds: {after['problems']}")
    for victim, content in victims.items():
        if not victim.is_file() or victim.read_bytes() != content:
            fail("a file outside the store was changed", f"after the damage {damage}, {victim} was changed or removed")


# -- the undamaged store and its answers ----------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory, sample_lines):
    """A worker, the undamaged store (s.db, its exact, sq8 and hnsw files) and its answers; a
    copy with a committed rename still in its WAL and that copy's answers."""
    base = tmp_path_factory.mktemp("fuzz")
    worker = Worker(base / "worker.log")
    try:
        source = base / "src" / "src.txt"
        source.parent.mkdir()
        source.write_text("".join(sample_lines[:WORDS]), encoding="utf-8")
        pristine = base / "pristine"
        pristine.mkdir()
        built = guarded(worker, "build", "building the store", folder=str(pristine), source=str(source))
        assert built["status"] == "ok", built
        assert {name.split(".")[2] for name in built["value"] if name != STORE} == set(KINDS), built
        ref = library_answers(worker, pristine / STORE, "the undamaged store")
        assert not differences(ref, None, ref), "the undamaged store does not answer every probe"
        assert ref["len"]["value"] == WORDS
        assert checked(worker, pristine / STORE, "check of the undamaged store")["ok"]
        # The WAL template: rename the best exact answer for 'king' that is not a probe.
        old = next(w for w in ref["nearest"]["exact"]["king"]["value"]["words"] if w not in PROBES)
        work, template = base / "walwork", base / "waltemplate"
        shutil.copytree(pristine, work)
        made = guarded(worker, "make_wal", "making the WAL", work=str(work), template=str(template),
                       old=old, new=old + "_renamed")
        assert made["status"] == "ok", made
        assert made["value"].get(STORE + "-wal", 0) > 32, f"no committed frames in the WAL: {made}"
        probe_copy = base / "walprobe"
        shutil.copytree(template, probe_copy)
        wal_ref = library_answers(worker, probe_copy / STORE, "the store with a WAL")
        assert not differences(wal_ref, None, wal_ref) and differences(wal_ref, None, ref), \
            "the rename in the WAL should change answers"
        yield {"base": base, "worker": worker, "source": source, "source_bytes": source.read_bytes(),
               "pristine": pristine, "ref": ref, "template": template, "wal_ref": wal_ref}
    finally:
        worker.stop()


def fresh_copy(lab, template: Path | None = None) -> tuple[Path, Path]:
    """(example folder, its store) with a copy of ``template`` (default: the undamaged store)."""
    folder = Path(tempfile.mkdtemp(dir=lab["base"], prefix="ex"))
    shutil.copytree(template or lab["pristine"], folder / "store")
    return folder, folder / "store" / STORE


def index_file(db: Path, kind: str) -> Path:
    found = sorted(db.parent.glob(f"{STORE}.{kind}.*.faiss"))
    assert len(found) == 1, found
    return found[0]


def run_example(lab, damage, description: str, template: Path | None = None, refs: list[dict] | None = None,
                victims: bool = False) -> None:
    """Copy, damage (``damage(folder, db, victims)``), examine, clean up."""
    folder, db = fresh_copy(lab, template)
    watched = {lab["source"]: lab["source_bytes"]}
    if victims:
        for name in ("victim.txt", "abs_victim.txt"):
            (folder / name).write_bytes(f"{name} must survive\n".encode())
            watched[folder / name] = (folder / name).read_bytes()
    try:
        applied = damage(folder, db)
        if applied is False:
            return  # the damage could not be applied (SQLite refused it): nothing to examine
        examine(lab["worker"], db, refs or [lab["ref"]], watched, description)
    finally:
        if lab["source"].read_bytes() != lab["source_bytes"]:  # keep later examples meaningful
            lab["source"].write_bytes(lab["source_bytes"])
        shutil.rmtree(folder, ignore_errors=True)


def xor_bytes(path: Path, edits: list[tuple[int, int]]) -> None:
    data = bytearray(path.read_bytes())
    for offset, mask in edits:
        data[offset % len(data)] ^= mask
    path.write_bytes(bytes(data))


def draw_edits(data, size: int, header: int = 100) -> list[tuple[int, int]]:
    """1-4 (offset, xor mask) pairs: offsets in the first ``header`` bytes or anywhere."""
    offset = st.one_of(st.integers(0, min(header, size) - 1), st.integers(0, size - 1))
    return data.draw(st.lists(st.tuples(offset, st.integers(1, 255)), min_size=1, max_size=4), label="edits")


# -- 1. the catalog's bytes ------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_damaged_catalog_bytes(lab, data):
    size = (lab["pristine"] / STORE).stat().st_size
    edits = draw_edits(data, size)
    run_example(lab, lambda folder, db: xor_bytes(db, edits), f"catalog bytes xor {edits}")


# -- 2. an index file's bytes ----------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_damaged_index_bytes(lab, data):
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    size = index_file(lab["pristine"] / STORE, kind).stat().st_size
    edits = draw_edits(data, size)
    run_example(lab, lambda folder, db: xor_bytes(index_file(db, kind), edits), f"{kind} index bytes xor {edits}")


# -- 3. a truncated file ---------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_truncated_file(lab, data):
    target = data.draw(st.sampled_from(("catalog",) + KINDS), label="file")
    path = lab["pristine"] / STORE if target == "catalog" else index_file(lab["pristine"] / STORE, target)
    length = data.draw(st.one_of(st.integers(0, 200), st.integers(0, path.stat().st_size - 1)), label="length")

    def damage(folder, db):
        victim = db if target == "catalog" else index_file(db, target)
        os.truncate(victim, length)

    run_example(lab, damage, f"{target} file truncated to {length} bytes")


# -- 4. catalog values -----------------------------------------------------------------------

META_KEYS = ("dimension", "format_version", "generation", "rows_generation", "storage", "default_index",
             "words_digest", "source", "source_bytes", "source_format", "changes_since_load", "metric")
INDEX_COLUMNS = ("kind", "file", "rows", "bytes", "checksum", "params", "rows_generation", "generation", "recall")
ABSOLUTE_VICTIM, SOURCE_FILE = "<absolute victim>", "<source file>"
SPECIAL_VALUES = ("../victim.txt", ABSOLUTE_VICTIM, SOURCE_FILE, "{bad json", "[]", "{}", "null", -1, 0, 1, 2,
                  2 ** 62, 2 ** 63 - 1, -(2 ** 63), "x", "", " 1", "01", "1e3", "sq8", "hnsw", "exact", "ivf",
                  "s.db", "s.db.exact.deadbeef.faiss", "sha256:" + "0" * 64, 1.5, float("inf"), None)
VALUES = st.one_of(st.sampled_from(SPECIAL_VALUES), st.integers(-(2 ** 63), 2 ** 63 - 1), st.text(max_size=12),
                   st.binary(max_size=6), st.floats(allow_nan=False))


def _value(value, folder: Path, source: Path):
    if value == ABSOLUTE_VICTIM:
        return str(folder / "abs_victim.txt")
    if value == SOURCE_FILE:
        return str(source)
    return value


def _swap_ids(conn, first: int, second: int) -> None:
    conn.execute("UPDATE words SET id = -12345 WHERE id = ?", (first,))
    conn.execute("UPDATE words SET id = ? WHERE id = ?", (first, second))
    conn.execute("UPDATE words SET id = ? WHERE id = -12345", (second,))


@FUZZ
@given(data=st.data())
def test_damaged_catalog_values(lab, data):
    target = data.draw(st.sampled_from(("meta", "delete meta", "index_files", "word", "swap ids")), label="target")
    if target in ("meta", "delete meta"):
        key = data.draw(st.sampled_from(META_KEYS), label="key")
        value = None if target == "delete meta" else data.draw(VALUES, label="value")
        description = f"meta.{key} deleted" if target == "delete meta" else f"meta.{key} = {value!r}"
    elif target == "index_files":
        kind = data.draw(st.sampled_from(KINDS), label="row")
        key = data.draw(st.sampled_from(INDEX_COLUMNS), label="column")
        value = data.draw(VALUES, label="value")
        description = f"index_files[{kind}].{key} = {value!r}"
    elif target == "word":
        word_id = data.draw(st.integers(0, WORDS - 1), label="word id")
        key = data.draw(st.sampled_from(("word", "norm", "id", "rank", "folded")), label="column")
        value = data.draw(st.one_of(st.sampled_from(("king", "KING", "King", "", " ", "x", -1, 0, WORDS, 1e-300,
                                                     2.0, float("inf"), -1.0, 1e308)),
                                    st.integers(-5, WORDS + 5), st.floats(allow_nan=False), st.text(max_size=8),
                                    st.binary(max_size=4)), label="value")
        description = f"words[id={word_id}].{key} = {value!r}"
    else:
        first, second = data.draw(st.lists(st.integers(0, WORDS - 1), min_size=2, max_size=2, unique=True),
                                  label="ids")
        description = f"ids of words {first} and {second} swapped"

    def damage(folder: Path, db: Path):
        conn = sqlite3.connect(db)
        try:
            with conn:
                if target == "meta":
                    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                 (key, _value(value, folder, lab["source"])))
                elif target == "delete meta":
                    conn.execute("DELETE FROM meta WHERE key = ?", (key,))
                elif target == "index_files":
                    conn.execute(f"UPDATE index_files SET {key} = ? WHERE kind = ?",
                                 (_value(value, folder, lab["source"]), kind))
                elif target == "word":
                    conn.execute(f"UPDATE words SET {key} = ? WHERE id = ?", (value, word_id))
                else:
                    _swap_ids(conn, first, second)
        except sqlite3.IntegrityError:  # a NOT NULL or UNIQUE constraint refused it
            return False
        finally:
            conn.close()

    run_example(lab, damage, description, victims=True)


# -- 5. the WAL ------------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_damaged_wal(lab, data):
    template = lab["template"]
    target = data.draw(st.sampled_from((f"{STORE}-wal", f"{STORE}-shm")), label="file")
    how = data.draw(st.sampled_from(("xor", "truncate")), label="damage")
    size = (template / target).stat().st_size
    if how == "xor":
        edits = draw_edits(data, size, header=56)  # the WAL header and the first frame's header
        description = f"{target} bytes xor {edits}"
    else:
        length = data.draw(st.integers(0, size - 1), label="length")
        description = f"{target} truncated to {length} bytes"

    def damage(folder, db):
        path = db.parent / target
        if how == "xor":
            xor_bytes(path, edits)
        else:
            os.truncate(path, length)

    # A damaged commit frame makes SQLite fall back to the state before that commit, as
    # after a crash before it: the answers are those of the store with or without the rename.
    run_example(lab, damage, description, template=template, refs=[lab["wal_ref"], lab["ref"]])
