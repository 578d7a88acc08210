"""Reading the text files commands take (batches, words to add): one clear error per bad line."""

from __future__ import annotations

from typing import BinaryIO, Iterator

from embstore import FormatError


def decoded_lines(handle: BinaryIO) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of a file opened in binary, decoded as UTF-8 line by
    line, so that invalid UTF-8 is one FormatError naming its line (a leading BOM is dropped)."""
    name = getattr(handle, "name", "<input>")
    for number, raw in enumerate(handle, 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(name, number, f"is not valid UTF-8 ({exc.reason} at byte {exc.start + 1})",
                              hint="save the file as UTF-8") from None
