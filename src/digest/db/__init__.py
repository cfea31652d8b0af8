"""Storage: typed models, engine/session set-up and Alembic migrations."""
