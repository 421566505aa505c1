"""The database: SQLAlchemy models for jobs and attempts, the engine, and repository functions."""
