"""`mamori policy …`: test, serve and reload the Rego policy bundle."""

from __future__ import annotations

import typer

policy_app = typer.Typer(help="Test, serve and reload the Rego policy bundle.", no_args_is_help=True)
