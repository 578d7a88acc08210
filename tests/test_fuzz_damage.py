"""Fuzz what can be damaged: random bytes of the catalog, of each index file and of the WAL,
truncated or deleted files, and random catalog values; then ``check``, ``info``, queries and
``repair``.

For every example a fresh copy of a small store (1,500 real GloVe words, with an sq8 and a
small hnsw index) is damaged once, and then:

* nothing may end in a traceback: library calls raise only ``EmbstoreError`` subclasses,
  the CLI exits 0 or 1 and never prints a traceback;
* nothing may hang (every call has a timeout);
* while ``check`` passes, every answer (nearest words and scores rounded to 4 places
  through exact, sq8 and hnsw, vectors, the word count and the word list) equals the
  undamaged store's; an approximate index that says the exact rows answered (it is stale)
  may give the exact answer instead;
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

The bugs this file found are listed in ``KNOWN_BUGS``, each with the smallest damage that
showed it; all are fixed, and ``test_bugs_found_by_fuzzing_stay_fixed`` runs each as a
regression test. ``EMBSTORE_FUZZ_KNOWN_BUGS=pass`` lets the five fuzz tests pass over
failures of those kinds, should one come back while the fuzzers look for new ones; by
default they fail on them, as on any other.

Each fuzz test runs ``EMBSTORE_FUZZ_EXAMPLES`` hypothesis examples (30 by default: about
40 s for the whole file on a busy 2-core machine); set it higher for a longer run, e.g.
``EMBSTORE_FUZZ_EXAMPLES=500 python -m pytest -q tests/test_fuzz_damage.py``.
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
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("EMBSTORE_FUZZ_EXAMPLES", "30"))
CALL_TIMEOUT = float(os.environ.get("EMBSTORE_FUZZ_TIMEOUT", "45"))
WORDS = 1_500
STORE = "s.db"
KINDS = ("exact", "sq8", "hnsw")
PROBES = ("king", "city", "water", "president", "money", "war", "school", "music", "france", "computer")
K = 5
WORKER_MEMORY = 4 << 30  # bytes of address space the worker may use


# ---------------------------------------------------------------------------------------
# The worker: a separate Python process that does everything embstore does in these tests.
# ---------------------------------------------------------------------------------------

def _where(tb) -> str:
    """The innermost embstore frame of a traceback, as 'storage/catalog.py:read_snapshot'."""
    import embstore

    package = os.path.dirname(embstore.__file__) + os.sep
    frames = [f for f in traceback.extract_tb(tb) if f.filename.startswith(package)]
    return f"{frames[-1].filename[len(package):]}:{frames[-1].name}" if frames else ""


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
                "where": _where(exc.__traceback__), "traceback": traceback.format_exc()[-4000:]}


def _answer(result) -> dict:
    return {"words": [n.word for n in result.neighbours],
            "scores": [round(float(n.score), 4) for n in result.neighbours], "notes": list(result.notes)}


def _words_digest(words) -> str:
    """One digest of the word list (a word that is not text, from a damaged catalog, counts by its repr)."""
    text = "\n".join(w if isinstance(w, str) else repr(w) for w in words)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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
    crash = where = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        crash = "".join(traceback.format_exception(*result.exc_info))[-4000:]
        where = _where(result.exc_info[2])
    return {"exit_code": result.exit_code, "stdout": result.stdout[-20000:], "stderr": result.stderr[-4000:],
            "crash": crash, "type": type(result.exception).__name__, "where": where}


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
    import resource

    import faiss

    # A damaged size or setting must not let the worker take the (shared) machine's memory:
    # beyond this, an allocation fails (MemoryError), which the tests report.
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, resource.getrlimit(resource.RLIMIT_AS)[1]))
    faiss.omp_set_num_threads(1)
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    # Whatever embstore, FAISS or SQLite print goes to the log, never into the replies.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    operations = {"answers": _worker_answers, "check": _worker_check, "repair": _worker_repair, "cli": _worker_cli,
                  "build": _worker_build, "make_wal": _worker_make_wal}
    for line in requests:
        try:
            request = json.loads(line)
            operation = operations[request.pop("op")]
            if operation in (_worker_answers, _worker_cli):
                reply = {"status": "ok", "value": operation(**request)}
            else:
                reply = _guarded(operation, **request)
            # A damaged catalog can hand back bytes where text belongs: shown by their repr.
            text = json.dumps(reply, default=repr)
        except Exception:  # noqa: BLE001 - an error of this file's own code, not of embstore
            text = json.dumps({"status": "harness", "traceback": traceback.format_exc()})
        replies.write(text + "\n")
        replies.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _worker_main()
    sys.exit(0)


# ---------------------------------------------------------------------------------------
# The tests.
# ---------------------------------------------------------------------------------------

FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_FAILURE_TYPES: dict[str, type] = {}
# The running example: its damage (named in every failure), whether known bugs are let pass,
# and the known bugs it met.
_CURRENT: dict = {"damage": None, "tolerate_known": False, "known": []}
TOLERATE_KNOWN = os.environ.get("EMBSTORE_FUZZ_KNOWN_BUGS", "fail") == "pass"


def failure_type(category: str) -> type:
    """The AssertionError subclass of one category of failure (hypothesis reports each
    distinct class of failure with its own minimal example)."""
    if category not in _FAILURE_TYPES:
        name = "Fuzz_" + "".join(c if c.isalnum() else "_" for c in category)[:80]
        _FAILURE_TYPES[category] = type(name, (AssertionError,), {})
    return _FAILURE_TYPES[category]


# Bugs this file found, each proved by a strict-xfail case of test_known_bug below. The five
# fuzz tests end an example that meets one of these kinds of failure without failing, so that
# they keep looking for new ones; EMBSTORE_FUZZ_KNOWN_BUGS=fail makes them fail on these too.
SQLITE_LAYER = ("storage/catalog.py:", "storage/catalog_words.py:", "storage/catalog_indexes.py:", "storage/schema.py:")
RAW_ERRORS = ("DatabaseError", "OperationalError", "IntegrityError", "UnicodeDecodeError", "ValueError")


def known_bug(category: str, details: dict) -> str | None:
    """The name of the known bug a failure is, or None for a new one."""
    if details.get("type") in RAW_ERRORS and str(details.get("where")).startswith(SQLITE_LAYER):
        return "raw SQLite errors of a damaged catalog escape the library"
    damage = str(_CURRENT["damage"])
    if details.get("type") in ("TypeError", "OverflowError", "MemoryError") and "'params'" in damage \
            and str(details.get("where")).startswith("search/"):
        return "a search setting in an index record is used unchecked: every query through the index crashes"
    if category.startswith("wrong answers while check passes") and "'storage', 'sq8')" in damage:
        return "check passes when meta.storage says sq8 on an exact store"
    if category == "wrong answers while check passes after repair" and details.get("differences") \
            and all("this store has no" in d for d in details["differences"]):
        return "repair drops an approximate index that it does not recognise"
    return None


class KnownBugMet(Exception):
    """Ends an example that met a known bug (while the tests let known bugs pass)."""


def fail(category: str, message: str, **details) -> None:
    """Raise an AssertionError of the category's own class; or, for a known bug (``known_bug``)
    while the tests let known bugs pass, end the example."""
    if _CURRENT["tolerate_known"]:
        bug = known_bug(category, details)
        if bug:
            _CURRENT["known"].append(bug)
            raise KnownBugMet(bug)
    raise failure_type(category)(f"[{category}] damage: {_CURRENT['damage']}\n{message}")


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
            fail(f"hang in {what}", f"{what} did not finish in {CALL_TIMEOUT:g} s: {op} {args}")
            raise AssertionError("hang")  # (``fail`` raises first: a hang is never a known bug)
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            self.stop()
            fail(f"worker died in {what}", f"the process died (exit code {code}) during {what}: {op} {args}\n"
                                           f"end of its log:\n{self._log_tail()}")
            raise AssertionError("worker died")
        reply = json.loads(line)
        if reply["status"] == "harness":
            raise RuntimeError(f"the worker's own code failed in {what}:\n{reply['traceback']}")
        return reply


def guarded(worker: Worker, op: str, what: str, **args) -> dict:
    """A worker call whose exceptions other than EmbstoreError fail the test."""
    reply = worker.call(op, what, **args)
    if reply["status"] == "crash":
        fail(f"{what} raised {reply['type']}", f"{what} raised {reply['type']} (not an EmbstoreError):\n"
                                               f"{reply['traceback']}", type=reply["type"], where=reply["where"])
    return reply


def run_cli(worker: Worker, what: str, *args) -> dict:
    reply = worker.call("cli", what, args=[str(a) for a in args])["value"]
    if reply["crash"]:
        fail(f"{what}: traceback", f"embstore {' '.join(map(str, args))} ended in a traceback:\n{reply['crash']}",
             type=reply["type"], where=reply["where"])
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
            fail(f"{what}: {name} raised {part['type']}",
                 f"{name} raised {part['type']} (not an EmbstoreError):\n{part['traceback']}",
                 type=part["type"], where=part["where"])
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


def assert_same_answers(lib: dict, cli: dict | None, refs: list[dict], stage: str, when: str, check: dict) -> None:
    """The answers equal one of ``refs`` (the undamaged store; for a damaged WAL also the
    state before its last commit, which SQLite falls back to when the commit's frames are damaged)."""
    found = [differences(lib, cli, ref) for ref in refs]
    if not all(found):
        return
    shown = "\n  ".join(found[0][:8])
    fail(f"wrong answers while check passes {stage}",
         f"check passes {when} (notes: {check['notes']}) but {len(found[0])} answers differ from the "
         f"undamaged store's:\n  {shown}", differences=found[0])


def checked(worker: Worker, db: Path, what: str) -> dict:
    """check_store's report as a dict; a StoreError (a catalog that cannot be opened) counts as not ok."""
    reply = guarded(worker, "check", what, db=str(db))
    if reply["status"] != "ok":
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
        assert_same_answers(lib, cli, refs, "after damage", f"after the damage {damage}", before)
    repaired = guarded(worker, "repair", "repair_store", db=str(db))
    after = checked(worker, db, "check after repair")
    if after["ok"]:
        lib = library_answers(worker, db, "after repair")
        cli = cli_answers(worker, db, "after repair")
        assert_same_answers(lib, cli, refs, "after repair", f"after the damage {damage} and repair ({repaired})",
                            after)
        run_cli(worker, "cli info after repair", "info", "--db", db)
    elif repaired["status"] == "ok" and not repaired["value"]["remaining"]:
        fail("repair neither fixed nor said",
             f"after the damage {damage}, repair reported nothing remaining ({repaired['value']}) "
             f"but check still finds: {after['problems']}")
    for victim, content in victims.items():
        if not victim.is_file() or victim.read_bytes() != content:
            fail("a file outside the store was changed", f"after the damage {damage}, {victim} was changed or removed")


# -- the undamaged store and its answers ----------------------------------------------------

class Lab(dict):
    """What the module fixture holds; a short repr, for hypothesis' reports."""

    def __repr__(self) -> str:
        return f"<the undamaged store at {self['pristine']}>"


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
        yield Lab({"base": base, "worker": worker, "source": source, "source_bytes": source.read_bytes(),
                   "pristine": pristine, "ref": ref, "template": template, "wal_ref": wal_ref})
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
                victims: bool = False, tolerate_known: bool = TOLERATE_KNOWN) -> None:
    """Copy, damage (``damage(folder, db)``, False if it could not be applied), examine, clean up."""
    folder, db = fresh_copy(lab, template)
    watched = {lab["source"]: lab["source_bytes"]}
    if victims:
        for name in ("victim.txt", "abs_victim.txt"):
            (folder / name).write_bytes(f"{name} must survive\n".encode())
            watched[folder / name] = (folder / name).read_bytes()
    _CURRENT.update(damage=description, tolerate_known=tolerate_known, known=[])
    try:
        applied = damage(folder, db)
        if applied is False:
            return  # the damage could not be applied (SQLite refused it): nothing to examine
        examine(lab["worker"], db, refs or [lab["ref"]], watched, description)
    except KnownBugMet:
        pass
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
    length = data.draw(st.one_of(st.integers(0, 200), st.integers(0, path.stat().st_size - 1), st.just("deleted")),
                       label="length")

    def damage(folder, db):
        victim = db if target == "catalog" else index_file(db, target)
        if length == "deleted":
            victim.unlink()
        else:
            os.truncate(victim, length)

    run_example(lab, damage, f"{target} file truncated to {length} bytes" if length != "deleted"
                else f"{target} file deleted")


