"""`jobstream bench`: benchmarks that print figures.

Each scenario uses the configured database and broker, or starts embedded ones in
``<state_dir>/bench``; it prints one table with the machine's cores and load.
"""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.common import fail, settings

app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)

Events = Annotated[int, typer.Option(help="claim events for the fast modes (a, d)", min=100)]
SlowEvents = Annotated[int, typer.Option(help="claim events for the slow modes (b, c)", min=100)]
Rate = Annotated[float, typer.Option(help="offered load for the latency run, events/s", min=1)]
Modes = Annotated[
    list[str] | None,
    typer.Option("--mode", help="a batch, b 1 msg/tx, c plain FastStream, d COPY (default: all)"),
]


@app.command("pipeline")
def bench_pipeline(
    events: Events = 200_000,
    slow_events: SlowEvents = 10_000,
    rate: Rate = 2_000,
    mode: Modes = None,
) -> None:
    """Claim events end to end: jobstream batch, 1 msg/tx, plain FastStream, COPY ceiling."""
    from bench import pipeline

    if unknown := set(mode or ()) - set(pipeline.MODES):
        fail(f"unknown mode(s) {sorted(unknown)}; choose from {', '.join(pipeline.MODES)}")
    plan = pipeline.Plan(events, slow_events, rate, latency_s=10, slow_latency_s=2)
    pipeline.main(settings(), plan, mode or [])


@app.command("peers")
def bench_peers(
    jobs: Annotated[int, typer.Option(help="jobs per system", min=100)] = 50_000,
) -> None:
    """The same idempotent database job on jobstream, Celery and Procrastinate: jobs/s."""
    from bench import peers

    peers.main(settings(), jobs)


@app.command("relay")
def bench_relay(
    backlog: Annotated[
        int, typer.Option(help="outbox rows in the bulk backlog", min=100)
    ] = 200_000,
    rate: Rate = 2_000,
) -> None:
    """Outbox rows published/s and commit-to-published latency: polling vs LISTEN/NOTIFY."""
    from bench import relay

    relay.main(settings(), backlog, rate)


@app.command("retry")
def bench_retry(
    messages: Annotated[int, typer.Option(help="events retried through tier 1", min=1)] = 300,
    rate: Annotated[float, typer.Option(help="events/s published", min=1)] = 100,
) -> None:
    """Lateness of retry redelivery after its due time (x-due-at); never early."""
    from bench import retry

    retry.main(settings(), messages, rate)


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


@app.command("poison")
def bench_poison(
    events: Annotated[int, typer.Option(min=1000, help="valid events, paced")] = 10_000,
    rate: Annotated[float, typer.Option(min=1, help="offered load, events/s")] = 2_000,
    ratio: Annotated[float, typer.Option(min=0.001, max=0.5, help="poison per valid event")] = 0.01,
) -> None:
    """Latency of valid events with and without poison ahead of them on their partitions."""
    from bench.poison import main as bench_main

    bench_main(settings(), events, rate, ratio)


@app.command("idle")
def bench_idle(
    wait: Annotated[
        list[int] | None, typer.Option(help="kafka_fetch_max_wait_ms values to compare")
    ] = None,
) -> None:
    """CPU an idle worker and its broker use, per fetch wait."""
    from bench.idle import main as bench_main

    bench_main(settings(), wait or [20, 100, 500])


@app.command("all")
def bench_all(
    events: Events = 200_000,
    jobs: Annotated[int, typer.Option(help="jobs per system in peers", min=100)] = 50_000,
) -> None:
    """Every scenario in one run, one table each."""
    from bench import idle, peers, pipeline, poison, relay, release_orphaned, retry, ticks

    s = settings()
    pipeline.main(s, pipeline.Plan(events, 10_000, 2_000, latency_s=10, slow_latency_s=2), [])
    peers.main(s, jobs)
    release_orphaned.main(s, [100_000, 1_000_000])
    relay.main(s, 200_000, 2_000)
    retry.main(s, 300, 100)
    poison.main(s)
    idle.main(s, [20, 100, 500])
    ticks.main(s, 200)
