"""`mailer signups list` and `mailer signup form`: the signups of the web form."""

from __future__ import annotations

import typer

from mailer.cli._common import check_format, err, get_config, open_store, print_rows

app = typer.Typer(help="Signups made through the web form (double opt-in).", no_args_is_help=True)
form_app = typer.Typer(help="The signup form, to paste into a web page.", no_args_is_help=True)

SIGNUP_COLUMNS = ("email", "status", "lists", "language", "requested_at", "confirmed_at")
STATUSES = ("pending", "confirmed", "expired")


@app.command("list")
def list_(
    ctx: typer.Context,
    status: str = typer.Option(
        None, "--status", metavar="STATUS", help="Only pending, confirmed or expired signups."
    ),
    fmt: str = typer.Option(
        "table", "--format", "-f", metavar="FORMAT", help="table, csv or json."
    ),
) -> None:
    """List signups, oldest first; the quiet refusals and the mail queue go to stderr.

    Expired signups are kept 30 days, then purged.

    Example: mailer signups list --status pending --format csv
    """
    from mailer.audience.signups import list_signups
    from mailer.errors import InputError
    from mailer.timeutil import now_utc

    check_format(fmt)
    if status is not None and status not in STATUSES:
        raise InputError(f"--status must be one of {', '.join(STATUSES)}, not {status!r}")
    config = get_config(ctx)
    with open_store(config) as store:
        report = list_signups(store, status, now=now_utc())
    zone, machine = config.defaults.zone(), fmt != "table"  # people read the configured zone
    print_rows([v.to_json(zone, machine=machine) for v in report.signups], SIGNUP_COLUMNS, fmt)
    refusals = ", ".join(f"{reason} {count}" for reason, count in sorted(report.refusals.items()))
    err(f"Refused quietly in the last 30 days: {refusals or 'none'}")
    mails = ", ".join(f"{state} {count}" for state, count in sorted(report.outbox.items()))
    err(f"Confirmation and preference mails: {mails or 'none'}")


@form_app.command("form")
def form(
    ctx: typer.Context,
    lang: str = typer.Option(
        None, "--lang", metavar="L", help="Language of the form: fi, en, sv or se."
    ),
) -> None:
    """Print the signup form as an HTML snippet to paste into the organisation's web page.

    It posts to {base_url}/subscribe; the texts, lists and consent are those of [signup].

    Example: mailer signup form --lang en > signup-en.html
    """
    from mailer.errors import InputError
    from mailer.i18n import LANGUAGES
    from mailer.web.subscribe import form_snippet

    config = get_config(ctx)
    lang = lang or config.defaults.language
    if lang not in LANGUAGES:
        raise InputError(f"--lang must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    with open_store(config) as store:
        typer.echo(form_snippet(config, store, lang), nl=False)
