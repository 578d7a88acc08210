"""Slow clients lose their connection instead of holding it: uvicorn waits for a request's
headers without end, so clients that connect and send nothing, or half a request line, could
hold every connection slot. A connection whose first request has not arrived within
``$EMBSTORE_SERVE_CLIENT_TIMEOUT`` seconds is closed (idle kept-alive connections are closed
by uvicorn's keep-alive timeout; a POST body that has not arrived in time gets a 408)."""

from __future__ import annotations

from .app import client_timeout

try:  # the protocol uvicorn's "auto" would choose: httptools when installed, else h11
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol


class TimelyProtocol(_Protocol):
    """uvicorn's HTTP protocol, closing a connection whose first request is late."""

    def connection_made(self, transport, *args, **kwargs):
        super().connection_made(transport, *args, **kwargs)
        self._first_request_timer = self.loop.call_later(client_timeout(), self._close_if_no_request)

    def _close_if_no_request(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc):
        self._first_request_timer.cancel()
        super().connection_lost(exc)
