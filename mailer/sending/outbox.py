"""The outbox: confirmation and preference-link mails, sent by `mailer serve` within seconds.

A signup post only queues its mail (one row, in the same transaction as the signup), so a
relay outage loses nothing and the visitor's answer never waits for SMTP. `OutboxWorker`,
a thread of the web service, wakes when a row is queued (and every second), and sends what
is due through the one-off message path (`sending.oneoff`): the same headers, encodings and
DKIM as a newsletter, inside the relay quotas that campaigns count too. A 4xx or a lost
connection defers the mail with a growing wait; a 5xx fails it; a confirmation whose link
expired before it could go out is failed too (a mail with a dead link helps nobody).

Nothing the visitor typed but the address goes into a mail: no name in `To:`, no greeting
by name, no organisation, no list names; only fixed texts in the chosen language and the
link.
"""

from __future__ import annotations

import html as html_module
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from mailer.addresses import Address, parse_address
from mailer.config import Config
from mailer.errors import AddressError, SmtpError
from mailer.i18n import LANGUAGES, text
from mailer.oauth import TokenCommandError
from mailer.sending import smtp
from mailer.sending.content import envelope_sender
from mailer.sending.oneoff import build_message, make_variant
from mailer.states import OutboxStatus
from mailer.store import Store
from mailer.store import campaigns as q_campaigns
from mailer.store import outbox as q
from mailer.timeutil import now_utc
from mailer.tokens import confirm_url, make_confirm_token, make_preferences_token, preferences_url

log = logging.getLogger("mailer.outbox")

BATCH = 50
POLL_SECONDS = 1.0
STALE = timedelta(minutes=2)  # a row in `sending` this long belonged to a stopped service
GIVE_UP = timedelta(days=3)  # a preference link still deferred after this fails
OS = OutboxStatus


def backoff(attempts: int) -> timedelta:
    """How long a deferred mail waits: 15 s, 30 s, 1 min … at most 15 minutes."""
    return min(timedelta(seconds=15 * 2 ** max(attempts - 1, 0)), timedelta(minutes=15))


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str
    link: str  # the confirmation or preference URL, also the List-Unsubscribe target


def compose(config: Config, kind: str, language: str, link: str, hours: float = 0) -> Mail:
    """The fixed text of a confirmation or preference-link mail in `language`."""
    lang = language if language in LANGUAGES else config.defaults.language
    sender = config.sender.name
    paragraphs = [text(lang, "greeting")]
    if kind == "confirm":
        subject = text(lang, "signup_mail_confirm_subject", sender=sender)
        paragraphs += [
            text(lang, "signup_mail_confirm_text", sender=sender),
            link,
            text(lang, "signup_mail_confirm_expiry", hours=f"{hours:g}"),
            text(lang, "signup_mail_confirm_ignore"),
        ]
    else:
        subject = text(lang, "signup_mail_link_subject", sender=sender)
        paragraphs += [
            text(lang, "signup_mail_link_text", sender=sender),
            link,
            text(lang, "signup_mail_link_ignore"),
        ]
    footer = [sender, config.sender.postal_address]
    body = "\n\n".join(paragraphs) + "\n\n--\n" + "\n".join(footer) + "\n"
    return Mail(subject, body, _html(lang, subject, paragraphs, link, footer), link)


def _html(lang: str, subject: str, paragraphs: list[str], link: str, footer: list[str]) -> str:
    esc = html_module.escape
    body = []
    for paragraph in paragraphs:
        if paragraph == link:
            body.append(
                f'<p style="margin:0 0 16px"><a href="{esc(link)}" style="color:#0b4f8a">'
                f"{esc(link)}</a></p>"
            )
        else:
            body.append(f'<p style="margin:0 0 16px">{esc(paragraph)}</p>')
    foot = "<br>\n".join(esc(line) for line in footer)
    return (
        f'<!DOCTYPE html>\n<html lang="{esc(lang)}">\n<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(subject)}</title></head>\n"
        '<body style="margin:0;padding:0;background:#ffffff;color:#1a1a1a">\n'
        '<div style="max-width:600px;margin:0 auto;padding:24px 16px;'
        'font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;color:#1a1a1a">\n'
        + "\n".join(body)
        + '\n<p style="margin:24px 0 0;font-size:14px;color:#3d4650">'
        + foot
        + "</p>\n</div>\n</body>\n</html>\n"
    )


@dataclass(frozen=True)
class _Due:
    id: int
    kind: str
    status: str
    attempts: int
    language: str
    to: Address
    link: str
    hours: float


@dataclass
class OutboxReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    waiting_for_quota: bool = False


def send_due(
    store: Store,
    config: Config,
    *,
    now: datetime | None = None,
    connect: smtp.ConnectionFactory | None = None,
    lock: threading.Lock | None = None,
) -> OutboxReport:
    """Send the mails due now over one connection; return what became of them."""
    now = now or now_utc()
    lock = lock or threading.Lock()
    report = OutboxReport()
    with lock, store.transaction() as conn:
        q.release_stale(conn, now - STALE, now)
        rows = q.due(conn, now, BATCH)
    if not rows:
        return report
    secret = config.secret()
    conn_smtp = smtp.Connection(
        connect or smtp.config_factory(config.smtp, config.smtp_password()),
        config.smtp.messages_per_connection,
    )
    try:
        for row in rows:
            mail = _prepare(config, secret, row, now)
            if isinstance(mail, str):
                _finish(store, lock, row["id"], row["status"], OS.FAILED, now, mail, report)
                continue
            if not _claim(store, config, lock, mail, now):
                report.waiting_for_quota = True
                break
            if not _send(store, config, lock, conn_smtp, mail, report):
                break  # the relay is out of reach: the rest waits for the next round
    finally:
        conn_smtp.close()
    return report