# -- 4. catalog values -----------------------------------------------------------------------

META_KEYS = ("dimension", "format_version", "generation", "rows_generation", "storage", "default_index",
             "words_digest", "source", "source_bytes", "source_format", "changes_since_load", "metric")
INDEX_COLUMNS = ("kind", "file", "rows", "bytes", "checksum", "params", "rows_generation", "generation", "recall")
WORD_COLUMNS = ("word", "norm", "id", "rank", "folded")
ABSOLUTE_VICTIM, SOURCE_FILE = "<absolute victim>", "<source file>"
SPECIAL_VALUES = ("../victim.txt", ABSOLUTE_VICTIM, SOURCE_FILE, "{bad json", "[]", "{}", "null", -1, 0, 1, 2,
                  2 ** 62, 2 ** 63 - 1, -(2 ** 63), "x", "", " 1", "01", "1e3", "sq8", "hnsw", "exact", "ivf",
                  "s.db", "s.db.exact.deadbeef.faiss", "sha256:" + "0" * 64, 1.5, float("inf"), None)
VALUES = st.one_of(st.sampled_from(SPECIAL_VALUES), st.integers(-(2 ** 63), 2 ** 63 - 1), st.text(max_size=12),
                   st.binary(max_size=6), st.floats(allow_nan=False))
