"""Reading every supported layout, plain and compressed, including what gensim writes."""

from __future__ import annotations

import bz2
import gzip
import lzma
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embstore import FormatError
from embstore.formats import EmbeddingReader, read_embeddings

VOCAB = ["the", "café", "naïve", "日本", "x-ray"]


@pytest.fixture()
def vectors():
    rng = np.random.default_rng(7)
    return rng.standard_normal((len(VOCAB), 6)).astype(np.float32)


def gensim_kv(vectors):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.add_vectors(VOCAB, vectors)
    return kv


@pytest.mark.parametrize("binary", [False, True])
def test_reads_gensim_save_word2vec_format(tmp_path, vectors, binary):
    path = tmp_path / ("w2v.bin" if binary else "w2v.txt")
    gensim_kv(vectors).save_word2vec_format(str(path), binary=binary)
    with EmbeddingReader(path) as reader:
        assert reader.format == ("word2vec-bin" if binary else "word2vec")
        assert (reader.declared_count, reader.dimension) == (len(VOCAB), 6)
    words, matrix = read_embeddings(path)
    assert words == VOCAB
    if binary:
        np.testing.assert_array_equal(matrix, vectors)
    else:
        np.testing.assert_allclose(matrix, vectors, rtol=1e-6)


def test_glove_and_fasttext_vec_layouts(tmp_path, vectors):
    rows = [w + " " + " ".join(repr(float(v)) for v in row) for w, row in zip(VOCAB, vectors)]
    glove = tmp_path / "g.txt"
    glove.write_text("\n".join(rows) + "\n", encoding="utf-8")
    vec = tmp_path / "f.vec"  # fastText: header, trailing space on each line, CRLF for good measure
    vec.write_bytes((f"{len(VOCAB)} 6\r\n" + "".join(r + " \r\n" for r in rows)).encode("utf-8"))
    for path, expected in [(glove, "glove"), (vec, "word2vec")]:
        with EmbeddingReader(path) as reader:
            assert reader.format == expected
        words, matrix = read_embeddings(path)
        assert words == VOCAB
        np.testing.assert_array_equal(matrix, vectors)


@pytest.mark.parametrize("opener,suffix", [(gzip.open, ".gz"), (bz2.open, ".bz2"), (lzma.open, ".xz")])
def test_compressed_files_detected_by_content(tmp_path, glove_small, small_matrix, opener, suffix):
    path = tmp_path / "glove_without_telling_suffix"  # detection must not rely on the name
    head = glove_small.read_bytes()[:200_000]
    with opener(path, "wb") as handle:
        handle.write(head[: head.rfind(b"\n") + 1])
    words, matrix = read_embeddings(path)
    expected_words, expected = small_matrix
    assert words == expected_words[: len(words)]
    np.testing.assert_array_equal(matrix, expected[: len(words)])


def test_limit_keeps_first_rows(glove_small, small_matrix):
    words, matrix = read_embeddings(glove_small, limit=123)
    assert words == small_matrix[0][:123]
    np.testing.assert_array_equal(matrix, small_matrix[1][:123])


def test_format_override(tmp_path):
    path = tmp_path / "two.txt"
    path.write_text("3 4\n5 6\n")  # reads as a header when detected; GloVe when forced
    with pytest.raises(FormatError):
        read_embeddings(path)
    words, matrix = read_embeddings(path, format="glove")
    assert words == ["3", "5"] and matrix.tolist() == [[4.0], [6.0]]


def test_small_chunks_give_same_rows(glove_small, small_matrix):
    with EmbeddingReader(glove_small, chunk_bytes=4096) as reader:
        chunks = list(reader.chunks())
    assert len(chunks) > 100
    words = [w for c in chunks for w in c.words]
    assert words == small_matrix[0]
    lines = np.concatenate([c.lines for c in chunks])
    assert lines.tolist() == list(range(1, len(words) + 1))


