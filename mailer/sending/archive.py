"""The public archive: which issues are public, publishing and withdrawing one, the export.

An issue is public once its sending has started, when the campaign file said `archive =
true` (or `[archive] default` did) — unless `mailer archive remove` withdrew it; `mailer
archive add` publishes an issue sent without it. The rendering lives in
`mailer.newsletter.public`; this module reads the store and writes the static export.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mailer.config import Config
from mailer.errors import ConflictError, FileInputError
from mailer.newsletter.images import is_file_name
from mailer.newsletter.public import Issue, Links, render_feed, render_index, render_public
from mailer.newsletter.spec import CampaignSpec
from mailer.sending.campaigns import find_campaign
from mailer.sending.content import Clock
from mailer.store import Store
from mailer.store import archive as q_archive
from mailer.store.archive import IssueRow
from mailer.timeutil import from_db, now_utc

MANIFEST = ".mailer-archive"  # what the last export wrote, so that the next one can tidy up


def issue_from_row(row: IssueRow) -> Issue:
    return Issue(row.campaign_id, CampaignSpec.from_json(row.definition), from_db(row.published_at))


def public_issues(conn: sqlite3.Connection) -> list[Issue]:
    """Every public issue, newest first."""
    return [issue_from_row(row) for row in q_archive.public_issues(conn)]


def public_issue_row(conn: sqlite3.Connection, name: str) -> IssueRow | None:
    """The stored public issue `name`; None when there is none (unknown, unsent, withdrawn)."""
    return q_archive.public_issue(conn, name)


def public_issue_rows(conn: sqlite3.Connection) -> list[IssueRow]:
    """The stored public issues, newest first."""
    return q_archive.public_issues(conn)


def image_data(conn: sqlite3.Connection, name: str) -> bytes | None:
    """The stored picture `name` ({sha256 prefix}.{ext}); None for any other name."""
    return q_archive.image_data(conn, name) if is_file_name(name) else None


# --- archive add / remove --------------------------------------------------------------------


@dataclass(frozen=True)
class ChoiceReport:
    name: str
    public: bool  # public now
    changed: bool  # it was not before


def set_public(store: Store, name: str, public: bool, *, clock: Clock = now_utc) -> ChoiceReport:
    """Publish (`public`) or withdraw one issue whose sending has started.

    Before sending starts the campaign file decides (`archive = true`), because its messages
    carry the "view in a browser" link only when it is published.
    """
    with store.transaction() as conn:
        row = find_campaign(conn, name)
        if not row.frozen_at:
            raise ConflictError(
                f"campaign {name!r} has not started sending; set `archive = "
                f"{'true' if public else 'false'}` in its file and run `mailer campaign create`"
                " again (its messages then carry the view-in-browser link or not)"
            )
        before = q_archive.is_public(conn, row.id)
        q_archive.set_choice(conn, row.id, public, clock())
        return ChoiceReport(row.name, public, before != public)


# --- the static export -----------------------------------------------------------------------


@dataclass
class ExportReport:
    out_dir: Path
    issues: int = 0
    pages: int = 0
    feeds: int = 0
    images: int = 0
    removed: int = 0  # files of the last export that are gone from the archive now
    missing_images: list[str] = field(default_factory=list)


def export_archive(store: Store, config: Config, out_dir: Path) -> ExportReport:
    """Write the archive as static files under `out_dir` (see docs/deploy.md).

    `archive/index.html` (and `index.LANG.html`), `archive/NAME/index.html` (and
    `NAME/LANG/index.html`), `archive/feed.xml` (and `feed.LANG.xml`), `m/FILE`. Everything is
    rendered before the first file is written; files of an earlier export that are no longer
    part of the archive (a withdrawn issue) are removed.
    """
    links = Links.of(config, exported=True)
    issues = public_issues(store.conn)
    files: dict[str, bytes] = {}
    for lang in _languages(issues, links.default_language):
        suffix = "" if lang == links.default_language else f".{lang}"
        files[f"archive/index{suffix}.html"] = render_index(config, issues, lang, links).encode()
        files[f"archive/feed{suffix}.xml"] = render_feed(config, issues, lang, links)
    report = ExportReport(out_dir, issues=len(issues))
    wanted: set[str] = set()
    for issue in issues:
        for lang in issue.languages:
            page = issue.path(lang).removeprefix("/") + "/index.html"
            files[page] = render_public(config, issue, lang, links).encode()
            report.pages += 1
        wanted.update(item.image_file for item in issue.spec.items if item.image_file)
    for name in sorted(wanted):
        data = q_archive.image_data(store.conn, name)
        if data is None:
            report.missing_images.append(name)
            continue
        files[f"m/{name}"] = data
        report.images += 1
    report.feeds = sum(1 for path in files if path.endswith(".xml"))
    report.removed = _write_tree(out_dir, files)
    return report


def _languages(issues: list[Issue], default: str) -> list[str]:
    from mailer.i18n import LANGUAGES

    present = {default, *(lang for issue in issues for lang in issue.languages)}
    return [lang for lang in LANGUAGES if lang in present]


def _write_tree(out_dir: Path, files: dict[str, bytes]) -> int:
    """Write `files` (relative path -> bytes) under `out_dir`; return how many old ones went."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileInputError("the export folder is a file", where=str(out_dir))
    manifest = out_dir / MANIFEST
    previous: set[str] = set()
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not manifest.is_file():
            raise FileInputError(
                "the folder is not empty and holds no earlier export; give an empty folder",
                where=str(out_dir),
            )
        previous = set(manifest.read_text(encoding="utf-8").split("\n")) - {""}
    out_dir.mkdir(parents=True, exist_ok=True)
    for relative, data in sorted(files.items()):
        _write_file(out_dir, relative, data)
    removed = 0
    for relative in sorted(previous - set(files)):
        target = out_dir / relative
        if ".." not in Path(relative).parts and target.is_file() and not target.is_symlink():
            target.unlink()
            removed += 1
            _prune_empty(out_dir, target.parent)
    _write_file(out_dir, MANIFEST, ("\n".join(sorted(files)) + "\n").encode())
    return removed


def _write_file(root: Path, relative: str, data: bytes) -> None:
    """Write through a temporary file and a rename; never through a planted symlink."""
    target = root / relative
    folder = root
    for part in Path(relative).parent.parts:
        folder = folder / part
        if folder.is_symlink():
            raise FileInputError(
                "is a symbolic link; the export writes no folder through one", where=str(folder)
            )
        folder.mkdir(exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # published files: a web server must read them
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prune_empty(root: Path, folder: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
