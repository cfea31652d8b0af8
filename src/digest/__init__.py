"""digest: a self-hosted newsletter and digest mailer."""

__version__ = "0.1.0"
