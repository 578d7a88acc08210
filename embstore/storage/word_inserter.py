"""A second process that fills a new catalog's words table while the loader reads and writes rows.

A 3M-word load spends about 10 s in SQLite: inserting the words, sorting their indexes and
summing their digests, all of it holding the GIL, so a thread cannot run it beside the
parser (tried: the two convoy on the GIL). A process can. The loader sends each chunk's
words, norms and counts down a pipe as one binary frame (no pickle); this process inserts
them into the new catalog in one transaction, builds the word indexes once, sorted, records
the words' digest and commits when the loader says the file has ended.

Only for a new store: its catalog is a claimed temporary file that no other process opens,
and the loader does not touch it until this process has committed and exited. If the loader
dies, this process reads a short frame or the end of the pipe and exits without committing;
the temporary catalog is then a leftover, as it would be without this process. Ctrl-C at the
terminal reaches both processes: this one ignores it and leaves the decision to the loader.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from ..errors import StoreError

# first ID, number of words, bytes of their '\n'-joined UTF-8 text, 1 if a count per word follows
FRAME = struct.Struct("<qqqB")
END = -1  # a frame whose first ID is END: the file has ended; build the indexes and commit
SEPARATOR = "\n"  # a stored word has no control characters (vocabulary.word_problem)
ENCODING = ("utf-8", "surrogatepass")
CHILD_CODE = ("import sys; sys.path[0] = sys.argv[1]; from embstore.storage.word_inserter import main; "
              "sys.exit(main(sys.argv[2]))")


class WordInserter:
    """The parent's end: ``insert_words`` and ``finish_bulk_insert`` as ``Catalog`` has them,
    carried out by a child process on the catalog at ``path``. ``abort`` stops it uncommitted."""

    def __init__(self, path: Path):
        self.path = path
        # With -c, sys.path starts with the working directory: it is replaced by the loader's own
        # package root, so a numpy.py or another embstore there is never imported instead.
        package_root = str(Path(__file__).resolve().parents[2])
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD_CODE, package_root, str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def insert_words(self, ids: range, words: Sequence[str], ranks: Sequence[int], norms: np.ndarray,
                     counts: Sequence[int] | None = None) -> None:
        """Send one chunk: IDs ``ids`` (consecutive), ranks equal to the IDs, as a load has them."""
        if not isinstance(ids, range) or ids.step != 1 or ranks != ids:
            raise ValueError("the word process takes consecutive IDs, with ranks equal to them")
        text = SEPARATOR.join(words).encode(*ENCODING)
        parts = [FRAME.pack(ids.start, len(words), len(text), counts is not None), text,
                 np.ascontiguousarray(norms, dtype="<f8").tobytes()]
        if counts is not None:
            parts.append(np.asarray(counts, dtype="<i8").tobytes())
        self._send(b"".join(parts))

    def finish_bulk_insert(self) -> None:
        """Tell the process the words have ended, and wait for its commit."""
        self._send(FRAME.pack(END, 0, 0, 0))
        try:
            self.process.stdin.close()  # flushes what is still buffered: the process may have ended
        except BrokenPipeError:
            pass  # _wait says why
        self._wait()

    def abort(self) -> None:
        """Stop the process without its commit (the loader failed or was interrupted)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def _send(self, data: bytes) -> None:
        try:
            self.process.stdin.write(data)
        except (BrokenPipeError, ValueError):  # the process ended: say why
            self._wait()
            raise StoreError("the process inserting the words into the new catalog ended early") from None

    def _wait(self) -> None:
        message = self.process.stderr.read().decode("utf-8", "replace").strip()
        self.process.stderr.close()
        status = self.process.wait()
        if status != 0:
            why = (message.splitlines()[-1] if message else
                   f"it was killed by signal {-status}" if status < 0 else f"it ended with status {status}")
            raise StoreError(f"could not write the words into the new catalog: {why}")


class WordsHere:
    """``WordInserter``'s steps in this process, on the loader's own new ``catalog``, inside its
    ``write_transaction`` (which names a full disk as such): for a file so small that starting a
    second interpreter (about 0.3 s of imports) costs more than the inserts it would take off
    this one."""

    def __init__(self, catalog):
        self.catalog = catalog
        self._transaction = contextlib.ExitStack()
        self._transaction.enter_context(catalog.write_transaction())
        self._step(catalog.delete_all_words)  # drops the word indexes: built once, sorted, after the insert

    def _step(self, step, *args) -> None:
        """Run ``step``; if it fails, end the transaction with its error (which it may translate)."""
        try:
            step(*args)
        except BaseException as exc:
            self._transaction.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def insert_words(self, ids: range, words: Sequence[str], ranks: Sequence[int], norms: np.ndarray,
                     counts: Sequence[int] | None = None) -> None:
        self._step(self.catalog.insert_words, ids, words, ranks, norms, counts)

    def finish_bulk_insert(self) -> None:
        self._step(self.catalog.finish_bulk_insert)
        self._transaction.close()  # commits

    def abort(self) -> None:
        """Roll back, if the transaction is still open (the loader failed or was interrupted)."""
        stopped = StoreError("the load stopped")
        self._transaction.__exit__(StoreError, stopped, None)


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the loader stopped before the end of the words")
    return data


def _frames(stream: BinaryIO):
    """Yield (ids, words, norms, counts) for each chunk the loader sends, until its END frame."""
    while True:
        first, count, size, has_counts = FRAME.unpack(_read_exactly(stream, FRAME.size))
        if first == END:
            return
        words = _read_exactly(stream, size).decode(*ENCODING).split(SEPARATOR) if count else []
        if len(words) != count:
            raise ValueError(f"a frame said {count} words but held {len(words)}")
        norms = np.frombuffer(_read_exactly(stream, 8 * count), dtype="<f8").tolist()
        counts = np.frombuffer(_read_exactly(stream, 8 * count), dtype="<i8").tolist() if has_counts else None
        yield range(first, first + count), words, norms, counts


def main(path: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the loader decides what an interrupt does
    gc.disable()  # millions of words, no cycles: the collector's walks over them cost seconds
    from .catalog import Catalog

    catalog = Catalog.open(Path(path))
    catalog.conn.execute("PRAGMA journal_mode=OFF")  # as the loader's: a temporary file, discarded on failure
    catalog.conn.execute("PRAGMA synchronous=OFF")  # the loader syncs the finished catalog
    catalog.conn.execute("PRAGMA threads=2")  # the word index's sort, at the end, when the loader waits: 2.0 -> 1.6 s at 3M
    try:
        with catalog.write_transaction():
            catalog.delete_all_words()  # drops the word indexes: built once, sorted, after the insert
            for ids, words, norms, counts in _frames(sys.stdin.buffer):
                catalog.insert_words(ids, words, ids, norms, counts)
            catalog.finish_bulk_insert()
    except Exception as exc:  # one line for the loader's error: the loader stopped, or SQLite failed
        print(exc, file=sys.stderr)
        return 1
    finally:
        catalog.close()
    return 0
