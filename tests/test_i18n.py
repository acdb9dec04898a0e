"""Every recipient-facing text exists in all four languages."""

from __future__ import annotations

from datetime import date

from mailer.i18n import LANGUAGES, catalogue, format_date, text


def test_every_key_exists_in_every_language():
    cat = catalogue()
    keys = set().union(*(set(cat[lang]) for lang in LANGUAGES))
    for lang in LANGUAGES:
        assert set(cat[lang]) == keys, (lang, keys - set(cat[lang]))
        assert all(v.strip() for v in cat[lang].values())


def test_dates_follow_the_language():
    day = date(2018, 11, 6)
    assert format_date(day, "fi").startswith("6.")
    assert "November" in format_date(day, "en")
    assert "november" in format_date(day, "sv")
    assert "2018" in format_date(day, "se")
    assert text("se", "language_name") == "davvisámegiella"