SEARCH_SETTINGS = st.dictionaries(  # index_files.params: valid JSON objects with odd settings
    st.sampled_from(("ef_search", "ef_search_words", "nprobe", "m", "ef_construction", "knn_links")),
    st.one_of(st.sampled_from((0, -1, 1, 5, 2 ** 31 - 1, 2 ** 31, 10 ** 12, 2 ** 62)), st.integers(-(2 ** 63), 2 ** 63 - 1),
              st.floats(allow_nan=False), st.text(max_size=3), st.none(), st.booleans(),
              st.lists(st.integers(0, 9), max_size=2)),
    max_size=3).map(json.dumps)
WORD_VALUES = st.one_of(st.sampled_from(("king", "KING", "King", "", " ", "x", -1, 0, WORDS, 1e-300, 2.0,
                                         float("inf"), -1.0, 1e308)),
                        st.integers(-5, WORDS + 5), st.floats(allow_nan=False), st.text(max_size=8),
                        st.binary(max_size=4))
CATALOG_VALUE_DAMAGES = st.one_of(
    st.tuples(st.just("meta"), st.sampled_from(META_KEYS), VALUES),
    st.tuples(st.just("delete meta"), st.sampled_from(META_KEYS)),
    st.tuples(st.just("index_files"), st.sampled_from(KINDS), st.sampled_from(INDEX_COLUMNS), VALUES),
    st.tuples(st.just("index_files"), st.sampled_from(KINDS), st.just("params"), SEARCH_SETTINGS),
    st.tuples(st.just("word"), st.integers(0, WORDS - 1), st.sampled_from(WORD_COLUMNS), WORD_VALUES),
    st.tuples(st.just("swap ids"), st.integers(0, WORDS - 1), st.integers(0, WORDS - 1)).filter(lambda t: t[1] != t[2]),
    st.tuples(st.just("migration"), st.integers(1, 5), st.sampled_from(("name", "migration_set", "delete")),
              st.sampled_from(("x", "", "0005_word_digests", "0001_create_catalog", "embstore"))),
)


