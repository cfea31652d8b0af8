"""Web: public pages (subscribe, confirm, one-click unsubscribe, preferences) and /healthz."""
