"""The news dev set padded with the other articles of the same weeks: how answers hold as
coverage grows (`make eval`'s padded-corpus table).

RealTimeQA's weekly files hold, beside each question, the articles a web search returned for it
(`past/2022/<week>_gcs.jsonl`, `_gold.jsonl`): CNN, USA Today and The Week on the same events as
the questions. This writes the dev set's questions over its own corpus plus those articles, one
`.txt` per article in Byline's header format (Outlet, Date, URL, title, paragraphs), as the dev
set's builder writes its own:

    OUT/x1/    the dev corpus alone (182 articles)
    OUT/x10/   plus padding, about 10 times the articles
    OUT/x17/   plus every article of the weeks to 2022-09-30 (about 17 times)

Only weeks to 2022-09-30 are read: later ones belong to held-back questions. Articles dated
after a question are out of its as-of view anyway; the padding is what a community following
these outlets over those months would hold. The data is never committed.

    python3 -m bench.news_padded --mirror <realtimeqa_public git dir> --news ../news-dev \
        --out ../news-padded
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

UNTIL = "20220930"
SCALES = {"x1": 1, "x10": 10, "x17": None}  # None: every article available
SEED = 2022


def git_show(mirror: Path, path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(mirror), "show", f"HEAD:{path}"],
                          capture_output=True, text=True, check=True).stdout


def week_files(mirror: Path) -> list[str]:
    names = subprocess.run(["git", "--git-dir", str(mirror), "ls-tree", "-r", "--name-only",
                            "HEAD", "past/2022/"], capture_output=True, text=True,
                           check=True).stdout.split()
    return sorted(n for n in names if (m := re.fullmatch(r"past/2022/(\d{8})_(gcs|gold)\.jsonl",
                                                         n)) and m.group(1) <= UNTIL)


def norm_url(url: str) -> str:
    url = url.strip().split("#")[0].split("?")[0].rstrip("/")
    return re.sub(r"^https?://(www\.|edition\.|amp\.)?", "", url)


def outlet(url: str) -> str:
    host = re.sub(r"^https?://", "", url).split("/")[0].lower()
    for name, label in (("cnn.com", "CNN"), ("usatoday", "USA Today"), ("theweek", "The Week")):
        if name in host:
            return label
    return host


def day(record: dict, url: str) -> str | None:
    m = re.match(r"(\d{4})[/-](\d{2})[/-](\d{2})", record.get("publish_date") or "")
    m = m or re.search(r"/(20\d\d)/(\d\d)/(\d\d)/", url)
    return "-".join(m.groups()) if m else None


def paragraphs(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p for p in (re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text)) if p]


def title_of(record: dict, url: str) -> str:
    title = re.sub(r"\s*(\||-|–)\s*CNN( ?\w+)?\s*$", "", (record.get("title") or "").strip())
    if title:
        return " ".join(title.split())
    slug = [p for p in norm_url(url).split("/") if p and p != "index.html"]
    return re.sub(r"\.html?$", "", slug[-1] if slug else "article").replace("-", " ").capitalize()


def article_text(record: dict) -> str | None:
    url = record["url"]
    paras = paragraphs(record.get("text") or "")
    if len(paras) < 2:
        return None
    header = [f"Outlet: {outlet(url)}"]
    if (d := day(record, url)) is not None:
        header.append(f"Date: {d}")
    header.append(f"URL: {url}")
    return "\n".join(header) + "\n\n" + title_of(record, url) + "\n\n" + "\n\n".join(paras) + "\n"


def padding(mirror: Path, own_urls: set[str]) -> list[tuple[str, str]]:
    """(file name, text) of every search-result article of the weeks, the dev corpus's own
    articles left out, in a fixed shuffled order."""
    seen, found = set(own_urls), []
    for path in week_files(mirror):
        for line in git_show(mirror, path).splitlines():
            if not line.strip():
                continue
            for record in json.loads(line).get("search_result", []):
                url = record.get("url")
                if not url or norm_url(url) in seen:
                    continue
                seen.add(norm_url(url))
                if (text := article_text(record)) is not None:
                    slug = re.sub(r"[^a-z0-9]+", "-", norm_url(url).lower()).strip("-")[-60:]
                    found.append((f"p{len(found):04d}_{slug}.txt", text))
    random.Random(SEED).shuffle(found)
    return found


def own_urls(news: Path) -> set[str]:
    urls = set()
    for path in (news / "corpus").glob("*.txt"):
        for line in path.read_text("utf-8").splitlines()[:5]:
            if line.startswith("URL: "):
                urls.add(norm_url(line[5:]))
    return urls


def write(out: Path, news: Path, pads: list[tuple[str, str]]) -> dict[str, int]:
    """One folder per scale; returns each scale's article count."""
    base = sorted((news / "corpus").glob("*.txt"))
    counts = {}
    for name, factor in SCALES.items():
        folder = out / name
        corpus = folder / "corpus"
        if corpus.exists():
            shutil.rmtree(corpus)
        corpus.mkdir(parents=True)
        extra = pads if factor is None else pads[:len(base) * (factor - 1)]
        for path in base:
            shutil.copyfile(path, corpus / path.name)
        for file_name, text in extra:
            (corpus / file_name).write_text(text, "utf-8")
        shutil.copyfile(news / "questions.jsonl", folder / "questions.jsonl")
        counts[name] = len(base) + len(extra)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, required=True,
                        help="git dir of a copy of realtimeqa_public")
    parser.add_argument("--news", type=Path, required=True, help="the news dev set folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pads = padding(args.mirror, own_urls(args.news))
    print(json.dumps(write(args.out, args.news, pads)))


if __name__ == "__main__":
    main()
