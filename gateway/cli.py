"""The `mamori` command line: serve, keys, protected works, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli_common import ConfigFile, DataDir, _database, _settings

app = typer.Typer(help="Mamori: governance and safety gateway for generative AI.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
protected_app = typer.Typer(help="Register protected reference works.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(protected_app, name="protected")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Start the gateway."""
    import uvicorn

    from gateway.app import create_app

    settings = _settings(data_dir, config, host=host, port=port)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="requester, supervisor, auditor, compliance or admin")],
    tenant: Annotated[str, typer.Option(help="Tenant name, [a-z0-9-]{1,64}")],
    name: Annotated[str, typer.Option(help="Display name of the key's holder")] = "",
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this many days")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Create a key. The key is printed once, alone on the last line; only its hash is stored."""
    from audit.store import AuditStore
    from gateway.keys import InvalidKeyInput, KeyStore

    settings = _settings(data_dir, config)
    _, sessions = _database(settings)
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    try:
        info, secret = KeyStore(sessions).create(role=role, tenant=tenant, name=name, expires_at=expires)
    except InvalidKeyInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    AuditStore(sessions).append(
        "key.create",
        {"key_id": info.id, "role": info.role, "tenant": info.tenant, "via": "cli"},
        tenant=info.tenant,
    )
    typer.echo(f"created key {info.id} (role {info.role}, tenant {info.tenant}); it is shown only once:")
    typer.echo(secret)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """List keys (never their secrets)."""
    from gateway.keys import KeyStore

    settings = _settings(data_dir, config)
    _, sessions = _database(settings)
    for k in KeyStore(sessions).list():
        state = "active" if k.active else ("revoked" if k.revoked_at else "expired")
        expires = k.expires_at.isoformat() if k.expires_at else "-"
        typer.echo(f"{k.id}\t{k.role}\t{k.tenant}\t{state}\texpires={expires}\t{k.name}")


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Revoke a key at once."""
    from audit.store import AuditStore
    from gateway.keys import InvalidKeyInput, KeyStore

    settings = _settings(data_dir, config)
    _, sessions = _database(settings)
    try:
        info = KeyStore(sessions).revoke(key_id)
    except InvalidKeyInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    AuditStore(sessions).append("key.revoke", {"key_id": info.id, "via": "cli"}, tenant=info.tenant)
    typer.echo(f"revoked {info.id}")


_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


#: Works hashed, recorded and stored together. A batch's `protected.add` record is appended before
#: the batch is stored in one transaction, so no work is stored without a record; batches keep
#: the memory of a large folder import bounded.
_BATCH = 64


def _protect_files(
    files: list[Path], tenant: str | None, data_dir: Path | None, config: Path | None
) -> tuple[int, int]:
    """Register each image file as a protected work; returns (added, failed).

    A file that cannot be read, decoded or hashed is reported and counted as failed, and the
    others are registered. Each batch of `_BATCH` files is hashed first, then its audit record
    (the works and the files that failed; `protected.rejected` when none of them could be
    registered) is appended, then its works are stored in one transaction. A batch that cannot
    be stored is recorded as `protected.add_failed` and stops the import (its works and the
    files after it count as failed).
    """
    from audit.store import AuditStore
    from gateway.errors import BadRequest
    from gateway.keys import InvalidKeyInput, validate_tenant
    from gateway.protected import PreparedWork, ProtectedRegistry
    from gateway.uploads import decode_image

    settings = _settings(data_dir, config)
    if tenant is not None:
        try:
            validate_tenant(tenant)
        except InvalidKeyInput as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    _, sessions = _database(settings)
    audit = AuditStore(sessions)
    registry = ProtectedRegistry(sessions)
    added = failed = 0
    for start in range(0, len(files), _BATCH):
        batch = files[start : start + _BATCH]
        prepared: list[tuple[Path, PreparedWork]] = []
        failures: list[dict[str, str]] = []
        for path in batch:
            try:
                data = path.read_bytes()
                image = decode_image(data, field=str(path), max_pixels=settings.max_image_pixels)
                work = registry.prepare(name=path.name, image=image.convert("RGB"), data=data, tenant=tenant)
            except OSError as exc:
                code, message = "unreadable_file", str(exc.strerror or exc)
            except BadRequest as exc:
                code, message = exc.code, exc.message
            except Exception as exc:  # decoded but not hashable (a degenerate image)
                code, message = "unhashable_image", f"could not be hashed: {exc}"
            else:
                prepared.append((path, work))
                continue
            typer.echo(f"error: {path}: {message}", err=True)
            failures.append({"file": str(path), "code": code})
        failed += len(failures)
        if not prepared:
            if failures:
                audit.append("protected.rejected", {"by": "cli", "failed": failures}, tenant=tenant)
            continue
        works = [w.summary() for _, w in prepared]
        audit.append("protected.add", {"by": "cli", "works": works, "failed": failures}, tenant=tenant)
        try:
            stored = registry.store([w for _, w in prepared])
        except Exception as exc:
            left = len(files) - start - len(batch)
            typer.echo(
                f"error: storing {len(prepared)} works failed ({type(exc).__name__}); none of them was stored"
                + (f", and {left} files after them were not tried" if left else ""),
                err=True,
            )
            try:
                payload = {"by": "cli", "works": [w["id"] for w in works], "error": type(exc).__name__}
                audit.append("protected.add_failed", payload, tenant=tenant)
            except Exception as audit_exc:
                typer.echo(f"error: the failure could not be audited either ({type(audit_exc).__name__})", err=True)
            return added, failed + len(prepared) + left
        for (path, _), done in zip(prepared, stored, strict=True):
            typer.echo(f"{done.id}\t{path}\t{done.hashes} hashes\ttenant={tenant or '*'}")
        added += len(stored)
    return added, failed


@protected_app.command("add")
def protected_add(
    files: Annotated[list[Path], typer.Argument(help="Image files to protect", exists=True, dir_okay=False)],
    tenant: Annotated[str | None, typer.Option(help="Only for this tenant (default: every tenant)")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Register protected reference images; outputs similar to them are held for review."""
    _, failed = _protect_files(files, tenant, data_dir, config)
    if failed:
        raise typer.Exit(1)


