"""`jobstream dlq`: list, inspect, replay, discard and purge dead letters."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.syntax import Syntax
from rich.table import Table

from service.cli.common import console, fail, need, run, settings
from service.cli.durations import parse_duration, parse_instant

app = typer.Typer(help="Dead letters: list, show, replay, discard, purge.", no_args_is_help=True)

TopicOpt = Annotated[str | None, typer.Option(help="source topic, e.g. claims.events")]
ClassOpt = Annotated[
    str | None,
    typer.Option("--error-class", help="non_retryable, invalid_transition, exhausted or retryable"),
]
SinceOpt = Annotated[
    str | None, typer.Option(help="only those dead-lettered since: 2h, 7d or an ISO time")
]
ActorOpt = Annotated[str | None, typer.Option(help="who is acting (recorded); default cli:$USER")]
CLASSES = ("non_retryable", "invalid_transition", "exhausted", "retryable")


def _actor(actor: str | None) -> str:
    return actor or f"cli:{getpass.getuser()}"


def _filter(
    ids: list[int] | None,
    topic: str | None,
    error_class: str | None,
    since: str | None,
    status: str | None,
    limit: int,
) -> Any:
    from service.engine.dlq import STATUSES, Filter

    if error_class is not None and error_class not in CLASSES:
        fail(f"--error-class must be one of {', '.join(CLASSES)}, got {error_class!r}")
    if status is not None and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)} or all, got {status!r}")
    try:
        when = parse_instant(since) if since else None
    except ValueError as exc:
        fail(f"--since: {exc}")
    return Filter(tuple(ids or ()), topic, error_class, when, status, limit)


def _age(ts: datetime) -> str:
    seconds = (datetime.now(UTC) - ts).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _table(items: list[dict[str, Any]], title: str) -> Table:
    table = Table(
        "id", "age", "topic", "type", "key", "class", "error", "tries", "status", title=title
    )
    for it in items:
        table.add_row(
            str(it["id"]),
            _age(it["created_at"]),
            it["original_topic"],
            it["event_type"] or "?",
            it["message_key"] or "",
            it["error_class"],
            (it["error_message"] or "")[:60],
            str(it["attempts"]),
            f"{it['status']} x{it['replay_count']}" if it["replay_count"] else it["status"],
        )
    return table


@app.command("list")
def dlq_list(
    topic: TopicOpt = None,
    error_class: ClassOpt = None,
    since: SinceOpt = None,
    status: Annotated[str, typer.Option(help="pending, replayed, discarded or all")] = "pending",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Dead letters, newest first, with counts per error class."""
    from service.app import runtime
    from service.engine import dlq

    s = settings()
    need(s.require_database_url)
    flt = _filter(None, topic, error_class, since, None if status == "all" else status, limit)

    async def main() -> tuple[int, list[dict[str, Any]], dict[str, int]]:
        async with runtime(s) as rt, rt.engine.connect() as conn:
            total, items = await dlq.find(conn, s, flt)
            return total, items, await dlq.counts(conn)

    total, items, per_class = run(main())
    console.print(
        _table(items, f"{total} dead letter(s)" + (" (first {limit})" if total > limit else ""))
    )
    if per_class:
        console.print(
            "pending by class: " + ", ".join(f"{k} {v}" for k, v in sorted(per_class.items()))
        )


