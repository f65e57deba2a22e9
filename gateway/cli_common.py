"""Options and helpers every `mamori` sub-command shares: the same defaults everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.settings import Settings, load_settings

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data folder (default $MAMORI_DATA_DIR, else ~/.mamori)")
]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="YAML config file (default mamori.yaml in the data folder)")
]


def _settings(data_dir: Path | None, config: Path | None, **flags: object) -> Settings:
    try:
        return load_settings(config, data_dir=data_dir, **flags)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        typer.echo(f"error: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from exc


def _database(settings: Settings) -> tuple[Engine, sessionmaker[Session]]:
    from gateway.bootstrap import open_database

    return open_database(settings)
