"""Loading and cleaning articles: the real seeds, general furniture rules, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from retrieval.corpus import load_corpus, parse_article
from retrieval.errors import CorpusError

from .support.paths import SEEDS

# The opening words of every real paragraph of each seed article, in order.
REAL_PARAGRAPHS = {
    "000_94a4140cf05cdf3f": [
        "In tweets posted Friday, the president didn’t rule out",
        "President Donald Trump on Friday canceled Secretary of State",
        "“I have asked Secretary of State Mike Pompeo not to go",
        "“Additionally,” he continued, “because of our much tougher",
        "The tweets come two months after Trump and North Korean",
        "Earlier this month, White House national security adviser",
        "“The United States has lived up to the Singapore declaration,”",
        "The president had previously defended Kim’s intentions",
        "In Friday’s tweets, Trump didn’t rule out future talks.",
        "“In the meantime I would like to send my warmest regards",
        "Nick Visser contributed to this report.",
    ],
    "003_0c19cdefe2f9ba84": [
        "HANOI, Vietnam (AP) — Secretary of State Mike Pompeo says",
        "Pompeo tells reporters aboard his plane Thursday",
        "Pompeo said progress was made between Trump and Kim",
        "Pompeo spoke as he flew to Manila from Hanoi",
        "South Korea’s presidential office says Trump regretted",
        "The office of South Korean President Moon Jae-in said",
        "The Blue House says Moon encouraged Trump",
        "Trump says he “walked away” from talks with Kim",
        "Kim was asked whether he was ready to denuclearize",
    ],
}
FURNITURE = [
    "Sign up for", "Start your day with", "Photo by", "Getty Images", "MORE LESS",
    "Before You Go", "Popular in the Community", "Latest News", "Masthead",
    "Editor-in-Chief:", "Managing Editor:", "Publisher:", "Senior Designer:",
    "MEXICO CITY, MEXICO - OCTOBER 19",
]


@pytest.fixture(scope="module")
def seeds():
    return {a.id: a for a in load_corpus(SEEDS)}


def test_seed_titles(seeds):
    assert seeds["000_94a4140cf05cdf3f"].title == "Trump Calls Off Pompeo's North Korea Trip"
    assert seeds["003_0c19cdefe2f9ba84"].title.startswith("After Trump-Kim Summit Failure")


def test_every_real_paragraph_survives_and_nothing_else(seeds):
    for article_id, openings in REAL_PARAGRAPHS.items():
        paragraphs = seeds[article_id].paragraphs
        assert len(paragraphs) == len(openings), paragraphs
        for text, opening in zip(paragraphs, openings, strict=True):
            assert text.startswith(opening)


def test_no_page_furniture_survives(seeds):
    for article in seeds.values():
        for text in article.paragraphs:
            for junk in FURNITURE:
                assert junk not in text, (article.id, text)


def test_passages_carry_citation_fields(seeds):
    passages = seeds["003_0c19cdefe2f9ba84"].passages()
    assert [p.paragraph for p in passages] == list(range(1, 10))
    p = passages[3]
    assert p.id == "003_0c19cdefe2f9ba84#4"
    assert p.source == "003_0c19cdefe2f9ba84.txt"
    assert p.title == seeds["003_0c19cdefe2f9ba84"].title
    assert p.text.startswith("Pompeo spoke as he flew to Manila")


# General rules, on furniture the seeds do not contain.
@pytest.mark.parametrize("junk", [
    "Subscribe to our daily briefing",
    "Get the best of our journalism in your inbox",
    "Home | World | Politics | Business | Sport",
    "Photo: Jane Doe/Reuters",
    "(Photo by Sam Lee/AFP via Getty Images)",
    "Read more",
    "Share this:",
    "Advertisement",
    "Related Coverage",
    "https://example.com/a https://example.com/b",
])
def test_general_furniture_rules(junk):
    body = ("A city council voted on Tuesday to expand the bus network, officials said.\n\n"
            f"{junk}\n\nThe plan adds six routes and costs $4 million over two years.")
    article = parse_article(f"Council expands buses\n\n{body}", "a", "a.txt")
    assert article.paragraphs == (
        "A city council voted on Tuesday to expand the bus network, officials said.",
        "The plan adds six routes and costs $4 million over two years.",
    )


def test_staff_list_and_repeated_caption_are_dropped():
    caption = "Flood waters cover the main road into town on Monday morning after the storm"
    text = (f"Storm floods town\n\n{caption}... {caption}.\n\n"
            "Residents were evacuated overnight as the river rose above its banks.\n\n"
            "Editor: Ann Smith\nReporter: Bo Chen\nDesigner: Cy Diaz\nPhotos: Di Evans")
    article = parse_article(text, "s", "s.txt")
    assert article.paragraphs == (
        "Residents were evacuated overnight as the river rose above its banks.",)


def test_paragraph_that_repeats_a_phrase_is_kept():
    text = ("Wall\n\n" + "The harbour authority said the sea wall would protect the town. " * 5
            + "\n\nThe harbour authority said so twice. The harbour authority said it "
            "again, at length, to anyone who would listen to the harbour authority.")
    assert len(parse_article(text, "w", "w.txt").paragraphs) == 2


def test_header_metadata_and_markdown(tmp_path: Path):
    (tmp_path / "story.md").write_text(
        "Outlet: The Example Times\nDate: 2024-05-01\nURL: https://example.com/story\n"
        "Author: Ann Smith\n\n# Bridge reopens after repairs\n\n"
        "The **Old Mill** bridge reopened on Wednesday after [six months](https://x.y) of\n"
        "repairs that cost the county far more than first planned, engineers said today.\n",
        encoding="utf-8")
    [article] = load_corpus(tmp_path)
    assert (article.title, article.outlet, article.date, article.url, article.author) == (
        "Bridge reopens after repairs", "The Example Times", "2024-05-01",
        "https://example.com/story", "Ann Smith")
    [p] = article.passages()
    # Hard-wrapped lines joined, Markdown markup and link targets removed.
    assert p.text == ("The Old Mill bridge reopened on Wednesday after six months of repairs "
                      "that cost the county far more than first planned, engineers said today.")
    assert (p.outlet, p.date, p.url) == ("The Example Times", "2024-05-01",
                                         "https://example.com/story")


def test_metadata_may_follow_the_title():
    article = parse_article("Bridge reopens\nOutlet: Daily Bugle\nDate: 2024-05-02\n\n"
                            "The bridge reopened on Wednesday after six months of repairs.",
                            "b", "b.txt")
    assert (article.title, article.outlet, article.date) == (
        "Bridge reopens", "Daily Bugle", "2024-05-02")


def test_ids_are_stable_and_path_based(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "one story.txt").write_text(
        "Title\n\nThe first paragraph of the story has enough words to count.\n", "utf-8")
    first = [p.id for a in load_corpus(tmp_path) for p in a.passages()]
    (tmp_path / "another.txt").write_text(
        "Other\n\nA second article arrives later and must not renumber the first.\n", "utf-8")
    second = [p.id for a in load_corpus(tmp_path) for p in a.passages()]
    assert first == ["sub/one-story#1"]
    assert set(first) <= set(second) and len(second) == 2


def test_missing_folder():
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus("/nonexistent/corpus")


def test_empty_folder(tmp_path: Path):
    with pytest.raises(CorpusError, match=r"has no articles \(\.atom, \.csv"):
        load_corpus(tmp_path)


def test_folder_with_only_furniture(tmp_path: Path):
    (tmp_path / "junk.txt").write_text("Latest News\n\nSign up for our newsletter\n", "utf-8")
    with pytest.raises(CorpusError, match="no article text"):
        load_corpus(tmp_path)


def test_non_utf8_file(tmp_path: Path):
    (tmp_path / "latin1.txt").write_bytes("Café news\n\nLe café est fermé.".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1\.txt: not UTF-8 text \(bad byte at offset 3\)"):
        load_corpus(tmp_path)


def test_unreadable_file(tmp_path: Path):
    os.symlink(tmp_path / "gone.txt", tmp_path / "broken.txt")
    with pytest.raises(CorpusError, match=r"broken\.txt: cannot be read \(No such file"):
        load_corpus(tmp_path)
