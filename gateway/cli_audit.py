"""`mamori audit …`: verify, seal, search, export and prune the audit trail.

Exit codes: 0 success, 1 the check failed (tampering, mismatch), 2 bad input (options, files, keys).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli_common import ConfigFile, DataDir, _database, _settings

audit_app = typer.Typer(help="Inspect, verify and export the audit trail.", no_args_is_help=True)

TrustedKeys = Annotated[
    list[Path] | None,
    typer.Option("--trusted-key", help="Public key (PEM) or folder of *.pem trusted to sign; repeatable"),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail(
            f"{option} {value!r} is not an ISO 8601 date or time (e.g. 2026-01-31 or 2026-01-31T12:00Z)"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _keys(settings: Any, extra: list[Path] | None) -> Any:
    from audit.crypto import KeyFileError
    from gateway.audit_tools import trusted_keys

    try:
        return trusted_keys(settings, extra)
    except KeyFileError as exc:
        raise _fail(str(exc)) from exc


def _open_store(settings: Any) -> Any:
    from audit.crypto import KeyFileError
    from gateway.bootstrap import load_audit_store

    _, sessions = _database(settings)
    try:
        return load_audit_store(settings, sessions), sessions
    except KeyFileError as exc:
        raise _fail(str(exc)) from exc


def _provenance(settings: Any) -> Any:
    from gateway.bootstrap import load_provenance

    try:
        return load_provenance(settings)
    except Exception as exc:  # the look-up still works by SHA-256
        typer.echo(f"warning: no C2PA reader ({exc}); using SHA-256 only", err=True)
        return None


def _mime(path: Path) -> str:
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}.get(path.suffix.lower(), "image/png")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _fail(f"{path}: cannot read: {exc.strerror or exc}") from exc


@audit_app.command("verify")
def audit_verify(
    trusted_key: TrustedKeys = None,
    anchor: Annotated[str | None, typer.Option(help="SEQ:HASH published earlier; the log must still hold it")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Check every record, the hash chain and the signed checkpoints; exit 0 only when all is intact."""
    from audit.db import create_db_engine, session_factory
    from audit.verify import verify_chain

    settings = _settings(data_dir, config)
    keys = _keys(settings, trusted_key)
    anchor_value = None
    if anchor is not None:
        seq_text, _, hash_text = anchor.partition(":")
        if not seq_text.isdigit() or len(hash_text) != 64:
            raise _fail("--anchor must look like SEQ:HASH (64 hex digits)")
        anchor_value = (int(seq_text), hash_text)
    engine = create_db_engine(settings.db_url)
    try:
        report = verify_chain(session_factory(engine), keys=keys, anchor=anchor_value)
    finally:
        engine.dispose()
    for problem in report.problems:
        where = f"record {problem.seq}" if problem.seq is not None else "log"
        typer.echo(f"FAIL {where}: {problem.kind}: {problem.message}")
    if report.problems_total > len(report.problems):
        typer.echo(f"… and {report.problems_total - len(report.problems)} more problem(s)")
    sealed = f"{report.checkpoints} signed checkpoint(s), sealed up to record {report.sealed_seq}"
    if report.ok:
        typer.echo(f"OK: {report.checked} records, chain head {report.head_hash}; {sealed}")
        if report.unsealed:
            typer.echo(f"note: the newest {report.unsealed} record(s) are not covered by a checkpoint yet")
    else:
        typer.echo(f"FAILED: {report.problems_total} problem(s) in {report.checked} records checked; {sealed}")
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Sign the current chain head now (the gateway also does it every N records or T seconds)."""
    settings = _settings(data_dir, config)
    store, _ = _open_store(settings)
    checkpoint = store.checkpoint()
    if checkpoint is None:
        typer.echo("nothing to sign: the log is empty or its head is already signed")
    else:
        typer.echo(
            f"checkpoint {checkpoint.number}: record {checkpoint.head_seq} {checkpoint.head_hash} ({checkpoint.key_id})"
        )


@audit_app.command("find")
def audit_find(
    asset: Annotated[Path, typer.Option("--asset", help="An image file Mamori released")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Find the audit record of an asset file, by its C2PA manifest id, else by its SHA-256."""
    from gateway.audit_tools import find_asset

    data = _read_file(asset)
    settings = _settings(data_dir, config)
    store, sessions = _open_store(settings)
    found = find_asset(data, _mime(asset), store=store, sessions=sessions, provenance=_provenance(settings))
    typer.echo(f"sha256: {found.sha256}")
    typer.echo(f"manifest: {found.manifest_id or '-'} ({found.manifest_state or 'not read'})")
    if found.note:
        typer.echo(f"note: {found.note}")
    if not found.records:
        typer.echo("no audit record names this asset")
        raise typer.Exit(1)
    for record in found.records:
        typer.echo(json.dumps(record.to_dict(), indent=2, ensure_ascii=False))


