"""Staff-edited templates run in Jinja2's sandbox; oversized campaign files are refused."""

from __future__ import annotations

import pytest

from tests.contacts_helpers import assert_one_line_error
from tests.newsletter_helpers import copy_campaign, write_item

ESCAPES = [
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ lipsum.__globals__['os'].popen('touch MARKER').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{% set x = joiner.__init__.__globals__ %}{{ x }}",
]


@pytest.mark.parametrize("escape", ESCAPES)
@pytest.mark.parametrize("template_name", ["newsletter.html", "newsletter.txt"])
def test_a_template_cannot_reach_python(workspace, escape, template_name):
    path = copy_campaign(workspace.path)
    template = workspace.path / "templates" / template_name
    marker = workspace.path / "PWNED"
    escape = escape.replace("MARKER", str(marker))
    template.write_text(template.read_text(encoding="utf-8") + escape + "\n", encoding="utf-8")
    out = workspace.path / "out"
    for args in (("render", str(path), "--out", str(out)), ("campaign", "create", str(path))):
        res = workspace.cli(*args)
        assert res.exit_code == 2, (args, res.stdout, res.stderr)
        assert_one_line_error(res.stderr, "template", "unsafe")
    assert not marker.exists()
    assert not list(out.glob("index.*"))
    assert "uutiskirje" not in workspace.cli("campaign", "list").stdout


def test_the_sandbox_leaves_ordinary_templates_working(workspace):
    path = copy_campaign(workspace.path)
    template = workspace.path / "templates" / "newsletter.txt"
    template.write_text(
        template.read_text(encoding="utf-8")
        + "{% for c in ['a', 'b'] %}{{ loop.index }}{{ c | upper }}{% endfor %}\n",
        encoding="utf-8",
    )
    out = workspace.path / "out"
    res = workspace.cli("render", str(path), "--out", str(out))
    assert res.exit_code == 0, res.stderr
    assert "1A2B" in (out / "index.fi.txt").read_text(encoding="utf-8")


def test_a_news_item_over_2_mb_is_refused_before_it_is_read(workspace):
    path = copy_campaign(workspace.path)
    item = path.parent / "news" / "strategia.fi.md"
    text = item.read_text(encoding="utf-8")
    item.write_text(text + ("Pitkä rivi. " * 200_000), encoding="utf-8")
    res = workspace.cli("render", str(path), "--out", str(workspace.path / "out"))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, str(item), "over 2 MB")


def test_a_campaign_file_over_2_mb_is_refused(workspace):
    path = copy_campaign(workspace.path)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("# padding\n" * 250_000)
    for args in (("render", str(path), "--out", str(workspace.path / "out")),):
        res = workspace.cli(*args)
        assert res.exit_code == 2
        assert_one_line_error(res.stderr, str(path), "over 2 MB")
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "over 2 MB")


def test_an_item_just_under_the_cap_still_renders(workspace):
    path = copy_campaign(workspace.path)
    write_item(
        path.parent / "news",
        "strategia.fi.md",
        'title = "Iso"\ndate = 2018-11-06\nlang = "fi"',
        "Sana " * 300_000,  # 1.5 MB
    )
    res = workspace.cli("render", str(path), "--out", str(workspace.path / "out"))
    assert res.exit_code == 0, res.stderr
