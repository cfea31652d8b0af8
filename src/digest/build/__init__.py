"""Build: one edition per (list, period), its variants compiled once, and the deliveries enqueued."""
