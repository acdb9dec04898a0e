"""The SMTP pool against a real aiosmtpd on loopback: outcomes, reuse, drops, SMTPUTF8."""

from __future__ import annotations

import ssl
import threading

import pytest

from mailer.errors import SmtpError
from mailer.sending.pool import SmtpPool
from mailer.sending.smtp import (
    DEFERRED,
    FAILED,
    REFUSED,
    SENT,
    UNKNOWN,
    Connection,
    Envelope,
    connect,
    wire_data,
)
from tests.sending_helpers import ScriptedSink
from tests.smtp_sink import free_port


def _message(rcpt: str, body: str = "Hello") -> bytes:
    return (
        f"From: uutiset@arcticsmartness.eu\r\nTo: {rcpt}\r\nSubject: Test\r\n\r\n{body}\r\n"
    ).encode()


def _factory(port: int):
    return lambda: connect("127.0.0.1", port, security="none", timeout=5)


def _run(pool: SmtpPool, envelopes: list[Envelope]) -> dict[str, str]:
    results: dict[str, str] = {}
    lock = threading.Lock()

    def record(job, env, outcome):
        with lock:
            results[env.rcpt] = outcome.status

    pool.run(envelopes, lambda env: env, record)
    return results


def test_each_envelope_arrives_once_with_its_bytes_and_sender():
    with ScriptedSink() as sink:
        envs = [
            Envelope(
                "uutiset@arcticsmartness.eu", f"r{i}@example.org", _message(f"r{i}@example.org")
            )
            for i in range(40)
        ]
        pool = SmtpPool(_factory(sink.port), connections=3, messages_per_connection=7)
        results = _run(pool, envs)
    assert set(results.values()) == {SENT}
    assert sorted(sink.recipients()) == sorted(e.rcpt for e in envs)
    assert all(item.mail_from == "uutiset@arcticsmartness.eu" for item in sink.received)
    first = next(i for i in sink.received if i.rcpt_tos == ["r0@example.org"])
    assert first.message()["To"] == "r0@example.org"
    # Connections are reused up to the cap and reopened after it.
    assert sink.handler.ehlos >= 40 // 7
    assert sink.handler.ehlos <= 40 // 7 + 3 + 1


def test_per_recipient_answers_are_classified():
    replies = {
        "soft@example.org": "451 4.3.0 try later",
        "hard@example.org": "550 5.1.1 no such user",
    }
    with ScriptedSink(rcpt_reply=replies.get) as sink:
        envs = [
            Envelope("s@arcticsmartness.eu", rcpt, _message(rcpt))
            for rcpt in (
                "ok@example.org",
                "soft@example.org",
                "hard@example.org",
                "ok2@example.org",
            )
        ]
        conn = Connection(_factory(sink.port), 100)
        outcomes = {env.rcpt: conn.send(env) for env in envs}
        conn.close()
    assert outcomes["ok@example.org"].status == SENT
    assert outcomes["soft@example.org"].status == DEFERRED
    assert not outcomes["soft@example.org"].connection_fault
    assert outcomes["hard@example.org"].status == FAILED
    assert outcomes["hard@example.org"].bounce
    assert "550" in outcomes["hard@example.org"].detail
    # The transaction was reset after each refusal: the next recipient still gets through.
    assert outcomes["ok2@example.org"].status == SENT
    assert sorted(sink.recipients()) == ["ok2@example.org", "ok@example.org"]


def test_a_drop_at_rcpt_defers_and_a_drop_after_data_is_unknown():
    with ScriptedSink(drop_rcpt_every=3, drop_after_data_every=4) as sink:
        conn = Connection(_factory(sink.port), 100)
        outcomes = []
        for i in range(12):
            rcpt = f"r{i}@example.org"
            outcomes.append(
                (rcpt, conn.send(Envelope("s@arcticsmartness.eu", rcpt, _message(rcpt))))
            )
        conn.close()
    by_status = {}
    for rcpt, outcome in outcomes:
        by_status.setdefault(outcome.status, []).append(rcpt)
        if outcome.status != SENT:
            assert outcome.connection_fault
    assert by_status[DEFERRED] == sink.handler.dropped_at_rcpt
    assert by_status[UNKNOWN] == sink.handler.dropped_after_data
    assert sorted(by_status[SENT] + by_status[UNKNOWN]) == sorted(sink.recipients())
    assert conn.opened > 1  # reopened after each drop


def test_smtputf8_is_used_only_when_needed_and_offered():
    local = "pääkäyttäjä@example.org"
    with ScriptedSink(smtputf8=False) as sink:
        conn = Connection(_factory(sink.port), 100)
        refused = conn.send(Envelope("s@arcticsmartness.eu", local, _message("x"), True))
        plain = conn.send(Envelope("s@arcticsmartness.eu", "a@example.org", _message("a")))
        conn.close()
    assert refused.status == REFUSED
    assert plain.status == SENT
    assert sink.recipients() == ["a@example.org"]
    with ScriptedSink(smtputf8=True) as sink:
        conn = Connection(_factory(sink.port), 100)
        sent = conn.send(
            Envelope("s@arcticsmartness.eu", local, f"To: {local}\r\n\r\nHei\r\n".encode(), True)
        )
        conn.close()
    assert sent.status == SENT
    assert sink.recipients() == [local]


