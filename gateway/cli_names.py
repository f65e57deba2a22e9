"""`mamori protected-names import | list | remove`: the registry of protected people, brands and
characters (issue 4), the same one `POST /v1/protected-names` keeps.

`import FILE` reads YAML (a list of `{name, kind, aliases, id}`, or `{names: [...]}`) or CSV
(`name,kind[,aliases][,id]`, aliases separated by `|`) and registers every entry or none. Every
change is audited like a change through the API, with `via: cli`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli_common import ConfigFile, DataDir, _database, _settings
from gateway.keys import InvalidKeyInput, validate_tenant
from gateway.protected_names import ProtectedNameRegistry

names_app = typer.Typer(help="Import, list and remove protected names.", no_args_is_help=True)


def _open(data_dir: Path | None, config: Path | None) -> tuple[ProtectedNameRegistry, Any]:
    from audit.store import AuditStore

    settings = _settings(data_dir, config)
    _, sessions = _database(settings)
    return ProtectedNameRegistry(sessions), AuditStore(sessions)


def _raw_entries(path: Path) -> list[dict[str, Any]]:
    import csv

    import yaml

    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return [dict(row) for row in csv.DictReader(fh)]
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data.get("names", [])
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of {{name, kind, aliases}} objects, or names: [...]")
    return data


@names_app.command("import")
def import_names(
    file: Annotated[Path, typer.Argument(help="YAML or CSV file of names", exists=True, dir_okay=False)],
    tenant: Annotated[
        str | None, typer.Option(help="Protect the names for this tenant only (default: every tenant)")
    ] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Register every name in the file, or none when one is malformed or already registered."""
    import yaml

    try:
        if tenant is not None:
            validate_tenant(tenant)
        entries = ProtectedNameRegistry.parse(_raw_entries(file), tenant)
    except (ValueError, InvalidKeyInput, yaml.YAMLError, UnicodeDecodeError) as exc:
        typer.echo(f"error: {file}: {exc}; nothing was registered", err=True)
        raise typer.Exit(2) from exc
    registry, audit = _open(data_dir, config)
    clash = registry.clash(entries)
    if clash is not None:
        typer.echo(f"error: the id {clash!r} is already registered; nothing was registered", err=True)
        raise typer.Exit(2)
    prepared = registry.prepare(entries)
    data = [n.to_dict() for n in prepared]
    actor = {"role": "admin", "key_id": "cli"}
    audit.append("protected_names.add", {"by": actor, "via": "cli", "names": data})  # the record comes first
    try:
        registry.store(prepared)
    except Exception as exc:
        failed = {"by": actor, "via": "cli", "registry_ids": [n.row_id for n in prepared], "error": type(exc).__name__}
        audit.append("protected_names.add_failed", failed)
        typer.echo(f"error: the names could not be stored ({exc}); nothing was registered", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"registered {len(prepared)} protected name(s) from {file}")


@names_app.command("list")
def list_names(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's names and those of every tenant")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Print the registry as JSON lines."""
    registry, _ = _open(data_dir, config)
    offset = 0
    while True:
        page, total = registry.list(tenant=tenant, limit=500, offset=offset)
        for name in page:
            typer.echo(json.dumps(name.to_dict(), ensure_ascii=False))
        offset += len(page)
        if not page or offset >= total:
            break


@names_app.command("remove")
def remove_name(
    registry_id: Annotated[str, typer.Argument(help="The registry id (pn_...) that list prints")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Remove one name (audited)."""
    registry, audit = _open(data_dir, config)
    gone = registry.delete(registry_id)
    if gone is None:
        typer.echo(f"error: no protected name {registry_id!r}", err=True)
        raise typer.Exit(1)
    audit.append(
        "protected_names.delete", {"by": {"role": "admin", "key_id": "cli"}, "via": "cli", "names": [gone.to_dict()]}
    )
    typer.echo(f"removed {gone.entry.name!r} ({registry_id})")
