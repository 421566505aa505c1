"""Alembic migrations for the cascade database (driven from `storage.models`)."""