def _value(value, folder: Path, source: Path):
    if value == ABSOLUTE_VICTIM:
        return str(folder / "abs_victim.txt")
    if value == SOURCE_FILE:
        return str(source)
    return value


def damage_catalog_value(db: Path, damage: tuple, folder: Path, source: Path) -> bool:
    """Apply one catalog value damage through sqlite3; False if SQLite refused it (a constraint)."""
    target, *args = damage
    conn = sqlite3.connect(db)
    try:
        with conn:
            if target == "meta":
                key, value = args
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                             (key, _value(value, folder, source)))
            elif target == "delete meta":
                conn.execute("DELETE FROM meta WHERE key = ?", (args[0],))
            elif target == "index_files":
                kind, column, value = args
                assert column in INDEX_COLUMNS
                conn.execute(f"UPDATE index_files SET {column} = ? WHERE kind = ?",
                             (_value(value, folder, source), kind))
            elif target == "word":
                word_id, column, value = args
                assert column in WORD_COLUMNS
                conn.execute(f"UPDATE words SET {column} = ? WHERE id = ?", (value, word_id))
            elif target == "migration":  # sqlite-utils' record of the schema migrations applied
                row, column, value = args
                if column == "delete":
                    conn.execute("DELETE FROM _sqlite_migrations WHERE id = ?", (row,))
                else:
                    assert column in ("name", "migration_set")
                    conn.execute(f"UPDATE _sqlite_migrations SET {column} = ? WHERE id = ?", (value, row))
            else:
                first, second = args
                conn.execute("UPDATE words SET id = -12345 WHERE id = ?", (first,))
                conn.execute("UPDATE words SET id = ? WHERE id = ?", (first, second))
                conn.execute("UPDATE words SET id = ? WHERE id = -12345", (second,))
    except sqlite3.IntegrityError:  # a NOT NULL or UNIQUE constraint refused it
        return False
    finally:
        conn.close()
    return True


