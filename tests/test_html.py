"""The HTML reader: metadata, body paragraphs without page furniture, charsets, real pages."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from retrieval.corpus.html import decode_html, parse_html

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "article-extraction-dev"

BODY = [
    "The city council voted on Tuesday to close the old harbour bridge to cars from next "
    "spring, after engineers found corrosion in two of its main supports.",
    "Mayor Ana Duarte said the decision was painful but unavoidable, and that buses and "
    "bicycles would still be allowed across while repairs are planned.",
    "Shop owners on the south bank warned that fewer drivers would mean fewer customers, "
    "and asked the council for a temporary parking area near the market square.",
    "The repairs are expected to cost about 40 million euros and to take three years, "
    "according to a report the engineers presented to the council last month.",
    "A final vote on the budget for the works is planned for the council's June meeting.",
]

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Harbour bridge to close to cars | The Riverside Courier</title>
<meta property="og:site_name" content="The Riverside Courier">
<meta property="og:title" content="Harbour bridge to close to cars">
<meta name="author" content="Maria Lindqvist">
<meta property="article:published_time" content="2024-03-05T14:30:00+01:00">
<link rel="canonical" href="{canonical}">
</head><body>
<div class="cookie-banner" id="cookie-consent"><p>We use cookies to improve your
experience on our site. By continuing you accept our use of cookies.</p>
<button>Accept all</button></div>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/culture">Culture</a></li></ul></nav></header>
<main><article>
<h1>Harbour bridge to close to cars</h1>
<p class="byline">By Maria Lindqvist</p>
{paragraphs}
<div class="newsletter"><p>Sign up for our newsletter to get the day's top stories.</p></div>
<aside class="related"><h3>Related stories</h3><ul>
<li><a href="/a">Council approves new cycle lanes on the quay</a></li>
<li><a href="/b">Market square parking fees to rise in April</a></li>
<li><a href="/c">Ferry timetable changes for the summer season</a></li></ul></aside>
</article></main>
<footer><p>© 2024 The Riverside Courier. All rights reserved.</p></footer>
</body></html>"""


def page(canonical: str = "https://courier.example/news/harbour-bridge",
         body: list[str] = BODY) -> str:
    return PAGE.format(canonical=canonical,
                       paragraphs="\n".join(f"<p>{p}</p>" for p in body))


def test_metadata_from_the_page() -> None:
    a = parse_html(page().encode(), "bridge", "bridge.html", sha256="abc")
    assert (a.id, a.source, a.sha256) == ("bridge", "bridge.html", "abc")
    assert a.title == "Harbour bridge to close to cars"
    assert a.outlet == "The Riverside Courier"
    assert a.author == "Maria Lindqvist"
    assert a.date == "2024-03-05T14:30:00+01:00"
    assert a.url == "https://courier.example/news/harbour-bridge"


def test_body_paragraphs_in_order_without_furniture() -> None:
    a = parse_html(page().encode(), "bridge", "bridge.html")
    assert list(a.paragraphs) == BODY
    text = " ".join(a.paragraphs)
    for furniture in ("cookies", "Sport", "newsletter", "cycle lanes", "rights reserved"):
        assert furniture not in text


def test_javascript_canonical_rejected_and_argument_url_used() -> None:
    raw = page(canonical="javascript:alert(1)").encode()
    assert parse_html(raw, "b", "b.html").url is None
    a = parse_html(raw, "b", "b.html", url="https://courier.example/b")
    assert a.url == "https://courier.example/b"
    assert parse_html(raw, "b", "b.html", url="file:///etc/passwd").url is None


def test_day_only_date_is_iso() -> None:
    raw = page().replace('content="2024-03-05T14:30:00+01:00"', 'content="5 March 2024"')
    assert parse_html(raw.encode(), "b", "b.html").date == "2024-03-05"


def test_declared_legacy_charset_decoded() -> None:
    body = [p.replace("Ana Duarte", "Zoë Müller") for p in BODY]
    raw = page(body=body).replace('charset="utf-8"', 'charset="windows-1252"')
    a = parse_html(raw.encode("cp1252"), "b", "b.html")
    assert "Mayor Zoë Müller said" in " ".join(a.paragraphs)


def test_undeclared_legacy_charset_guessed() -> None:
    text = "Überraschung: die Brücke über den Fluß wird für Autos gesperrt, sagt Müller."
    assert decode_html(f"<html><body><p>{text}</p></body></html>".encode("cp1252")) \
        .count(text) == 1


def test_page_without_article_text_has_no_paragraphs() -> None:
    for raw in (b"", b"<html><head><title>Nothing</title></head><body></body></html>",
                b"<html><body><nav><a href='/'>Home</a></nav></body></html>"):
        assert parse_html(raw, "empty", "empty.html").paragraphs == ()


def test_list_of_short_items_is_one_passage() -> None:
    body = [*BODY[:2], "The council listed three options:"]
    raw = page(body=body).replace(
        "<div class=\"newsletter\">",
        "<ul><li>a full closure</li><li>a lane for buses</li><li>a toll for cars</li></ul>"
        "<div class=\"newsletter\">")
    a = parse_html(raw.encode(), "b", "b.html")
    assert a.paragraphs[-1] == ("The council listed three options: a full closure; "
                                "a lane for buses; a toll for cars")


def _overlap(true: str, pred: str) -> tuple[float, float]:
    def grams(text: str) -> Counter:
        t = re.findall(r"\w+", text)
        return Counter(tuple(t[i:i + 4]) for i in range(len(t) - 3))
    t, p = grams(true), grams(pred)
    common = sum((t & p).values())
    return common / sum(p.values()), common / sum(t.values())


REAL = {  # key prefix: title, outlet, date, first words of the body
    "7dfc3e359d7c": ("James Van Der Beek eliminated from 'Dancing with the Stars' after "
                     "announcing wife suffered miscarriage", "Fox News",
                     "2019-11-19T07:43:27-05:00", "James Van Der Beek has been eliminated"),
    "c4a3637c6696": ("Скайрим (skyrim) скорость бега как увеличить", "gto-normativy.ru",
                     "2018-10-03T19:41:33+04:00", "стандартная скорость"),
    "cc4aa22b8212": (None, "9To5Mac", "2019-11-18T20:12:24+00:00",
                     "How do you shop for a tech-savvy person"),
}


@pytest.mark.parametrize("prefix", sorted(REAL))
def test_real_page(prefix: str) -> None:
    if not (DEV / "ground-truth.json").is_file():
        pytest.skip(f"evaluation pages not found in {DEV}")
    truth = json.loads((DEV / "ground-truth.json").read_text(encoding="utf-8"))
    key = next(k for k in truth if k.startswith(prefix))
    raw = gzip.decompress((DEV / "html" / f"{key}.html.gz").read_bytes())
    a = parse_html(raw, key, f"{key}.html")
    title, outlet, date, opening = REAL[prefix]
    if title:
        assert a.title == title
    assert (a.outlet, a.date) == (outlet, date)
    assert a.url and a.url.startswith("https://")
    assert a.paragraphs[0].startswith(opening)
    precision, recall = _overlap(truth[key]["articleBody"], "\n".join(a.paragraphs))
    assert precision > 0.9 and recall > 0.9
