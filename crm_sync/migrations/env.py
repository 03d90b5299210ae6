"""Alembic environment: runs on the connection handed over by crm_sync.db.migrate()."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from crm_sync.schema import metadata

config = context.config


def run() -> None:
    """Run the migrations online, on a given connection or on a new one from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(str(config.get_main_option("sqlalchemy.url")))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
