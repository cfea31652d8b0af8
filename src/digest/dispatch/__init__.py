"""Dispatch: claim due deliveries, build each message, hand it to SMTP, record the outcome."""
