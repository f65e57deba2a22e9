"""Alembic environment: one schema for every Mamori table, on SQLite or PostgreSQL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import audit.checkpoint_models
import audit.escalations
import audit.models  # noqa: F401
import gateway.job_store  # issue 8: /v1/jobs
import gateway.mesh_models  # issue 7: /v1/3d
import gateway.models
import gateway.template_store
import gateway.video_models  # noqa: F401
from audit.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
