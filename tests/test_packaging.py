"""The package: the seeds ship inside it, both commands are declared, the core stands alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from retrieval.cli.config import PACKAGED_SEEDS, Settings

from .support.paths import ROOT, SEEDS


def test_the_packaged_seeds_are_the_seeds():
    assert sorted(p.name for p in PACKAGED_SEEDS.iterdir()) == \
        sorted(p.name for p in SEEDS.iterdir())
    for p in SEEDS.iterdir():
        assert (PACKAGED_SEEDS / p.name).read_bytes() == p.read_bytes()


def test_without_a_seeds_folder_the_packaged_seeds_are_the_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert Settings().default_corpus() == PACKAGED_SEEDS
    assert Settings().corpus_to_write() == Path("seeds")  # fetch never writes into the package
    (tmp_path / "seeds").mkdir()
    assert Settings().default_corpus() == Path("seeds")
    assert Settings(corpus_dir=tmp_path).default_corpus() == tmp_path


def test_the_wheel_holds_the_seeds_and_both_commands(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("retrieval", "bot", "seeds"):
        shutil.copytree(ROOT / name, source / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                           "--no-build-isolation", "--quiet", "-w", str(tmp_path / "dist")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [wheel] = (tmp_path / "dist").glob("byline-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        metadata = next(z.read(n).decode() for n in names if n.endswith("/METADATA"))
    assert {f"retrieval/data/seeds/{p.name}" for p in SEEDS.iterdir()} <= names
    assert {"bot/cli.py", "bot/__main__.py", "retrieval/search/live.py"} <= names
    assert "byline = retrieval.cli.main:main" in entry_points
    assert "byline-bot = bot.cli:main" in entry_points
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = [line for line in requires if "extra ==" not in line]
    for name in ("discord.py", "aiohttp", "prometheus-client", "faiss-cpu"):
        assert any(name in line for line in core), name  # what runs is declared