def _prepare(config: Config, secret: bytes, row: sqlite3.Row, now: datetime) -> _Due | str:
    """The mail of one outbox row, or why it is not to be sent any more."""
    get = row.__getitem__
    if get("email") is None:
        return "the address is gone"
    try:
        to = parse_address(get("email"))
    except AddressError as exc:
        return f"bad address: {exc}"
    hours = 0.0
    if get("kind") == "confirm":
        expires = datetime.fromtimestamp(int(get("expires_at")), timezone.utc)
        if get("signup_status") != "pending" or expires <= now:
            return "the signup is no longer pending"
        token = make_confirm_token(secret, get("signup_id"), expires)
        link = confirm_url(config.web.base_url, token)
        hours = config.signup.confirm_hours if config.signup else 0.0
    else:
        if now - _created(get("created_at")) > GIVE_UP:
            return "gave up: still not sent after three days"
        token = make_preferences_token(secret, get("contact_id"))
        link = preferences_url(config.web.base_url, token)
    return _Due(
        get("id"), get("kind"), get("status"), get("attempts"), get("language"), to, link, hours
    )


def _created(stamp: str) -> datetime:
    from mailer.timeutil import from_db

    return from_db(stamp)


def _claim(store: Store, config: Config, lock: threading.Lock, mail: _Due, now: datetime) -> bool:
    """Move the row to `sending` within the relay quotas; False when the quota is used up."""
    quotas = config.smtp.per_minute or config.smtp.per_day
    with lock, store.transaction() as conn:
        if quotas:
            per_minute, per_day = q_campaigns.quota_used(conn, now)
            if (config.smtp.per_minute and per_minute >= config.smtp.per_minute) or (
                config.smtp.per_day and per_day >= config.smtp.per_day
            ):
                return False
        if not q.claim(conn, mail.id, mail.status, now):
            return True  # another worker took it: go on with the next
        if quotas:
            q_campaigns.add_usage(conn, now)
    return True


def _send(
    store: Store,
    config: Config,
    lock: threading.Lock,
    conn_smtp: smtp.Connection,
    mail: _Due,
    report: OutboxReport,
) -> bool:
    now = now_utc()
    content = compose(config, mail.kind, mail.language, mail.link, mail.hours)
    variant = make_variant(
        language=mail.language, subject=content.subject, text=content.text, html=content.html
    )
    built = build_message(config, variant, mail.to, unsubscribe_url=mail.link, now=now)
    envelope = smtp.Envelope(
        envelope_sender(config), mail.to.wire, built.data, needs_smtputf8=mail.to.needs_smtputf8
    )
    try:
        outcome = conn_smtp.send(envelope)
    except (SmtpError, TokenCommandError) as exc:  # the relay or its token: try again later
        outcome = smtp.Outcome(smtp.DEFERRED, str(exc), connection_fault=True)
    done = now_utc()
    if outcome.status == smtp.SENT:
        status: OutboxStatus = OS.SENT
    elif outcome.status in (smtp.FAILED, smtp.REFUSED):
        status = OS.FAILED
    else:
        status = OS.DEFERRED
    with lock, store.transaction() as conn:
        q.finish(
            conn,
            mail.id,
            status.value,
            done,
            detail=None if status == OS.SENT else outcome.detail,
            message_id=built.message_id,
            next_attempt_at=done + backoff(mail.attempts + 1) if status == OS.DEFERRED else None,
        )
    if status == OS.SENT:
        report.sent += 1
    elif status == OS.FAILED:
        report.failed += 1
        log.warning("outbox mail %s failed: %s", mail.id, outcome.detail)
    else:
        report.deferred += 1
        log.warning("outbox mail %s deferred: %s", mail.id, outcome.detail)
    return not outcome.connection_fault


def _finish(
    store: Store,
    lock: threading.Lock,
    mail_id: int,
    status: str,
    target: OutboxStatus,
    now: datetime,
    detail: str,
    report: OutboxReport,
) -> None:
    with lock, store.transaction() as conn:
        if q.claim(conn, mail_id, status, now):
            q.finish(conn, mail_id, target.value, now, detail=detail)
            report.failed += 1


class OutboxWorker:
    """A thread that sends the outbox: woken by `wake`, and every second."""

    def __init__(
        self,
        config: Config,
        open_store: Callable[[], Store],
        *,
        wake: threading.Event,
        lock: threading.Lock,
        housekeeping: Callable[[Store, datetime], object] | None = None,
        connect: smtp.ConnectionFactory | None = None,
    ) -> None:
        self.config = config
        self.open_store = open_store
        self.wake = wake
        self.lock = lock
        self.housekeeping = housekeeping
        self.connect = connect
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mailer-outbox", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        store = self.open_store()
        last_housekeeping = datetime.min.replace(tzinfo=timezone.utc)
        try:
            while not self.stopping.is_set():
                self.wake.clear()
                try:
                    now = now_utc()
                    if self.housekeeping and now - last_housekeeping > timedelta(minutes=1):
                        with self.lock:
                            self.housekeeping(store, now)
                        last_housekeeping = now
                    report = send_due(store, self.config, connect=self.connect, lock=self.lock)
                except Exception as exc:  # a locked or failing store: keep serving, say why
                    log.error("outbox: %s", exc)
                    report = OutboxReport()
                if report.sent + report.failed + report.deferred < BATCH or report.deferred:
                    self.wake.wait(POLL_SECONDS)
        finally:
            store.close()
