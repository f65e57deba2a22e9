"""`mamori audit …`: inspect and verify the audit trail."""

from __future__ import annotations

import typer

from gateway.cli_common import ConfigFile, DataDir, _settings

audit_app = typer.Typer(help="Inspect and verify the audit trail.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(data_dir: DataDir = None, config: ConfigFile = None) -> None:
    """Check every record and the hash chain; exit 0 only when the whole log is intact."""
    from audit.db import create_db_engine, session_factory
    from audit.verify import verify_chain

    settings = _settings(data_dir, config)
    engine = create_db_engine(settings.db_url)
    report = verify_chain(session_factory(engine))
    for problem in report.problems:
        where = f"record {problem.seq}" if problem.seq is not None else "log"
        typer.echo(f"FAIL {where}: {problem.kind}: {problem.message}")
    if report.ok:
        typer.echo(f"OK: {report.checked} records, chain head {report.head_hash}")
    else:
        typer.echo(f"FAILED: {len(report.problems)} problem(s) in {report.checked} records checked")
        raise typer.Exit(1)