@app.command("show")
def dlq_show(dead_letter_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """One dead letter: headers, decoded payload, and the validation errors or traceback."""
    from service.app import runtime
    from service.engine import dlq

    s = settings()
    need(s.require_database_url)

    async def main() -> dict[str, Any] | None:
        async with runtime(s) as rt, rt.engine.connect() as conn:
            return await dlq.get(conn, dead_letter_id)

    item = run(main())
    if item is None:
        fail(f"no dead letter with id {dead_letter_id}; see `jobstream dlq list`", 1)
    headers = Table("header", "value", show_header=False)
    for key, value in sorted(item["headers"].items()):
        if key != "x-error-trace":
            headers.add_row(key, value[:200])
    payload = (
        Syntax(json.dumps(item["payload"], indent=2), "json")
        if item["payload"] is not None
        else item["payload_text"]
    )
    detail: Any
    if item["validation_errors"]:
        detail = Syntax(json.dumps(item["validation_errors"], indent=2), "json")
    else:
        detail = item["traceback"] or item["error_message"] or ""
    title = (
        f"dead letter {item['id']}: {item['error_class']} from {item['original_topic']} "
        f"({item['status']}, replayed {item['replay_count']}x)"
    )
    console.print(Panel(Group(headers), title=title))
    console.print(Panel(payload, title="payload"))
    console.print(Panel(detail, title="why"))


@app.command("replay")
def dlq_replay(
    ids: Annotated[
        list[int] | None, typer.Argument(metavar="[ID]...", help="dead letter ids")
    ] = None,
    topic: TopicOpt = None,
    error_class: ClassOpt = None,
    since: SinceOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be replayed")] = False,
    rate: Annotated[
        float | None, typer.Option(help="at most N replays per second", min=0.01)
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many", min=1, max=1_000_000)] = 10_000,
    actor: ActorOpt = None,
) -> None:
    """Send dead letters back to their handler, by id or by filter (pending ones only)."""
    from service.app import runtime
    from service.engine import dlq, dlq_actions

    if not ids and not (topic or error_class or since):
        fail("give dead letter ids, or a filter: --topic, --error-class and/or --since")
    s = settings()
    need(s.require_database_url)
    flt = _filter(ids, topic, error_class, since, None if ids else "pending", limit)
    who = _actor(actor)

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with runtime(s) as rt:
            async with rt.engine.connect() as conn:
                _, items = await dlq.find(conn, s, flt)
            items = [it for it in items if it["status"] != "discarded"]
            items.reverse()  # oldest first: the order they failed in
            if dry_run or not items:
                return items, []
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("replaying", total=len(items))
                done = await dlq_actions.replay_many(
                    rt.engine,
                    s,
                    [it["id"] for it in items],
                    who,
                    rate=rate,
                    progress=lambda: progress.advance(task),
                )
            return items, done

    items, done = run(main())
    if dry_run:
        console.print(_table(items, f"would replay {len(items)} dead letter(s)"))
        return
    console.print(f"replayed {len(done)} of {len(items)} dead letter(s) as {who}")


@app.command("discard")
def dlq_discard(
    ids: Annotated[list[int], typer.Argument(metavar="ID...", help="dead letter ids")],
    actor: ActorOpt = None,
) -> None:
    """Mark dead letters discarded: kept for the record, never replayed."""
    from service.app import runtime
    from service.engine import dlq_actions

    s = settings()
    need(s.require_database_url)

    async def main() -> list[int]:
        async with runtime(s) as rt:
            return await dlq_actions.discard(rt.engine, ids, _actor(actor))

    changed = run(main())
    console.print(f"discarded {len(changed)} dead letter(s): {', '.join(map(str, changed)) or '-'}")


@app.command("purge")
def dlq_purge(
    older_than: Annotated[str, typer.Option(help="age, e.g. 30d")] = "30d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count only")] = False,
    actor: ActorOpt = None,
) -> None:
    """Delete dead letters older than the given age from the index (logged with the actor)."""
    from service.app import runtime
    from service.engine import dlq_actions

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        fail(f"--older-than: {exc}")
    if age < timedelta(hours=1):
        fail(f"--older-than {older_than} would purge nearly everything; use at least 1h")
    s = settings()
    need(s.require_database_url)

    async def main() -> int:
        async with runtime(s) as rt, rt.engine.begin() as conn:
            return await dlq_actions.purge(
                conn, age, _actor(actor), datetime.now(UTC), dry_run=dry_run
            )

    count = run(main())
    verb = "would purge" if dry_run else "purged"
    console.print(f"{verb} {count} dead letter(s) older than {older_than}")
