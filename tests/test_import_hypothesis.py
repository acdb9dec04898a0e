"""Random bytes and random CSV given to import: no traceback, never half an import."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mailer.audience.importer import import_contacts
from mailer.errors import InputError
from mailer.store import Store
from mailer.timeutil import now_utc
from tests.conftest import SECRET
from tests.contacts_helpers import snapshot


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from mailer.workspace import init_workspace

    folder = tmp_path_factory.mktemp("imp")
    init_workspace(folder, force=False, environ={"MAILER_SECRET": SECRET})
    from mailer.config import load_config

    config = load_config(folder / "mailer.toml", {"MAILER_SECRET": SECRET})
    store = Store(config.database_path)
    # Some existing state for the import to meet: a subscribed and an unsubscribed contact.
    from mailer.audience.contacts import add_contact, forget, unsubscribe

    now = now_utc()
    from mailer.audience.lists import add_list

    add_list(store, config.list_kinds, "cluster:arctic-power", None, now)
    add_contact(store, config, "anna@example.com", lists=["cluster:arctic-power"], now=now)
    add_contact(store, config, "bo@example.com", now=now)
    unsubscribe(store, "bo@example.com", now=now)
    add_contact(store, config, "gone@example.com", now=now)
    forget(store, config, "gone@example.com", now=now)
    yield folder, config, store
    store.close()


class _Rollback(Exception):
    pass


def _run(env, data: bytes, **options):
    """Import `data` inside an outer transaction that is rolled back afterwards."""
    folder, config, store = env
    path = folder / "random.csv"
    path.write_bytes(data)
    report = None
    try:
        with store.transaction() as conn:  # the import's own transaction nests as a savepoint
            before = snapshot(conn)
            try:
                report = import_contacts(store, config, path, now=now_utc(), **options)
            except InputError as exc:
                event(f"refused: {type(exc).__name__}")
                assert snapshot(conn) == before  # a refused import writes nothing
                raise _Rollback from None
            after = snapshot(conn)
            event("imported, some added" if report.added else "imported, none added")
            outcomes = (
                report.added
                + report.updated
                + report.unchanged
                + report.invalid
                + report.duplicate
                + report.suppressed
            )
            assert outcomes == report.rows
            if options.get("dry_run"):
                assert after == before
            else:
                assert len(after["contacts"]) == len(before["contacts"]) + report.added
                if report.updated == report.added == 0:
                    assert after == before
            if options.get("strict"):
                assert report.invalid == 0
            raise _Rollback
    except _Rollback:
        pass
    return report


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.binary(max_size=400).map(lambda b: b"email;kunta;nimi\r\n" + b),
        st.binary(max_size=400).map(lambda b: "Sähköposti,Kieli\n".encode() + b),
    )
)
def test_random_bytes_never_crash_nor_half_import(env, data):
    _run(env, data)


emails = st.sampled_from(
    [
        "anna@example.com",
        "ANNA@Example.com",
        "bo@example.com",
        "gone@example.com",
        "new@example.org",
        "Uusi Nimi <uusi@example.net>",
        "äiti@bücher.example",
        "broken@",
        "@nowhere",
        "",
        "two@@example.com",
    ]
)
cells = st.one_of(
    st.text(
        st.one_of(
            st.characters(blacklist_categories=("Cs", "Cc")), st.sampled_from('\r\n\t;,|"<>@')
        ),
        max_size=12,
    ),
    st.binary(max_size=4).map(lambda b: b.decode("latin-1")),  # now and then a control byte
    st.sampled_from(
        ["fi", "sv", "se", "en", "de", "Arctic Power|Kemi", "|", "!!", "a\r\nb", '"q"']
    ),
)
headers = st.tuples(
    st.sampled_from(["Sähköposti", "email", "E-Post", "nimi"]),  # nimi: no e-mail column
    st.lists(
        st.sampled_from(["nimi", "Kieli", "klusterit", "Kunta", "yritys", "tila", "Puhelin", "x"]),
        max_size=6,
        unique=True,
    ),
).map(lambda t: [t[0], *(h for h in t[1] if h != t[0])])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=headers,
    rows=st.lists(st.tuples(emails, st.lists(cells, max_size=7)), max_size=8),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
    strict=st.booleans(),
    dry_run=st.booleans(),
)
def test_random_csv_is_fully_accounted_for_or_refused(
    env, header, rows, delimiter, encoding, strict, dry_run
):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    for email, rest in rows:
        writer.writerow([email, *rest][: len(header) + 1])
    data = buffer.getvalue().encode(encoding, errors="replace")
    _run(env, data, strict=strict, dry_run=dry_run)
