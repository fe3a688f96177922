"""The docs held to the code: the CLI reference to the parser, the settings page to the
variables the code reads and to .env.example, the module map to the tree, and every link
between the pages to a file (and heading) that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from retrieval.cli.reference import markdown

from .support.paths import ROOT

DOCS = ROOT / "docs"
PACKAGES = ("retrieval", "bot")
VARIABLE = re.compile(r"^(BYLINE|DISCORD)_[A-Z0-9_]+$")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _modules() -> set[str]:
    """Every .py file under retrieval/ and bot/, as it is now."""
    return {p.relative_to(ROOT).as_posix() for package in PACKAGES
            for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts}


def _section(text: str, heading: str) -> str:
    """The text under `heading` (a `## ` line), up to the next `## ` heading."""
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    end = text.find("\n## ", start)
    return text[start:] if end < 0 else text[start:end]


def test_the_cli_reference_is_the_parser_s_help():
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == markdown(), (
        "docs/cli.md differs from the `byline` parser's help: regenerate it with `make docs` "
        "(python -m retrieval.cli.reference > docs/cli.md) and commit it.")


def _variables_read() -> dict[str, set[str]]:
    """Each BYLINE_*/DISCORD_* name the product's code holds as a string constant (what it
    reads from the environment), with the modules that hold it."""
    found: dict[str, set[str]] = {}
    for module in sorted(_modules()):
        for node in ast.walk(ast.parse((ROOT / module).read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and VARIABLE.match(node.value)):
                found.setdefault(node.value, set()).add(module)
    return found


def test_the_settings_page_and_env_example_list_what_the_code_reads():
    read = _variables_read()
    # Settings and BotSettings read most of them; a few are read where they are used
    # (the PostgreSQL pool, the ONNX cache, the fetch policy).
    assert {"BYLINE_INDEX_DIR", "BYLINE_STORE", "DISCORD_TOKEN"} <= set(read)
    settings = (DOCS / "settings.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `((?:BYLINE|DISCORD)_[A-Z0-9_]+)` \|", settings, re.M))
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^#?((?:BYLINE|DISCORD)_[A-Z0-9_]+)=", example, re.M))
    undocumented = {name: sorted(read[name]) for name in set(read) - documented}
    assert not undocumented, f"read by the code but not in docs/settings.md: {undocumented}"
    assert documented <= set(read), \
        f"in docs/settings.md but read nowhere: {sorted(documented - set(read))}"
    assert listed == documented, (
        f".env.example lacks {sorted(documented - listed)}; "
        f"lists what the code does not read: {sorted(listed - documented)}")


def test_the_module_map_lists_every_module():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    listed = re.findall(r"^- `([^`]+)`", _section(text, "## Module map"), re.M)
    assert len(listed) == len(set(listed)), "a module is listed twice"
    tree = _modules()
    assert set(listed) == tree, (
        f"docs/architecture.md's module map lacks {sorted(tree - set(listed))} and lists "
        f"{sorted(set(listed) - tree)}, which are not in the tree")


def test_each_walk_enters_each_module_once():
    text = _section((DOCS / "architecture.md").read_text(encoding="utf-8"), "## Two walks")
    walks = [re.findall(r"^\d+\. `([^`]+)`", block, re.M)
             for block in re.split(r"\n(?!\d+\. )[^\n]*\n", text)]
    walks = [walk for walk in walks if walk]
    assert len(walks) >= 2, "the two walks (build a folder; answer a question)"
    tree = _modules()
    for walk in walks:
        assert len(walk) == len(set(walk)), f"a walk enters a module twice: {walk}"
        assert set(walk) <= tree, f"a walk names modules not in the tree: {set(walk) - tree}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text("utf-8")), re.M):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_every_relative_link_leads_somewhere():
    broken = []
    for page in _pages():
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            goal = (page.parent / path).resolve() if path else page
            if not goal.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and goal.suffix == ".md" and anchor not in _anchors(goal):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_readme_stays_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 200, f"README.md has {lines} lines; move detail into docs/"
