"""The rule for text that ends up in a mail header: one home, used at every door."""

from __future__ import annotations

import re

from ..errors import NewsletterError

# CR or LF would start a new header; other control characters and Unicode line breaks upset
# mail readers; NEL (U+0085) and the line and paragraph separators count as line breaks too.
BREAKING = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")
# A literal `=?...?=` is decoded by readers as an RFC 2047 encoded word, which may hide a line
# break (EMAIL.md; CPython issue 121650 shows the library alone is not enough).
ENCODED_WORD = re.compile(r"=\?.*\?=")
MAX_NAME_LENGTH = 100  # display names (To, From): longer ones are refused at the door


def header_problem(value: str) -> str | None:
    """Why `value` cannot go into a header, or None when it can."""
    if BREAKING.search(value):
        return "contains a line break or control character"
    if ENCODED_WORD.search(value):
        return "contains an encoded header word (=?...?=)"
    return None


def header_value(value: str, what: str) -> str:
    """`value` unchanged, or NewsletterError saying what is wrong with it."""
    problem = header_problem(value)
    if problem is not None:
        raise NewsletterError(f"{what} {problem}: {value!r}")
    return value
