"""Ray, imported only when a job asks for a cluster, and connecting to one."""

from __future__ import annotations

import os
from types import ModuleType

from ..errors import EmbstoreError

RAY_ADDRESS_ENV_VAR = "EMBSTORE_RAY_ADDRESS"
RAY_EXTRA_HINT = "pip install 'embstore[ray]'"


class ClusterError(EmbstoreError):
    """The Ray cluster could not be reached, or lost work it could not redo."""


def require_ray() -> ModuleType:
    """The ``ray`` module; EmbstoreError naming the extra to install when it is missing."""
    try:
        import ray
    except ImportError:
        raise EmbstoreError(f"running on a Ray cluster needs Ray: {RAY_EXTRA_HINT}") from None
    return ray


def connect(address: str) -> ModuleType:
    """Connect this process to the Ray cluster at ``address`` ('HOST:PORT' of the head, or
    'auto'), once; returns the ``ray`` module. ClusterError if it cannot be reached."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    _probe(address)
    _cluster_events_to_stderr(ray)
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=True,
                 namespace="embstore")
    except Exception as exc:  # ray raises ConnectionError, ValueError, RuntimeError... for a bad address
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cannot connect to the Ray cluster at {address!r}: {message} "
                           "(start one with: ray start --head)") from None
    return ray


def _cluster_events_to_stderr(ray: ModuleType) -> None:
    """Ray's driver prints cluster events ('the node ... has been marked dead') to stdout,
    where a job's results go; send them to stderr with the other notes. (Ray has no option
    for this: it wraps its own printing function, and changes nothing if Ray renamed it.)"""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "embstore_stderr", False):
        return

    def to_stderr(data: dict, ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr.embstore_stderr = True
    worker.print_to_stdstream = to_stderr


PROBE_SECONDS = 5.0


def _probe(address: str) -> None:
    """ClusterError at once if nothing listens at a 'HOST:PORT' address (Ray itself would
    retry for minutes); 'auto' and other forms are left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    import socket  # here: the module costs 5 ms of every CLI start-up

    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise ClusterError(f"cannot connect to the Ray cluster at {address!r}: {exc.strerror or exc} "
                           "(is its head running? start one with: ray start --head)") from None


def cluster_cpus(ray: ModuleType) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def address_from_env(address: str | None) -> str | None:
    """``address`` if given, else $EMBSTORE_RAY_ADDRESS, else None (no cluster)."""
    return address or os.environ.get(RAY_ADDRESS_ENV_VAR) or None


def lost_work_error(ray: ModuleType, exc: Exception, what: str) -> EmbstoreError:
    """One clear error for a Ray failure: the worker's own EmbstoreError if it raised one."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, EmbstoreError):
        return cause
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ClusterError(f"{what} failed on the Ray cluster ({type(exc).__name__}: {first[:300]})")
