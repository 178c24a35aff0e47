"""Markings on what we share: TLP 2.0 labels, ICD 203 confidence and Admiralty source ratings.

TLP (FIRST, version 2.0) says who may hear a piece of information: CLEAR (anyone), GREEN (the
recipient's community), AMBER (their organization and its clients), AMBER+STRICT (their
organization only), RED (the named recipient only). The levels are ordered, so a reader
cleared for AMBER may read GREEN and CLEAR too. Labels are written as TLP 2.0 writes them and
never translated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TLP_LEVELS = ("clear", "green", "amber", "amber+strict", "red")  # lowest first
CONFIDENCE_LEVELS = ("low", "moderate", "high")  # ICD 203 analytic confidence
RELIABILITY = {  # the Admiralty code: how far the source has proved reliable
    "A": "completely reliable", "B": "usually reliable", "C": "fairly reliable",
    "D": "not usually reliable", "E": "unreliable", "F": "reliability cannot be judged",
}
CREDIBILITY = {  # and how far the information itself is borne out
    "1": "confirmed by other sources", "2": "probably true", "3": "possibly true",
    "4": "doubtful", "5": "improbable", "6": "truth cannot be judged",
}
# FIRST's colours, each on black: every label passes WCAG AA against it (red, the lowest, 5.6:1).
TLP_COLOURS = {
    "clear": "#FFFFFF", "green": "#33FF00", "amber": "#FFC000", "amber+strict": "#FFC000", "red": "#FF2B2B",
}
# ICD 203's seven terms of likelihood (with the synonyms it gives beside them).
LIKELIHOOD_TERMS = (
    "almost no chance", "remote", "very unlikely", "highly improbable", "unlikely", "improbable",
    "roughly even chance", "roughly even odds", "likely", "probable", "probably", "very likely",
    "highly probable", "almost certain", "almost certainly", "nearly certain",
)
# STIX 2.1: the OASIS TLP 2.0 marking definitions (fixed ids), and the Event extension.
TLP_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
EVENT_EXTENSION = "extension-definition--4ca6de00-5b0d-45ef-a1dc-ea7279ea910e"
TLP_MARKINGS_CREATED = "2022-10-01T00:00:00.000Z"
STIX_TLP_IDS = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
STIX_TLP1_IDS = {  # STIX 2.1's own TLP 1.0 markings, read on import (WHITE is CLEAR)
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "clear",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "green",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "amber",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "red",
}
CONFIDENCE_SCORES = {"low": 15, "moderate": 50, "high": 85}  # STIX 0-100, as its confidence scales map them
_RATING_NOTE = re.compile(r" \[Admiralty ([A-F])([1-6])\]$")


def confidence_of_score(score: int) -> str:
    """A STIX 0-100 confidence as ours (the scales' bands: up to 29 low, up to 69 moderate)."""
    return "low" if score < 30 else "moderate" if score < 70 else "high"


def rating_note(rating: Rating | None) -> str:
    """How a rating rides in a STIX external reference's description: " [Admiralty B2]"."""
    return f" [Admiralty {rating.code}]" if rating else ""


def split_rating_note(description: str) -> tuple[str, Rating | None]:
    """A description written with `rating_note`, back into the title and its rating."""
    found = _RATING_NOTE.search(description)
    if found is None:
        return description, None
    return description[: found.start()], Rating(found.group(1), found.group(2))


_LIKELIHOOD = re.compile(r"\b(" + "|".join(sorted(map(re.escape, LIKELIHOOD_TERMS), key=len, reverse=True)) + r")\b",
                         re.IGNORECASE)
_CONFIDENCE = re.compile(r"\b(low|moderate|medium|high)[- ]confidence\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def rank(level: str) -> int:
    """Where a TLP level stands, lowest (clear) first."""
    return TLP_LEVELS.index(level)


def label(level: str) -> str:
    """`TLP:AMBER+STRICT`, as TLP 2.0 writes it."""
    return f"TLP:{level.upper()}"


def parse_tlp(raw: str) -> str:
    """`amber`, `AMBER+STRICT`, `TLP:GREEN` -> the level; ValueError names the five."""
    level = raw.strip().lower().removeprefix("tlp:")
    if level == "white":  # TLP 1.0's name for CLEAR
        raise ValueError("'white' is TLP 1.0: TLP 2.0 calls it 'clear'")
    if level not in TLP_LEVELS:
        raise ValueError(f"'{raw}' is not a TLP 2.0 label: use {', '.join(TLP_LEVELS)}")
    return level


def parse_confidence(raw: str) -> str:
    level = raw.strip().lower()
    if level not in CONFIDENCE_LEVELS:
        raise ValueError(f"'{raw}' is not a confidence level: use {', '.join(CONFIDENCE_LEVELS)} (ICD 203)")
    return level


@dataclass(frozen=True)
class Rating:
    """An Admiralty rating of a source and what it said, e.g. B2."""

    reliability: str  # A-F
    credibility: str  # 1-6

    @property
    def code(self) -> str:
        return f"{self.reliability}{self.credibility}"

    @property
    def meaning(self) -> str:
        return f"{RELIABILITY[self.reliability]} source; {CREDIBILITY[self.credibility]}"


def parse_rating(reliability: str | None, credibility: str | None) -> Rating | None:
    """Both halves or neither; ValueError says which half is wrong."""
    if reliability is None and credibility is None:
        return None
    if reliability is None or credibility is None:
        raise ValueError("give both halves of the Admiralty rating: reliability (A-F) and credibility (1-6)")
    if reliability.strip().upper() not in RELIABILITY:
        raise ValueError(f"reliability '{reliability}' is not A to F (the Admiralty code)")
    if credibility.strip() not in CREDIBILITY:
        raise ValueError(f"credibility '{credibility}' is not 1 to 6 (the Admiralty code)")
    return Rating(reliability.strip().upper(), credibility.strip())


def likelihood_with_confidence(text: str) -> list[str]:
    """Sentences of `text` that pair a likelihood term with a confidence level, which ICD 203
    asks analysts not to do (say how likely, or how sure, in one sentence, not both)."""
    if not _CONFIDENCE.search(text):  # a sentence's match is the whole text's too; most texts have none
        return []
    return [
        sentence.strip() for sentence in _SENTENCE.split(text)
        if _LIKELIHOOD.search(sentence) and _CONFIDENCE.search(sentence)
    ]
