"""inline_css(): the same output as premailer alone, however many issues reuse the stylesheet."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from newsletter.usecases.build import Project
from newsletter.compose.digest import compose, moment
from newsletter.compose.inline import inline_css, inline_css_uncached
from newsletter.inputs.config import load_config


def test_cached_inlining_matches_premailer_byte_for_byte(project: Path) -> None:
    loaded = Project.of(load_config(project / "config.yaml"))
    digest = loaded.config.digest("weekly")
    pages = [
        loaded.renderer.html_before_inlining(compose(loaded.library, digest, moment(date(2022, day, 28), digest)))
        for day in (3, 6, 7)
    ]
    for page in pages + pages:
        assert inline_css(page) == inline_css_uncached(page)


def test_a_page_with_its_own_stylesheet_is_not_confused_with_another() -> None:
    red = "<!doctype html><html><head><style>p { color: red; }</style></head><body><p>x</p></body></html>"
    blue = red.replace("red", "blue")
    assert 'style="color:red"' in inline_css(red)
    assert 'style="color:blue"' in inline_css(blue)
    assert 'style="color:red"' in inline_css(red)