def test_invalid_utf8_strict_and_lenient(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good 1 2\nbad\xff 3 4\n")
    with pytest.raises(FormatError) as caught:
        read_embeddings(path)
    assert caught.value.line == 2 and "UTF-8" in str(caught.value)
    assert read_embeddings(path, unicode_errors="replace")[0] == ["good", "bad\ufffd"]
    assert read_embeddings(path, unicode_errors="ignore")[0] == ["good", "bad"]


def test_gensim_unicode_errors_agree(tmp_path):
    from gensim.models import KeyedVectors

    path = tmp_path / "bad.txt"
    path.write_bytes(b"2 2\ngood 1 2\nbad\xff 3 4\n")
    for mode in ("replace", "ignore"):
        theirs = KeyedVectors.load_word2vec_format(str(path), unicode_errors=mode)
        assert read_embeddings(path, unicode_errors=mode)[0] == theirs.index_to_key


def _reference_binary(data: bytes, dimension: int) -> tuple[list[bytes], np.ndarray]:
    """word2vec binary parsed the plain way, one entry at a time (the word ends at the first
    space; newlines before it are the end of the previous vector)."""
    header, _, body = data.partition(b"\n")
    count = int(header.split()[0])
    words, rows, position = [], [], 0
    for _ in range(count):
        space = body.index(b" ", position)
        words.append(body[position:space].lstrip(b"\n"))
        rows.append(np.frombuffer(body, "<f4", dimension, space + 1))
        position = space + 1 + 4 * dimension
    return words, np.array(rows, dtype=np.float32).reshape(count, dimension)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), dimension=st.integers(1, 5), chunk_bytes=st.integers(1, 300))
def test_binary_entries_split_as_one_by_one_at_any_chunk_size(tmp_path, data, dimension, chunk_bytes):
    """The reader matches whole entries in C; at every chunk size it must split the file
    exactly as the plain loop does, vector bytes that hold spaces and newlines included."""
    words = data.draw(st.lists(st.binary(min_size=1, max_size=12).filter(lambda w: b" " not in w and w[:1] != b"\n"),
                               min_size=1, max_size=40, unique=True))
    rng = np.random.default_rng(len(words))
    body = b""
    for word in words:
        values = rng.choice(np.array([32, 10, 0, 65, 255], np.uint8), 4 * dimension).tobytes()  # spaces, newlines
        values = np.frombuffer(values, "<f4")
        values = np.where(np.isfinite(values), values, 1.0).astype("<f4").tobytes()
        body += b"\n" * data.draw(st.integers(0, 2)) + word + b" " + values
    path = tmp_path / f"v{chunk_bytes}.bin"
    path.write_bytes(f"{len(words)} {dimension}\n".encode() + body)
    expected_words, expected_rows = _reference_binary(path.read_bytes(), dimension)
    with EmbeddingReader(path, "word2vec-bin", chunk_bytes=chunk_bytes, unicode_errors="replace") as reader:
        chunks = list(reader.chunks())
    got = [w for c in chunks for w in c.words]
    assert got == [w.decode("utf-8", "replace") for w in expected_words]
    assert np.array_equal(np.concatenate([c.vectors for c in chunks]), expected_rows)
    assert np.concatenate([c.lines for c in chunks]).tolist() == list(range(1, len(words) + 1))


def test_binary_empty_word_is_reported_at_its_entry(tmp_path):
    row = np.ones(3, "<f4").tobytes()
    path = tmp_path / "empty.bin"
    path.write_bytes(b"4 3\n" + b"a " + row + b"\nb " + row + b"\n\n " + row + b"\nd " + row)
    with pytest.raises(FormatError) as caught:
        read_embeddings(path)
    assert caught.value.line == 3 and "empty" in str(caught.value)


def _outcome(path, dimension, chunk_bytes):
    try:
        with EmbeddingReader(path, "word2vec-bin", chunk_bytes=chunk_bytes) as reader:
            chunks = list(reader.chunks())
    except FormatError as exc:
        return ("error", exc.line, str(exc))
    return ("ok", tuple(w for c in chunks for w in c.words), np.concatenate([c.vectors for c in chunks]).tobytes())


def test_a_word_at_the_length_limit_reads_the_same_wherever_chunks_end(tmp_path, monkeypatch):
    """The limit counts the newlines before a word, as the entry loop's search for the space
    does, so where the reader's chunks happen to end cannot decide whether a file loads."""
    from embstore.formats import binary_parsing

    monkeypatch.setattr(binary_parsing, "MAX_WORD_BYTES", 16)
    row = np.full(2, 0.5, "<f4").tobytes()
    for body, expected in [(b"a " + row + b"\n" + b"w" * 15 + b" " + row, "error"),  # 1 + 15 bytes: too long
                           (b"a " + row + b"\n" + b"w" * 14 + b" " + row, "ok"),     # 1 + 14: the longest kept
                           (b"a " + row + b"\n\n" + b"w" * 14 + b" " + row, "error")]:  # 2 + 14: too long
        path = tmp_path / "limit.bin"
        path.write_bytes(b"2 2\n" + body)
        outcomes = {_outcome(path, 2, chunk_bytes) for chunk_bytes in range(1, 80)}
        assert {outcome[0] for outcome in outcomes} == {expected}, outcomes
        if expected == "ok":
            assert len(outcomes) == 1 and next(iter(outcomes))[1] == ("a", "w" * 14)


