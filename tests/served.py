"""A real ``embstore serve`` process for the serve tests: started on a free port, ready when
it answers, stopped (and its output shown on failure) at the end."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


class Server:
    def __init__(self, url: str, process: subprocess.Popen, log: Path):
        self.url = url
        self.process = process
        self.log = log

    def get(self, path: str, data: bytes | None = None, method: str | None = None) -> tuple[int, object]:
        """(status, JSON body) of one request; error statuses are answers too."""
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if data is not None else {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body)
            except ValueError:
                return error.code, body.decode("utf-8", "replace")

    def raw(self, request_bytes: bytes, hang_up: bool = False, read: bool = True) -> bytes:
        """Send ``request_bytes`` as they are over one connection (then, with ``hang_up``, stop
        sending); the response's bytes until the server closes the connection (without ``read``,
        hang up at once)."""
        import socket

        host, port = self.url.rsplit("/", 1)[1].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            try:
                sock.sendall(request_bytes)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered (413, say) and closed before taking everything: read what it said
            if hang_up:
                sock.shutdown(socket.SHUT_WR)
            if not read:
                return b""
            chunks = []
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except ConnectionResetError:
                pass
        return b"".join(chunks)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def copy_store(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for file in source.parent.iterdir():
        if file.name.startswith(source.name):
            shutil.copy(file, folder / file.name)
    return folder / source.name


@contextlib.contextmanager
def running_server(db: Path, log: Path, *options: str, timeout: float = 60):
    """``embstore serve --db DB --port 0`` in a process of its own, ready to answer."""
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "embstore_cli", "serve", "--db", str(db), "--port", "0",
                                    "--no-access-log", *options], stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + timeout
        server = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"embstore serve exited with {process.returncode}:\n{log.read_text()}")
            found = re.search(r"on (http://127\.0\.0\.1:\d+) ", log.read_text(errors="replace"))
            if found:
                server = server or Server(found.group(1), process, log)
                try:
                    if server.get("/api/info")[0] == 200:
                        break
                except OSError:
                    pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"embstore serve did not answer within {timeout} s:\n{log.read_text()}")
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