def test_unreachable_server_fails_the_check_naming_host_and_port():
    port = free_port()
    pool = SmtpPool(_factory(port), connections=2)
    with pytest.raises(SmtpError, match=f"127.0.0.1:{port}"):
        pool.check()


def test_tls_verifies_the_certificate():
    # The sink offers no TLS: required STARTTLS is refused rather than sending in clear.
    with ScriptedSink() as sink, pytest.raises(SmtpError, match="STARTTLS"):
        connect("127.0.0.1", sink.port, security="starttls", timeout=5)
    # Implicit TLS against a plain server fails the handshake instead of falling back.
    with ScriptedSink() as sink, pytest.raises(SmtpError):
        connect(
            "127.0.0.1",
            sink.port,
            security="tls",
            timeout=2,
            ssl_context=ssl.create_default_context(),
        )


def test_consecutive_connection_failures_pause_the_pool_without_touching_jobs():
    port = free_port()
    prepared = []
    pool = SmtpPool(_factory(port), connections=2, pause_after=5, reconnect_delay=0.01)
    report = pool.run(
        [Envelope("s@x.org", f"r{i}@example.org", b"x") for i in range(10)],
        lambda env: prepared.append(env) or env,
        lambda job, env, outcome: None,
    )
    assert report.paused
    assert "consecutive" in report.pause_reason
    assert prepared == []  # nothing was claimed while the server was down


def test_wire_data_dot_stuffs_and_terminates():
    assert wire_data(b".hidden\r\nline\r\n.") == b"..hidden\r\nline\r\n..\r\n.\r\n"


def _self_signed(tmp_path):
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("needs openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


def test_starttls_verifies_the_server_certificate(tmp_path):
    from aiosmtpd.controller import Controller

    from tests.sending_helpers import ScriptedHandler

    key, cert = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    handler = ScriptedHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True
    )
    controller.start()
    try:
        # An untrusted certificate is refused: nothing is sent in clear or to an impostor.
        with pytest.raises(SmtpError, match="TLS|certificate"):
            connect("127.0.0.1", port, security="starttls", timeout=5)
        trusting = ssl.create_default_context(cafile=str(cert))
        conn = Connection(
            lambda: connect(
                "127.0.0.1", port, security="starttls", timeout=5, ssl_context=trusting
            ),
        )
        outcome = conn.send(Envelope("s@arcticsmartness.eu", "a@example.org", _message("a")))
        conn.close()
    finally:
        controller.stop()
    assert outcome.status == SENT
    assert [r for item in handler.received for r in item.rcpt_tos] == ["a@example.org"]


def test_auth_uses_the_password_and_a_wrong_one_is_a_clear_error():
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from tests.sending_helpers import ScriptedHandler

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"uutiset" and auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)

    handler = ScriptedHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        with pytest.raises(SmtpError, match="authentication failed"):
            connect("127.0.0.1", port, security="none", username="uutiset", password="wrong")
        client = connect("127.0.0.1", port, security="none", username="uutiset", password="s3cret")
        client.quit()
    finally:
        controller.stop()


def test_what_an_answer_says_about_the_address_follows_the_rfc_3463_table():
    replies = {
        "gone@example.org": "550 5.1.1 no such user",
        "nouser@example.org": "550 User unknown",  # no enhanced code, but names the mailbox
        "policy@example.org": "550 5.7.1 message refused by policy",
        "size@example.org": "552 5.3.4 message too big",
        "bare@example.org": "554 transaction failed",
        "full@example.org": "552 5.2.2 mailbox full",
        "quota@example.org": "550 5.4.5 Daily sending quota exceeded",
    }
    with ScriptedSink(rcpt_reply=replies.get) as sink:
        conn = Connection(_factory(sink.port), 100)
        outcomes = {
            rcpt: conn.send(Envelope("s@arcticsmartness.eu", rcpt, _message(rcpt)))
            for rcpt in replies
        }
        conn.close()
    bounced = {rcpt for rcpt, o in outcomes.items() if o.bounce}
    assert bounced == {"gone@example.org", "nouser@example.org"}
    assert {r for r, o in outcomes.items() if o.status == FAILED} == {
        "gone@example.org",
        "nouser@example.org",
        "policy@example.org",
        "size@example.org",
        "bare@example.org",
    }
    assert outcomes["full@example.org"].status == DEFERRED  # soft: tried again later
    # Our own quota is not the recipient's fault: retried, and counted against the server.
    assert outcomes["quota@example.org"].status == DEFERRED
    assert outcomes["quota@example.org"].connection_fault and outcomes["quota@example.org"].quota
    assert not any(o.quota for r, o in outcomes.items() if r != "quota@example.org")
