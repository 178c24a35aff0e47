"""Find the dates a sentence of prose mentions ("on March 9", "in late May", "two days later") as fuzzy dates.

A date is resolved against the article's publication date, or, for "two days later" and the
like, against the date of the event told before it; never against today, so an import reads
an article the same way whenever it runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from ..inputs.content import FuzzyDate, parse_fuzzy_date

MONTH_NAMES = (
    "January|February|March|April|May|June|July|August|September|October|November|December|"
    r"(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
)
MONTH = rf"(?P<month>{MONTH_NAMES})(?![a-z])"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEKDAY = "|".join(WEEKDAYS)
YEAR = r"(?P<year>(?:1[89]|20)\d\d)(?!\d)"
NUMBER = r"(?P<n>(?i:a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)|\d{1,2})"
NUMBERS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())}
NUMBERS.update(a=1, an=1)
PART = r"(?:(?P<part>(?i:early|mid|late)[\s-]+|(?i:the\s+)?(?i:beginning|start|middle|end)\s+of\s+))?"
EXCLUDED_LEADS = frozenset({"since", "until", "till", "by", "before", "after", "from", "through", "between", "to", "than"})
YEAR_LEADS = frozenset({
    "in", "during", "of", "the", "its", "their", "his", "her", "our", "this", "that", "a", "an", "for", "around",
    "circa", "throughout", "year", "fiscal", "early", "late", "mid",
})
# A year that dates no event of the story: a birth or a founding ("born in 1985"), or the old
# event an anniversary recalls ("the anniversary of the 2010 raid").
NOT_AN_EVENT_YEAR = re.compile(r"(?:\b(?:born|founded|established)\s+(?:in\s+)?|\banniversary\s+of\s+(?:the\s+)?)$", re.I)
REPORTED = re.compile(r"\b(?:came|comes|happened|occurred|followed|took\s+place|was|were)\s+(?:only\s+|just\s+|exactly\s+)?$")

PATTERNS: dict[str, re.Pattern[str]] = {
    "day": re.compile(
        rf"(?<![\w-])(?:(?:{WEEKDAY}),?\s+)?{MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?![\d:])(?:,?\s+{YEAR})?"
    ),
    # "between 5 and 9 August", "from 22 to 24 November 2022", "August 5-9": one event, from its first day
    "day-range": re.compile(
        rf"(?<![\w,.$-])(?:(?i:between|from)\s+)?(?:(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s*(?:and|to|until|[-\u2013])\s*"
        rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTH}|{MONTH.replace('month>', 'month2>')}\s+(?P<day2>\d{{1,2}})\s*"
        rf"(?:and|to|until|[-\u2013])\s*\d{{1,2}}(?![\d:]))(?:,?\s+{YEAR})?"
    ),
    # "on the 12th": a day of the month the story is in
    "ordinal": re.compile(
        r"(?<![\w-])(?i:on\s+the)\s+(?P<day>[123]?\d)(?:st|nd|rd|th)\b(?:\s+of\s+(?P<rel>(?i:last|this|the))\s+month\b)?"
        r"(?!\s+(?:of\s+)?[A-Z])"
    ),
    "day-first": re.compile(rf"(?<![\w,.$-])(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTH}(?:,?\s+{YEAR})?"),
    "iso": re.compile(r"(?<![\w/-])(?P<year>(?:1[89]|20)\d\d)-(?P<mm>[01]\d)-(?P<dd>[0-3]\d)(?![\w/])"),
    # 14.06.2022, 14/06/2022: day first, as written wherever the threat is reported (a US month
    # first shows itself only when the day could not be a month: 06/14/2022)
    "numeric": re.compile(r"(?<![\w./-])(?P<dd>[0-3]?\d)(?P<sep>[./])(?P<mm>[01]?\d)(?P=sep)(?P<year>(?:19|20)\d\d)(?![\w/]|\.\d)"),
    "month-year": re.compile(rf"(?<![\w-]){PART}{MONTH},?\s+(?:of\s+)?{YEAR}"),
    "month": re.compile(rf"(?<![\w-])(?:(?P<rel>(?i:last|this|earlier\s+this|later\s+this))\s+)?{PART}{MONTH}(?![\s,]+\d)"),
    "year-part": re.compile(
        r"(?<![\w-])(?P<part>(?i:early|mid|late)[\s-]+|(?i:the\s+)?(?i:beginning|start|middle|end|first\s+half|"
        r"second\s+half|spring|summer|autumn|fall|winter)\s+of\s+|(?i:spring|summer|autumn|fall|winter)\s+)" + YEAR
    ),
    "year": re.compile(r"(?<![\w$\u20ac\u00a3.,/#-])" + YEAR + r"(?![\w%]|[.,]\d|[-\u2013/]\d|\s*(?:%|percent\b))"),
    "recent": re.compile(r"(?<![\w-])(?P<rel>(?i:last|this|earlier\s+this|later\s+this))\s+(?P<unit>week|month|year)\b"),
    "yesterday": re.compile(r"(?<![\w-])(?i:yesterday)\b"),
    "weekday": re.compile(rf"(?<![\w-])(?P<rel>(?i:on|last))\s+(?P<weekday>{WEEKDAY})\b(?![\s,]+(?:{MONTH_NAMES}|\d))"),
    "ago": re.compile(rf"(?<![\w-]){NUMBER}\s+(?P<unit>day|week|month|year)s?\s+ago\b"),
    "after": re.compile(rf"(?<![\w-]){NUMBER}\s+(?P<unit>day|week|month|year)s?\s+(?P<dir>later|after|earlier|before)\b"),
    # "the next day"; never a span ("over the previous year", "throughout the following week")
    "next": re.compile(r"(?<![\w-])(?<!over\s)(?<!throughout\s)(?<!within\s)(?<!for\s)(?i:the)\s+"
                       r"(?P<dir>next|following|previous|preceding)\s+(?P<unit>day|week|month|year)\b"),
    "day-after": re.compile(r"(?<![\w-])(?i:the)\s+(?P<unit>day)\s+(?P<dir>after|before)\b"),
    "same": re.compile(
        r"(?<![\w-])(?:(?i:later|earlier)\s+that|(?i:the)\s+same|(?i:that\s+same))\s+(?P<unit>day|week|month|year)\b"
    ),
}
# Month names in the languages the threat is reported in (Gregorian calendar): Turkish, Arabic
# (Egyptian and Levantine names), Hebrew (with its "in" prefix) and Persian, to month numbers.
FOREIGN_MONTHS = {
    **{name: n for n, name in enumerate("ocak şubat mart nisan mayıs haziran temmuz ağustos eylül ekim kasım aralık".split(), 1)},
    **{name: n for n, names in enumerate((
        "يناير", "فبراير", "مارس", "أبريل|ابريل|إبريل", "مايو", "يونيو|يونيه", "يوليو|يوليه", "أغسطس|اغسطس",
        "سبتمبر", "أكتوبر|اكتوبر", "نوفمبر", "ديسمبر"), 1) for name in names.split("|")},
    **{name: n for n, name in enumerate((
        "كانون الثاني", "شباط", "آذار", "نيسان", "أيار", "حزيران", "تموز", "آب", "أيلول", "تشرين الأول",
        "تشرين الثاني", "كانون الأول"), 1)},
    **{name: n for n, name in enumerate("ינואר פברואר מרץ אפריל מאי יוני יולי אוגוסט ספטמבר אוקטובר נובמבר דצמבר".split(), 1)},
    **{name: n for n, names in enumerate((
        "ژانویه", "فوریه", "مارس", "آوریل", "مه|می", "ژوئن", "ژوئیه|جولای", "اوت|آگوست", "سپتامبر", "اکتبر",
        "نوامبر", "دسامبر"), 1) for name in names.split("|")},
}
DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_FOREIGN = "|".join(sorted(map(re.escape, FOREIGN_MONTHS), key=len, reverse=True))
_DIGIT = r"[0-9\u0660-\u0669\u06f0-\u06f9]"
PATTERNS["foreign-day"] = re.compile(
    rf"(?<!\w)(?P<day>{_DIGIT}{{1,2}})(?:\s*[-\u2013]\s*{_DIGIT}{{1,2}})?\.?\s+(?:ב-?|ב)?(?P<fmonth>(?i:{_FOREIGN}))(?!\w)(?:\s+(?P<fyear>{_DIGIT}{{4}}))?"
)
PATTERNS["foreign-month"] = re.compile(rf"(?<![\w\d])(?:ב-?|ב)?(?P<fmonth>(?i:{_FOREIGN}))\s+(?P<fyear>{_DIGIT}{{4}})(?!\d)")
PATTERNS["weekday-bare"] = re.compile(
    rf"(?<![\w-])(?P<weekday>{WEEKDAY})(?:['\u2019]s)?\b(?![\s,]+(?:{MONTH_NAMES}|\d))"
)
_TURKISH_MONTHS = "ocak|şubat|mart|nisan|mayıs|haziran|temmuz|ağustos|eylül|ekim|kasım|aralık"
TURKISH_PARTS = {"başında": "early", "başlarında": "early", "ortasında": "mid", "ortalarında": "mid",
                 "sonunda": "late", "sonlarında": "late", "ayında": "", "ayı": "",
                 # "Aralık ayının son haftasında": in the last week of December
                 "ayının başında": "early", "ayının ilk haftasında": "early", "ayının ortasında": "mid",
                 "ayının sonunda": "late", "ayının son haftasında": "late"}
PATTERNS["turkish-month"] = re.compile(
    rf"(?<!\w)(?P<fmonth>(?i:{_TURKISH_MONTHS}))(?:\s+(?P<fyear>{_DIGIT}{{4}}))?\s+(?P<tpart>{'|'.join(sorted(TURKISH_PARTS, key=len, reverse=True))})(?!\w)"
)
PATTERNS["turkish-year"] = re.compile(
    r"(?<!\w)(?P<fyear>(?:19|20)\d\d)\s+(?:yılında|(?:ilk|son)?baharında|yazında|kışında|yılının\s+\w+)(?!\w)"
)
# Weekdays in Turkish and Arabic, Monday first, as they are written before a day's events.
FOREIGN_WEEKDAYS = {
    **{name: n for n, name in enumerate("pazartesi salı çarşamba perşembe cuma cumartesi pazar".split())},
    **{name: n for n, name in enumerate("الاثنين الثلاثاء الأربعاء الخميس الجمعة السبت الأحد".split())},
}
_FOREIGN_WEEKDAY = "|".join(sorted(map(re.escape, FOREIGN_WEEKDAYS), key=len, reverse=True))
PATTERNS["foreign-weekday"] = re.compile(
    rf"(?<!\w)(?<!\bher\s)(?<!كل\s)(?:(?P<last>(?i:geçen))\s+|يوم\s+)?(?P<fweekday>(?i:{_FOREIGN_WEEKDAY}))(?:\s+(?i:günü))?(?!\w)"
)
ARABIC_PARTS = {"أوائل": "early", "مطلع": "early", "بداية": "early", "أول": "early", "منتصف": "mid",
                "أواسط": "mid", "أواخر": "late", "نهاية": "late", "آخر": "late"}
PATTERNS["arabic-month"] = re.compile(
    rf"(?<!\w)(?P<apart>{'|'.join(ARABIC_PARTS)})\s+(?:شهر\s+)?(?P<fmonth>{_FOREIGN})(?!\w)(?:\s+(?P<fyear>{_DIGIT}{{4}}))?"
)
TURKISH_NUMBERS = {w: n for n, w in enumerate("bir iki üç dört beş altı yedi sekiz dokuz on".split(), 1)}
TURKISH_UNITS = {"gün": "day", "hafta": "week", "ay": "month", "yıl": "year"}
PATTERNS["turkish-after"] = re.compile(
    rf"(?<!\w)(?P<tn>(?i:{'|'.join(TURKISH_NUMBERS)})|\d{{1,2}})\s+(?P<tunit>gün|hafta|ay|yıl)\s+(?P<tdir>sonra|önce)(?!\w)"
)
PATTERNS["arabic-last-month"] = re.compile(  # "أغسطس (آب) الماضي": last August
    rf"(?<!\w)(?P<fmonth>{_FOREIGN})(?:\s*\([^()]{{2,15}}\))?\s+الماضي(?!\w)"
)
PATTERNS["arabic-year"] = re.compile(rf"(?<!\w)(?:عام|سنة|العام)\s+(?P<fyear>{_DIGIT}{{4}})(?!\d)")
ARABIC_NUMBERS = {w: n for n, words in enumerate((
    "واحد", "اثنين|اثنان", "ثلاثة|ثلاث", "أربعة|أربع", "خمسة|خمس", "ستة|ست", "سبعة|سبع", "ثمانية|ثماني", "تسعة|تسع",
    "عشرة|عشر"), 1) for w in words.split("|")}
ARABIC_UNITS = {  # the unit in its singular, dual and plural forms: (unit, count it stands for or None)
    **dict.fromkeys(("يوم", "يوما", "يومًا"), ("day", 1)), "يومين": ("day", 2), "أيام": ("day", None),
    **dict.fromkeys(("أسبوع", "أسبوعا", "أسبوعًا"), ("week", 1)), "أسبوعين": ("week", 2), "أسابيع": ("week", None),
    **dict.fromkeys(("شهر", "شهرا", "شهرًا"), ("month", 1)), "شهرين": ("month", 2),
    **dict.fromkeys(("أشهر", "شهور"), ("month", None)),
    **dict.fromkeys(("عام", "عاما", "عامًا", "سنة"), ("year", 1)), **dict.fromkeys(("عامين", "سنتين"), ("year", 2)),
    **dict.fromkeys(("أعوام", "سنوات"), ("year", None)),
}
PATTERNS["arabic-after"] = re.compile(  # "بعد ثلاثة أسابيع من الزلزال", "وقبل أسبوع من الزيارة", "قبل يومين" (ago)
    rf"(?<!\w)[وف]?(?P<adir>قبل|بعد)\s+(?:(?P<athat>ذلك)\s+ب)?(?:(?P<an>{'|'.join(ARABIC_NUMBERS)}|{_DIGIT}{{1,2}})\s+)?"
    rf"(?P<aunit>{'|'.join(sorted(ARABIC_UNITS, key=len, reverse=True))})(?!\w)(?P<afrom>\s+من)?"
)
# "last year", "yesterday", "last summer" in Turkish, Arabic, Hebrew and Persian, as their English twins.
FOREIGN_RECENT = {
    **dict.fromkeys(("geçen yıl", "geçen sene", "العام الماضي", "السنة الماضية", "בשנה שעברה", "سال گذشته"),
                    ("recent", "last", "year")),
    **dict.fromkeys(("geçen ay", "الشهر الماضي", "בחודש שעבר", "ماه گذشته"), ("recent", "last", "month")),
    **dict.fromkeys(("geçen hafta", "الأسبوع الماضي", "בשבוע שעבר", "هفته گذشته"), ("recent", "last", "week")),
    **dict.fromkeys(("bu yıl", "هذا العام", "العام الجاري", "امسال"), ("recent", "this", "year")),
    **dict.fromkeys(("bu ay", "هذا الشهر", "الشهر الجاري", "الشهر الحالي", "החודש", "این ماه"), ("recent", "this", "month")),
    **dict.fromkeys(("dün", "أمس", "الأمس", "אתמול", "دیروز"), ("yesterday", "", "")),
    # "this morning", "today": the day of publication (a live blog's entries, a wire story's lead)
    **dict.fromkeys(("bu sabah", "bugün", "bu akşam", "صباح اليوم", "مساء اليوم", "הבוקר", "امروز"), ("today", "", "")),
    **{f"geçen {tr}": ("season", "last", en) for tr, en in (
        ("yaz", "summer"), ("kış", "winter"), ("ilkbahar", "spring"), ("bahar", "spring"), ("sonbahar", "autumn"))},
    **{f"{ar} الماضي": ("season", "last", en) for ar, en in (
        ("الصيف", "summer"), ("الشتاء", "winter"), ("الربيع", "spring"), ("الخريف", "autumn"))},
}
PATTERNS["foreign-recent"] = re.compile(
    rf"(?<!\w)[وب]?(?P<frecent>(?i:{'|'.join(sorted(map(re.escape, FOREIGN_RECENT), key=len, reverse=True))}))(?!\w)"
)
# "last summer": a season is no month, so it dates its event to the year (northern seasons).
SEASON_ENDS = {"spring": 5, "summer": 8, "autumn": 11, "fall": 11, "winter": 2}
PATTERNS["season"] = re.compile(
    r"(?<![\w-])(?P<rel>(?i:last|this|in\s+the))\s+(?P<season>(?i:spring|summer|autumn|fall|winter))\b(?!\s+of\b)"
)
RELATIVE_TO_EVENT = frozenset({"after", "next", "day-after", "same"})
COUNTED = RELATIVE_TO_EVENT | {"turkish-after", "arabic-after"}  # dates counted from another event
WRITTEN = frozenset({  # dates written out, that need nothing but the publication date's year
    "day", "day-first", "day-range", "iso", "numeric", "month-year", "month", "foreign-day", "foreign-month", "turkish-month", "arabic-month",
})
NOT_THIS_WEEKDAY = frozenset({"next", "every", "each", "coming", "following", "until", "till", "by"})
SINCE_KINDS = frozenset({"day", "day-first", "day-range", "iso", "numeric", "month-year", "year"})  # "since July 2020": when it began


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    when: FuzzyDate
    reported: bool  # "X came a day after Y": the event is Y, told after the date phrase
    written: tuple[int, int] | None = None  # where a counted date is then written out ("... on June 13"), if it is


@dataclass(frozen=True)
class Told:
    """An event told earlier in the article: its sentence and its date, for "a week before the visit"."""

    text: str
    when: FuzzyDate
    at: int  # where its date is written in the sentence


def _month_number(name: str) -> int:
    return ("jan feb mar apr may jun jul aug sep oct nov dec".split()).index(name[:3].lower()) + 1


def _qualifier(part: str | None) -> str:
    word = (part or "").lower().split()
    key = next((w for w in word if w not in ("the", "of")), "").strip("-")
    return {"early": "early", "beginning": "early", "start": "early", "mid": "mid", "middle": "mid",
            "late": "late", "end": "late"}.get(key, "")


def _month(year: int, month: int, qualifier: str = "") -> FuzzyDate:
    while month < 1:
        year, month = year - 1, month + 12
    while month > 12:
        year, month = year + 1, month - 12
    return parse_fuzzy_date(f"{qualifier} {year:04d}-{month:02d}".strip())


def _day(day: date) -> FuzzyDate:
    return parse_fuzzy_date(day.isoformat())


def _year(year: int) -> FuzzyDate:
    return parse_fuzzy_date(f"{year:04d}")


def _previous_word(text: str, start: int) -> str:
    found = re.search(r"([^\W\d_]+(?:['\u2019]s)?)[^\w]*$", text[:start])
    return found.group(1).lower() if found else ""


def date_line(text: str) -> date | None:
    """The date of a line that is only a date ("Jul 26, 2022", "Published 2022-07-26"), else None."""
    rest = re.sub(r"^(?i:published|updated|posted|date|on)[:\s]+", "", text.strip())
    for kind in ("day", "day-first", "iso", "numeric"):
        match = PATTERNS[kind].match(rest)
        if match and match.groupdict().get("year") and len(rest[match.end():].split()) <= 3:
            when = _written_date(match, kind)
            return when.start if when else None
    return None


def _written_date(match: re.Match[str], kind: str, published: date | None = None) -> FuzzyDate | None:
    """A date written out (a day, a month, a year); a missing year is the latest one not after `published`."""
    groups = match.groupdict()
    year = int(groups["year"]) if groups.get("year") else None
    try:
        if kind == "iso":
            return _day(date(int(groups["year"]), int(groups["mm"]), int(groups["dd"])))
        if kind == "numeric":
            day, month = int(groups["dd"]), int(groups["mm"])
            if month > 12 >= day:
                day, month = month, day
            return _day(date(int(groups["year"]), month, day))
        if kind == "day-range" and groups.get("month2"):
            groups = {**groups, "month": groups["month2"], "day": groups["day2"]}
        if kind in ("day", "day-first", "day-range"):
            month, day = _month_number(groups["month"] or ""), int(groups["day"] or "0")
            if year is None:
                if published is None:
                    return None
                year = _latest_year(month, day, published)
            return _day(date(year, month, day))
    except ValueError:
        return None
    if kind == "month-year" and year is not None:
        return _month(year, _month_number(groups["month"]), _qualifier(groups.get("part")))
    if kind in ("year", "year-part") and year is not None:
        return _year(year)
    return None



def _latest_year(month: int, day: int, published: date) -> int:
    """The year of a day written without one ("on 14 May"): the latest not after publication.
    Raises ValueError for no such day (29 February)."""
    return published.year if date(published.year, month, day) <= published else published.year - 1

def find_mentions(
    text: str, published: date, anchor: FuzzyDate | None = None, told: Sequence[Told] = (),
) -> list[Mention]:
    """The dates one sentence mentions, in order, resolved against the publication date and, for
    "two days later" and the like, against the date of the event told before (`anchor`); "a
    month before the visit" names its event, which is looked for among the events `told` so far
    (the story's own, its first, when none names it).

    A range ("in May and early June") is one event, dated by its start; a date counted from
    another event and then written out ("came ten days after X raised it on June 13") is one
    event, dated as written."""
    candidates = sorted(
        ((m.start(), -m.end(), kind, m) for kind, pattern in PATTERNS.items() for m in pattern.finditer(text)),
        key=lambda c: (c[0], c[1]),
    )
    mentions: list[Mention] = []
    kinds: list[str] = []
    taken = -1
    for start, _, kind, match in candidates:
        if start < taken:
            continue
        mention = _resolve(text, kind, match, published, anchor, told)
        if mention is None:
            continue
        taken = match.end()
        if _planned(text, match.start(), match.end()):
            continue
        previous = mentions[-1] if mentions else None
        between = text[previous.end:start] if previous else ""
        if previous and kind in WRITTEN and kinds[-1] in WRITTEN and RANGE_JOIN.match(between) and (
                mention.when.precision != "day" and previous.when.precision != "day"):
            mentions[-1] = replace(previous, end=mention.end)  # "in May and early June": the range's start dates it
        elif previous and kind == "recent" and kinds[-1] == "month" and not between.strip(" ,"):
            year = str(mention.when.start.year)  # "in May last year": the month of that year
            mentions[-1] = replace(previous, end=mention.end, when=parse_fuzzy_date(
                previous.when.iso.replace(str(previous.when.start.year), year)))
        elif previous and kind in WRITTEN and kinds[-1] in COUNTED and _restates(between, previous.reported):
            mentions[-1] = replace(previous, when=mention.when, written=(mention.start, mention.end))
            kinds[-1] = kind
        else:
            mentions.append(mention)
            kinds.append(kind)
        anchor = mentions[-1].when
    return mentions


# A date that is a plan, not an event: "will visit in January", "is expected to travel in May",
# "trade is heading for a record this year", "من المقرر ... آذار المقبل" (due next March), a
# Turkish sentence whose verb says it is to come ("... genişletilmesi bekleniyor", "... edecek").
PLAN_BEFORE = re.compile(
    r"\b(?:will|shall|(?:is|are)\s+(?:now\s+|still\s+|also\s+)?(?:expected|scheduled|set|due|slated|planned|poised|going)\s+to|"
    r"(?:plans?|intends?)\s+to|(?:is|are)\s+heading\s+for|(?:is|are)\s+on\s+(?:track|course)\s+(?:to|for))\b"
    r"|(?<!\w)(?:المقرر|المنتظر|سوف|يعتزم|تعتزم|خواهد)(?!\w)",
    re.I,
)
PLAN_AFTER = re.compile(r"^(?:\s*/\s*\S+)?(?:\s*\([^()]{1,20}\))?\s+(?:next\b|المقبل|المقبلة|القادم|القادمة)", re.I)
PLAN_LEAD = re.compile(r"(?<!\w)(?:next|coming|upcoming|gelecek|önümüzdeki)\s+$", re.I)
TURKISH_PLAN = re.compile(
    r"(?<!\w)\w*(?:bekleniyor|planlanıyor|öngörülüyor|hedefleniyor|[ae]c[ae]k(?:tır|tir)?|[ae]c[ae]kler)[.!]?$", re.I
)
CLAUSE_START = re.compile(r".*(?:[;:,]\s|\bthat\s|\bwhen\s|(?<!\w)أن\s)", re.S)


def _planned(text: str, start: int, end: int) -> bool:
    """Whether the date at text[start:end] is that of something still to come, as told in its
    clause: after "will" or "is expected to", before "next" or "المقبل", or in a Turkish
    sentence that ends in a verb of the future or of expectation."""
    before = text[:start]
    clause = before[m.end():] if (m := CLAUSE_START.match(before)) else before
    if PLAN_BEFORE.search(clause) or PLAN_LEAD.search(before) or PLAN_AFTER.match(text[end:]):
        return True
    rest = text[end:]
    return bool(TURKISH_PLAN.search(rest.rstrip())) and not re.search(r"[,;]\s", rest)


RANGE_JOIN = re.compile(r"^\s*(?:and|or|&|to|through|until|till|[-\u2013\u2014]|ve|و)\s*$", re.I)
CLAUSE_TURN = re.compile(r"[;.]\s|,\s+(?:who|which|when|while|whereas|and|but|although)\b|\b(?:and|but)\s+(?:then|later)\b")


def _restates(between: str, reported: bool) -> bool:
    """Whether a written date right after a counted one ("ten days after X raised it, on June 13";
    "two days later, on March 9") dates the same event: close by, or, for "X came N after Y",
    anywhere in Y's clause."""
    if CLAUSE_TURN.search(between):
        return False
    return reported or len(between.split()) <= 3


NAMED_EVENT = re.compile(r"\s+(?:the|his|her|their|its)\s+[a-z]")
NAMED_PHRASE = re.compile(r"\s*(?:(?:the|his|her|their|its)\s+(?:[a-z][\w-]*['\u2019]s\s+)?[a-z][\w-]*|ال\w+)?")


def _resolve(
    text: str, kind: str, match: re.Match[str], published: date, anchor: FuzzyDate | None, told: Sequence[Told],
) -> Mention | None:
    groups = match.groupdict()
    main = told[0].when if told else None
    end = match.end()
    lead = _previous_word(text, match.start())
    reported = False
    when: FuzzyDate | None
    if kind in ("turkish-month", "turkish-year", "foreign-weekday", "arabic-month", "arabic-year", "arabic-last-month"):
        when = _foreign_relative(groups, kind, published)
        if when is None or when.start > published:
            return None
    elif kind in ("foreign-day", "foreign-month"):
        when = _foreign(groups, kind, published)
        if when is None or when.start > published:
            return None
    elif kind in ("day", "day-first", "day-range", "iso", "numeric", "month-year", "year-part", "year", "month"):
        if lead in EXCLUDED_LEADS and not (lead == "since" and (kind == "month" or (
                kind in SINCE_KINDS and groups.get("year")))):
            return None
        if kind == "year" and not (lead in YEAR_LEADS or lead.endswith(("'s", "\u2019s"))):
            return None
        if kind == "year" and NOT_AN_EVENT_YEAR.search(text[:match.start()]):
            return None
        if kind == "month":
            when = _month_alone(groups, lead, published)
        else:
            when = _written_date(match, kind, published)
        explicit = bool(groups.get("year"))
        if when is None or (when.start > published and (not explicit or when.precision == "year")):
            return None
    elif kind == "ordinal":  # "on the 12th": in the month of the event told before, else of publication
        if (groups.get("rel") or "").lower() == "last":
            anchor = _month(published.year, published.month - 1)
        elif groups.get("rel"):
            anchor = None
        when = _day_of_month(int(groups["day"] or "0"), anchor, published)
        if when is None:
            return None
    elif kind == "foreign-recent":
        found = (groups.get("frecent") or "").lower()
        meaning = FOREIGN_RECENT.get(found) or FOREIGN_RECENT.get(groups.get("frecent") or "")
        if meaning is None:
            return None
        english, rel, unit = meaning
        if english == "today" and text[:match.start()].split()[-1:] in (["حتى"], ["لغاية"]):
            return None  # "حتى صباح اليوم": until this morning, a state, no event
        when = _from_publication(english, {"rel": rel, "unit": unit, "season": unit}, published)
        if when is None:
            return None
        part = ARABIC_PARTS.get(text[:match.start()].split()[-1] if text[:match.start()].split() else "")
        if part and unit == "month":  # "مطلع الشهر الجاري": early this month
            when = _month(when.start.year, when.start.month, part)
    elif kind == "arabic-after" and ARABIC_UNITS[groups.get("aunit") or ""][1] is None and not groups.get("an"):
        return None  # "بعد أسابيع قليلة": a few weeks, no count
    elif kind == "arabic-after" and groups.get("adir") == "قبل" and not (groups.get("afrom") or groups.get("athat")):
        # "قبل يومين": two days ago
        amount, unit, _ = _foreign_count(groups, kind)
        when = _from_publication("ago", {"n": str(amount), "unit": unit}, published)
        if when is None:
            return None
    elif kind in ("turkish-after", "arabic-after"):  # "iki gün sonra", "بعد يومين": two days after
        amount, unit, sign = _foreign_count(groups, kind)
        named = _named_event(text[match.end():], told, text[:match.start()])
        if groups.get("afrom"):  # "بعد ثلاثة أسابيع من الزلزال": the event named is part of the date
            end = _phrase_end(text, match.end())
        anchor = _day_anchor(named or anchor, unit, main)
        if anchor is None:
            return None
        when = _shift(anchor, sign * amount, unit)
        if when.start > published:
            return None
    elif kind in RELATIVE_TO_EVENT:
        amount = 0 if kind == "same" else _count(groups.get("n"))
        direction = (groups.get("dir") or "").lower()
        if kind == "after" and direction in ("after", "before") and NAMED_EVENT.match(text[match.end():]):
            anchor = _named_event(text[match.end():], told) or main or anchor
            end = _phrase_end(text, match.end())
        anchor = _day_anchor(anchor, groups["unit"], main)
        if anchor is None:
            return None
        sign = -1 if direction in ("earlier", "before", "previous", "preceding") else 1
        if direction in ("after", "before") and REPORTED.search(text[:match.start()]):
            sign, reported = -sign, True
        when = _shift(anchor, sign * amount, groups["unit"])
        if when.start > published:
            return None
    else:
        if kind == "weekday-bare" and lead in NOT_THIS_WEEKDAY:
            return None
        when = _from_publication(kind, groups, published)
        if when is None:
            return None
        possessive = match.group().endswith(("'s", "\u2019s")) or text.startswith(("'s", "\u2019s"), match.end())
        if kind.startswith("weekday") and possessive and any(t.when == when for t in told):
            return None  # "Sunday's incident": an event already told, referred back to
    return Mention(match.start(), end, when, reported)


def _day_of_month(day: int, anchor: FuzzyDate | None, published: date) -> FuzzyDate | None:
    """"On the 12th": that day in the month the story is in (its last date's, or the publication's),
    or in the month before when that day is still to come."""
    month = anchor.start if anchor is not None and anchor.precision != "year" else published
    try:
        when = date(month.year, month.month, day)
        if when > published:
            previous = month.replace(day=1) - timedelta(days=1)
            when = date(previous.year, previous.month, day)
    except ValueError:
        return None
    return _day(when)


def _phrase_end(text: str, at: int) -> int:
    """Where "the visit" (or "الزيارة") that a date counted from an event names ends: it is part of the date."""
    found = NAMED_PHRASE.match(text, at)
    return found.end() if found else at


def _day_anchor(anchor: FuzzyDate | None, unit: str, main: FuzzyDate | None) -> FuzzyDate | None:
    """What "two days later" counts from: the event told before, unless that one has no day (a
    digression to "late September") and the story's own event has one; writers count days from days."""
    if unit in ("day", "week") and main is not None and main.precision == "day" and (
            anchor is None or anchor.precision != "day"):
        return main
    return anchor


NAMED_NOUN = re.compile(r"^\s*(?:(?:the|his|her|their|its)\s+(?:\w+\s+)?(?P<en>[a-z]\w{2,})|(?:من\s+)?ال(?P<ar>\w{3,}))", re.I)
NAMED_NOUN_BEFORE = re.compile(r"(?<!\w)(?P<tr>\w{3,}?)(?:s?[ıiuü]n|n)?(?:den|dan|ten|tan)\s*$", re.I)  # Turkish: "girişinden üç hafta sonra"


DEFINITE = re.compile(r"^\W*(?:the|this|that|these|those|its|their)\s+$")  # "The visit follows ...": a reference back


def _named_event(after: str, told: Sequence[Told], before: str = "") -> FuzzyDate | None:
    """The date of the event "a week before the visit" names: the latest event told before whose
    sentence has the noun's stem ("visit", "visited"; "الزلزال", "زلزال"; "girişinden", "giriş")."""
    found = NAMED_NOUN.match(after) or NAMED_NOUN_BEFORE.search(before)
    if not found or not told:
        return None
    noun = next(g for g in found.groups() if g)
    stem = re.escape(noun.lower()[:max(3, min(len(noun) - 1, 6))])
    for event in reversed(told):
        text = event.text.lower()
        where = [m.start() for m in re.finditer(rf"(?<!\w)(?:و|ب)?{stem}", text) if not DEFINITE.match(text[:m.start()])]
        if where:  # where the event is told, not where it is referred back to ("The visit follows ...")
            same = [e for e in told if e.text == event.text]
            return min(same, key=lambda e: min(abs(e.at - w) for w in where)).when
    return None


def _month_alone(groups: dict[str, str | None], lead: str, published: date) -> FuzzyDate | None:
    """"in May", "in late May", "last May": the latest such month (before this one, for "last")."""
    relative = (groups.get("rel") or "").lower()
    if not (relative or groups.get("part") or lead in ("in", "during", "since")):
        return None
    month = _month_number(groups["month"] or "")
    if relative == "last":
        year = published.year if month < published.month else published.year - 1
    elif relative:
        year = published.year
    else:
        year = published.year if month <= published.month else published.year - 1
    return _month(year, month, _qualifier(groups.get("part")))


def _from_publication(kind: str, groups: dict[str, str | None], published: date) -> FuzzyDate | None:
    """"last month", "this year", "yesterday", "on Monday", "three weeks ago"."""
    unit = groups.get("unit") or ""
    if kind == "recent":
        back = 1 if (groups.get("rel") or "").lower() == "last" else 0
        if unit == "year":
            return _year(published.year - back)
        if unit == "month":
            return _month(published.year, published.month - back)
        week = published - timedelta(days=7 * back)
        return _month(week.year, week.month)
    if kind == "today":
        return _day(published)
    if kind == "yesterday":
        return _day(published - timedelta(days=1))
    if kind == "season":  # "last summer": the latest one over by publication; "this summer": this year's
        ends = SEASON_ENDS[(groups.get("season") or "").lower()]
        relative = " ".join((groups.get("rel") or "").lower().split())
        if relative == "this":
            return _year(published.year)
        if relative == "in the":  # "in the spring": this year's, once it is over (before, it may be to come)
            return _year(published.year) if published.month > ends else None
        return _year(published.year if published.month > ends else published.year - 1)
    if kind == "weekday-bare" and (groups.get("rel") or "") == "":
        kind = "weekday"
    if kind == "weekday":
        wanted = WEEKDAYS.index(groups["weekday"] or "")
        back = (published.weekday() - wanted) % 7
        if back == 0 and (groups.get("rel") or "").lower() == "last":
            back = 7
        return _day(published - timedelta(days=back))
    if kind == "ago":
        amount = _count(groups.get("n"))
        if unit == "day":
            return _day(published - timedelta(days=amount))
        if unit == "week":
            moment = published - timedelta(days=7 * amount)
            return _month(moment.year, moment.month)
        if unit == "month":
            return _month(published.year, published.month - amount)
        return _year(published.year - amount)
    return None


def _foreign(groups: dict[str, str | None], kind: str, published: date) -> FuzzyDate | None:
    """A date written with a Turkish, Arabic, Hebrew or Persian month name (any digits)."""
    month = FOREIGN_MONTHS.get((groups.get("fmonth") or "").lower()) or FOREIGN_MONTHS.get(groups.get("fmonth") or "")
    if month is None:
        return None
    year = int((groups.get("fyear") or "0").translate(DIGITS)) or None
    if kind == "foreign-month":
        return _month(year, month) if year else None
    day = int((groups.get("day") or "0").translate(DIGITS))
    try:
        if year is None:
            year = _latest_year(month, day, published)
        return _day(date(year, month, day))
    except ValueError:
        return None


def _foreign_relative(groups: dict[str, str | None], kind: str, published: date) -> FuzzyDate | None:
    """"Eylül sonunda" (late September), "2021 yılında" (in 2021), "geçen Perşembe", "Cuma
    günü", "يوم الخميس": resolved against the publication date, as their English twins are."""
    if kind in ("turkish-year", "arabic-year"):
        return _year(int((groups["fyear"] or "0").translate(DIGITS)))
    if kind == "foreign-weekday":
        wanted = FOREIGN_WEEKDAYS.get((groups.get("fweekday") or "").lower(), FOREIGN_WEEKDAYS.get(groups.get("fweekday") or ""))
        if wanted is None:
            return None
        back = (published.weekday() - wanted) % 7 or (7 if groups.get("last") else 0)
        return _day(published - timedelta(days=back))
    month = FOREIGN_MONTHS.get((groups.get("fmonth") or "").lower())
    if month is None:
        return None
    latest = month < published.month if kind == "arabic-last-month" else month <= published.month
    year = int((groups.get("fyear") or "0").translate(DIGITS)) or (published.year if latest else published.year - 1)
    part = ARABIC_PARTS.get(groups.get("apart") or "") or TURKISH_PARTS.get((groups.get("tpart") or "").lower(), "")
    return _month(year, month, part)


def _foreign_count(groups: dict[str, str | None], kind: str) -> tuple[int, str, int]:
    """How many of which unit, and which way, "iki gün sonra" or "بعد ثلاثة أسابيع" counts."""
    if kind == "turkish-after":
        word = (groups.get("tn") or "1").lower()
        amount = int(word) if word.isdigit() else TURKISH_NUMBERS[word]
        return amount, TURKISH_UNITS[groups.get("tunit") or "gün"], 1 if groups.get("tdir") == "sonra" else -1
    unit, implied = ARABIC_UNITS[groups.get("aunit") or "يوم"]
    written = (groups.get("an") or "").translate(DIGITS)
    amount = int(written) if written.isdigit() else ARABIC_NUMBERS.get(written, implied or 1)
    return amount, unit, 1 if groups.get("adir") == "بعد" else -1


def _count(number: str | None) -> int:
    word = (number or "1").lower()
    return NUMBERS[word] if word in NUMBERS else int(word)


def _shift(anchor: FuzzyDate, amount: int, unit: str) -> FuzzyDate:
    """The anchor moved by `amount` units ("later that week" is 0 weeks), no more precise than the
    anchor itself nor than the unit."""
    start = anchor.start
    if unit == "day" or (unit == "week" and amount):
        if anchor.precision != "day":
            return anchor
        return _day(start + timedelta(days=amount * (7 if unit == "week" else 1)))
    if unit in ("week", "month"):
        return anchor if anchor.precision == "year" else _month(start.year, start.month + amount)
    if amount == 0 or anchor.precision == "year":
        return _year(start.year + amount)
    return _month(start.year + amount, start.month)