@protected_app.command("import-folder")
def protected_import_folder(
    folder: Annotated[Path, typer.Argument(help="Folder of image files", exists=True, file_okay=False)],
    tenant: Annotated[str | None, typer.Option(help="Only for this tenant (default: every tenant)")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", help="Also import images in subfolders")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Register every image in a folder as a protected work; other files are skipped. Exit 1 if any image failed."""
    candidates = sorted(folder.rglob("*") if recursive else folder.iterdir())
    files: list[Path] = []
    skipped = 0
    for path in candidates:
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # hidden files and folders (.DS_Store, .git) are not works
        if path.suffix.lower() not in _IMAGE_SUFFIXES:
            typer.echo(f"skipped (not an image): {path}")
            skipped += 1
            continue
        files.append(path)
    added, failed = _protect_files(files, tenant, data_dir, config)
    typer.echo(f"imported {added}, failed {failed}, skipped {skipped} (from {folder})")
    if failed:
        raise typer.Exit(1)


@app.command()
def worker(
    workers: Annotated[int | None, typer.Option(help="Worker threads (default: jobs_workers)")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Run the job queue's consumer on its own (webhooks, review deadlines, lease expiry); stop with Ctrl-C.

    Point the gateways at the same queue (jobs_backend sqlite in a shared data folder, or redis) and
    set jobs_consumer = "none" on them so only workers consume.
    """
    from gateway.jobs import JobQueue, worker_context

    settings = _settings(data_dir, config)
    if settings.jobs_backend == "memory":
        typer.echo("error: jobs_backend 'memory' runs jobs in the gateway; a worker has nothing to consume", err=True)
        raise typer.Exit(2)
    queue = JobQueue(settings, worker_context(settings)).attach()
    typer.echo(f"mamori worker: {settings.jobs_backend} queue {settings.jobs_queue_name!r}")
    queue.consumer(workers=workers, embedded=False).run()  # handles SIGINT/SIGTERM itself


def _mount_subcommands() -> None:
    # sub-command groups that live in modules of their own (they import DataDir/ConfigFile/_settings from here)
    from gateway.cli_audit import audit_app
    from gateway.cli_policy import policy_app

    app.add_typer(audit_app, name="audit")
    app.add_typer(policy_app, name="policy")

    from gateway.cli_templates import templates_app  # issue 8

    app.add_typer(templates_app, name="templates")

    from gateway.cli_names import names_app  # issue 4

    app.add_typer(names_app, name="protected-names")


_mount_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
