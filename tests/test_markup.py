"""Markdown in content: what check() refuses, what sanitize() strips, and the plaintext form."""

from __future__ import annotations

import pytest

from newsletter.inputs import markup


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hi <script>alert(1)</script>", "raw HTML is not allowed in Markdown: <script>"),
        ('<div onclick="x()">a</div>', 'raw HTML is not allowed in Markdown: <div onclick="x()">a</div>'),
        ("[go](javascript:alert(1))", "link must be an http(s) or mailto address: javascript:alert(1)"),
        ("[go](data:text/html,x)", "link must be an http(s) or mailto address: data:text/html,x"),
        ("![map](https://example.org/map.png)", "images are not supported in digests: https://example.org/map.png"),
    ],
)
def test_check_refuses_html_images_and_unsafe_links(text: str, message: str) -> None:
    assert [p.message for p in markup.check(text)] == [message]


def test_check_accepts_plain_markdown_with_web_and_mail_links() -> None:
    text = "Some *emphasis*, `code`, [a report](https://example.org/r) and [mail](mailto:a@example.org)."
    assert markup.check(text) == []


def test_rendering_escapes_raw_html_instead_of_passing_it_through() -> None:
    html = markup.to_html('Hi <script>alert(1)</script> <a href="https://x.example" onclick="y">z</a>')
    assert "<script" not in html and "<a " not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "dirty",
    [
        '<p onclick="steal()">text</p>',
        "<script>alert(1)</script>",
        '<a href="javascript:alert(1)">x</a>',
        '<img src="x" onerror="steal()">',
        '<iframe src="https://evil.example"></iframe>',
        '<a href="https://ok.example" style="color:red" onmouseover="x()">x</a>',
    ],
)
def test_sanitize_strips_scripts_handlers_and_javascript_urls(dirty: str) -> None:
    clean = markup.sanitize(dirty)
    lowered = clean.lower()
    for forbidden in ("<script", "onclick", "onerror", "onmouseover", "javascript:", "<iframe", "<img", "style="):
        assert forbidden not in lowered, clean


def test_links_keep_their_target_and_get_a_safe_rel() -> None:
    html = markup.to_inline_html("See [the report](https://example.org/r?a=1&b=2).")
    assert html == (
        'See <a href="https://example.org/r?a=1&amp;b=2" rel="noopener noreferrer">the report</a>.'
    )


def test_plaintext_numbers_links_and_reuses_a_number_for_the_same_url() -> None:
    urls: list[str] = []

    def cite(url: str) -> int:
        if url not in urls:
            urls.append(url)
        return urls.index(url) + 1

    text = "A [first](https://a.example/x) and *em* and [again](https://a.example/x).\n\n- [b](https://b.example)"
    assert markup.to_text(text, cite) == ["A first [1] and em and again [1].", "- b [2]"]
    assert urls == ["https://a.example/x", "https://b.example"]


def test_wrap_keeps_lines_within_72_columns_and_never_breaks_a_url() -> None:
    url = "https://www.example.org/" + "a" * 90
    text = "word " * 40 + url
    lines = markup.wrap(text, hanging="   ").splitlines()
    assert "   " + url in lines
    assert all(len(line) <= 72 for line in lines[:-1])
    assert all(line.startswith("   ") for line in lines[1:-1])
