"""News items: Markdown with TOML front matter; errors name file:line."""

from __future__ import annotations

from datetime import date

import pytest

from mailer.errors import InputError
from mailer.newsletter.news import load_item, parse_item
from tests.newsletter_helpers import DATA, write_item


def test_item_front_matter_and_body_are_read():
    item = load_item(DATA / "news" / "strategia.fi.md")
    assert item.title.startswith("Lapin älykkään erikoistumisen painopisteet")
    assert item.date == date(2018, 11, 6)
    assert item.lang == "fi"
    assert item.image_alt == "Klusteritoimijoita Lapin yliopiston salissa"
    assert "<strong>Lapin yliopistolla</strong>" in item.body_html
    assert "<li>kiertotalous</li>" in item.body_html
    # The text rendering keeps the words and the links and wraps at 76 columns.
    assert "- kiertotalous" in item.body_text
    assert "Lapin liiton sivut\n(https://www.lapinliitto.fi/)" in item.body_text
    assert max(len(line) for line in item.body_text.splitlines()) <= 76


def test_raw_html_is_shown_as_text_unless_the_item_allows_it():
    front = 'title = "T"\ndate = 2018-11-06\nlang = "fi"'
    body = 'Hello <b onclick="x()">bold</b>\n\n<script>alert(1)</script>\n'
    plain = parse_item(f"+++\n{front}\n+++\n{body}", "a.md")
    assert "<script>" not in plain.body_html and "&lt;script&gt;" in plain.body_html
    assert "<b " not in plain.body_html
    allowed = parse_item(f"+++\n{front}\nhtml = true\n+++\n{body}", "b.md")
    assert '<b onclick="x()">bold</b>' in allowed.body_html
    assert "<b" not in allowed.body_text and "bold" in allowed.body_text


def test_dangerous_link_schemes_are_not_linked():
    item = parse_item(
        '+++\ntitle = "T"\ndate = 2018-11-06\nlang = "en"\n+++\n[click](javascript:alert(1))\n',
        "a.md",
    )
    assert 'href="javascript' not in item.body_html


@pytest.mark.parametrize(
    ("front", "line", "words"),
    [
        ('date = 2018-11-06\nlang = "fi"', 1, "title is required"),
        ('title = "T"\nlang = "fi"', 1, "date is required"),
        ('title = "T"\ndate = 2018-11-06\nlang = "de"', 4, "lang must be one of"),
        ('title = "T"\ndate = "6.11.2018"\nlang = "fi"', 3, "date must be a date"),
        (
            'title = "T"\ndate = 2018-11-06\nlang = "fi"\nimage = "https://x.fi/a.jpg"',
            5,
            "image_alt is required",
        ),
        ('title = "T"\ndate = 2018-11-06\nlang = "fi"\nlink = "ftp://x"', 5, "http(s) URL"),
        ('title = "T"\ndate = 2018-11-06\nlang = "fi"\ncolour = "red"', 5, "unknown key"),
        ('title = "T"\ndate = 2018-11-06\nlang = "fi"\nhtml = "yes"', 5, "true or false"),
        ('title = "T"\ndate = 2018-11-06\nlang = "fi\n', 4, "front matter"),
    ],
)
def test_bad_items_name_file_and_line(tmp_path, front, line, words):
    path = write_item(tmp_path, "bad.md", front)
    with pytest.raises(InputError) as info:
        load_item(path)
    assert info.value.exit_code == 2
    assert info.value.where == f"{path}:{line}"
    assert words in info.value.message


def test_missing_fences_are_reported(tmp_path):
    path = tmp_path / "x.md"
    path.write_text("title = 'T'\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"x\.md:1: must start with a \+\+\+ line"):
        load_item(path)
    path.write_text("+++\ntitle = 'T'\n", encoding="utf-8")
    with pytest.raises(InputError, match="no closing"):
        load_item(path)
    path.write_bytes(b"+++\ntitle = '\xff'\n+++\n")
    with pytest.raises(InputError, match=r"x\.md:2: not UTF-8"):
        load_item(path)
