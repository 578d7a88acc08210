"""What the HTTP API takes, in one table: the parameters each endpoint accepts (the parser
refuses any other), their caps, and from the same table the OpenAPI description and the
docs page."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

# Caps: a request asks for bounded work and gets a bounded answer.
MAX_K = 1_000  # answers per query
MAX_BATCH = 1_000  # queries in one POST
MAX_LIST_WORDS = 100  # words in odd-one-out
MAX_PROJECT_WORDS = 200  # words given to /api/project
MAX_PROJECT_NEIGHBOURS = 50  # neighbours added per word
MAX_PROJECT_POINTS = 1_000  # words on one PCA map, neighbours included
MAX_TSNE_POINTS = 300  # t-SNE is slower: fewer points
MAX_WORD_CHARS = 1_000  # characters in one word
MAX_COMPLETIONS = 100
MAX_BODY_BYTES = 1 << 20  # a POST body
MAX_PARAMETERS = 20  # name=value pairs in a query string

CAPS = {
    "k": f"1 to {MAX_K:,} answers per query",
    "batch": f"at most {MAX_BATCH:,} queries in one POST, and a body of at most {MAX_BODY_BYTES // 1024:,} KiB",
    "words": f"a word has at most {MAX_WORD_CHARS:,} characters; odd-one-out takes 2 to {MAX_LIST_WORDS} words",
    "project": f"/api/project takes at most {MAX_PROJECT_WORDS} words and {MAX_PROJECT_NEIGHBOURS} neighbours "
               f"each, {MAX_PROJECT_POINTS:,} points in all ({MAX_TSNE_POINTS} for t-SNE)",
    "completion": f"/api/words gives at most {MAX_COMPLETIONS} words",
}

INDEX_KINDS = ("exact", "hnsw", "ivf", "sq8", "pq")


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict
    description: str
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    params: tuple[Param, ...] = ()
    body: str | None = None  # what a POST body holds
    body_schema: dict = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


WORD = {"type": "string", "maxLength": MAX_WORD_CHARS}
K = Param("k", {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10}, "how many answers")
RESTRICT = Param("restrict", {"type": "integer", "minimum": 1},
                 "search only the N most frequent words (gensim's restrict_vocab)")
INDEX = Param("index", {"type": "string", "enum": list(INDEX_KINDS)},
              "index to search; default: the store's default index")
METHOD = Param("method", {"type": "string", "enum": ["add", "mul"], "default": "add"},
               "add: 3CosAdd (gensim most_similar); mul: 3CosMul (most_similar_cosmul)")
WORD_LIST = ("words separated by commas (or by spaces, when a word holds a comma: words never hold white space)")

ENDPOINTS = (
    Endpoint("GET", "/api/nearest", "The k words closest to a word by cosine (CLI: nearest WORD --json).",
             (Param("word", WORD, "the word; another case is used when it is not stored as written, with a note",
                    True), K, RESTRICT, INDEX)),
    Endpoint("POST", "/api/nearest", "Nearest words for many words in one batched search; an unknown word gives "
             "a result with 'error' set (CLI: nearest --batch FILE --batch-format jsonl).", (K, RESTRICT, INDEX),
             "a JSON list of words", {"type": "array", "items": WORD, "maxItems": MAX_BATCH}),
    Endpoint("GET", "/api/analogy", "a is to b as c is to ? (CLI: analogy A B C --json).",
             (Param("a", WORD, "a", True), Param("b", WORD, "b", True), Param("c", WORD, "c", True), K, METHOD,
              RESTRICT, INDEX)),
    Endpoint("POST", "/api/analogy", "Many analogies in one batched search; an unknown word gives a result with "
             "'error' set.", (K, METHOD, RESTRICT, INDEX), "a JSON list of [a, b, c] lists",
             {"type": "array", "maxItems": MAX_BATCH,
              "items": {"type": "array", "items": WORD, "minItems": 3, "maxItems": 3}}),
    Endpoint("GET", "/api/similarity", "Cosine similarity of two words (CLI: similarity W1 W2 --json).",
             (Param("w1", WORD, "first word", True), Param("w2", WORD, "second word", True))),
    Endpoint("GET", "/api/odd-one-out", "The word least like the others, gensim's doesnt_match "
             "(CLI: odd-one-out W... --json).", (Param("words", {"type": "string"}, WORD_LIST, True),)),
    Endpoint("GET", "/api/vector", "A word's vector exactly as loaded (CLI: vector WORD --json).",
             (Param("word", WORD, "the word", True),)),
    Endpoint("GET", "/api/info", "The store: words, dimension, indexes (CLI: info --json)."),
    Endpoint("GET", "/api/words", "Completion: words starting with a prefix (any case), most frequent first.",
             (Param("prefix", {"type": "string", "maxLength": MAX_WORD_CHARS, "default": ""}, "the prefix"),
              Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_COMPLETIONS, "default": 20},
                    "how many words"))),
    Endpoint("GET", "/api/project", "2D or 3D coordinates of words (and their neighbours), the projection "
             "'embstore plot' draws. Vectors are unit length, so the map shows directions.",
             (Param("words", {"type": "string"}, WORD_LIST, True),
              Param("method", {"type": "string", "enum": ["pca", "tsne"], "default": "pca"},
                    "pca (numpy) or tsne (scikit-learn)"),
              Param("dims", {"type": "integer", "enum": [2, 3], "default": 2}, "2 or 3"),
              Param("neighbours", {"type": "integer", "minimum": 0, "maximum": MAX_PROJECT_NEIGHBOURS,
                                   "default": 0}, "also place each word's K nearest words"))),
)

ENDPOINT = {(e.method, e.path): e for e in ENDPOINTS}

ERROR_SCHEMA = {"type": "object", "properties": {
    "error": {"type": "string", "description": "one line: what was wrong and what to do"},
    "word": {"type": "string", "description": "404 only: the unknown word"},
    "suggestions": {"type": "array", "items": {"type": "string"}, "description": "404 only: close words"}},
    "required": ["error"]}


def openapi_schema(version: str) -> dict:
    """The OpenAPI 3.1 description of every endpoint above."""
    paths: dict = {}
    for endpoint in ENDPOINTS:
        operation = {
            "summary": endpoint.summary,
            "parameters": [{"name": p.name, "in": "query", "required": p.required, "schema": p.schema,
                            "description": p.description} for p in endpoint.params],
            "responses": {
                "200": {"description": "the answer, with the same fields as the CLI's --json"},
                "400": {"description": "a bad parameter (one-line reason)",
                        "content": {"application/json": {"schema": ERROR_SCHEMA}}},
                "404": {"description": "an unknown word, with suggestions",
                        "content": {"application/json": {"schema": ERROR_SCHEMA}}},
            },
        }
        if endpoint.body:
            operation["requestBody"] = {"required": True, "description": endpoint.body,
                                        "content": {"application/json": {"schema": endpoint.body_schema}}}
            operation["responses"]["413"] = {"description": "the body is too large"}
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "embstore", "version": version,
                 "description": "Read-only JSON API over one embstore store. Caps: " + "; ".join(CAPS.values()) + "."},
        "paths": paths,
    }


def docs_html(schema: dict) -> str:
    """A readable page of the OpenAPI description (no scripts, served locally)."""
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>embstore API</title>",
        "<link rel='stylesheet' href='/static/explorer.css'></head><body class='docs'>",
        f"<h1>embstore API <small>{esc(schema['info']['version'])}</small></h1>",
        "<p>Read-only. Answers are JSON with the same fields as the CLI's <code>--json</code>. "
        "An unknown word is a 404 with <code>suggestions</code>; a bad parameter is a 400 with a one-line "
        "<code>error</code>. The machine-readable description is <a href='/openapi.json'>/openapi.json</a>; "
        "the explorer is <a href='/'>/</a>.</p><h2>Caps</h2><ul>",
        *[f"<li>{esc(cap)}</li>" for cap in CAPS.values()], "</ul>",
    ]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            parts.append(f"<h2 id='{esc(method)}{esc(path)}'><code>{esc(method.upper())} {esc(path)}</code></h2>")
            parts.append(f"<p>{esc(operation['summary'])}</p>")
            if "requestBody" in operation:
                parts.append(f"<p>Body: {esc(operation['requestBody']['description'])}.</p>")
            if operation["parameters"]:
                parts.append("<table><tr><th>parameter</th><th>type</th><th>meaning</th></tr>")
                for p in operation["parameters"]:
                    kind = p["schema"].get("type", "")
                    if "enum" in p["schema"]:
                        kind = " | ".join(str(v) for v in p["schema"]["enum"])
                    limits = [f"{k} {p['schema'][k]}" for k in ("minimum", "maximum", "default") if k in p["schema"]]
                    parts.append(f"<tr><td><code>{esc(p['name'])}</code>{' (required)' if p['required'] else ''}"
                                 f"</td><td>{esc(kind)}</td><td>{esc(p['description'])}"
                                 f"{'; ' + esc(', '.join(limits)) if limits else ''}</td></tr>")
                parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
