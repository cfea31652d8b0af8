"""Confirm-mail cost (not a test): the skeleton path the mailer uses versus one EmailMessage per recipient.

    .venv/bin/python benchmarks/confirm_mail.py [--mails 2000]

CPU time per mail on one core, in one run, for the same list, language and recipient; both include signing
the confirm link. No SMTP and no database: only what building the message costs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import textwrap
import time
from pathlib import Path

from digest.audience.confirmations import _confirm_body, _Outgoing, confirm_message
from digest.audience.tokens import Signer
from digest.config import load_settings
from digest.render.message import Envelope, build_message, personalise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "digest.toml"
        config.write_text(textwrap.dedent("""
            [web]
            secret_key = "bench-secret-key-that-is-long-enough-0123456789"
            [[lists]]
            slug = "daily"
            name = "Bench Daily"
            from = "Bench Daily <news@digest.example>"
            address = "1 Bench Street"
            """))
        settings = load_settings(config)
    signer, now = Signer(settings.secret_key()), dt.datetime.now(dt.UTC)
    mail = _Outgoing(1, 0, 5, 1, "reader@example.com", "Reader", "en", "daily", "Bench Daily <news@digest.example>")
    confirm_message(settings, signer, mail, now)  # compiles the list's confirm email once, as the mailer does

    started = time.process_time()
    for _ in range(args.mails):
        confirm_message(settings, signer, mail, now)
    skeleton = (time.process_time() - started) / args.mails

    body = _confirm_body("Bench Daily", "daily", "1 Bench Street", "en", None)
    started = time.process_time()
    for _ in range(args.mails):
        url = f"{settings.web.base_url}/confirm/{signer.make('confirm', 5, 1)}"
        html_body, text_body = personalise(body.html, body.text, body.token, greeting_html="", greeting_text="",
                                           unsubscribe_url="", preferences_url="", confirm_url=url)
        build_message(Envelope(from_header=mail.from_address, to_email=mail.email, to_name=mail.name,
                               subject=body.subject, message_id="<confirm.bench@digest.example>", bulk=False, date=now),
                      html_body=html_body, text_body=text_body)
    baseline = (time.process_time() - started) / args.mails
    print(f"{args.mails} confirm mails each way")
    print(f"  skeleton (mailer)        {skeleton * 1e3:7.3f} ms CPU per mail")
    print(f"  EmailMessage per mail    {baseline * 1e3:7.3f} ms CPU per mail")
    print(f"  ratio                    {baseline / skeleton:7.1f}x")


if __name__ == "__main__":
    main()
