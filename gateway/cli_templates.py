"""`mamori templates import | export | list`: templates as YAML files (issue 8).

A file holds one template spec (as the starter templates do) or `templates:` with a list of
entries `{id, tenant, spec}` (what `export` writes; `state`, `version` and `digest` are there for
the reader). Import never carries approvals across: every imported template becomes a draft that
compliance approves in this gateway (an existing id gets a new draft version, unless the content
is unchanged). Every change is audited like a change through the API, with the actor `cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from gateway.cli_common import ConfigFile, DataDir, _database, _settings
from gateway.keys import Principal
from gateway.template_store import TemplateNotFound, TemplateStore, TemplateVersion
from gateway.templates import TemplateSpec

STARTER_DIR = Path(__file__).resolve().parent / "starter_templates"
templates_app = typer.Typer(help="Import, export and list request templates (YAML).", no_args_is_help=True)


def open_store(data_dir: Path | None, config: Path | None) -> TemplateStore:
    from audit.store import AuditStore

    settings = _settings(data_dir, config)
    _, sessions = _database(settings)
    audit = AuditStore(sessions)

    def auditor(event_type: str, payload: dict[str, Any], tenant: str) -> None:
        audit.append(event_type, {**payload, "via": "cli"}, tenant=tenant)

    return TemplateStore(sessions, auditor)


def read_entries(path: Path) -> list[dict[str, Any]]:
    """The entries of one YAML file: `[{id?, tenant?, spec}]`."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("templates"), list):
        entries = data["templates"]
    elif isinstance(data, dict):
        entries = [{"spec": data}]
    else:
        raise ValueError(f"{path}: expected a template or `templates:` with a list")
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("spec"), dict):
            raise ValueError(f"{path}: each entry needs a `spec` mapping")
        out.append(entry)
    return out


def import_entry(store: TemplateStore, entry: dict[str, Any], tenant: str | None) -> tuple[str, TemplateVersion | None]:
    """Import one entry: ("created" | "updated" | "unchanged", version)."""
    spec = TemplateSpec.model_validate(entry["spec"])
    owner = tenant or entry.get("tenant")
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"template {spec.name!r} names no tenant; pass --tenant")
    actor = Principal(key_id="cli", tenant=owner, role="admin", name="cli")
    template_id = entry.get("id")
    if isinstance(template_id, str) and template_id:
        try:
            latest = store.get(template_id)
        except TemplateNotFound:
            return "created", store.create(spec, tenant=owner, actor=actor, template_id=template_id)
        if latest.tenant != owner:
            raise ValueError(f"template {template_id} belongs to tenant {latest.tenant}, not {owner}")
        if latest.digest == spec.digest():
            return "unchanged", latest
        return "updated", store.edit(template_id, spec, actor=actor)
    return "created", store.create(spec, tenant=owner, actor=actor)


def export_entries(store: TemplateStore, tenant: str | None, every_version: bool) -> dict[str, Any]:
    versions = store.list_versions(tenant=tenant)
    if not every_version:  # one per template: the approved version, else the latest
        chosen: dict[str, TemplateVersion] = {}
        for v in versions:
            current = chosen.get(v.template_id)
            rank = (v.state == "approved", v.version)
            if current is None or rank > (current.state == "approved", current.version):
                chosen[v.template_id] = v
        versions = sorted(chosen.values(), key=lambda v: (v.spec.name, v.template_id))
    return {
        "templates": [
            {
                "id": v.template_id,
                "tenant": v.tenant,
                "version": v.version,
                "state": v.state,
                "digest": v.digest,
                "spec": v.spec.model_dump(mode="json", exclude_defaults=True),
            }
            for v in versions
        ]
    }


@templates_app.command("import")
def import_templates(
    files: Annotated[list[Path] | None, typer.Argument(help="YAML files (one template, or `templates:` list)")] = None,
    tenant: Annotated[str | None, typer.Option(help="Owner tenant (default: each entry's `tenant`)")] = None,
    starter: Annotated[bool, typer.Option("--starter", help="Also import the bundled starter templates")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Import templates as drafts (approvals never travel; compliance approves them here)."""
    paths = list(files or [])
    if starter:
        paths += sorted(STARTER_DIR.glob("*.yaml"))
    if not paths:
        typer.echo("error: give YAML files or --starter", err=True)
        raise typer.Exit(2)
    store = open_store(data_dir, config)
    failed = 0
    for path in paths:
        try:
            entries = read_entries(path)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            typer.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        for entry in entries:
            try:
                outcome, version = import_entry(store, entry, tenant)
            except (ValidationError, ValueError) as exc:
                typer.echo(f"error: {path}: {exc}", err=True)
                failed += 1
                continue
            assert version is not None
            typer.echo(f"{outcome}\t{version.template_id}\tv{version.version}\t{version.state}\t{version.spec.name}")
    if failed:
        raise typer.Exit(1)


@templates_app.command("export")
def export_templates(
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of standard output")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's templates")] = None,
    every_version: Annotated[bool, typer.Option("--all-versions", help="Every version, not one per template")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Export templates as YAML (the approved version of each, else its latest)."""
    store = open_store(data_dir, config)
    text = yaml.safe_dump(export_entries(store, tenant, every_version), allow_unicode=True, sort_keys=False)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")


@templates_app.command("list")
def list_templates(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's templates")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """One line per version: id, version, state, tenant, modality, name."""
    store = open_store(data_dir, config)
    for v in store.list_versions(tenant=tenant):
        typer.echo(f"{v.template_id}\tv{v.version}\t{v.state}\t{v.tenant}\t{v.spec.modality}\t{v.spec.name}")
