"""`mamori policy …`: test, serve, reload and replay the Rego policy bundle.

Exit codes: 0 success, 1 the check failed (a test failed, engines disagree, the bundle does not
compile), 2 bad input (options, folders).
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli_common import ConfigFile, DataDir, _database, _settings
from gateway.policy import RELOAD_MARKER, PolicyError, RegoEngine, TestReport, default_bundle_dir, load_bundle

policy_app = typer.Typer(help="Test, serve, reload and replay the Rego policy bundle.", no_args_is_help=True)

BundleDir = Annotated[
    Path | None,
    typer.Option("--bundle", help="Policy bundle folder (default: the configured one, else the shipped policies/)"),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _bundle_dir(bundle: Path | None, data_dir: Path | None = None, config: Path | None = None) -> Path:
    if bundle is not None:
        if not bundle.is_dir():
            raise _fail(f"--bundle {bundle} is not a folder")
        return bundle
    if data_dir is not None or config is not None:
        configured = _settings(data_dir, config).policy_bundle_dir
        if configured is not None:
            return configured
    return default_bundle_dir()


@policy_app.command("test")
def run_tests_command(
    bundle: BundleDir = None,
    engine: Annotated[
        str, typer.Option("--engine", help="all (regorus and OPA where installed), regopy, regorus or opa")
    ] = "all",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every test")] = False,
) -> None:
    """Run every Rego test (`*_test.rego`) on each engine, compare them, and report rule coverage."""
    from gateway.policy_engines import (
        OpaGoEngine,
        RegorusEngine,
        flatten,
        opa_available,
        regorus_available,
        rule_coverage,
    )

    root = _bundle_dir(bundle)
    # regopy compiles the bundle below, but its test-plan builder (rego-cpp 1.5) can take tens of GB on
    # the decision tests, so "all" runs the tests on regorus and OPA; `--engine regopy` still can.
    wanted = ["regorus", "opa"] if engine == "all" else [engine]
    if any(name not in ("regopy", "regorus", "opa") for name in wanted):
        raise _fail(f"--engine {engine!r}: choose all, regopy, regorus or opa")
    try:
        loaded = load_bundle(root)
        regopy_engine = RegoEngine(root)  # compiles the bundle: a compile error names file and line
    except PolicyError as exc:
        raise _fail(str(exc), 1) from exc

    reports: dict[str, TestReport] = {}
    extra: dict[str, str] = {}
    opa_lines: dict[str, tuple[int, int]] = {}
    for name in wanted:
        if name == "regopy":
            reports[name] = regopy_engine.run_tests()
        elif name == "regorus":
            if not regorus_available():
                extra[name] = "not installed (pip install opa-eval)"
                continue
            with tempfile.TemporaryDirectory(prefix="mamori-regorus-") as tmp:
                try:
                    reports[name] = RegorusEngine(loaded, Path(tmp)).run_tests()
                except PolicyError as exc:
                    raise _fail(str(exc), 1) from exc
        else:
            if not opa_available():
                extra[name] = "not installed (pip install --ignore-requires-python opa-golib-python-bindings)"
                continue
            try:
                opa = OpaGoEngine(loaded, with_tests=True)
            except PolicyError as exc:
                raise _fail(str(exc), 1) from exc
            reports[name] = opa.run_tests()
            opa_lines = opa.line_coverage()
            opa.close()

    ok = True
    reference: dict[str, bool] | None = None
    for name, report in reports.items():
        typer.echo(f"{name}: {len(report.passed)} passed, {len(report.failed)} failed")
        for test_id in report.failed:
            typer.echo(f"  FAIL {test_id}: {report.errors.get(test_id, '')}")
        if verbose:
            for test_id in report.passed:
                typer.echo(f"  ok   {test_id}")
        ok = ok and report.ok
        outcome = {**{t: True for t in report.passed}, **{t: False for t in report.failed}}
        if reference is None:
            reference = outcome
        elif outcome != reference:
            ok = False
            differ = sorted(t for t in set(outcome) | set(reference) if outcome.get(t) != reference.get(t))
            typer.echo(f"  DISAGREES with {next(iter(reports))} on: {', '.join(differ)}")
    for name, why in extra.items():
        typer.echo(f"{name}: skipped, {why}")

    first = next(iter(reports.values()))
    coverage = rule_coverage(flatten(loaded), first.passed)
    typer.echo(f"rule coverage (rules reachable from passing tests): {coverage.percent:.1f}%")
    for file in sorted(coverage.covered):
        covered, missing = coverage.covered[file], coverage.uncovered[file]
        line = f"  {file}: {len(covered)}/{len(covered) + len(missing)} rules"
        if missing:
            line += " - not covered: " + ", ".join(f"{r.name} (line {r.lines[0]})" for r in missing)
        typer.echo(line)
    if opa_lines:
        typer.echo("line coverage (OPA):")
        for file, (covered_lines, total) in opa_lines.items():
            if not file.endswith("_test.rego"):
                typer.echo(f"  {file}: {covered_lines}/{total} lines")
    if not ok:
        raise typer.Exit(1)


@policy_app.command("serve")
def serve_command(
    bundle: BundleDir = None,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1")] = 8181,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback by default)")] = "127.0.0.1",
) -> None:
    """Serve the bundle over OPA's REST data API (`POST /v1/data/...`), like `opa run --server`."""
    import uvicorn

    from gateway.opa_rest import create_app

    root = _bundle_dir(bundle)
    try:
        app = create_app(root, watch=True)
    except PolicyError as exc:
        raise _fail(str(exc), 1) from exc
    typer.echo(f"serving {root} on http://{host}:{port} (OPA REST data API)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@policy_app.command("reload")
def reload_command(
    bundle: BundleDir = None,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Check the bundle, then tell running gateways to reload it (they watch the bundle folder).

    An invalid bundle is reported here (exit 1) and the gateways are not told; were they to see it
    through their file watch anyway, they reject it and keep the old one.
    """
    root = _bundle_dir(bundle, data_dir, config)
    try:
        engine = RegoEngine(root)
    except PolicyError as exc:
        raise _fail(f"the bundle was not reloaded: {exc}", 1) from exc
    try:
        (root / RELOAD_MARKER).write_text(f"{datetime.now(UTC).isoformat()} {engine.revision}\n", encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot write the reload marker in {root}: {exc}") from exc
    typer.echo(f"bundle {root} is valid (revision {engine.revision}); running gateways reload it within seconds")


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail(f"{option} {value!r} is not an ISO 8601 date or time (e.g. 2026-01-31T12:00Z)") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@policy_app.command("replay")
def replay_command(
    bundle: Annotated[Path, typer.Option("--bundle", help="The candidate bundle folder")],
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601: records at or after")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO 8601: records before")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's requests")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Changed decisions to list (text output)")] = 50,
    data_dir: DataDir = None,
    config: ConfigFile = None,
) -> None:
    """Re-evaluate stored decision inputs with a candidate bundle; report what would change.

    Reads the audit log only: nothing is written to it.
    """
    from gateway.policy_replay import replay

    start, end = _when(since, "--since"), _when(until, "--until")
    if not bundle.is_dir():
        raise _fail(f"--bundle {bundle} is not a folder")
    try:
        candidate = RegoEngine(bundle)
    except PolicyError as exc:
        raise _fail(str(exc), 1) from exc
    settings = _settings(data_dir, config)
    engine, sessions = _database(settings)
    try:
        report = replay(sessions, candidate, since=start, until=end, tenant=tenant)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    typer.echo(
        f"replayed {report.decisions} decisions from {report.records} request records with {report.revision}"
        f" ({report.skipped} without a stored input): {report.changed} would change"
    )
    _counts("by action", report.by_action)
    _counts("reasons added", report.reasons_added)
    _counts("reasons removed", report.reasons_removed)
    for change in report.changes[:limit]:
        typer.echo(
            f"  #{change.seq} {change.request_id} [{change.tenant}] {change.stage}: "
            f"{change.before['action']} {change.before['codes']} -> {change.after['action']} {change.after['codes']}"
        )
    if report.changed > limit:
        typer.echo(f"  … {report.changed - limit} more (use --json for all)")


def _counts(title: str, counts: Any) -> None:
    if counts:
        typer.echo(f"{title}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
