"""The Starlette application: routes that read their parameters (``params``), ask the Store
API on the served store's thread (``served_store``) and answer with the JSON the CLI's
``--json`` prints (``embstore.json_answers``); and the explorer's static files."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sqlite3
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..errors import EmbstoreError, QueryError, StoreError, UnknownWordError
from ..json_answers import odd_one_out_json, results_json, similarity_json, to_plain, vector_json
from ..plot import project
from . import api_spec as spec
from .params import BadRequest, Params, json_body, triple_batch, word_batch
from .served_store import ServedStore

STATIC = Path(__file__).resolve().parent / "static"
DB_ENV_VAR = "EMBSTORE_SERVE_DB"  # how `embstore serve` tells each worker process its store
CORS_ENV_VAR = "EMBSTORE_SERVE_CORS"
TIMEOUT_ENV_VAR = "EMBSTORE_SERVE_CLIENT_TIMEOUT"
DEFAULT_CLIENT_TIMEOUT = 10.0
log = logging.getLogger("embstore.serve")


def _params(request: Request) -> Params:
    method = "GET" if request.method == "HEAD" else request.method  # Starlette answers HEAD on GET routes
    return Params.parse(spec.ENDPOINT[(method, request.url.path)], request.scope["query_string"])


def _served(request: Request) -> ServedStore:
    return request.app.state.served


def _search_options(params: Params) -> dict:
    return {"k": params.integer("k", 10, 1, spec.MAX_K), "restrict": params.integer("restrict", None, 1),
            "index": params.choice("index", spec.INDEX_KINDS, None)}


async def nearest(request: Request) -> Response:
    params = _params(request)
    word, options = params.word("word"), _search_options(params)
    result = await _served(request).run(lambda store: store.nearest(word, case_insensitive=True, **options))
    return JSONResponse(results_json([result]))


async def _batch(request: Request, options: dict, parse, answer) -> Response:
    """A POST batch: the body parsed by ``parse``, answered by ``answer(store)(queries, ...)``
    with an error in the place of each query that has an unknown word."""
    body = await json_body(request.headers, request.stream(), request.app.state.client_timeout)
    queries = parse(body, spec.MAX_BATCH)
    results = await _served(request).run(lambda store: answer(store)(
        queries, on_unknown="report", case_insensitive=True, **options))
    return JSONResponse([to_plain(result) for result in results])


async def nearest_batch(request: Request) -> Response:
    options = _search_options(_params(request))
    return await _batch(request, options, word_batch, lambda store: store.nearest_many)


async def analogy(request: Request) -> Response:
    params = _params(request)
    a, b, c = params.word("a"), params.word("b"), params.word("c")
    options = {**_search_options(params), "method": params.choice("method", ("add", "mul"), "add")}
    result = await _served(request).run(lambda store: store.analogy(a, b, c, case_insensitive=True, **options))
    return JSONResponse(results_json([result]))


async def analogy_batch(request: Request) -> Response:
    params = _params(request)
    options = {**_search_options(params), "method": params.choice("method", ("add", "mul"), "add")}
    return await _batch(request, options, triple_batch, lambda store: store.analogy_many)


async def similarity(request: Request) -> Response:
    params = _params(request)
    first, second = params.word("w1"), params.word("w2")

    def answer(store):
        one, two = store.resolve_many([first, second], case_insensitive=True)
        return similarity_json(one, two, store.similarity(first, second, case_insensitive=True))

    return JSONResponse(await _served(request).run(answer))


async def odd_one_out(request: Request) -> Response:
    words = _params(request).word_list("words", 2, spec.MAX_LIST_WORDS)
    odd, ranked = await _served(request).run(lambda store: store.doesnt_match(words, case_insensitive=True))
    return JSONResponse(odd_one_out_json(odd, ranked))


async def vector(request: Request) -> Response:
    word = _params(request).word("word")

    def answer(store):
        return vector_json(store.resolve(word, case_insensitive=True), store.vector(word, case_insensitive=True))

    return JSONResponse(await _served(request).run(answer))


async def info(request: Request) -> Response:
    _params(request)
    return JSONResponse(to_plain(await _served(request).run(lambda store: store.info())))


async def words(request: Request) -> Response:
    params = _params(request)
    prefix, limit = params.text("prefix"), params.integer("limit", 20, 1, spec.MAX_COMPLETIONS)
    found = await _served(request).run(lambda store: store.completions(prefix, limit))
    return JSONResponse({"prefix": prefix, "words": found})


async def projection(request: Request) -> Response:
    params = _params(request)
    listed = params.word_list("words", 1, spec.MAX_PROJECT_WORDS)
    method = params.choice("method", ("pca", "tsne"), "pca")
    dims = params.integer("dims", 2, 2, 3)
    neighbours = params.integer("neighbours", 0, 0, spec.MAX_PROJECT_NEIGHBOURS)
    cap = spec.MAX_TSNE_POINTS if method == "tsne" else spec.MAX_PROJECT_POINTS
    if len(listed) * (1 + neighbours) > cap:
        raise BadRequest(f"{len(listed)} words with {neighbours} neighbours each is more than {cap:,} points; "
                         "ask for fewer")
    if method == "tsne" and importlib.util.find_spec("sklearn") is None:
        raise BadRequest("t-SNE needs scikit-learn on the server: pip install 'embstore[serve]'", 501)
    placed = await _served(request).run(lambda store: project(
        store, listed, method=method, neighbours=neighbours, dims=dims, case_insensitive=True))
    return JSONResponse(to_plain(placed))


async def explorer(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.schema)


async def docs(request: Request) -> Response:
    return HTMLResponse(spec.docs_html(request.app.state.schema))


# -- errors: one JSON line each, never a traceback ------------------------------------------

def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def unknown_word(request: Request, exc: UnknownWordError) -> Response:
    return _error(404, str(exc), word=exc.word, suggestions=exc.suggestions)


async def bad_request(request: Request, exc: BadRequest) -> Response:
    return _error(exc.status, str(exc))


async def bad_query(request: Request, exc: QueryError) -> Response:
    return _error(400, str(exc))


async def store_failed(request: Request, exc: EmbstoreError) -> Response:
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return _error(503 if isinstance(exc, StoreError) else 400, str(exc))


async def store_unreadable(request: Request, exc: Exception) -> Response:
    """The store's files cannot be read (deleted or damaged under the server): 503, logged."""
    log.warning("%s %s: the store cannot be read: %s", request.method, request.url.path, exc)
    return _error(503, f"the store cannot be read ({exc.__class__.__name__}: {exc}); run 'embstore check'")