@audit_app.command("check-asset")
def audit_check_asset(
    file: Annotated[Path, typer.Argument(help="The file to check")],
    request: Annotated[str, typer.Option("--request", help="The request id (req_…)")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Check that FILE is an asset the request released (same SHA-256 and C2PA manifest id)."""
    from gateway.audit_tools import check_asset

    data = _read_file(file)
    settings = _settings(data_dir, config)
    store, _ = _open_store(settings)
    result = check_asset(data, _mime(file), request, store=store, provenance=_provenance(settings))
    for message in result.messages:
        typer.echo(message)
    typer.echo("MATCH" if result.ok else "NO MATCH")
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("retention")
def audit_retention(
    apply: Annotated[bool, typer.Option("--apply", help="Delete the expired payloads (default: dry run)")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Delete the payloads of records older than their tenant's retention (audit_retention_days)."""
    from audit.retention import run_retention

    settings = _settings(data_dir, config)
    if not settings.audit_retention_days:
        typer.echo("no retention configured (audit_retention_days): nothing expires")
        return
    store, sessions = _open_store(settings)
    try:
        report = run_retention(store, sessions, settings.audit_retention_days, apply=apply)
    except ValueError as exc:
        raise _fail(f"invalid configuration: {exc}") from exc
    verb = "deleted" if apply else "would delete"
    for item in report.tenants:
        span = f" (records {item.first_seq}-{item.last_seq})" if item.records else ""
        typer.echo(f"tenant {item.tenant}: keep {item.days} days; {verb} {item.records} payload(s){span}")
    if report.record_seq is not None:
        typer.echo(f"recorded as audit record {report.record_seq}; the chain still verifies (payload digests stay)")
    elif not apply:
        typer.echo("dry run: nothing changed; add --apply to delete")


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option("--out", help="The zip file to write")],
    start: Annotated[str | None, typer.Option("--from", help="From this time (ISO 8601, UTC if no zone)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Up to this time, exclusive")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's records")] = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Write an evidence export: records, chain proof, signed checkpoints, assets, policy, README."""
    from audit.blobs import LocalBlobStore
    from gateway.audit_tools import export

    settings = _settings(data_dir, config)
    start_at, end_at = _when(start, "--from"), _when(end, "--to")
    store, sessions = _open_store(settings)
    summary = export(
        out,
        settings=settings,
        store=store,
        sessions=sessions,
        blobs=LocalBlobStore(settings.blob_dir),
        provenance=_provenance(settings),
        start=start_at,
        end=end_at,
        tenant=tenant,
    )
    typer.echo(
        f"wrote {summary.path}: {summary.records} record(s), chain to record {summary.chain_to_seq}, "
        f"{summary.checkpoints} checkpoint(s), {summary.assets} asset(s), policy revisions {summary.revisions}"
    )
    if summary.assets_missing:
        typer.echo(f"warning: {len(summary.assets_missing)} asset file(s) no longer in the blob store", err=True)


@audit_app.command("verify-export")
def audit_verify_export(
    file: Annotated[Path, typer.Argument(help="The evidence zip")],
    trusted_key: TrustedKeys = None,
) -> None:
    """Check an evidence export offline. Without --trusted-key, the keys inside the zip are used (weaker)."""
    from audit.crypto import KeyFileError, load_public_keys
    from audit.export import verify_export

    keys = None
    if trusted_key:
        try:
            keys = load_public_keys(trusted_key)
        except KeyFileError as exc:
            raise _fail(str(exc)) from exc
    report = verify_export(file, trusted_keys=keys)
    for problem in report.problems:
        typer.echo(f"FAIL {problem}")
    trust = "trusted keys given" if report.keys_trusted else "keys taken from the export itself: compare the key id"
    summary = (
        f"{report.records} record(s), {report.chain_links} chain link(s), {report.checkpoints} checkpoint(s), "
        f"{report.assets} asset(s); signed by {report.signed_by or 'nobody'} ({trust})"
    )
    if report.ok:
        typer.echo(f"OK: {summary}")
    else:
        typer.echo(f"FAILED: {len(report.problems)} problem(s); {summary}")
        raise typer.Exit(1)


@audit_app.command("prompt")
def audit_prompt(
    seq: Annotated[int, typer.Argument(help="The record's seq")],
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Decrypt the raw prompt stored in a record (needs the configured prompt encryption key)."""
    from audit.crypto import DecryptionError, KeyFileError, PromptCipher

    settings = _settings(data_dir, config)
    path = settings.prompt_encryption_key or settings.audit_dir / "prompt.key"
    if not path.exists():
        raise _fail(f"no prompt encryption key at {path}")
    try:
        cipher = PromptCipher.load_or_create(path)
    except KeyFileError as exc:
        raise _fail(str(exc)) from exc
    store, _ = _open_store(settings)
    record = store.get(seq)
    if record is None:
        raise _fail(f"no record {seq}", 1)
    envelope = (record.payload or {}).get("prompt_encrypted")
    if not envelope:
        reason = "its payload was deleted for retention" if record.payload is None else "no prompt was stored"
        raise _fail(f"record {seq} holds no encrypted prompt ({reason})", 1)
    try:
        typer.echo(cipher.decrypt(envelope))
    except DecryptionError as exc:
        raise _fail(f"record {seq}: {exc}", 1) from exc
