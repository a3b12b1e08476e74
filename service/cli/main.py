"""The `jobstream` command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from service.cli import bench, dlq, jobs, schemas, tokens
from service.cli.common import console, fail, need, run, settings, stop_on_signals
from service.config import Settings

app = typer.Typer(
    help="jobstream: exactly-once jobs and workflows on Kafka and PostgreSQL.", no_args_is_help=True
)

for _name, _module in (
    ("jobs", jobs),
    ("dlq", dlq),
    ("tokens", tokens),
    ("schemas", schemas),
    ("bench", bench),
):
    app.add_typer(_module.app, name=_name)


def _setup_logs(s: Settings) -> None:
    from service.logs import setup_logging

    setup_logging(s.log_level, s.log_json)


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    from service.db.migrate import head_revision, upgrade

    s = settings()
    url = need(s.require_database_url)
    upgrade(url)
    console.print(f"database at revision [bold]{head_revision()}[/]")


def _serve_roles(roles: set[str]) -> None:
    from service.app import runtime, serve

    s = settings()
    need(s.require_database_url)
    if roles & {"worker", "clock", "relay"}:
        need(s.require_kafka)
    _setup_logs(s)

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        async with runtime(s) as rt:
            await serve(rt, roles, stop)

    run(main())


@app.command()
def worker() -> None:
    """Consume domain topics, ticks, commands and retry tiers; run queued jobs."""
    _serve_roles({"worker"})


@app.command()
def clock(
    simulate: Annotated[
        tuple[str, str] | None,
        typer.Option(
            metavar="FROM TO", help="print the slots that would fire in [FROM, TO], then exit"
        ),
    ] = None,
    job: Annotated[str | None, typer.Option(help="with --simulate: only this job")] = None,
) -> None:
    """Emit schedule ticks (one active clock; others stand by), or --simulate them."""
    if simulate is None:
        if job is not None:
            fail("--job goes with --simulate FROM TO")
        _serve_roles({"clock"})
        return
    from service.cli.clock import print_simulation

    print_simulation(settings(), *simulate, job)


@app.command()
def relay() -> None:
    """Publish outbox rows to Kafka (one active relay; others stand by)."""
    _serve_roles({"relay"})


@app.command()
def api() -> None:
    """Serve the admin API, health and metrics."""
    _serve_roles({"api"})


@app.command()
def dev(
    demo: Annotated[bool, typer.Option(help="seed demo data and print an admin token")] = False,
    port: Annotated[int | None, typer.Option(help="API port (default from settings)")] = None,
) -> None:
    """Everything in one process; starts an embedded broker and PostgreSQL if none is set."""
    from service.cli.dev import run_dev

    run_dev(settings(), demo=demo, port=port)


@app.command()
def publish(
    topic: Annotated[str, typer.Argument(help="topic without prefix, e.g. claims.events")],
    file: Annotated[Path, typer.Argument(help="JSON file: one event or a list of events")],
) -> None:
    """Publish CloudEvents from a JSON file (validated against the contracts first)."""
    from schemas.registry import ALL_EVENTS
    from service.engine.kafka import KafkaPublisher

    s = settings()
    need(s.require_kafka)
    try:
        raw = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")
    items = raw if isinstance(raw, list) else [raw]
    events = []
    for i, item in enumerate(items):
        cls = ALL_EVENTS.get(item.get("type", "")) if isinstance(item, dict) else None
        if cls is None:
            fail(f"event {i}: unknown or missing type; known: {', '.join(sorted(ALL_EVENTS))}")
        try:
            events.append(cls.model_validate(item))
        except ValidationError as exc:
            fail(f"event {i}: {exc}")

    async def main() -> None:
        pub = KafkaPublisher(s)
        await pub.start()
        try:
            await pub.send_many((s.topic(topic), e.to_json(), e.key.encode(), []) for e in events)
        finally:
            await pub.stop()

    run(main())
    console.print(f"published {len(events)} event(s) to {s.topic(topic)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
