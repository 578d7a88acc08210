"""A job's output file, written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from ..storage.durable import fsync_directory


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, binary: bool = False) -> Iterator[IO]:
    """A file handle to write the output to: a temporary file beside ``path``, renamed over
    ``path`` only when the block ends without an exception (and removed otherwise), so that
    ``path`` never holds a partial output, even if the job is killed."""
    path = Path(path)
    handle = tempfile.NamedTemporaryFile("wb" if binary else "w", dir=path.parent or ".", prefix=f".{path.name}.",
                                         suffix=".partial", delete=False,
                                         **({} if binary else {"encoding": "utf-8", "newline": "\n"}))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)  # as open() would make it, not tempfile's 0600
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
        fsync_directory(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise
