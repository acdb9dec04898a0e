"""`mailer contacts …`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mailer.cli._common import (
    YES_HELP,
    check_format,
    check_writable,
    confirm_or_refuse,
    err,
    get_config,
    is_terminal,
    open_store,
    print_json,
    print_rows,
    problem_line,
)

if TYPE_CHECKING:
    from mailer.audience.subscriptions import StatusChange

app = typer.Typer(help="Import, list, show, export and unsubscribe contacts.", no_args_is_help=True)

LIST_COLUMNS = ("email", "name", "first_name", "organization", "language", "status", "lists")
# `contacts show` labels the last status event by what happened.
_PAST = {
    "unsubscribe": "unsubscribed",
    "resubscribe": "resubscribed",
    "bounce": "bounced",
    "unbounce": "unbounced",
    "complaint": "complained",
    "subscribe": "signed up",
}


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ..., metavar="FILE", help="CSV file (UTF-8 or cp1252; `,` `;` or tab)."
    ),
    lists: list[str] = typer.Option(
        [], "--list", "-l", metavar="KIND:SLUG", help="Also add every imported row to this list."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Write nothing and exit 2 when any row is invalid."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Report what would happen; write nothing."
    ),
    report_file: Path = typer.Option(
        None,
        "--report",
        metavar="FILE",
        help="Write invalid, duplicate and suppressed rows as CSV.",
    ),
    sync_lists: list[str] = typer.Option(
        [],
        "--sync-lists",
        metavar="KIND",
        help="The sheet is authoritative for this kind: contacts in it leave the KIND lists"
        " their row no longer names (repeatable).",
    ),
) -> None:
    """Import contacts from a spreadsheet's CSV export, in one transaction.

    Headers may be Finnish, Swedish or English (sähköposti/e-post/email, nimi or etunimi and
    sukunimi, kieli, klusterit, kunta, yritys …); other columns become attributes. Lists named
    in cells are created; a --list must exist (`mailer lists add`). Unsubscribed, bounced and
    forgotten addresses are never subscribed again.

    Example: mailer contacts import jasenet.csv --list cluster:arctic-power --report virheet.csv

    Example: mailer contacts import klusterit.csv --sync-lists cluster
    """
    from mailer.audience.importer import StrictImportError, import_contacts, write_report
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    if report_file is not None:
        check_writable(report_file, "report")
    with open_store(config) as store:
        try:
            report = import_contacts(
                store,
                config,
                file,
                lists=lists,
                strict=strict,
                dry_run=dry_run,
                now=now_utc(),
                progress=_progress_line if is_terminal() else None,
                sync_lists=sync_lists,
            )
        except StrictImportError as exc:
            for problem in exc.report.problems:
                err(problem_line(file, problem))
            if report_file is not None:
                write_report(exc.report, report_file, config.defaults.csv_delimiter)
            raise
    if report_file is not None:
        write_report(report, report_file, config.defaults.csv_delimiter)
    for note in report.notes:
        err(f"{file.name}: {note}")
    for line in sorted([*report.problems, *report.changes], key=lambda p: p.row):
        err(problem_line(file, line))
    if report.lists_created:
        typer.echo(f"New lists: {', '.join(report.lists_created)}")
    typer.echo(report.summary())


def _progress_line(done: int, total: int) -> None:
    """Rewrite one status line on a terminal's stderr."""
    import sys

    end = "\n" if done >= total else ""
    sys.stderr.write(f"\rChecking rows: {done}/{total}{end}")
    sys.stderr.flush()


@app.command("add")
def add(
    ctx: typer.Context,
    email: str = typer.Argument(..., metavar="EMAIL", help="The address, or 'Name <address>'."),
    name: str = typer.Option("", "--name", help="Full name."),
    org: str = typer.Option("", "--org", help="Organisation."),
    lang: str = typer.Option(None, "--lang", help="Language: fi, en, sv or se (default: config)."),
    lists: list[str] = typer.Option(
        [], "--list", "-l", metavar="KIND:SLUG", help="Add the contact to this list (repeatable)."
    ),
) -> None:
    """Add one contact (an existing one gets the new lists and fields).

    Example: mailer contacts add aino.aikio@example.org --name "Aino Aikio" --lang se
    """
    from mailer.audience.contacts import add_contact
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    with open_store(config) as store:
        report = add_contact(
            store,
            config,
            email,
            name=name,
            organization=org,
            language=lang,
            lists=lists,
            now=now_utc(),
        )
    typer.echo(f"{report.outcome.capitalize()} {report.contact.email}")
    for option, value in (("--name", name), ("--org", org)):
        if "\r" in value or "\n" in value:
            err(f"Note: the line break in {option} was replaced by a space")


@app.command("edit")
def edit(
    ctx: typer.Context,
    email: str = typer.Argument(..., metavar="EMAIL", help="The contact's address."),
    name: str = typer.Option(None, "--name", help="Full name ('' clears it)."),
    first_name: str = typer.Option(
        None, "--first-name", help="First name, for the greeting ('' clears it)."
    ),
    org: str = typer.Option(None, "--org", help="Organisation."),
    lang: str = typer.Option(None, "--lang", help="Language: fi, en, sv or se."),
    add_lists: list[str] = typer.Option(
        [], "--add-list", metavar="KIND:SLUG", help="Add to this existing list (repeatable)."
    ),
    remove_lists: list[str] = typer.Option(
        [], "--remove-list", metavar="KIND:SLUG", help="Take off this list (repeatable)."
    ),
) -> None:
    """Change one contact's fields or lists; its status stays as it is.

    Example: mailer contacts edit riikka@example.org --add-list cluster:arctic-power
    --remove-list cluster:arctic-design --first-name Riikka
    """
    from mailer.audience.contacts import edit_contact
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    with open_store(config) as store:
        report = edit_contact(
            store,
            config,
            email,
            name=name,
            first_name=first_name,
            organization=org,
            language=lang,
            add_lists=add_lists,
            remove_lists=remove_lists,
            now=now_utc(),
        )
    email_shown = report.contact.email
    if report.changes:
        typer.echo(f"Updated {email_shown}: {'; '.join(report.changes)}")
    else:
        typer.echo(f"Nothing changed: {email_shown}")


@app.command("list")
def list_(
    ctx: typer.Context,
    segment: str = typer.Option(
        None, "--segment", "-s", metavar="EXPR", help="Only contacts matching this segment."
    ),
    fmt: str = typer.Option(
        "table", "--format", "-f", metavar="FORMAT", help="table, csv or json."
    ),
) -> None:
    """List contacts of any status, optionally those matching a segment.

    Example: mailer contacts list --segment "municipality:rovaniemi and lang:fi" --format csv
    """
    from mailer.audience.contacts import list_contacts

    check_format(fmt)
    config = get_config(ctx)
    with open_store(config) as store:
        views = list_contacts(store, config, segment)
    rows = [v.to_json() for v in views]
    if fmt == "json":
        print_json(rows)
    else:
        print_rows(rows, LIST_COLUMNS, fmt)


@app.command("show")
def show(
    ctx: typer.Context,
    email: str = typer.Argument(..., metavar="EMAIL", help="The contact's address (any case)."),
    fmt: str = typer.Option("table", "--format", "-f", metavar="FORMAT", help="table or json."),
) -> None:
    """Show one contact: fields, status and its last change, lists, attributes, consent.

    Example: mailer contacts show aino.aikio@example.org --format json
    """
    from mailer.audience.contacts import show_contact
    from mailer.errors import InputError

    if fmt not in ("table", "json"):
        raise InputError(f"--format must be table or json, not {fmt!r}")
    config = get_config(ctx)
    from mailer.bounces.apply import last_bounce

    with open_store(config) as store:
        view = show_contact(store, email)
        bounce = last_bounce(store, view.id)
    data = view.to_json()
    change = view.last_change
    if change is not None:
        data["last_change"] = change.to_dict(config.defaults.zone(), machine=fmt == "json")
    data["consent"] = view.consent
    zone, machine = config.defaults.zone(), fmt == "json"
    data["last_bounce"] = None if bounce is None else bounce.to_dict(zone, machine=machine)
    if fmt == "json":
        print_json(data)
        return
    for key in ("email", "name", "first_name", "organization", "language", "status"):
        typer.echo(f"{key + ':':14}{data[key]}")
    if change is not None:
        via = f" through campaign {change.campaign}" if change.campaign else ""
        label = _PAST.get(change.action, change.action) + ":"
        typer.echo(f"{label:14}{data['last_change']['at']} ({change.source}){via}")
    if bounce is not None:
        code = " ".join(p for p in (bounce.status, bounce.diagnostic) if p)
        typer.echo(f"{'last bounce:':14}{data['last_bounce']['received_at']} {bounce.kind}: {code}")
    typer.echo(f"{'lists:':14}{', '.join(data['lists'])}")
    for key, value in sorted(data["attributes"].items()):
        typer.echo(f"{key + ':':14}{value}")
    for n, event in enumerate(view.consent):
        version = f" version {event['version']}" if event["version"] else ""
        detail = f": {event['detail']}" if event["detail"] else ""
        label = "consent:" if n == 0 else ""
        typer.echo(f"{label:14}{event['at']} {event['source']} {event['action']}{version}{detail}")


