"""Run README.md's command blocks in order and compare each with the output shown under it.

Lines that install packages (``pip ...``) and the test command itself are skipped.
Timings, temporary paths and random file tokens are masked on both sides.

    python tests/test_readme.py --update    # rewrite README's output blocks from a real run
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"```(sh|python|text)\n(.*?)```", re.S)
SKIPPED_PREFIXES = ("pip ", "python -m pytest")


def blocks(text: str) -> list[tuple[str, str, str | None, tuple[int, int] | None]]:
    """(language, code, expected output or None, span of the output block) for each runnable block."""
    found = [(m.group(1), m.group(2), m.span(2)) for m in BLOCK.finditer(text)]
    runnable = []
    for index, (language, code, _) in enumerate(found):
        if language == "text":
            continue
        following = found[index + 1] if index + 1 < len(found) and found[index + 1][0] == "text" else None
        runnable.append((language, code, following[1] if following else None, following[2] if following else None))
    return runnable


def mask(output: str, workdir: Path) -> str:
    output = output.replace(str(workdir.resolve()), "/PATH").replace(str(workdir), "/PATH")
    output = re.sub(r"\b(in|,) \d+(\.\d+)?s\b", r"\1 Ns", output)
    output = re.sub(r"\.(exact|hnsw|ivf|sq8|pq)\.[0-9a-f]{8}\.faiss", r".\1.TOKEN.faiss", output)
    output = re.sub(r"\.ngrams\.[0-9a-f]{8}\.f32", ".ngrams.TOKEN.f32", output)
    return "\n".join(line.rstrip() for line in output.strip("\n").splitlines())


def run_block(language: str, code: str, workdir: Path, env: dict) -> str:
    if language == "python":
        completed = subprocess.run([sys.executable, "-"], input=code, cwd=workdir, env=env,
                                   capture_output=True, text=True, timeout=600)
    else:
        lines = [line for line in code.splitlines() if not line.startswith(SKIPPED_PREFIXES)]
        completed = subprocess.run(["bash", "-e", "-c", "\n".join(lines)], cwd=workdir,
                                   env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, f"README block failed:\n{code}\n--- stderr ---\n{completed.stderr}"
    return completed.stdout


def run_readme(workdir: Path):
    """Yield (code, expected, actual, span) for each block, run in order in ``workdir``."""
    (workdir / "data").symlink_to(ROOT / "data")
    env = {k: v for k, v in os.environ.items() if k != "EMBSTORE_DB"}
    env["XDG_DATA_HOME"] = str(workdir / "xdg")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    text = README.read_text(encoding="utf-8")
    for language, code, expected, span in blocks(text):
        if all(line.startswith(SKIPPED_PREFIXES) or not line.strip() for line in code.splitlines()):
            continue
        actual = run_block(language, code, workdir, env)
        yield code, expected, actual, span


def test_readme_blocks_run_and_show_their_real_output(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("gensim")
    checked = 0
    for code, expected, actual, _ in run_readme(tmp_path):
        if expected is not None:
            assert mask(actual, tmp_path) == mask(expected, tmp_path), f"README output differs for:\n{code}"
            checked += 1
    assert checked >= 8


def update(workdir: Path) -> None:
    text = README.read_text(encoding="utf-8")
    replacements = [(span, actual) for _, expected, actual, span in run_readme(workdir) if span is not None]
    for (start, end), actual in sorted(replacements, reverse=True):
        text = text[:start] + actual.rstrip("\n") + "\n" + text[end:]
    README.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if "--update" in sys.argv:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            update(Path(folder))
        print("README.md output blocks updated")
