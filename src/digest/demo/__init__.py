"""`digest demo`: the whole job offline, over real SMTP, into a folder you can open."""
