"""Audience: lists, subscribers, subscriptions, consent, suppression and signed tokens."""
