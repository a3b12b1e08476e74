"""`jobstream bench`: benchmarks that print figures."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.common import settings

app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)


@app.command("release-orphaned")
def bench_release(
    claims: Annotated[list[int] | None, typer.Option(help="claim counts to release")] = None,
) -> None:
    """Seconds and rows/s to release N orphaned claims with their log and outbox rows."""
    from bench.release_orphaned import main as bench_main

    bench_main(settings(), claims or [100_000])


@app.command("ticks")
def bench_ticks(
    slots: Annotated[int, typer.Option(min=10, help="per-second slots to measure")] = 200,
) -> None:
    """Lateness of tick emission and job start vs the slot (p50, p99, max)."""
    from bench.ticks import main as bench_main

    bench_main(settings(), slots)