@FUZZ
@given(damage=CATALOG_VALUE_DAMAGES)
def test_damaged_catalog_values(lab, damage):
    run_example(lab, lambda folder, db: damage_catalog_value(db, damage, folder, lab["source"]),
                f"catalog value {damage!r}", victims=True)


# -- 5. the WAL ------------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_damaged_wal(lab, data):
    template = lab["template"]
    # Mostly the WAL; SQLite rebuilds the shared-memory index when the first connection opens.
    target = data.draw(st.sampled_from((f"{STORE}-wal",) * 3 + (f"{STORE}-shm",)), label="file")
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


# -- the bugs found, each with the smallest damage that shows it -----------------------------

def xor_after(needle: bytes, delta: int, mask: int):
    """A damage: xor ``mask`` into the byte ``delta`` after the first ``needle`` in the catalog file."""
    def damage(folder: Path, db: Path) -> None:
        data = db.read_bytes()
        assert needle in data, needle
        xor_bytes(db, [(data.index(needle) + delta, mask)])
    return damage


def xor_in_page_of(name: str, offset: int, mask: int):
    """A damage: xor ``mask`` into byte ``offset`` of the root page of the table or index ``name``."""
    def damage(folder: Path, db: Path) -> None:
        conn = sqlite3.connect(db)
        try:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
        finally:
            conn.close()
        xor_bytes(db, [((root - 1) * page_size + offset, mask)])
    return damage


def catalog_sql(statement: str, *values):
    def damage(folder: Path, db: Path) -> None:
        conn = sqlite3.connect(db)
        try:
            with conn:
                conn.execute(statement, values)
        finally:
            conn.close()
    return damage


RAW = ("raw SQLite error from a damaged catalog escapes the library (the CLI turns it into 'Error: ...', "
       "the library raises it untranslated)")


class KnownBug(NamedTuple):
    name: str
    damage: Callable[[Path, Path], object]
    category: str  # the failure it ends in
    reason: str


