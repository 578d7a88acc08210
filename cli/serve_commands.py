"""``embstore serve``: the HTTP API and the web explorer (needs ``pip install 'embstore[serve]'``)."""

from __future__ import annotations

import click

from embstore import Store

from .main import cli, db_option


@cli.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; the API is read-only, without authentication).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on; 0 takes any free port (the address printed says which).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes; each opens the store (the rows are shared through the page cache).")
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="Log each request to stderr.")
@click.option("--client-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="Seconds a client has to send its first request (else the connection is closed) and a POST body.")
@click.option("--cors", is_flag=True, help="Let web pages from any origin read the API (Access-Control-Allow-Origin: *).")
def serve(db, host, port, workers, access_log, client_timeout, cors):
    """Serve the store: a JSON API under /api/ and a web explorer at /, read-only.

    \b
    API docs at /docs (OpenAPI: /openapi.json). Ctrl-C stops it.
    A change committed by another process (add, delete, index build) is
    picked up by the next request, without a restart.
    """
    try:
        from embstore.serve import server
    except ImportError as exc:
        raise click.ClickException(
            f"embstore serve needs Starlette and uvicorn ({exc.name} is missing): pip install 'embstore[serve]'"
        ) from None
    with Store.open(db) as store:  # a missing or damaged store is one error line before anything listens
        path, size = store.path, len(store)
    try:
        sock = server.bind(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    click.echo(f"Serving {db or path} ({size:,} words) on {server.address(sock)} (read-only; Ctrl-C stops it)")
    click.get_text_stream("stdout").flush()
    try:
        server.serve(path, sock, workers=workers, access_log=access_log, cors=cors, client_timeout=client_timeout)
    finally:
        sock.close()
