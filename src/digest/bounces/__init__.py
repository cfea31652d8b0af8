"""Bounces and complaints: classify what comes back (DSN, ARF, auto-replies, mailto unsubscribes) and apply it."""
