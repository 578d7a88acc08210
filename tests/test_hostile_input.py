"""Property-based attacks on every reader: each input ends in a clean error or a correct load.

Never a traceback, a hang, a memory blow-up from a lying header, or a partial store.
Counts of inputs tried are in each test's settings (max_examples).
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embstore import EmbstoreError, Store

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# A word as embstore defines it: no white space of any kind, no control characters, no lone surrogates.
words = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
                                       blacklist_characters="\x1c\x1d\x1e\x1f\x85"),
                min_size=1, max_size=12).filter(lambda w: not any(c.isspace() for c in w))
awkward_words = st.text(min_size=1, max_size=12).filter(lambda w: " " not in w and "\n" not in w and "\r" not in w)
sql_words = st.sampled_from(["';DROP/**/TABLE/**/words;--", "\"OR\"1\"=\"1", "Robert');DROP/**/TABLE/**/meta;--",
                             "%", "_", "\\", "NULL", "json_each", "?", ":word"])


def try_load(tmp_path, data: bytes, name: str = "input.txt"):
    """Load ``data``; return the store's words or the error. Asserts nothing half-written remains."""
    source = tmp_path / name
    source.write_bytes(data)
    db = tmp_path / "store" / "s.db"
    for leftover in (db.parent.iterdir() if db.parent.exists() else []):
        leftover.unlink()
    try:
        Store.load(source, db)
    except EmbstoreError as exc:
        assert str(exc)  # a message for the user
        assert not db.exists()
        assert not db.parent.exists() or not list(db.parent.iterdir())
        return exc
    with Store.open(db) as store:
        vocabulary = list(store)
    for file in db.parent.iterdir():
        file.unlink()
    return vocabulary


@SETTINGS
@given(data=st.binary(max_size=600))
def test_random_bytes(tmp_path, data):
    try_load(tmp_path, data)


@SETTINGS
@given(count=st.integers(-10, 10**15), dimension=st.integers(-5, 10**9), body=st.binary(max_size=200))
def test_lying_headers_never_allocate_what_they_claim(tmp_path, count, dimension, body):
    try_load(tmp_path, f"{count} {dimension}\n".encode() + body)


@SETTINGS
@given(vocabulary=st.lists(st.one_of(words, sql_words), min_size=1, max_size=8, unique=True),
       dimension=st.integers(1, 6), data=st.data())
def test_well_formed_text_loads_exactly(tmp_path, vocabulary, dimension, data):
    rows = data.draw(st.lists(st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32).filter(lambda v: v != 0),
                                       min_size=dimension, max_size=dimension),
                              min_size=len(vocabulary), max_size=len(vocabulary)))
    ending = data.draw(st.sampled_from(["\n", "\r\n"]))
    header = data.draw(st.booleans())
    bom = data.draw(st.booleans()) and not header
    lines = [w + " " + " ".join(repr(v) for v in r) for w, r in zip(vocabulary, rows)]
    text = (f"{len(vocabulary)} {dimension}{ending}" if header else "") + ending.join(lines) + ending
    result = try_load(tmp_path, (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    if isinstance(result, EmbstoreError):  # (a byte order mark is skipped, with a note)
        # Only a header-looking first line (two integers) may be refused.
        assert not header and len(lines[0].split()) == 2
    else:
        assert result == vocabulary


@SETTINGS
@given(vocabulary=st.lists(words, min_size=1, max_size=6, unique=True), dimension=st.integers(1, 5),
       cut=st.integers(1, 40))
def test_truncated_binary(tmp_path, vocabulary, dimension, cut):
    body = b"".join(w.encode() + b" " + struct.pack(f"<{dimension}f", *([0.5] * dimension)) + b"\n"
                    for w in vocabulary)
    data = f"{len(vocabulary)} {dimension}\n".encode() + body
    result = try_load(tmp_path, data[: max(1, len(data) - cut)], "input.bin")
    assert isinstance(result, EmbstoreError) or result == vocabulary


@SETTINGS
@given(line=st.binary(min_size=1, max_size=300), position=st.integers(0, 2))
def test_garbage_line_inside_good_file(tmp_path, line, position):
    good = [b"alpha 0.1 0.2", b"beta 0.3 0.4", b"gamma 0.5 0.6"]
    good.insert(position, line.replace(b"\n", b" "))
    try_load(tmp_path, b"\n".join(good) + b"\n")


def test_nul_bytes_long_lines_and_tabs(tmp_path):
    refused = try_load(tmp_path, b"alpha 0.1 0.2\nbe\x00ta 0.3 0.4\n")  # NUL is a control character: no word
    assert isinstance(refused, EmbstoreError) and "line 2" in str(refused) and "U+0000" in str(refused)
    long_word = b"w" * 1_000_000
    assert try_load(tmp_path, long_word + b" 0.5 0.5\nbeta 0.3 0.4\n") == ["w" * 1_000_000, "beta"]
    tabbed = try_load(tmp_path, b"alpha\t0.1 0.2\nbeta 0.3 0.4\n")  # as in gensim, only a space ends a word
    assert isinstance(tabbed, EmbstoreError) and "line 2: expected 1 value after the word" in str(tabbed)
    spaced = try_load(tmp_path, b"new york 0.1 0.2\nbeta 0.3 0.4\n")
    assert isinstance(spaced, EmbstoreError)


@SETTINGS
@given(word=awkward_words)
def test_every_word_is_kept_exactly_or_refused_by_the_one_rule(tmp_path, word):
    """Any text without the space or line break that ends a word: stored exactly as given when
    it is a word by embstore's rule (no white space, no control characters), else one error
    naming line 2 -- and then reachable neither way, so the store never holds what a batch
    query could not ask for."""
    from embstore.vocabulary.vocabulary import word_problem

    data = ("alpha 0.1 0.2\n" + word + " 0.3 0.4\n").encode("utf-8", "surrogatepass")
    result = try_load(tmp_path, data)
    if word_problem(word) is None and word != "alpha":
        assert result == ["alpha", word]
    elif word != "alpha":
        assert isinstance(result, EmbstoreError) and "line 2" in str(result), result


def test_sql_looking_words_are_data(tmp_path):
    vocabulary = ["';DROP/**/TABLE/**/words;--", "x'OR'1'='1", "alpha"]
    data = "".join(f"{w} 0.{i + 1} 0.5\n" for i, w in enumerate(vocabulary)).encode()
    assert try_load(tmp_path, data) == vocabulary
    source = tmp_path / "sql.txt"
    source.write_bytes(data)
    Store.load(source, tmp_path / "q.db")
    with Store.open(tmp_path / "q.db") as store:
        assert store.nearest("';DROP/**/TABLE/**/words;--", k=1).neighbours
        assert "x'OR'1'='1" in store and "x" not in store


def test_no_pickle_anywhere():
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    for folder in ("embstore", "cli"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "import pickle" not in text and "pickle.load" not in text, path
            assert "allow_pickle=True" not in text, path