async def http_error(request: Request, exc: HTTPException) -> Response:
    message = {404: f"no such page: {request.url.path}; the API is described at /docs",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return _error(exc.status_code, message)


async def internal_error(request: Request, exc: Exception) -> Response:
    return _error(500, "internal error; the server's log has the details")


class SecurityHeaders:
    """Adds headers to every response: the explorer may load only this server's scripts
    (it works offline, and injected text cannot run), and, with ``cors``, any page may read the API."""

    def __init__(self, app, cors: bool = False):
        self.app = app
        self.headers = [(b"x-content-type-options", b"nosniff"),
                        (b"content-security-policy", b"default-src 'self'; img-src 'self' data:"),
                        (b"referrer-policy", b"no-referrer")]
        if cors:
            self.headers.append((b"access-control-allow-origin", b"*"))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def sending(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + self.headers}
            await send(message)

        await self.app(scope, receive, sending)


ROUTES = [
    Route("/", explorer),
    Route("/api/nearest", nearest, methods=["GET"]),
    Route("/api/nearest", nearest_batch, methods=["POST"]),
    Route("/api/analogy", analogy, methods=["GET"]),
    Route("/api/analogy", analogy_batch, methods=["POST"]),
    Route("/api/similarity", similarity),
    Route("/api/odd-one-out", odd_one_out),
    Route("/api/vector", vector),
    Route("/api/info", info),
    Route("/api/words", words),
    Route("/api/project", projection),
    Route("/openapi.json", openapi),
    Route("/docs", docs),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]


def client_timeout() -> float:
    """Seconds a client has to send its first request and a POST body ($EMBSTORE_SERVE_CLIENT_TIMEOUT)."""
    try:
        return float(os.environ.get(TIMEOUT_ENV_VAR, DEFAULT_CLIENT_TIMEOUT))
    except ValueError:
        return DEFAULT_CLIENT_TIMEOUT


def create_app(db: str | os.PathLike, cors: bool = False, client_timeout: float = DEFAULT_CLIENT_TIMEOUT) -> Starlette:
    """The application over the store at ``db``, opened at start-up and closed at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.served = ServedStore(db)
        app.state.schema = spec.openapi_schema(__version__)
        try:
            yield
        finally:
            app.state.served.close()

    app = Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers={
        UnknownWordError: unknown_word, BadRequest: bad_request, QueryError: bad_query, EmbstoreError: store_failed,
        sqlite3.Error: store_unreadable, OSError: store_unreadable, HTTPException: http_error,
        Exception: internal_error})
    app.add_middleware(SecurityHeaders, cors=cors)
    app.state.client_timeout = client_timeout
    return app


def app_from_environment() -> Starlette:
    """The factory ``embstore serve`` gives uvicorn: the store named by $EMBSTORE_SERVE_DB."""
    return create_app(os.environ[DB_ENV_VAR], cors=os.environ.get(CORS_ENV_VAR) == "1", client_timeout=client_timeout())
