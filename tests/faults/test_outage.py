"""Database outage: PostgreSQL vanishes mid-stream and comes back; nobody restarts anything.

The session's PostgreSQL is shared by every test, so the worker and the relay reach
it through a proxy (tests/faults/proxy.py) that cuts every connection and refuses new
ones for the outage. The worker must notice, keep its offsets where they were (an
undecided batch is never acknowledged), retry with a bounded back-off, and carry on
by itself once the database answers again: same process, nothing lost, nothing
applied twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from tests.faults.checker import check
from tests.faults.conftest import size
from tests.faults.harness import Cluster, processed, progress_after, publish_stream, settle, until
from tests.faults.proxy import proxied
from tests.faults.stream import claim_stream

pytestmark = pytest.mark.integration


async def test_database_outage_worker_and_relay_recover_by_themselves(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    stream = claim_stream(size(2_000, 20_000), seed=21)
    outage_s = size(3, 10)
    valid = len(stream.valid)
    with proxied(settings.require_database_url()) as (proxy, url):
        try:
            relay = cluster.start("relay", database_url=url)
            worker = cluster.start("worker", database_url=url)
            pids = relay.popen.pid, worker.popen.pid
            # The stream lasts about four outages, so the cut lands in the middle of it.
            producer = asyncio.create_task(
                publish_stream(settings, stream.entries, per_second=len(stream) / (4.0 * outage_s))
            )

            async def under_way() -> bool:
                return await processed(engine) >= valid // 4

            await until(
                under_way, timeout=120, what="a quarter of the stream applied", cluster=cluster
            )
            at_cut = await processed(engine)
            reset = proxy.cut()
            cut_at = time.monotonic()
            # The outage itself is the fault, not a wait for something: it lasts outage_s.
            await asyncio.sleep(outage_s)
            during = await processed(engine)
            refused = proxy.stats.refused
            proxy.restore()
            outage = time.monotonic() - cut_at
            recovery = await progress_after(engine, during, timeout=120, cluster=cluster)

            await producer

            await settle(engine, settings, stream, timeout=240, cluster=cluster)
            verdict = await check(engine, settings, stream)
            figures(
                **verdict.figures,
                outage_s=round(outage, 1),
                connections_cut=reset,
                connections_refused=refused,
                applied_during_outage=during - at_cut,
                lost=len(verdict.lost),
                duplicated=len(verdict.duplicated),
                unexpected=len(verdict.unexpected),
                restarts=len(cluster.processes) - 2,
                recovery_s=round(recovery, 1),
            )
            # The fault really happened mid-stream, and the roles really met it.
            assert at_cut < valid and during < valid, (
                f"the outage came too late: {at_cut}, {during}"
            )
            # At most the batch whose commit was under way at the cut lands during the outage.
            assert during - at_cut <= settings.batch_max_records, "the worker bypassed the proxy"
            assert reset > 0, "no connection was open at the cut"
            assert refused > 0, "nobody tried to reconnect during the outage"
            # Same processes, still running: they recovered by themselves.
            assert len(cluster.processes) == 2, [p.name for p in cluster.processes]
            assert (relay.popen.pid, worker.popen.pid) == pids
            assert relay.alive and worker.alive, cluster.report()
            assert verdict.ok, str(verdict)
        finally:  # the processes go before the proxy they talk through
            cluster.stop_all()
