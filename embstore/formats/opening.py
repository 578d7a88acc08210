"""Open any embedding file a store can be loaded from: fastText's native models by their first
bytes, everything else through the text and word2vec-binary reader."""

from __future__ import annotations

import os

from ..errors import FormatError
from .compression import check_input_path
from .fasttext_model import FASTTEXT_FORMAT, FastTextModelReader, is_fasttext_model
from .reading import EmbeddingReader

_HEAD_BYTES = 64


def open_embeddings(path: str | os.PathLike, format: str | None = None, *, limit: int | None = None,
                    unicode_errors: str = "strict", encoding: str = "utf-8"):
    """An ``EmbeddingReader``, or a ``FastTextModelReader`` when the file is a fastText model
    (whatever ``format`` says: its first bytes decide). ``encoding`` is a fastText model's
    word encoding (gensim's ``encoding=``); text files are UTF-8."""
    checked = check_input_path(path)
    try:
        with open(checked, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError as exc:
        raise FormatError(str(path), None, f"cannot open: {exc.strerror}") from None
    if format == FASTTEXT_FORMAT or is_fasttext_model(head):
        return FastTextModelReader(checked, limit=limit, unicode_errors=unicode_errors, encoding=encoding)
    if encoding.replace("_", "-").lower() not in ("utf-8", "utf8"):
        raise FormatError(str(path), None, f"encoding={encoding!r} applies to fastText .bin models only; "
                                           "embedding text files are read as UTF-8",
                          hint="convert the file with iconv -f ENCODING -t UTF-8")
    return EmbeddingReader(path, format, limit=limit, unicode_errors=unicode_errors)
