"""Running the application under uvicorn: bind the socket first (so the address printed is
the one listening, port 0 included), then serve it with one process or several."""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from .app import CORS_ENV_VAR, DB_ENV_VAR, TIMEOUT_ENV_VAR
from .slow_clients import TimelyProtocol

FACTORY = "embstore.serve.app:app_from_environment"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: any free port). Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio then sets TCP_NODELAY
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(db: Path, sock: socket.socket, workers: int = 1, access_log: bool = True, cors: bool = False,
          client_timeout: float = 10.0) -> None:
    """Serve the store at ``db`` on ``sock`` until interrupted; each worker process opens the store itself.
    ``client_timeout``: seconds a client has to send its first request, and a POST body."""
    os.environ[DB_ENV_VAR] = str(db)  # the environment reaches every worker process
    os.environ[CORS_ENV_VAR] = "1" if cors else "0"
    os.environ[TIMEOUT_ENV_VAR] = str(client_timeout)
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout has only the address line
    config = uvicorn.Config(FACTORY, factory=True, workers=workers, access_log=access_log, http=TimelyProtocol,
                            timeout_keep_alive=5, limit_concurrency=1000, log_level="info", log_config=log_config)
    if workers == 1:
        uvicorn.Server(config).run(sockets=[sock])
        return
    from uvicorn.supervisors import Multiprocess

    try:
        supervisor = Multiprocess(config, sockets=[sock])
    except TypeError:  # uvicorn before 0.31 wanted the target too
        supervisor = Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock])
    supervisor.run()
