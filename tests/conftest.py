"""Shared fixtures: real GloVe rows from the bundled sample, stores built from them, gensim's view."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from embstore import Store
from embstore_cli.app import cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "glove.6B.50d.50k.txt.gz"
SMALL_WORDS = 20_000


@pytest.fixture(scope="session")
def sample_lines() -> list[str]:
    """The first SMALL_WORDS lines of the bundled GloVe sample (real vectors)."""
    lines = []
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        for line in handle:
            lines.append(line)
            if len(lines) == SMALL_WORDS:
                break
    return lines


@pytest.fixture(scope="session")
def glove_small(tmp_path_factory, sample_lines) -> Path:
    """A plain GloVe text file of real vectors."""
    path = tmp_path_factory.mktemp("data") / "glove.small.txt"
    path.write_text("".join(sample_lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_matrix(sample_lines) -> tuple[list[str], np.ndarray]:
    """The same rows parsed independently of embstore: (words, float32 matrix)."""
    words = [line.split(" ", 1)[0] for line in sample_lines]
    matrix = np.array([[float(v) for v in line.split()[1:]] for line in sample_lines], dtype=np.float32)
    return words, matrix


@pytest.fixture(scope="session")
def small_store_path(tmp_path_factory, glove_small) -> Path:
    path = tmp_path_factory.mktemp("store") / "small.db"
    Store.load(glove_small, path)
    return path


@pytest.fixture()
def store_copy(tmp_path, small_store_path) -> Path:
    """A private copy of the small store, safe to change or damage."""
    for file in small_store_path.parent.iterdir():
        if file.name.startswith(small_store_path.name):
            shutil.copy(file, tmp_path / file.name)
    return tmp_path / small_store_path.name


@pytest.fixture()
def small_store(small_store_path):
    with Store.open(small_store_path) as store:
        yield store


@pytest.fixture(scope="session")
def gensim_small(glove_small):
    keyedvectors = pytest.importorskip("gensim.models.keyedvectors")
    return keyedvectors.KeyedVectors.load_word2vec_format(str(glove_small), no_header=True)


@pytest.fixture()
def run():
    """Invoke the CLI in-process: run('nearest', 'king', '--db', path)."""
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke
