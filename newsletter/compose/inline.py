"""Inline the digest stylesheet onto elements with premailer, parsing the stylesheet once.

premailer already caches cssutils' parse of a stylesheet, but on every call it serializes
each rule again (about half its time on our digest). The stylesheet is the same for every
issue, so the parsed rules and the leftover @media text are kept by stylesheet text.
"""

from __future__ import annotations

import logging
from typing import Any

from premailer import Premailer

OPTIONS: dict[str, Any] = {
    "allow_network": False,
    "strip_important": False,  # dark-mode rules need !important to beat inline styles
    "remove_classes": False,  # the @media rules left in <style> select by class
    "keep_style_tags": False,
    "disable_validation": True,
    "cssutils_logging_level": logging.CRITICAL,
}

_rules: dict[tuple[str, int], tuple[list[Any], list[Any]]] = {}
_leftover_text: dict[int, str] = {}  # id() of a cached leftover list -> its CSS text
_MAX_STYLESHEETS = 32


class _Inliner(Premailer):  # type: ignore[misc]
    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list[Any], list[Any]]:
        key = (css_body, ruleset_index)
        if key not in _rules:
            if len(_rules) >= _MAX_STYLESHEETS:
                _rules.clear()
                _leftover_text.clear()
            rules, leftover = super()._parse_style_rules(css_body, ruleset_index)
            _rules[key] = (rules, leftover)
            _leftover_text[id(leftover)] = super()._css_rules_to_string(leftover)
        return _rules[key]

    def _css_rules_to_string(self, rules: list[Any]) -> str:
        cached = _leftover_text.get(id(rules))
        return cached if cached is not None else str(super()._css_rules_to_string(rules))


def inline_css(html: str) -> str:
    """Move the <style> rules onto elements; @media rules stay in a <style> block."""
    return _with_doctype(str(_Inliner(html, **OPTIONS).transform()))


def inline_css_uncached(html: str) -> str:
    """premailer as it comes, with the same options: the reference in bench/build.py."""
    return _with_doctype(str(Premailer(html, **OPTIONS).transform()))


def _with_doctype(html: str) -> str:
    """premailer drops a lowercase doctype (lxml reports it as <!DOCTYPE html>); put it back."""
    return html if html.lstrip().lower().startswith("<!doctype") else "<!doctype html>\n" + html
