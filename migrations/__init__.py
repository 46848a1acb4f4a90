"""Alembic migrations of Ferry's schema (run by `ferry db upgrade`)."""