@app.command("export")
def export(
    ctx: typer.Context,
    segment: str = typer.Option(
        None, "--segment", "-s", metavar="EXPR", help="Only contacts matching this segment."
    ),
    output: Path = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Write to FILE (UTF-8 with BOM for Excel)."
    ),
    consent: bool = typer.Option(
        False,
        "--consent",
        help="Add consent columns: source, time, latest signup version and its confirmation.",
    ),
) -> None:
    """Export contacts as CSV that `contacts import` reads back unchanged.

    With --consent the file answers a data-protection question: how and when each contact
    came onto the list (an import file, staff, a confirmed signup with its consent version).

    Example: mailer contacts export --segment cluster:arctic-power -o arctic-power.csv
    """
    import sys

    from mailer.audience.contacts import export_contacts
    from mailer.files import write_atomic

    config = get_config(ctx)
    if output is not None:
        check_writable(output, "output")
    with open_store(config) as store:
        if output is None:
            count = export_contacts(store, config, sys.stdout, segment, consent=consent)
        else:
            import io

            buffer = io.StringIO(newline="")
            count = export_contacts(store, config, buffer, segment, consent=consent)
            write_atomic(output, buffer.getvalue().encode("utf-8"), private=True)
    err(f"Exported {count} contacts" + (f" to {output}" if output else ""))


@app.command("unsubscribe")
def unsubscribe(
    ctx: typer.Context,
    email: str = typer.Argument(..., metavar="EMAIL", help="The contact's address."),
) -> None:
    """Unsubscribe a contact (recorded with source 'cli').

    Example: mailer contacts unsubscribe aino.aikio@example.org
    """
    from mailer.audience import contacts
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    with open_store(config) as store:
        change = contacts.unsubscribe(store, email, now=now_utc(), source="cli")
    _say(change, "Unsubscribed")


@app.command("resubscribe")
def resubscribe(
    ctx: typer.Context,
    email: str = typer.Argument(..., metavar="EMAIL", help="The contact's address."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Override the person's own unsubscribe (a link, a complaint); the event says so.",
    ),
) -> None:
    """Subscribe an unsubscribed contact again (recorded with source 'cli'; bounced stays).

    Example: mailer contacts resubscribe aino.aikio@example.org
    """
    from mailer.audience import contacts
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    with open_store(config) as store:
        change = contacts.resubscribe(store, email, now=now_utc(), source="cli", force=force)
    _say(change, "Resubscribed")


@app.command("unbounce")
def unbounce(
    ctx: typer.Context,
    email: str = typer.Argument(..., metavar="EMAIL", help="The contact's address."),
) -> None:
    """Subscribe a bounced contact again (refused when it unsubscribed or complained).

    Example: mailer contacts unbounce aino.aikio@example.org
    """
    from mailer.audience import contacts
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    with open_store(config) as store:
        change = contacts.unbounce(store, email, now=now_utc())
    _say(change, "Unbounced")


def _say(change: StatusChange, done: str) -> None:
    typer.echo(
        f"{done} {change.email}"
        if change.changed
        else f"Nothing changed: {change.email} is {change.new}"
    )


@app.command("forget")
def forget(
    ctx: typer.Context,
    email: str = typer.Argument(..., metavar="EMAIL", help="The contact's address."),
    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
) -> None:
    """Erase a contact's personal data; keep only a keyed hash so it is never imported again.

    Asks first on a terminal (it cannot be undone); --yes for scripts.

    Example: mailer contacts forget aino.aikio@example.org --yes
    """
    from mailer.audience.contacts import forget as core
    from mailer.audience.contacts import show_contact
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    with open_store(config) as store:
        found = show_contact(store, email)
        if not confirm_or_refuse(
            f"Erase {found.email} for good (only a hash stays)?", yes, "forget a contact"
        ):
            err("Nothing changed.")
            return
        report = core(store, config, email, now=now_utc())
    typer.echo(f"Forgot {report.email} (removed from {report.lists} lists)")
