"""Reading a request's parameters and body: strict UTF-8, only the names the endpoint takes
(``api_spec``), each within its cap. Anything else is ``BadRequest`` with a one-line reason."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, AsyncIterator, Sequence
from urllib.parse import parse_qsl

from .api_spec import MAX_BODY_BYTES, MAX_PARAMETERS, MAX_WORD_CHARS, Endpoint


class BadRequest(Exception):
    """The request cannot be answered as asked: ``status`` (400, 413) and a one-line reason."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


INTEGER = re.compile(r"[+-]?[0-9]{1,12}")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


class Params:
    """The query-string parameters of one request to ``endpoint``."""

    def __init__(self, endpoint: Endpoint, values: dict[str, str]):
        self.endpoint = endpoint
        self.values = values

    @classmethod
    def parse(cls, endpoint: Endpoint, query_string: bytes) -> "Params":
        """Refuses bytes that are not UTF-8 (raw or percent-encoded), too many parameters, names
        the endpoint does not take, and a name given twice."""
        try:
            pairs = parse_qsl(query_string.decode("utf-8"), keep_blank_values=True, encoding="utf-8",
                              errors="strict", max_num_fields=MAX_PARAMETERS)
        except UnicodeDecodeError:
            raise BadRequest("the query string is not valid UTF-8") from None
        except ValueError:
            raise BadRequest(f"too many parameters (at most {MAX_PARAMETERS})") from None
        values: dict[str, str] = {}
        for name, value in pairs:
            if name not in endpoint.names:
                takes = ", ".join(endpoint.names) or "no parameters"
                raise BadRequest(f"{endpoint.path} does not take {_shown(name)}; it takes {takes}")
            if name in values:
                raise BadRequest(f"{name!r} is given more than once")
            values[name] = value
        return cls(endpoint, values)

    def word(self, name: str) -> str:
        """A required word."""
        value = self.values.get(name)
        if value is None or value == "":
            raise BadRequest(f"{self.endpoint.path} needs {name}=WORD")
        return checked_word(value, name)

    def text(self, name: str, default: str = "") -> str:
        value = self.values.get(name, default)
        if len(value) > MAX_WORD_CHARS:
            raise BadRequest(f"{name} is longer than {MAX_WORD_CHARS:,} characters")
        return value

    def integer(self, name: str, default: int | None, low: int, high: int | None = None) -> int | None:
        """An optional whole number in [low, high]."""
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if not INTEGER.fullmatch(value):
            raise BadRequest(f"{name} must be a whole number, not {_shown(value)}")
        number = int(value)
        if number < low or (high is not None and number > high):
            bound = f"between {low:,} and {high:,}" if high is not None else f"at least {low:,}"
            raise BadRequest(f"{name} must be {bound}, not {number:,}")
        return number

    def choice(self, name: str, choices: Sequence[str], default: str | None) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if value not in choices:
            raise BadRequest(f"{name} must be one of {', '.join(choices)}, not {_shown(value)}")
        return value

    def word_list(self, name: str, low: int, high: int) -> list[str]:
        """Words separated by commas, or by white space when the value holds any (a word never
        does, so a word holding a comma can be asked for that way)."""
        value = self.values.get(name, "")
        if len(value) > high * (MAX_WORD_CHARS + 1):
            raise BadRequest(f"{name} is too long")
        words = value.split() if any(c.isspace() for c in value) else [w for w in value.split(",") if w]
        if not low <= len(words) <= high:
            raise BadRequest(f"{name} must hold {low} to {high} words, not {len(words)}")
        return [checked_word(word, name) for word in words]


def checked_word(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{what}: a word is a string, not {type(value).__name__}")
    if not value:
        raise BadRequest(f"{what}: a word cannot be empty")
    if len(value) > MAX_WORD_CHARS:
        raise BadRequest(f"{what}: a word has at most {MAX_WORD_CHARS:,} characters, not {len(value):,}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what}: a word is not valid Unicode (it holds a lone surrogate)") from None
    return value


async def json_body(headers, stream: AsyncIterator[bytes], timeout: float) -> Any:
    """The request body as JSON, read up to MAX_BODY_BYTES (413 beyond) within ``timeout`` seconds (408)."""
    too_large = BadRequest(f"the body is larger than {MAX_BODY_BYTES // 1024:,} KiB; send fewer queries at once", 413)
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()

    async def read() -> None:
        async for chunk in stream:
            body.extend(chunk)
            if len(body) > MAX_BODY_BYTES:
                raise too_large

    try:
        await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        raise BadRequest(f"the body did not arrive within {timeout:g} s", 408) from None
    if not body:
        raise BadRequest("the body is empty; send a JSON list")
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("the body is not valid UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON ({str(exc)[:80]})") from None


def batch_list(body: Any, high: int) -> list:
    if not isinstance(body, list):
        raise BadRequest(f"the body must be a JSON list, not {type(body).__name__}")
    if not 1 <= len(body) <= high:
        raise BadRequest(f"a batch holds 1 to {high:,} queries, not {len(body):,}")
    return body


def word_batch(body: Any, high: int) -> list[str]:
    """A JSON list of words."""
    return [checked_word(word, f"query {n}") for n, word in enumerate(batch_list(body, high), 1)]


def triple_batch(body: Any, high: int) -> list[tuple[str, str, str]]:
    """A JSON list of [a, b, c] lists."""
    triples = []
    for n, question in enumerate(batch_list(body, high), 1):
        if not isinstance(question, list) or len(question) != 3:
            raise BadRequest(f"query {n}: an analogy is a list of three words [a, b, c]")
        triples.append(tuple(checked_word(word, f"query {n}") for word in question))
    return triples
