"""Benchmark: per-recipient fill-in + message build vs full render per recipient.

    python bench/render.py [--fast N] [--slow N]

Prints µs per message for
  A) MessageBuilder.build from the prepared Variant (the production path), and
  B) the naive path: Jinja2 render of both templates + premailer + EmailMessage per recipient,
measured in the same run, and their ratio; plus the campaign render time per language
(Jinja2 + premailer once per language) and, when openssl is available, the DKIM cost.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer.config import load_config  # noqa: E402
from mailer.newsletter.messages import MessageBuilder, Recipient  # noqa: E402
from mailer.newsletter.render import (  # noqa: E402
    build_context,
    inline_css,
    render_campaign,
    render_variant,
)
from mailer.newsletter.spec import load_campaign  # noqa: E402
from mailer.newsletter.templates import load_templates  # noqa: E402
from mailer.workspace import init_workspace  # noqa: E402

POLICY = SMTP.clone(max_line_length=76)


def recipients(n: int) -> list[tuple[Recipient, str]]:
    out = []
    for i in range(n):
        email = f"lukija{i}@example.fi"
        url = f"https://uutiset.arcticsmartness.eu/u/{i:032d}"
        out.append((Recipient(email, f"Lukija Äänekoski {i}", email), url))
    return out


def naive_message(config, spec, lang, templates, recipient: Recipient, url: str) -> bytes:
    html_t, text_t = templates
    context = build_context(config, spec, lang, "x")
    context.update(
        greeting=f"Hei {recipient.name},",
        recipient={"name": recipient.name, "email": recipient.email},
        unsubscribe_url=url,
    )
    html = inline_css(html_t.render(context))
    text = text_t.render(context)
    msg = EmailMessage(policy=POLICY)
    msg["From"] = f"{config.sender.name} <{config.sender.address}>"
    msg["To"] = f"{recipient.name} <{recipient.email}>"
    msg["Subject"] = spec.subject[lang]
    msg["Date"] = datetime.now(timezone.utc)
    msg["Message-ID"] = f"<{time.time_ns()}@arcticsmartness.eu>"
    msg["List-Id"] = f"{config.sender.name} <{config.sender.list_id}>"
    msg["List-Unsubscribe"] = f"<{url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    return msg.as_bytes()


def per_message_us(fn, items) -> float:
    start = time.perf_counter()
    for recipient, url in items:
        fn(recipient, url)
    return (time.perf_counter() - start) / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", type=int, default=5000, help="messages on the fast path")
    parser.add_argument("--slow", type=int, default=40, help="messages on the naive path")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    args = parser.parse_args()
    logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)

    tmp = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
    env = {"MAILER_SECRET": "bench-secret-0123456789abcdefghijklmnop"}
    init_workspace(tmp / "ws", environ=env)
    shutil.copytree(ROOT / "tests" / "data" / "newsletter", tmp / "ws" / "c")
    config = load_config(tmp / "ws" / "mailer.toml", env)
    spec = load_campaign(tmp / "ws" / "c" / "campaign.toml", config)
    templates = load_templates(config, spec.template)

    print(f"Python {sys.version.split()[0]}; campaign {spec.name!r}, languages {spec.languages}")
    render_campaign(config, spec)  # warm up imports, cssutils, Babel
    for lang in spec.languages:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            variant = render_variant(config, spec, lang, *templates)
            times.append((time.perf_counter() - start) * 1000)
        size = len(variant.html.encode())
        print(
            f"campaign render ({lang}): {statistics.median(times):.1f} ms "
            f"(Jinja2 + premailer once; HTML {size / 1024:.1f} KB)"
        )

    lang = spec.languages[0]
    variant = render_campaign(config, spec)[lang]
    MessageBuilder(config, variant)  # the first one also imports email-validator
    start = time.perf_counter()
    builder = MessageBuilder(config, variant)
    prepare_ms = (time.perf_counter() - start) * 1000
    now = datetime.now(timezone.utc)
    sample = builder.build(*recipients(1)[0], now=now).data
    print(
        f"prepare MessageBuilder ({lang}): {prepare_ms:.2f} ms; message {len(sample) / 1024:.1f} KB"
    )

    fast, slow = [], []
    for _ in range(args.rounds):
        fast.append(
            per_message_us(lambda r, u: builder.build(r, u, now=now), recipients(args.fast))
        )
        slow.append(
            per_message_us(
                lambda r, u: naive_message(config, spec, lang, templates, r, u),
                recipients(args.slow),
            )
        )
    f, s = statistics.median(fast), statistics.median(slow)
    print(
        f"A) fill-in + build (prepared, byte join): {f:9.1f} µs/message "
        f"({args.fast} x {args.rounds})"
    )
    print(
        f"B) Jinja2 + premailer + EmailMessage:     {s:9.1f} µs/message "
        f"({args.slow} x {args.rounds})"
    )
    print(f"ratio B/A: {s / f:.0f}x")

    if shutil.which("openssl"):
        key = tmp / "dkim.pem"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
        )
        text = (tmp / "ws" / "mailer.toml").read_text()
        text += f'\n[dkim]\ndomain = "arcticsmartness.eu"\nselector = "s"\nprivate_key = "{key}"\n'
        (tmp / "ws" / "mailer.toml").write_text(text)
        signed = MessageBuilder(load_config(tmp / "ws" / "mailer.toml", env), variant)
        signed.build(*recipients(1)[0], now=now)  # the first signature imports the backend
        n = max(500, args.fast // 10)
        d = per_message_us(lambda r, u: signed.build(r, u, now=now), recipients(n))
        print(f"A') the same with DKIM (OpenSSL, RSA 2048): {d:9.1f} µs/message ({n})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
