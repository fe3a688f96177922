"""docs/architecture.md's two walks are the modules the commands really pass through: each
walk is traced (a profiler on `byline index` and `byline ask`) and compared with the page."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .support.walks import walk

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "architecture.md"


def documented(title: str) -> list[str]:
    """The modules of the first numbered list under `### title` in architecture.md."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"(?:^\d+\. .*\n)+", section, re.M)
    assert block, f"no numbered list under {title!r}"
    return re.findall(r"^\d+\. `([^`]+)`", block.group(0), re.M)


@pytest.fixture(scope="module")
def walks(tmp_path_factory) -> dict[str, list[str]]:
    folder = tmp_path_factory.mktemp("walk")
    env = {**os.environ, "BYLINE_INDEX_DIR": str(folder / "index")}
    env.pop("BYLINE_STORE", None)
    built = walk(["index", str(ROOT / "seeds")], env)
    asked = walk(["ask", "why was the trip cancelled"], env)
    return {"Build a folder": built, "Answer a question": asked}


@pytest.mark.parametrize("title", ["Build a folder", "Answer a question"])
def test_each_walk_lists_the_modules_it_passes_through_once(walks, title):
    page = documented(title)
    assert len(page) == len(set(page)), f"{title}: a module listed twice"
    traced = walks[title]
    missing, extra = sorted(set(traced) - set(page)), sorted(set(page) - set(traced))
    assert not missing and not extra, (
        f"{title}: the walk passes through {missing} (not on the page); the page lists "
        f"{extra} (not passed through). The traced order: {traced}")
