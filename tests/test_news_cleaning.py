"""Cleaning rules for real news pages: captions without credits, widgets, sign-up prompts,
editorial notes. Each unit test is a short line in the shape of one met on a real page (the
sentences are made up); the last test runs over a development set of real articles when one
is present (it cannot be shipped: no licence to redistribute)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from retrieval.corpus import parse_article
from retrieval.corpus.clean import blocks, furniture_reason, plain
from retrieval.corpus.plain import split_header

LEAD = "A city council voted on Tuesday to expand the bus network, officials said."
TAIL = "The plan adds six routes and costs $4 million over two years."


def kept(*lines: str) -> tuple[str, ...]:
    """The paragraphs kept of a story whose body is LEAD, `lines` (one block each), TAIL."""
    body = "\n\n".join([LEAD, *lines, TAIL])
    paragraphs = parse_article(f"Council expands buses\n\n{body}", "a", "a.txt").paragraphs
    assert paragraphs[0] == LEAD and paragraphs[-1] == TAIL, paragraphs
    return paragraphs[1:-1]


@pytest.mark.parametrize(("line", "caption"), [
    ("Crews clear mud from the main street on Tuesday. Jane Doe/AP",
     "Crews clear mud from the main street on Tuesday."),
    ("A bridge washed out by the flood on Monday. Jacob W. Roe/County Parks/AP",
     "A bridge washed out by the flood on Monday."),
    ("Voters queue outside a school in the capital. Ann Poe/AFP/Getty Images",
     "Voters queue outside a school in the capital."),
    ("Cars drive under a fallen power line. ANN POE/X01234/REUTERS",
     "Cars drive under a fallen power line."),
    # No full stop before the credit: the name is its last two words.
    ("A fan holds a sign after the final game in Leeds Tom Lee/Reuters",
     "A fan holds a sign after the final game in Leeds"),
    ("The mayor arrives on Friday. (Bo Chen/Pool via Reuters) Bo Chen/Pool via Reuters",
     "The mayor arrives on Friday."),
    ("The mayor speaks to reporters on Monday. (AP Photo/Sam Lee)",
     "The mayor speaks to reporters on Monday."),
])
def test_caption_is_kept_without_its_credit(line, caption):
    assert kept(line) == (caption,)
    assert furniture_reason(line) == "photo credit or caption"  # a dateline is not read there


def test_credit_alone_is_dropped():
    assert kept("Sam Lee/Pool/Getty Images", "Ann Poe/AP") == ()


def test_gallery_scraped_as_one_line_keeps_its_captions():
    gallery = ("Crowds gather in the square on Monday. Ann Poe/AFP/Getty Images Police close the "
               "main road at noon. Bo Chen/Reuters Rain falls on the marchers by evening. Getty "
               "Images Volunteers hand out water. Tom Lee via Reuters")
    assert kept(gallery) == (
        "Crowds gather in the square on Monday. Police close the main road at noon. Rain falls "
        "on the marchers by evening. Volunteers hand out water.",)


def test_gallery_with_caption_counters_keeps_its_captions():
    gallery = ("Photos: The mayor's career The mayor takes office in 2015 after a close race. "
               "Hide Caption 1 of 2 Photos: The mayor's career A crowd greets the mayor at the "
               "harbour in 2019. Hide Caption 2 of 2")
    assert kept(gallery) == ("The mayor takes office in 2015 after a close race. A crowd greets "
                             "the mayor at the harbour in 2019.",)


def test_slashes_in_prose_are_not_credits():
    line = "Riders can pay by card and/or phone, and fares rise in May/June, the AP reported."
    assert kept(line) == (line,)


@pytest.mark.parametrize("widget", [
    "How relevant is this ad to you?",
    "1. How relevant is this ad to you?",
    "Video player was slow to load content Video content never loaded Ad froze or did not "
    "finish loading Other issues",
    "Video Ad Feedback Mayor explains why the buses are late 02:31 - Source: Example News",
    "JUST WATCHED Mayor explains the plan Replay More Videos ... MUST WATCH Mayor explains 01:19",
])
def test_video_and_ad_widgets_are_dropped(widget):
    assert kept(widget) == ()
    assert furniture_reason(widget) == "video or ad widget"


@pytest.mark.parametrize("prompt", [
    "This story is part of the Evening Brief newsletter. To get it in your inbox, sign up for "
    "free, here.",
    "Get the weekly health newsletter Sign up here to get our best advice every Tuesday.",
    "Enjoying the Brief? Sign up and you'll get all of this in your inbox every night. (Well, "
    "most nights.)",
    "If you haven't subscribed yet, sign up here.",
])
def test_newsletter_prompts_are_dropped(prompt):
    assert kept(prompt) == ()


def test_sign_up_sentence_is_cut_from_a_good_paragraph():
    prose = ("The new routes start in March and will be reviewed after a year, the transport "
             "director said, adding that bus drivers had been hired for every route.")
    assert kept(f"{prose} To get these updates in your inbox, sign up for our newsletter.") == (
        prose,)


@pytest.mark.parametrize("line", [
    "Hundreds of runners rushed to sign up for the marathon within an hour of the opening.",
    "Borrowers can sign up for updates on the application at the agency's website.",
    "Subscribers to the service will pay $8 a month from next year, the company said.",
])
def test_sign_up_in_prose_is_kept(line):
    assert kept(line) == (line,)


@pytest.mark.parametrize("note", [
    "Correction: An earlier version of this story misstated the day of the vote.",
    "CORRECTION: A previous version of this story misspelled the director's name.",
    "This story has been updated with additional developments.",
    "This story has been updated with further developments on Thursday.",
    "Editor’s Note: For more on the floods, watch our special report on Sunday at 9 p.m.",
    "Editor's note: This article was first published in 2019.",
])
def test_editorial_notes_are_not_passages(note):
    assert kept(note) == ()
    assert furniture_reason(note) == "editorial note"


def test_prose_about_a_correction_is_kept():
    line = "The correction to the census count was published on Monday, the bureau said."
    assert kept(line) == (line,)


def test_asterisks_inside_a_word_are_not_markdown():
    assert plain("“It was a huge f**k you,” she said.") == "“It was a huge f**k you,” she said."
    assert plain("The **Old Mill** bridge and __new__ road") == "The Old Mill bridge and new road"


# The development set: real news pages as scraped text with gold answers to questions.
NEWS_DEV = Path(os.environ.get("BYLINE_NEWS_DEV",
                               Path(__file__).resolve().parent.parent.parent / "news-dev"))
CUTOFF = "2022-09-30"  # later questions are held back
FURNITURE = re.compile(
    r"how relevant is this ad|video ad feedback|ad froze|- source: \S+$|hide caption \d|"
    r"/(AP|Reuters|Getty Images|AFP)$|\bsign up (for free, )?here\b|\bin your inbox\b|"
    r"^(correction|editor[’']s note)\s*:|^this story has been updated",
    re.IGNORECASE)
# Appearances of gold answers in the files' bodies that survive cleaning: 745 of 808
# measured (675 before the caption, widget, prompt and note rules).
GOLD_FLOOR = 745


def _norm(text: str) -> str:
    text = text.replace("’", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"\s+", " ", text).lower()


@pytest.mark.skipif(not (NEWS_DEV / "corpus").is_dir(),
                    reason=f"no development set at {NEWS_DEV} (set BYLINE_NEWS_DEV)")
def test_real_news_pages():
    corpus = NEWS_DEV / "corpus"
    articles = {}
    for path in sorted(corpus.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        body = blocks(split_header(text.split("\n"))[2])
        articles[path.name] = (body, parse_article(text, path.stem, path.name).paragraphs)
    for name, (_, paragraphs) in articles.items():
        for text in paragraphs:
            assert not FURNITURE.search(text), (name, text)
    # Every appearance of a gold answer in an article's body blocks, and those that survive in
    # a kept paragraph (a gallery's captions held some).
    present = survived = 0
    for line in (NEWS_DEV / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        question = json.loads(line)
        if question["date"] > CUTOFF:
            continue
        for name in question["own_files"]:
            body, paragraphs = articles.get(name, ((), ()))
            kept_text = _norm(" ".join(paragraphs))
            for gold in map(_norm, question["gold"]):
                in_body = sum(_norm(block).count(gold) for block in body)
                present += in_body
                survived += min(in_body, kept_text.count(gold))
    assert survived >= GOLD_FLOOR, (survived, present)
