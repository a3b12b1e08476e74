"""`jobstream schemas`: event contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import console

app = typer.Typer(help="Event contracts.", no_args_is_help=True)


@app.command("export")
def schemas_export(directory: Annotated[Path, typer.Argument(help="output folder")]) -> None:
    """Write one JSON Schema file per event type."""
    from schemas.registry import export_json_schemas

    paths = export_json_schemas(directory)
    console.print(f"wrote {len(paths)} schema files to {directory}")
