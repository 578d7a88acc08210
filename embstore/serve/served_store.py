"""One open store shared by a server's requests: every request runs on one thread, after a
refresh that began after the request arrived, so an answer always comes from a whole
generation at least as new as the newest one committed when the request came in."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import EmbstoreError
from ..store import Store

T = TypeVar("T")
log = logging.getLogger("embstore.serve")


class ServedStore:
    """The store at ``path``, opened now and used only from its own thread."""

    def __init__(self, path: str | Path):
        self.store = Store.open(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embstore-store")
        self._checked_at = float("-inf")  # when the last refresh began (time.monotonic)
        self._last_problem: str | None = None

    async def run(self, work: Callable[[Store], T]) -> T:
        """``work(store)`` on the store's thread, after a refresh unless one began since this call."""
        arrived = time.monotonic()
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._answer, arrived, work)

    def _answer(self, arrived: float, work: Callable[[Store], T]) -> T:
        # Requests queued behind one another share a refresh: one that began after a request
        # arrived has seen every commit made before it.
        if self._checked_at <= arrived:
            self._checked_at = time.monotonic()
            self._refresh()
        return work(self.store)

    def _refresh(self) -> None:
        """Move to the newest generation; if that fails, keep answering from the one held
        (it stays whole: its files are held open) and log the problem once."""
        try:
            if self.store.refresh():
                log.info("store %s: now at generation %d (%d words)", self.store.path, self.store.generation,
                         len(self.store))
            self._last_problem = None
        except (EmbstoreError, sqlite3.Error, OSError) as exc:
            problem = str(exc)
            if problem != self._last_problem:
                log.warning("store %s cannot be read again (%s); answering from generation %d as opened",
                            self.store.path, problem, self.store.generation)
                self._last_problem = problem

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.store.close()