KNOWN_BUGS = [
    KnownBug("query: an answer's ID has no word", lambda folder, db: xor_bytes(db, [(24549, 1)]),
             "after damage: cli nearest --index: traceback",
             f"{RAW}: one bit of a words-table page: a neighbour's ID is not found when its word is looked up, "
             "and WordQueries._result (word_queries.py) raised KeyError; Vocabulary.words_for now says the "
             "catalog is damaged"),
    KnownBug("check: malformed catalog", xor_in_page_of("words_by_word", 0, 1),
             "check after damage raised DatabaseError",
             f"{RAW}: check_store raises sqlite3.DatabaseError 'database disk image is malformed' from the COMMIT "
             "of Catalog.read_snapshot (storage/catalog.py) after _check_catalog read a damaged b-tree page"),
    KnownBug("check: lost migration record", catalog_sql("DELETE FROM _sqlite_migrations WHERE name = ?",
                                                         "0005_word_digests"),
             "check after damage raised OperationalError",
             f"{RAW}: check_store opens the catalog with upgrade=True, so a lost migration record makes "
             "Catalog.open apply migration 0005 again: sqlite3.OperationalError 'duplicate column name: digest' "
             "(repair would re-record it, but check crashes first)"),
    KnownBug("check: schema column renamed", xor_after(b'"checksum"', 8, 1),
             "check after damage raised OperationalError",
             f"{RAW}: a damaged column name in the catalog's schema: IndexRecords.index_file_rows raises "
             "sqlite3.OperationalError 'no such column: checksum'"),
    KnownBug("check: schema name not UTF-8", xor_after(b"indexsqlite_autoindex_index_files_1", 15, 0xA0),
             "check after damage raised UnicodeDecodeError",
             f"{RAW}: a byte of sqlite_master made invalid UTF-8: Catalog.open ('SELECT count(*) FROM "
             "sqlite_master') raises UnicodeDecodeError (Python cannot decode SQLite's error message); "
             "check_store, Store.open and repair_store all end in it"),
    KnownBug("repair: malformed catalog", lambda folder, db: xor_bytes(db, [(52, 1)]),
             "repair_store raised DatabaseError",
             f"{RAW}: header byte 52 (auto-vacuum root page) damaged; check reports the failed integrity check, "
             "and repair reloads the source INTO the damaged catalog (Store.load(replace=True) -> "
             "delete_all_words) and raises sqlite3.DatabaseError; 'embstore load --replace' fails the same way, "
             "so nothing short of deleting the file recovers the store"),
    KnownBug("repair: damaged meta page", xor_in_page_of("meta", 0, 1), "repair_store raised DatabaseError",
             f"{RAW}: repair.py _fix_meta reads catalog.meta() from an unreadable meta page: sqlite3.DatabaseError"),
    KnownBug("repair: catalog SQLite will not write", lambda folder, db: xor_bytes(db, [(18, 1)]),
             "repair_store raised OperationalError",
             f"{RAW}: header byte 18 (write version) = 3, so SQLite opens the catalog read-only; Catalog.open "
             "only asks os.access, and repair's commit_at -> set_meta raises 'attempt to write a readonly database'"),
    KnownBug("repair: schema column renamed", xor_after(b'"rank"', 4, 1), "repair_store raised OperationalError",
             f"{RAW}: a damaged column name of the words table: repair reloads into the damaged schema and "
             "insert_words raises 'table words has no column named rank'"),
    KnownBug("iteration: word not UTF-8", catalog_sql("UPDATE words SET word = CAST(? AS TEXT) WHERE id = 5",
                                                      b"\xffx"),
             "after damage: list raised OperationalError",
             f"{RAW}: list(store) -> iter_words (storage/catalog_words.py) raises sqlite3.OperationalError 'Could "
             "not decode to UTF-8 column word' (check reports the damage; iteration should raise an EmbstoreError)"),
    KnownBug("iteration: norm not a number", catalog_sql("UPDATE words SET norm = ? WHERE id = 0", b""),
             "after damage: list raised ValueError",
             f"{RAW}: list(store) -> iter_words raises ValueError 'could not convert string to float'"),
    KnownBug("query: search setting not a C int",
             catalog_sql("UPDATE index_files SET params = ? WHERE kind = 'hnsw'", '{"ef_search_words": 1.5}'),
             "after damage: cli nearest --index: traceback",
             "an hnsw record whose params hold ef_search or ef_search_words that is not a C int (1.5, 'x', "
             "10**12): check passes (it only asks for a JSON object), and every hnsw query, library and CLI, ends "
             "in a traceback: TypeError / OverflowError from FAISS in _search_parameters (search/index_kinds.py), "
             "which the CLI does not translate"),
    KnownBug("query: huge search setting",
             catalog_sql("UPDATE index_files SET params = ? WHERE kind = 'hnsw'", '{"ef_search_words": 2147483647}'),
             "after damage: cli nearest --index: traceback",
             "an hnsw record whose params hold ef_search_words = 2**31 - 1: check passes, and every hnsw word "
             "query asks FAISS for a candidate list that size (IndexHNSW.search_level_0): MemoryError "
             "std::bad_alloc under this file's 4 GB limit, tens of GB of memory without one"),
    KnownBug("check passes, wrong answers: meta.storage = sq8",
             catalog_sql("UPDATE meta SET value = 'sq8' WHERE key = 'storage'"),
             "wrong answers while check passes after damage",
             "check passes when meta.storage is changed to 'sq8' on an exact store: StoreMeta.parse accepts it and "
             "_check_catalog (storage/check.py) only asks that an sq8 record exists, so the store answers every "
             "query, --index exact included, from the 8-bit codes, with scores off in the third decimal"),
    KnownBug("repair drops an index: damaged kind",
             catalog_sql("UPDATE index_files SET kind = 'zz' WHERE kind = 'hnsw'"),
             "wrong answers while check passes after repair",
             "the hnsw record's kind damaged: repair deletes the record (_fix_catalog), removes s.db.hnsw.*.faiss "
             "as a leftover and does not rebuild it (_approximate_indexes skips unknown kinds, although the file "
             "name says hnsw); it reports nothing remaining, check passes, and --index hnsw fails: 'this store has "
             "no hnsw index'"),
    KnownBug("repair drops an index: meta.storage = hnsw",
             catalog_sql("UPDATE meta SET value = 'hnsw' WHERE key = 'storage'"),
             "wrong answers while check passes after repair",
             "meta.storage damaged to 'hnsw': repair reloads the source and rebuilds only sq8, because "
             "_approximate_indexes (repair.py) leaves out the kind the damaged meta.storage names; it reports "
             "nothing remaining, check passes, and --index hnsw fails: 'this store has no hnsw index'"),
]


