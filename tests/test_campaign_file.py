"""Campaign files: keys checked, errors name the key, send_at in Helsinki time."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mailer.errors import InputError
from mailer.newsletter.spec import CampaignSpec, load_campaign
from tests.newsletter_helpers import copy_campaign, write_campaign, write_item

ITEM = 'title = "Otsikko"\ndate = 2018-11-06\nlang = "fi"'


@pytest.fixture
def folder(workspace):
    write_item(workspace.path / "c", "news/a.fi.md", ITEM)
    write_item(workspace.path / "c", "news/b.en.md", ITEM.replace('"fi"', '"en"'))
    return workspace.path / "c"


def test_the_fixture_campaign_loads(workspace):
    path = copy_campaign(workspace.path)
    spec = load_campaign(path, workspace.config())
    assert spec.name == "uutiskirje-2018-11"
    assert spec.languages == ["fi", "en"]
    assert spec.subject["en"].startswith("Arctic Smartness newsletter")
    assert spec.segment == "cluster:*"
    assert spec.template == "newsletter"
    assert [item.lang for item in spec.items] == ["fi", "fi", "en"]
    # 09:00 in Helsinki (EET, UTC+2 in November) is 07:00 UTC.
    assert spec.send_at == datetime(2030, 11, 7, 7, 0, tzinfo=timezone.utc)
    assert CampaignSpec.from_json(spec.to_json()) == spec


def test_a_plain_subject_serves_every_language_and_offsets_are_kept(workspace, folder):
    path = write_campaign(
        folder,
        'name = "n"\nsubject = "Uutiset"\nsegment = "all"\n'
        'items = ["news/a.fi.md", "news/b.en.md"]\nsend_at = 2018-11-07T09:00:00+01:00\n',
    )
    spec = load_campaign(path, workspace.config())
    assert spec.subject == {"fi": "Uutiset", "en": "Uutiset"}
    assert spec.send_at == datetime(2018, 11, 7, 8, 0, tzinfo=timezone.utc)
    assert spec.preheader == {"fi": "", "en": ""}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('subject = "S"\nsegment = "all"\nitems = ["news/a.fi.md"]', "name is required"),
        ('name = "a\\nb"\nsubject = "S"\nsegment = "all"\nitems = ["news/a.fi.md"]', "name"),
        (
            'name = "../../etc"\nsubject = "S"\nsegment = "all"\nitems = ["news/a.fi.md"]',
            "name must",
        ),
        ('name = "a/b"\nsubject = "S"\nsegment = "all"\nitems = ["news/a.fi.md"]', "name must"),
        ('name = "a..b"\nsubject = "S"\nsegment = "all"\nitems = ["news/a.fi.md"]', "name must"),
        ('name = ".hidden"\nsubject = "S"\nsegment = "all"\nitems = ["news/a.fi.md"]', "name must"),
        (
            'name = "n"\nsubject = "S\\r\\nBcc: x@y.fi"\nsegment = "all"\nitems = ["news/a.fi.md"]',
            "subject must be one line",
        ),
        (
            'name = "n"\nsubject = {fi = "S\\nX"}\nsegment = "all"\nitems = ["news/a.fi.md"]',
            "subject.fi must be one line",
        ),
        (
            'name = "n"\nsubject = {fi = "S"}\nsegment = "all"\n'
            'items = ["news/a.fi.md", "news/b.en.md"]',
            "subject.en is missing",
        ),
        (
            'name = "n"\nsubject = {fi = "S", de = "S"}\nsegment = "all"\nitems = ["news/a.fi.md"]',
            "subject.de is not a language",
        ),
        ('name = "n"\nsubject = "S"\nsegment = ""\nitems = ["news/a.fi.md"]', "segment"),
        ('name = "n"\nsubject = "S"\nsegment = "all"\nitems = []', "items must be"),
        (
            'name = "n"\nsubject = "S"\nsegment = "all"\nitems = ["news/a.fi.md", "news/a.fi.md"]',
            "items[2] 'news/a.fi.md' is listed twice",
        ),
        (
            'name = "n"\nsubject = "S"\nsegment = "all"\nitems = ["news/none.md"]',
            "items[1] 'news/none.md': no such file",
        ),
        (
            'name = "n"\nsubject = "S"\nsegment = "all"\nitems = ["news/a.fi.md"]\ncolor = 1',
            "color is not a campaign key",
        ),
        (
            'name = "n"\nsubject = "S"\nsegment = "all"\nitems = ["news/a.fi.md"]\n'
            "send_at = 2018-11-07",
            "send_at must be a date and time",
        ),
        (
            'name = "n"\nsubject = "S"\nsegment = "all"\nitems = ["news/a.fi.md"]\n'
            'template = "../etc"',
            "template must be a template name",
        ),
        (
            'name = "n"\nsubject = "S"\nsegment = "all"\nitems = ["news/a.fi.md"]\n'
            'template = "nosuch"',
            "template nosuch.html not found",
        ),
        ('name = "n"\nsubject = = "S"\n', "malformed TOML"),
    ],
)
def test_bad_campaign_files_name_the_key(workspace, folder, text, key):
    path = write_campaign(folder, text)
    with pytest.raises(InputError) as info:
        load_campaign(path, workspace.config())
    assert info.value.exit_code == 2
    assert key in str(info.value)


def test_a_broken_news_item_names_its_file_and_line(workspace, folder):
    write_item(folder, "news/bad.md", 'title = "T"\ndate = 2018-11-06\nlang = "xx"')
    path = write_campaign(
        folder, 'name = "n"\nsubject = "S"\nsegment = "all"\nitems = ["news/bad.md"]\n'
    )
    with pytest.raises(InputError, match=r"news/bad\.md:4: lang must be one of"):
        load_campaign(path, workspace.config())
