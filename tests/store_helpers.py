"""Test data written straight into a store, for tests whose subject is not the import."""

from __future__ import annotations

from mailer.store import contacts as q
from mailer.timeutil import now_utc


def add_contacts(store, emails, *, language="fi", status="subscribed", lst=None):
    """Insert contacts straight into the store; return their ids."""
    ids = []
    with store.transaction() as conn:
        list_id = q.ensure_list(conn, *lst.split(":"), lst, now_utc()) if lst else None
        for email in emails:
            cid = q.insert_contact(
                conn,
                email=email,
                email_ascii=email,
                email_key=email.lower(),
                name="",
                organization="",
                language=language,
                attributes={},
                consent_source="test",
                now=now_utc(),
                status=status,
            )
            if list_id:
                q.add_membership(conn, list_id, cid)
            ids.append(cid)
    return ids
