"""Plots (checked against an independent numpy PCA) and the interactive shell."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from embstore.plot import project

pytest.importorskip("matplotlib")

COUNTRIES = ["france", "paris", "germany", "berlin", "italy", "rome", "japan", "tokyo"]


def independent_pca(vectors: np.ndarray) -> np.ndarray:
    """PCA through the covariance eigenvectors (not SVD, unlike embstore)."""
    centred = vectors - vectors.mean(axis=0)
    values, vectors_ = np.linalg.eigh(np.cov(centred, rowvar=False))
    axes = vectors_[:, np.argsort(values)[::-1][:2]]
    return centred @ axes


def test_pca_coordinates_match_numpy(small_store, small_matrix):
    words, matrix = small_matrix
    projection = project(small_store, COUNTRIES)
    rows = matrix[[words.index(w) for w in COUNTRIES]].astype(np.float64)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    expected = independent_pca(rows)
    for axis in range(2):  # an axis may come out with either sign
        ours, theirs = projection.coordinates[:, axis], expected[:, axis]
        sign = np.sign(ours @ theirs)
        np.testing.assert_allclose(ours, sign * theirs, atol=1e-5)
    assert projection.axis_labels[0].startswith("PC1 (")


def test_fit_top_projects_onto_the_vocabulary_axes(small_store, small_matrix):
    words, matrix = small_matrix
    top = matrix[:1000].astype(np.float64)
    top /= np.linalg.norm(top, axis=1, keepdims=True)
    mean = top.mean(axis=0)
    _, _, axes = np.linalg.svd(top - mean, full_matrices=False)
    projection = project(small_store, COUNTRIES, fit_top=1000)
    rows = matrix[[words.index(w) for w in COUNTRIES]].astype(np.float64)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    expected = (rows - mean) @ axes[:2].T
    np.testing.assert_allclose(np.abs(projection.coordinates), np.abs(expected), atol=1e-5)


def test_png_and_svg_with_labels(run, small_store_path, tmp_path):
    png = tmp_path / "map.png"
    result = run("plot", *COUNTRIES, "-o", png, "--neighbours", "2", "--db", small_store_path)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "map.svg"
    assert run("plot", "king", "queen", "-o", svg, "--analogy", "man king woman queen",
               "--db", small_store_path).exit_code == 0
    text = svg.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    labels = set(re.findall(r">([a-z]+)</text>", text))
    assert {"king", "queen", "man", "woman"} <= labels
    assert "PC1" in text and "small.db" in text  # axis label and title


def test_plot_needs_known_words_and_an_image_suffix(run, small_store_path, tmp_path):
    unknown = run("plot", "king", "qwzxv", "-o", tmp_path / "x.png", "--db", small_store_path)
    assert unknown.exit_code == 1 and "unknown word 'qwzxv'" in unknown.output
    wrong = run("plot", "king", "queen", "-o", tmp_path / "x.pdf", "--db", small_store_path)
    assert wrong.exit_code == 1 and ".png or .svg" in wrong.output


def test_shell_answers_piped_commands(small_store_path, small_store):
    script = "nearest king -k 3\nanalogy man king woman -k 1\nbogus\nnearest qwzxv\nsimilarity king queen\nquit\nnearest never\n"
    completed = subprocess.run(
        [sys.executable, "-m", "embstore_cli", "shell", "--db", str(small_store_path)],
        input=script, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    expected = [n.word for n in small_store.nearest("king", k=3).neighbours]
    assert all(word in out for word in expected)
    assert "queen" in out
    assert f"{small_store.similarity('king', 'queen'):.4f}" in out
    assert "never" not in out  # nothing after quit runs
    assert "unknown command 'bogus'" in completed.stderr
    assert "unknown word 'qwzxv'" in completed.stderr
    assert "embstore>" not in out  # prompts never reach stdout
