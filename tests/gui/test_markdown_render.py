"""Model output is untrusted: HTML escaped, its links inert, only valid [n] markers linked."""

from __future__ import annotations

import re

from almanac.ui.markdown_render import render_answer_html, render_plain_html


def _links(html: str) -> list[str]:
    return re.findall(r"<a\b[^>]*>", html)


def test_raw_html_is_escaped_not_rendered() -> None:
    out = render_answer_html(
        'Try this <script>alert("x")</script> and <img src=x onerror="alert(1)"> now.\n\n'
        "<div onclick=evil()>block</div>\n",
        {1},
    )
    assert "<script" not in out and "&lt;script&gt;" in out
    assert "<img" not in out and "&lt;img src=x onerror=" in out
    assert "<div" not in out and "&lt;div onclick=evil()&gt;" in out


def test_lists_tables_code_and_emphasis_render() -> None:
    text = (
        "Steps:\n\n"
        "1. Open **Settings**\n"
        "2. Choose *Account*\n\n"
        "- one\n- two\n\n"
        "| Plan | Devices |\n|------|---------|\n| Pro | 5 |\n\n"
        "```bash\nsudo apt install northwind-sync\n```\n\n"
        "Inline `code` and ~~old~~ text.\n"
    )
    out = render_answer_html(text, set())
    assert "<ol>" in out and "<ul>" in out and out.count("<li>") == 4
    assert "<strong>Settings</strong>" in out and "<em>Account</em>" in out
    assert "<table>" in out and "<th>Plan</th>" in out and "<td>5</td>" in out
    assert '<pre><code class="language-bash">sudo apt install northwind-sync\n</code></pre>' in out
    assert "<code>code</code>" in out and "<s>old</s>" in out


def test_only_valid_markers_become_citation_links() -> None:
    out = render_answer_html("Links expire after 30 minutes [1]. See also [2, 7] and [9].", {1, 2})
    assert _links(out) == ['<a href="cite:1">', '<a href="cite:2">']
    assert '<a href="cite:1">[1]</a>' in out and '<a href="cite:2">[2]</a>' in out
    assert "[7]" in out and "[9]" in out  # invalid numbers stay as text
    assert 'href="cite:7"' not in out and 'href="cite:9"' not in out


def test_full_width_markers_are_linked() -> None:
    out = render_answer_html("Done \uff3b3\uff3d.", {3})
    assert '<a href="cite:3">[3]</a>' in out


def test_markers_inside_code_are_not_linked() -> None:
    text = "Use `items[1]` here.\n\n```python\nx = values[1]\n```\n\n    indented[1]\n\nReal [1]."
    out = render_answer_html(text, {1})
    assert _links(out) == ['<a href="cite:1">']
    assert "<code>items[1]</code>" in out
    assert "x = values[1]" in out and "indented[1]" in out


def test_markdown_links_and_images_in_model_output_are_not_clickable() -> None:
    text = (
        "Click [here](http://evil.example/steal) or <http://evil.example> or "
        "![logo](http://evil.example/pixel.png) or [ref][1].\n\n"
        "[1]: http://evil.example/ref\n"
    )
    out = render_answer_html(text, set())
    assert _links(out) == []
    assert "<img" not in out
    assert "[here](http://evil.example/steal)" in out  # shown literally
    assert "http://evil.example/ref" in out  # a reference definition stays visible text


def test_a_marker_that_looks_like_a_reference_is_still_only_a_citation() -> None:
    out = render_answer_html("[1]: javascript:alert(1)", {1})
    assert _links(out) == ['<a href="cite:1">']
    assert "javascript:alert(1)" in out


def test_plain_user_text_is_escaped_with_line_breaks_kept() -> None:
    out = render_plain_html('a <b>bold</b> & "quote"\nsecond line **not markdown**')
    assert "<b>" not in out and "&lt;b&gt;bold&lt;/b&gt;" in out and "&amp;" in out
    assert "<br>" in out and "**not markdown**" in out
