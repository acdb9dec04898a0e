"""Output paths are written through a rename, never through a symlink; personal data is 0600."""

from __future__ import annotations

import os
import stat

import pytest

from tests.contacts_helpers import assert_one_line_error, write_csv
from tests.newsletter_helpers import copy_campaign


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def victim(tmp_path):
    """A file an attacker would like overwritten, e.g. the operator's shell profile."""
    path = tmp_path / "victim.txt"
    path.write_text("precious\n", encoding="utf-8")
    return path


def test_render_replaces_a_symlink_placed_at_an_output_file(workspace, victim):
    out = workspace.path / "preview"
    out.mkdir()
    (out / "index.en.html").symlink_to(victim)
    (out / "sample.fi.eml").symlink_to(victim)
    res = workspace.cli("render", str(copy_campaign(workspace.path)), "--out", str(out))
    assert res.exit_code == 0, res.stderr
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert not (out / "index.en.html").is_symlink()
    assert "<html" in (out / "index.en.html").read_text(encoding="utf-8")
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temp left


def test_render_onto_a_folder_named_like_an_output_file_is_one_line(workspace):
    out = workspace.path / "preview"
    (out / "index.fi.html").mkdir(parents=True)
    res = workspace.cli("render", str(copy_campaign(workspace.path)), "--out", str(out))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "index.fi.html", "folder")


def test_export_and_report_replace_a_symlink_and_are_private(workspace, tmp_path, victim):
    workspace.cli("contacts", "add", "aino@example.org", "--name", "Aino")
    out = tmp_path / "export.csv"
    out.symlink_to(victim)
    res = workspace.cli("contacts", "export", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert not out.is_symlink() and "aino@example.org" in out.read_text(encoding="utf-8")
    assert _mode(out) == 0o600

    report = tmp_path / "report.csv"
    report.symlink_to(victim)
    path = write_csv(tmp_path / "in.csv", [["email"], ["not an address"], ["b@example.org"]])
    res = workspace.cli("contacts", "import", str(path), "--report", str(report))
    assert res.exit_code == 0, res.stderr
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert "not an address" in report.read_text(encoding="utf-8")
    assert _mode(report) == 0o600


def test_a_dangling_symlink_is_not_followed_either(workspace, tmp_path):
    workspace.cli("contacts", "add", "aino@example.org")
    target = tmp_path / "created-by-attacker.csv"
    out = tmp_path / "export.csv"
    out.symlink_to(target)
    assert workspace.cli("contacts", "export", "-o", str(out)).exit_code == 0
    assert not target.exists() and out.is_file() and not out.is_symlink()


def test_the_database_its_wal_and_backups_are_private(workspace, tmp_path, victim):
    old = os.umask(0o022)
    try:
        folder = tmp_path / "fresh"
        res = workspace.cli("init", str(folder))
        assert res.exit_code == 0, res.stderr
        db = folder / "mailer.db"
        assert _mode(db) == 0o600
        env = {"MAILER_CONFIG": str(folder / "mailer.toml")}
        assert workspace.cli("contacts", "add", "aino@example.org", env=env).exit_code == 0
        import sqlite3

        holder = sqlite3.connect(db)  # keeps the -wal and -shm files in place
        holder.execute("SELECT count(*) FROM contacts").fetchone()
        for suffix in ("-wal", "-shm"):
            side = folder / f"mailer.db{suffix}"
            assert _mode(side) == 0o600, suffix
        holder.close()

        backup = tmp_path / "backup.db"
        res = workspace.cli("backup", str(backup), env=env)
        assert res.exit_code == 0, res.stderr
        assert _mode(backup) == 0o600
        conn = sqlite3.connect(backup)
        assert conn.execute("SELECT email FROM contacts").fetchall() == [("aino@example.org",)]
        conn.close()
        # a symlink placed where the backup goes is replaced, not written through
        dangling = tmp_path / "b2.db"
        dangling.symlink_to(tmp_path / "elsewhere.db")
        assert workspace.cli("backup", str(dangling), env=env).exit_code == 0
        assert not (tmp_path / "elsewhere.db").exists() and not dangling.is_symlink()
    finally:
        os.umask(old)


def test_backup_to_an_unwritable_place_is_one_line(workspace):
    res = workspace.cli("backup", "/proc/nope.db")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "/proc/nope.db")
