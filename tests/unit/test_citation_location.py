"""A citation's location is written by one function; the front ends differ only in its options."""

from __future__ import annotations

from almanac.core.answering.citations import citation_location
from almanac.core.answering.prompting import source_label


def test_name_page_heading() -> None:
    assert citation_location("/kb/docs/faq.md", 3, "Passwords") == "faq.md, page 3 - Passwords"
    assert citation_location("/kb/docs/faq.md", None, "") == "faq.md"


def test_relative_to_a_root_and_full_paths() -> None:
    path = "/kb/docs/admin/sso.rst"
    assert citation_location(path, None, "SCIM", root="/kb/docs/") == "admin/sso.rst - SCIM"
    assert citation_location(path, None, "SCIM", root="/elsewhere") == "sso.rst - SCIM"
    assert citation_location(path, 2, "", full_path=True) == "/kb/docs/admin/sso.rst, page 2"
    assert citation_location(path, 2, "SCIM", dash=" \u2014 ") == "sso.rst, page 2 \u2014 SCIM"


def test_the_prompt_labels_sources_the_same_way() -> None:
    assert source_label("/kb/a/b.pdf", 4, "Intro", "/kb") == citation_location(
        "/kb/a/b.pdf", 4, "Intro", root="/kb"
    )
