"""One wire story as three outlets ran it: the original, a re-headlined copy with an added
line and a changed word, and a copy with its ending trimmed (for the near-duplicate tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .paths import SEEDS

PARAGRAPHS = [
    "A freight train carrying corn syrup and fertilizer derailed near the river town of "
    "Marlow on Tuesday night, spilling several cars into a creek and forcing about 400 "
    "residents from their homes, state officials said Wednesday.",
    "No one was hurt when 14 cars of the Great Plains Railway train left the tracks shortly "
    "after 11 p.m. on a curve just east of the town, according to the county sheriff's "
    "office. Two of the cars that overturned were carrying ammonium nitrate fertilizer.",
    "Emergency crews spent the night pumping water out of the creek and building earthen "
    "dams to keep the spill from reaching the Cedar River, which supplies drinking water to "
    "three downstream towns, said Dana Whitfield, a spokeswoman for the state Department of "
    "Environmental Quality.",
    "\"We don't believe the public water supply is at risk, but we are testing the river "
    "every two hours until we are sure,\" Whitfield said at a news conference at the Marlow "
    "fire station.",
    "Residents within a mile of the crash site were told to leave their homes as a "
    "precaution and were sheltering at the high school gymnasium, where the Red Cross "
    "served breakfast to about 150 people on Wednesday morning.",
    "Great Plains Railway said in a statement that it was cooperating with federal "
    "investigators and would pay for the cleanup. The company said the track had been "
    "inspected nine days before the derailment and no defects had been found.",
    "The National Transportation Safety Board sent a team of six investigators to the site. "
    "A preliminary report is expected within 30 days, the agency said.",
    "It was the second derailment on the same stretch of track in three years. In 2021, "
    "a grain train left the rails about two miles west of Marlow after heavy rain washed out "
    "part of the roadbed.",
]

QUESTION = "Where were the residents who left their homes near Marlow sheltering?"
OUTLETS = ("Associated Press", "The Riverside Courier", "Plains Public Radio")


def _story(title: str, outlet: str, date: str, paragraphs: list[str]) -> str:
    return (f"{title}\nOutlet: {outlet}\nDate: {date}\n\n" + "\n\n".join(paragraphs) + "\n")


def wire_copies() -> dict[str, str]:
    """file name -> text of the story under each of OUTLETS (different headlines)."""
    added = list(PARAGRAPHS)  # one word changed, one line added, as a local paper runs it
    added[0] = added[0].replace("about 400", "roughly 400")
    added[4] += " Officials said they hoped to let them return by Friday."
    trimmed = PARAGRAPHS[:6]  # the last two paragraphs and a closing sentence cut
    trimmed[5] = trimmed[5].rsplit(" The company said", 1)[0]
    return {
        "ap-derailment.txt": _story("Train derails near Marlow, forcing 400 from homes",
                                    OUTLETS[0], "2024-05-01", PARAGRAPHS),
        "courier-marlow-train.txt": _story("Fertilizer cars spill into creek in Marlow crash",
                                           OUTLETS[1], "2024-05-02", added),
        "ppr-derailment.txt": _story("Hundreds evacuated after freight train derailment",
                                     OUTLETS[2], "2024-05-01", trimmed),
    }


def write_corpus(root: Path) -> Path:
    """The seed articles and the three copies of the wire story, as files in `root`."""
    root.mkdir(parents=True)
    for f in SEEDS.iterdir():
        shutil.copy(f, root / f.name)
    for name, text in wire_copies().items():
        (root / name).write_text(text, encoding="utf-8")
    return root
