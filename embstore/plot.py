"""2D maps of words: PCA (numpy) or t-SNE (scikit-learn) projections drawn with matplotlib.

matplotlib (and scikit-learn for t-SNE) are optional: ``pip install 'embstore[plot]'``.
The projection is separate from the drawing so that it can be checked on its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .errors import EmbstoreError, QueryError

if TYPE_CHECKING:
    from .store import Store

METHODS = ("pca", "tsne")


@dataclass
class Projection:
    """Words and their 2D (or 3D) coordinates. ``kind[i]`` is 'word', 'neighbour' or 'analogy'."""

    words: list[str]
    coordinates: np.ndarray
    kind: list[str]
    method: str
    axis_labels: tuple[str, ...]
    analogies: list[tuple[str, str, str, str]] = field(default_factory=list)


def pca_fit(vectors: np.ndarray, dims: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal axes of ``vectors``: (mean, ``dims`` unit axes as rows, their explained-variance ratios)."""
    data = np.asarray(vectors, dtype=np.float64)
    mean = data.mean(axis=0)
    _, singular, axes = np.linalg.svd(data - mean, full_matrices=False)
    variance = singular ** 2
    ratios = variance / variance.sum() if variance.sum() > 0 else np.zeros_like(variance)
    axes = axes[:dims]
    # Fix each axis's sign (largest component positive) so plots do not flip between runs.
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return mean, axes * signs[:, None], ratios[:dims]


def project(store: "Store", words: Sequence[str], *, method: str = "pca", neighbours: int = 0,
            fit_top: int | None = None, analogies: Sequence[Sequence[str]] = (), seed: int = 0,
            case_insensitive: bool = False, dims: int = 2) -> Projection:
    """Project ``words`` (plus each one's ``neighbours`` nearest words and the analogy words) to
    ``dims`` (2 or 3) dimensions.

    PCA is fitted on the plotted words, or on the ``fit_top`` most frequent words.
    Vectors are the stored unit vectors, so the map shows directions, as cosine does.
    Words are matched exactly, or with ``case_insensitive`` also in another case.
    """
    if method not in METHODS:
        raise QueryError(f"method must be one of {', '.join(METHODS)}")
    if dims not in (2, 3):
        raise QueryError(f"a projection has 2 or 3 dimensions, not {dims!r:.20}")
    listed: list[str] = []
    kinds: list[str] = []

    def add(word: str, kind: str) -> None:
        if word not in listed:
            listed.append(word)
            kinds.append(kind)

    resolved_analogies = []
    for quad in analogies:
        if len(quad) != 4:
            raise QueryError(f"an analogy needs four words (a b c d), got {len(quad)}: {' '.join(quad)}")
        found = [r.word for r in store.resolve_many(list(quad), case_insensitive=case_insensitive)]
        resolved_analogies.append(tuple(found))
        for word in found:
            add(word, "analogy")
    for resolved in store.resolve_many(list(words), case_insensitive=case_insensitive):
        add(resolved.word, "word")
    if neighbours:
        for result in store.nearest_many([w for w, k in zip(listed, kinds) if k == "word"], k=neighbours):
            for neighbour in result.neighbours:
                add(neighbour.word, "neighbour")
    if len(listed) < max(2, dims):
        raise QueryError(f"a {dims}D projection needs at least {max(2, dims)} different words")
    vectors = np.stack([store.unit_vector(w) for w in listed])
    if method == "pca":
        if fit_top:
            fit_rows = np.asarray(store.searcher.vectors(range(min(fit_top, len(store)))))
        else:
            fit_rows = vectors
        mean, axes, ratios = pca_fit(fit_rows, dims)
        coordinates = (vectors.astype(np.float64) - mean) @ axes.T
        labels = tuple(f"PC{n} ({100 * ratio:.1f}% of variance)" for n, ratio in enumerate(ratios, 1))
    else:
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            raise EmbstoreError("--method tsne needs scikit-learn: pip install 'embstore[plot]'") from None
        perplexity = min(max(2.0, min(30.0, (len(listed) - 1) / 3)), len(listed) - 1)  # below the point count
        coordinates = TSNE(n_components=dims, perplexity=perplexity, init="pca", random_state=seed,
                           metric="cosine").fit_transform(vectors.astype(np.float64))
        labels = tuple(f"t-SNE {n}" for n in range(1, dims + 1))
    return Projection(listed, np.asarray(coordinates), kinds, method, labels, resolved_analogies)


def _spread_labels(points: np.ndarray, rounds: int = 60) -> np.ndarray:
    """Label positions nudged apart where they would overlap (in units of the plot's span)."""
    span = np.ptp(points, axis=0)
    span[span == 0] = 1.0
    scaled = (points - points.min(axis=0)) / span
    labels = scaled + np.array([0.01, 0.012])
    for _ in range(rounds):
        moved = False
        difference = labels[:, None, :] - labels[None, :, :]
        # Labels are wide and short: treat overlap as an ellipse.
        distance = np.sqrt((difference[..., 0] / 0.09) ** 2 + (difference[..., 1] / 0.03) ** 2)
        np.fill_diagonal(distance, np.inf)
        close = distance < 1.0
        if close.any():
            push = (difference / np.maximum(distance, 1e-6)[..., None] * close[..., None]).sum(axis=1)
            labels += 0.004 * push
            moved = True
        if not moved:
            break
    return labels * span + points.min(axis=0)


def draw(projection: Projection, output: str | os.PathLike, title: str) -> Path:
    """Draw a labelled scatter plot of ``projection`` to a PNG or SVG file (by suffix)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EmbstoreError("plotting needs matplotlib: pip install 'embstore[plot]'") from None
    output = Path(output)
    if output.suffix.lower() not in (".png", ".svg"):
        raise QueryError("the plot file must end in .png or .svg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # keep labels as text in SVG
    points = projection.coordinates
    colours = {"word": "#1f4e9c", "analogy": "#b03a2e", "neighbour": "#9fb3d1"}
    figure, axes = plt.subplots(figsize=(9, 7), dpi=120)
    for kind, size in (("neighbour", 18), ("word", 36), ("analogy", 36)):
        chosen = [i for i, k in enumerate(projection.kind) if k == kind]
        if chosen:
            axes.scatter(points[chosen, 0], points[chosen, 1], s=size, color=colours[kind], zorder=3,
                         label={"word": "words", "neighbour": "nearest neighbours", "analogy": "analogy words"}[kind])
    places = _spread_labels(points)
    for (x, y), (lx, ly), word, kind in zip(points, places, projection.words, projection.kind):
        axes.annotate(word, (x, y), xytext=(lx, ly), fontsize=9 if kind != "neighbour" else 8,
                      color="#222222" if kind != "neighbour" else "#6b7f99", zorder=4,
                      arrowprops={"arrowstyle": "-", "color": "#cccccc", "lw": 0.5} if np.hypot(lx - x, ly - y) > 0 else None)
    position = {w: points[i] for i, w in enumerate(projection.words)}
    for a, b, c, d in projection.analogies:
        for start, end in ((a, b), (c, d)):
            axes.annotate("", xy=position[end], xytext=position[start], zorder=2,
                          arrowprops={"arrowstyle": "->", "color": "#b03a2e", "lw": 1.4})
    axes.set_xlabel(projection.axis_labels[0])
    axes.set_ylabel(projection.axis_labels[1])
    axes.set_title(title)
    axes.grid(True, color="#eeeeee", zorder=0)
    if len(set(projection.kind)) > 1:
        axes.legend(loc="best", fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(output)
    plt.close(figure)
    return output