def test_a_long_run_of_newlines_is_read_in_linear_time(tmp_path):
    """A header that claims one entry more than a file holds, then 100,000 newlines: the
    error comes at once (a pattern that backtracked into the run took about a minute)."""
    row = np.ones(4, "<f4").tobytes()
    path = tmp_path / "newlines.bin"
    path.write_bytes(b"6 4\n" + b"".join(b"w%d " % i + row + b"\n" for i in range(5)) + b"\n" * 100_000)
    started = time.perf_counter()
    with pytest.raises(FormatError) as caught:
        read_embeddings(path)
    assert "declares 6 words but the file holds 5" in str(caught.value)
    assert time.perf_counter() - started < 10  # linear: about 0.01 s; the quadratic pattern: about 60 s


@pytest.mark.parametrize("first_bytes", [b"\n\x11\x80\x3f", b"1\n\x80\x3f", b"e.\n\x3f", b"-1e\n", b"\x00\n\x80\x3f"])
@pytest.mark.parametrize("writer", ["gensim", "word2vec C (a newline after each vector)"])
def test_a_binary_file_whose_first_vector_holds_a_newline_is_binary(tmp_path, vectors, first_bytes, writer):
    """Detection reads the first entry as a line: a vector whose bytes start with a newline
    (1 file in 256: the low byte of the first float) made the line a word with no values, and
    the file was read as text ("expected 6 values after the word, found 0")."""
    vectors = vectors.copy()
    vectors[0, 0] = np.frombuffer(first_bytes, dtype="<f4")[0]
    path = tmp_path / "w2v.bin"
    if writer == "gensim":
        gensim_kv(vectors).save_word2vec_format(str(path), binary=True)
    else:
        path.write_bytes(f"{len(VOCAB)} 6\n".encode()
                         + b"".join(w.encode() + b" " + v.tobytes() + b"\n" for w, v in zip(VOCAB, vectors)))
    from gensim.models import KeyedVectors

    theirs = KeyedVectors.load_word2vec_format(str(path), binary=True)
    with EmbeddingReader(path) as reader:
        assert reader.format == "word2vec-bin"
    words, matrix = read_embeddings(path)
    assert words == VOCAB == list(theirs.index_to_key)
    np.testing.assert_array_equal(matrix, vectors)
    np.testing.assert_array_equal(matrix, theirs.vectors)


@pytest.mark.parametrize("dimension, first_bytes", [(1, b"1\n\x80\x3f"), (2, b"\n\x11\x80\x3f"), (2, b"1 2\n")])
def test_at_one_or_two_dimensions_such_a_line_may_even_hold_the_right_number_of_values(tmp_path, dimension,
                                                                                      first_bytes):
    vectors = np.random.default_rng(dimension).standard_normal((3, dimension)).astype(np.float32)
    vectors[0, 0] = np.frombuffer(first_bytes, dtype="<f4")[0]
    path = tmp_path / "w2v.bin"
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=dimension)
    kv.add_vectors(["king", "queen", "man"], vectors)
    kv.save_word2vec_format(str(path), binary=True)
    words, matrix = read_embeddings(path)
    assert words == ["king", "queen", "man"]
    np.testing.assert_array_equal(matrix, vectors)


@pytest.mark.parametrize("content, error", [
    (b"3 4\nalpha 1\nbeta 0.5 0.25 0.125 1\ngamma 1 2 3 4\n", "line 2: expected 4 values after the word, found 1"),
    (b"3 4\nalpha 1\nbeta\ngamma 1 2 3 4\n", "line 2: expected 4 values after the word, found 1"),
    (b"3 4\nalpha 1\n# note\ngamma 1 2 3 4\n", "line 2: expected 4 values after the word, found 1"),
    (b"2 3\nalpha 1 2\n\nbeta 3 4\n", "line 2: expected 3 values after the word, found 2"),
    (b"2 2\nalpha 1\nInfinity 2 3\n", "line 2: expected 2 values after the word, found 1"),
    (b"3 4\nalpha 1\nbad\xff 1 2 3 4\n", "line 2: expected 4 values after the word, found 1"),
    (b"2 4\nalpha\nbeta 0.5 0.25 0.125 1\nbeta 0.5 0.25 0.125 1\n", "line 2"),
])
def test_a_text_line_of_the_wrong_length_is_still_read_as_text(tmp_path, content, error):
    """The newline rule above must not take a text file for binary: a first line with fewer
    values than its header says gets the text error, whatever follows it (a word alone, a
    blank line, a comment, a word that is not UTF-8: the hostile tester's cases)."""
    path = tmp_path / "short.txt"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=error):
        read_embeddings(path)
