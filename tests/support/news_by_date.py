"""A small dated coverage: the same topics covered at different times (a new prime
minister, which official has Covid), a wire story carried by two outlets, an undated piece."""

from __future__ import annotations

from pathlib import Path

from .wire_story import wire_copies

STORIES = {
    "johnson-pm.txt": ("Boris Johnson is prime minister", "CNN", "2022-02-01", [
        "Boris Johnson, the British prime minister, faced questions in Parliament on Monday "
        "about parties held at Downing Street during lockdown.",
        "The prime minister said he would not resign and promised to fix the culture in "
        "his office.",
    ]),
    "johnson-resigns.txt": ("Boris Johnson resigns as Conservative leader", "BBC",
                            "2022-07-07", [
        "Boris Johnson resigned as leader of the Conservative Party on Thursday after more "
        "than fifty ministers quit his government, but he will stay on as prime minister "
        "until a successor is chosen.",
    ]),
    "truss-pm.txt": ("Liz Truss becomes prime minister", "BBC", "2022-09-06", [
        "Liz Truss became the British prime minister on Tuesday after the Queen asked her "
        "to form a government at Balmoral.",
        "Truss promised to cut taxes and to help households with their energy bills this "
        "winter.",
    ]),
    "harris-covid.txt": ("Kamala Harris tests positive for Covid", "CNN",
                         "2022-04-26T15:20:00+00:00", [
        "Vice President Kamala Harris has tested positive for Covid-19, her press secretary "
        "said on Tuesday. She has no symptoms and will isolate at her residence.",
    ]),
    "biden-covid.txt": ("President Biden tests positive for Covid", "CNN",
                        "2022-07-21T13:05:00+00:00", [
        "President Joe Biden has tested positive for Covid-19 and has mild symptoms, the "
        "White House said on Thursday. He will isolate at the White House.",
    ]),
    "undated-gardens.txt": ("Community gardens bloom", None, None, [
        "Community gardens across the city produced a record harvest of tomatoes, the "
        "parks department said.",
    ]),
}


def write_corpus(root: Path) -> Path:
    """The stories above and the three copies of the wire story, as files in `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for name, (title, outlet, date, paragraphs) in STORIES.items():
        head = "".join(f"{k}: {v}\n" for k, v in (("Outlet", outlet), ("Date", date)) if v)
        (root / name).write_text(f"{head}\n{title}\n\n" + "\n\n".join(paragraphs) + "\n",
                                 encoding="utf-8")
    for name, text in wire_copies().items():
        (root / name).write_text(text, encoding="utf-8")
    return root
