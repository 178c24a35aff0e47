"""Markdown in content: what check() refuses, what sanitize() strips, and the plaintext form."""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import re

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


@pytest.mark.parametrize("render", [markup.to_html, markup.to_inline_html])
def test_raw_html_comes_out_escaped_from_both_renderings(render: Callable[[str], str]) -> None:
    html = render('A <b>bold</b> claim <img src="x" onerror="steal()"> <!-- note -->')
    assert "<b>" not in html and "<img" not in html and "<!--" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;img" in html and "&lt;!-- note --&gt;" in html


def test_raw_html_block_at_the_start_of_a_line_is_escaped_too() -> None:
    html = markup.to_html('<div onclick="x()">\n*a*\n</div>\n\n<script>alert(1)</script>')
    assert "<div" not in html and "<script" not in html
    assert "&lt;div onclick=" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_inline_html_has_no_paragraph_even_for_text_that_looks_like_a_block() -> None:
    assert markup.to_inline_html("1. *First*, then") == "1. <em>First</em>, then"
    assert markup.to_inline_html("# not a heading") == "# not a heading"


@pytest.mark.parametrize(
    ("line", "snippet"),
    [
        ("and <span class=\"x\">raw</span> HTML", '<span class="x">'),
        ("<div>a block</div>", "<div>a block</div>"),
        ("see [this](javascript:alert(1)) link", "javascript:alert(1)"),
        ("see [this](javascript:alert\\(1\\)) link", "javascript:alert"),
        ("a map ![map](https://example.org/map.png)", "https://example.org/map.png"),
    ],
)
def test_a_refused_construct_in_a_longer_text_names_text_on_its_own_line(line: str, snippet: str) -> None:
    lines = [
        "A first paragraph with a [fine link](https://example.org/a).", "", "- one item", "- another item",
        "", line, "", "The end.",
    ]
    [problem] = markup.check("\n".join(lines))
    assert problem.snippet == snippet
    assert [number for number, text in enumerate(lines) if problem.snippet in text] == [5]


def test_check_reports_in_source_order_and_skips_closing_tags_and_entities() -> None:
    text = "One &amp; <em>two</em>\n\n<div>three</div>\n\n[four](data:x) and ![five](https://e.example/5.png)"
    assert [p.message for p in markup.check(text)] == [
        "raw HTML is not allowed in Markdown: <em>",
        "raw HTML is not allowed in Markdown: <div>three</div>",
        "link must be an http(s) or mailto address: data:x",
        "images are not supported in digests: https://e.example/5.png",
    ]


def test_check_finds_unsafe_links_in_references_and_autolinks() -> None:
    assert [p.message for p in markup.check("[x][r]\n\n[r]: javascript:alert(1)\n\nand <ftp://e.example/f>")] == [
        "link must be an http(s) or mailto address: javascript:alert(1)",
        "link must be an http(s) or mailto address: ftp://e.example/f",
    ]
    assert markup.check("Mail <a@example.org> or see <https://example.org/x>.") == []


@pytest.mark.parametrize("text", [
    "javascript:alert(1) and data:text/html,x written out, not linked",
    "&lt;script&gt;alert(1)&lt;/script&gt; &#60;b&#62; &amp;",
    "*emphasis*, __strong__ and `onclick=alert(1)` in code",
    "    indented code: javascript:y",
    "1. a list\n2. of items\n\n> a quote\n\n# a heading\n\n---",
    "https://example.org/bare and www.example.org and a@example.org",
])
def test_text_without_angle_or_square_brackets_has_nothing_to_refuse(text: str) -> None:
    """check() skips the Markdown parser when a text has neither `<` nor `[`: nothing it refuses
    can be written without one of them."""
    assert "<" not in text and "[" not in text
    assert markup._parsed_problems(text) == [] == markup.check(text)


def test_plaintext_keeps_code_and_hard_breaks_and_cites_autolinks_but_not_unsafe_links() -> None:
    urls: list[str] = []

    def cite(url: str) -> int:
        urls.append(url)
        return len(urls)

    text = "Use `a<b && c` now  \nthen **stop**.\n\n1. <a@example.org>\n2. [bad](javascript:x)\n\n> Quoted &copy; AT&T"
    assert markup.to_text(text, cite) == [
        "Use a<b && c now\nthen stop.",
        "- a@example.org [1]",
        "- bad",
        "Quoted © AT&T",
    ]
    assert urls == ["mailto:a@example.org"]
    assert markup.to_text("Run:\n\n    make <all>\n    make check", cite) == ["Run:", "make <all>\nmake check"]


def test_plaintext_gives_each_list_item_and_nested_item_its_bullet() -> None:
    text = "- a\n- b [l](https://l.example)\n\n    - nested\n\n- c"
    assert markup.to_text(text, lambda url: 7) == ["- a", "- b l [7]", "- nested", "- c"]


def test_rendering_from_several_threads_at_once_matches_rendering_one_at_a_time() -> None:
    texts = [
        f"Entry {n}: *emphasis*, `code {n}`, <b>raw</b> and [link {n}](https://example.org/{n}).\n\n"
        f"- item {n} [dup](https://example.org/{n % 3})\n- ![img](https://example.org/{n}.png)\n\n"
        f"[bad {n}](javascript:alert({n})) &amp; more text  \nafter a break"
        for n in range(40)
    ]

    def render(text: str) -> tuple[object, ...]:
        return (
            markup.to_html(text),
            markup.to_inline_html(text.splitlines()[0]),
            markup.check(text),
            markup.to_text(text, lambda url: len(url)),
        )

    serial = [render(text) for text in texts]
    # Python switches threads every 5 ms by default, longer than a conversion takes, so
    # without this the threads would seldom overlap and a missing lock would go unseen.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(3):
                assert list(pool.map(render, texts)) == serial
    finally:
        sys.setswitchinterval(interval)


def test_the_package_renders_with_python_markdown() -> None:
    from importlib.metadata import requires

    declared = {re.split(r"[<>=\[ ;]", line, maxsplit=1)[0].lower() for line in requires("threat-brief-newsletter") or []}
    assert "markdown" in declared
    import markdown

    assert markup.to_html("*a*") == markdown.markdown("*a*")