@pytest.mark.parametrize("bug", [pytest.param(bug, id=bug.name) for bug in KNOWN_BUGS])
def test_bugs_found_by_fuzzing_stay_fixed(lab, bug):
    """Each bug the fuzzers found, with the smallest damage that showed it (see ``reason``)."""
    run_example(lab, bug.damage, f"known bug: {bug.name}", victims=True, tolerate_known=False)


@pytest.mark.parametrize("stored", [b"", b"\xff\x00", bytearray(b"x")])
def test_a_word_damaged_to_a_blob_is_shown_not_a_traceback_in_json(store_copy, stored):
    """Found by this file's fuzzing in a CI run: a neighbour whose word the catalog holds as a BLOB
    made ``nearest --json`` (and the server, which shares ``to_plain``) fail with "bytes is not JSON
    serializable". The word is shown as its repr, as ``info`` shows a damaged kind."""
    from embstore import Store

    with Store.open(store_copy) as store:
        neighbour = store.nearest("king", k=1).neighbours[0].word
        neighbour_id = store.resolve(neighbour).id
    with sqlite3.connect(store_copy) as conn:
        conn.execute("UPDATE words SET word = ? WHERE id = ?", (bytes(stored), neighbour_id))
    done = subprocess.run([sys.executable, "-m", "embstore_cli", "nearest", "king", "-k", "3", "--json",
                           "--db", str(store_copy)], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode == 0:
        answer = json.loads(done.stdout)
        assert repr(bytes(stored)) in [n["word"] for n in answer["neighbours"]]
    else:
        assert done.stderr.startswith("Error:") and done.stderr.count("\n") <= 2, done.stderr
