"""The release database: SQLAlchemy models, the engine and Alembic migrations."""
