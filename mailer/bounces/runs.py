"""`bounces fetch` and `bounces import`: messages in, the rules applied, mail put away."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from mailer.bounces.apply import BounceReport, Handled, Progress, process
from mailer.bounces.files import check_paths, read_messages
from mailer.bounces.mailbox import Mailbox
from mailer.config import Config
from mailer.errors import ConfigError
from mailer.store import Store
from mailer.timeutil import now_utc

MailboxFactory = Callable[[], Mailbox]


def import_paths(
    store: Store,
    config: Config,
    paths: Sequence[str | Path],
    *,
    clock: Callable[[], datetime] = now_utc,
    progress: Progress | None = None,
) -> BounceReport:
    """Apply the returned mail in `.eml` files, Maildirs and mboxes; the files stay as they are."""
    checked = check_paths(paths)  # every path first: a typo applies nothing
    return process(store, config, read_messages(checked), clock=clock, progress=progress)


def fetch(
    store: Store,
    config: Config,
    *,
    mailbox: MailboxFactory | None = None,
    clock: Callable[[], datetime] = now_utc,
    progress: Progress | None = None,
) -> BounceReport:
    """Read the bounce mailbox once: apply each message, then move it (handled mail to
    processed_folder, the rest, unread, to unrecognised_folder). ImapError (exit 1) when the
    server cannot be reached or refuses the login: nothing is moved then."""
    settings = config.bounces
    if settings is None:
        raise ConfigError("no [bounces] section: `bounces fetch` needs the mailbox settings")
    if mailbox is None:

        def mailbox() -> Mailbox:
            return Mailbox(
                settings, config.imap_password(), ssl_context=ssl.create_default_context()
            )

    box = mailbox().open()
    try:
        processed = box.ensure(settings.processed_folder)
        unrecognised = box.ensure(settings.unrecognised_folder)
        box.select(settings.folder)

        def put_away(handled: Handled) -> None:
            if handled.processed:
                box.move(handled.name, processed, seen=True)
            else:
                box.move(handled.name, unrecognised)

        return process(
            store,
            config,
            box.messages(),
            clock=clock,
            after_each=put_away,
            progress=progress,
        )
    finally:
        box.close()
