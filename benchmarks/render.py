"""Render benchmark (not a test): compile per variant, per-recipient build old vs new, DKIM signing.

    .venv/bin/python benchmarks/render.py [--recipients 20000] [--old-recipients 2000]

CPU time (time.process_time) per operation on one core; both message paths build the same
10-story digest for the same recipients in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from digest.dispatch.dkim import DkimSigner
from digest.render.digest_email import greeting, render_digest
from digest.render.headers import default_unsubscribe_mailto, list_id
from digest.render.message import Envelope, build_message, personalise
from digest.render.samples import sample_list, sample_stories
from digest.render.skeleton import MessageSkeleton, Recipient
from digest.render.templates import compile_mjml, inline_css, render_template

FROM = "Example News <news@example.org>"
LIST_ID = list_id("Daily Digest", "daily", "example.org")
MAILTO = default_unsubscribe_mailto(FROM)
WHEN = dt.datetime(2026, 3, 2, 7, tzinfo=dt.UTC)


def cpu(fn: Callable[[], object], repeat: int) -> float:
    """Median CPU seconds of one call over `repeat` calls."""
    samples = []
    for _ in range(repeat):
        started = time.process_time_ns()
        fn()
        samples.append((time.process_time_ns() - started) / 1e9)
    return statistics.median(samples)


def per_call(fn: Callable[[int], object], count: int) -> float:
    started = time.process_time()
    for index in range(count):
        fn(index)
    return (time.process_time() - started) / count


def recipient(index: int) -> tuple[Recipient, str, str]:
    name = f"Reader {index}"
    greet_html, greet_text = greeting("en", name)
    r = Recipient(email=f"reader{index}@example.com", message_id=f"<1.{index}.bench@example.org>", name=name,
                  date=WHEN, greeting_html=greet_html, greeting_text=greet_text,
                  unsubscribe_url=f"https://news.example.org/u/WzEsMV0.{index:08d}.signature",
                  preferences_url=f"https://news.example.org/p/WzEsMV0.{index:08d}.signature")
    return r, greet_html, greet_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--old-recipients", type=int, default=2_000)
    parser.add_argument("--dkim-messages", type=int, default=500)
    args = parser.parse_args()

    stories, mailing_list = sample_stories(10), sample_list()
    subject = "Daily Digest · 2026-03-02: Shipyard workers win a four-day week"
    body = render_digest(stories, mailing_list, locale="en", date_label="2026-03-02", subject=subject)

    # --- compile per variant -------------------------------------------------------------
    # The same context render_digest builds for the full edition.
    from digest.render.digest_email import _base_context, _sections, _wants_sections
    context = {**_base_context("en", subject, "preheader " * 5, mailing_list, body.token), "lead": stories[0],
               "sections": _sections(stories[1:], _wants_sections(stories), "Other stories"), "more": [],
               "omitted": 0}
    source = render_template("digest.mjml.j2", context)
    compiled = compile_mjml(source)
    t_jinja = cpu(lambda: render_template("digest.mjml.j2", context), 30)
    t_mjml = cpu(lambda: compile_mjml(source), 30)
    t_premailer = cpu(lambda: inline_css(compiled), 10)
    t_variant = cpu(lambda: render_digest(stories, mailing_list, locale="en", date_label="2026-03-02",
                                          subject=subject), 10)
    t_skeleton = cpu(lambda: MessageSkeleton(html_body=body.html, text_body=body.text, token=body.token,
                                             subject=subject, from_header=FROM, list_id=LIST_ID,
                                             feedback_id="1:daily:digest", unsubscribe_mailto=MAILTO), 30)
    print(f"compile per variant (10 stories, HTML {len(body.html.encode()) / 1024:.1f} KB):")
    print(f"  jinja (mjml template)   {t_jinja * 1e3:8.2f} ms")
    print(f"  mjml-python             {t_mjml * 1e3:8.2f} ms")
    print(f"  premailer               {t_premailer * 1e3:8.2f} ms")
    print(f"  render_digest total     {t_variant * 1e3:8.2f} ms   (jinja+mjml+premailer+text, clip check)")
    print(f"  message skeleton        {t_skeleton * 1e3:8.2f} ms   (QP-encode both parts once)")

    # --- per recipient: EmailMessage vs skeleton -------------------------------------------
    recipients = [recipient(i) for i in range(max(args.recipients, args.old_recipients))]

    def old(index: int) -> bytes:
        r, greet_html, greet_text = recipients[index]
        html, text = personalise(body.html, body.text, body.token, greeting_html=greet_html, greeting_text=greet_text,
                                 unsubscribe_url=r.unsubscribe_url, preferences_url=r.preferences_url)
        return build_message(Envelope(from_header=FROM, to_email=r.email, to_name=r.name, subject=subject,
                                      message_id=r.message_id, list_id=LIST_ID, unsubscribe_url=r.unsubscribe_url,
                                      unsubscribe_mailto=MAILTO, feedback_id="1:daily:digest", date=WHEN),
                             html_body=html, text_body=text)

    skeleton = MessageSkeleton(html_body=body.html, text_body=body.text, token=body.token, subject=subject,
                               from_header=FROM, list_id=LIST_ID, feedback_id="1:daily:digest",
                               unsubscribe_mailto=MAILTO)

    def new(index: int) -> bytes:
        return skeleton.render(recipients[index][0])

    t_old = per_call(old, args.old_recipients)
    t_new = per_call(new, args.recipients)
    size = len(new(0))
    print(f"\nper-recipient message ({size / 1024:.1f} KB), CPU per message on one core:")
    print(f"  EmailMessage + as_bytes {t_old * 1e6:8.1f} µs   {1 / t_old:10,.0f} msg/s   ({args.old_recipients} msgs)")
    print(f"  skeleton.render         {t_new * 1e6:8.1f} µs   {1 / t_new:10,.0f} msg/s   ({args.recipients} msgs)")
    print(f"  speed-up                {t_old / t_new:8.1f} ×")

    # --- DKIM ---------------------------------------------------------------------------
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    signer = DkimSigner("example.org", "s2026", rsa_key)
    both = DkimSigner("example.org", "s2026", rsa_key, ed_key, "s2026-ed25519")
    message = new(0)
    n = args.dkim_messages
    t_rsa = per_call(lambda i: signer.sign(message), n)
    t_both = per_call(lambda i: both.sign(message), n)
    t_full = per_call(lambda i: signer.sign(new(i % len(recipients))), n)
    print("\nDKIM (RSA-2048, relaxed/relaxed, 12 signed header entries):")
    print(f"  cryptography RSA        {t_rsa * 1e3:8.3f} ms/msg")
    print(f"  RSA + Ed25519           {t_both * 1e3:8.3f} ms/msg")
    print(f"  skeleton + RSA sign     {t_full * 1e3:8.3f} ms/msg   {1 / t_full:10,.0f} msg/s")
    try:
        import dkim
    except ImportError:
        print("  dkimpy                  (not installed: pip install dkimpy)")
        return
    pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    headers = [h.encode() for h in ("from", "to", "subject", "date", "message-id", "mime-version", "content-type",
                                    "list-id", "list-unsubscribe", "list-unsubscribe-post", "feedback-id")]
    dkim_n = max(n // 10, 10)
    t_dkimpy = per_call(lambda i: dkim.sign(message, b"s2026", b"example.org", pem, include_headers=headers,
                                            canonicalize=(b"relaxed", b"relaxed")), dkim_n)
    print(f"  dkimpy (pure-Python)    {t_dkimpy * 1e3:8.3f} ms/msg   ({t_dkimpy / t_rsa:.1f} × slower)")


if __name__ == "__main__":
    main()
