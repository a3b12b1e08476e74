"""Fuzzing: hypothesis-generated messages on the claims topic never crash the worker.

Hypothesis generates the messages: valid claim events, envelopes with fields
missing, added or of the wrong type, odd unicode (NUL, lone surrogates, BOMs,
line separators, astral planes), huge strings, bad times (naive, out of range,
offsets that overflow, not a time at all), random JSON and random bytes, with
random keys (NUL bytes, invalid UTF-8, none) and headers. They are collected by a
``@given`` function run once with a fixed seed (the generation is hypothesis's own:
its heuristics, its edge cases), then published to the claims topic in front of a
real worker process. The same seed gives the same batch for the same pytest
invocation; hypothesis also draws literals from the project modules loaded, so the
file alone and the whole suite draw different batches. The figures carry the
batch's digest, and a failure prints the cases it is about. Every message must land
either applied (its id in the inbox) or dead-lettered with a reason (an error
class and an error message), and the worker must be the same process at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, example, given, seed
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.claims import CLAIMS_INBOUND_TOPIC, INBOUND
from schemas.registry import event_type
from service.config import Settings
from service.engine.kafka import KafkaPublisher
from tests.faults.conftest import size
from tests.faults.harness import Cluster, until

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("JOBSTREAM_FUZZ_SEED", "20261101"))
CLASSES = {"retryable", "non_retryable", "invalid_transition", "exhausted"}
TYPES = [event_type(cls) for cls in INBOUND]
#: Strings hypothesis would rarely hit on its own, each a known way to break storage.
ODD = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\ufeff",
    "\u2028\u2029",
    "\u202eevil",
    "\U0001f600",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "\\u0000",
    "' OR 1=1 --",
    " ",
    "",
]


@dataclass(frozen=True)
class Case:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def _text(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=max_size),
        st.sampled_from(ODD),
        st.builds(lambda a, b: a + b, st.text(max_size=8), st.sampled_from(ODD)),
    )


def _huge() -> st.SearchStrategy[str]:
    """Past every length limit, up to ~250 KB of JSON each (a message stays under 1 MB)."""
    return st.sampled_from(
        [("x", 150_000), ("é", 40_000), ("\U0001f600", 20_000), ("\x00", 40_000)]
    ).flatmap(lambda c: st.integers(2_001, c[1]).map(lambda n: c[0] * n))


def _json() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), _text(), st.integers(-(2**70), 2**70)
    )
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text(10), inner, max_size=4),
        max_leaves=8,
    )


def _times() -> st.SearchStrategy[Any]:
    offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
        lambda m: timezone(timedelta(minutes=m))
    )
    aware = st.datetimes(timezones=offsets | st.just(UTC)).map(lambda d: d.isoformat())
    naive = st.datetimes().map(lambda d: d.isoformat())
    edges = st.sampled_from(
        [
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00:00+05:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "10000-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00+25:00",
            "now",
            "",
        ]
    )
    return st.one_of(aware, naive, edges, st.integers(), st.floats(), _text())


def _ids() -> st.SearchStrategy[str]:
    return st.one_of(st.uuids().map(str), st.from_regex(r"\A[a-z0-9-]{1,20}\Z"))


# Built once: hypothesis caches strategies, but building them in every draw is slow.
TEXT = _text()
TEXT_12 = _text(12)
TEXT_30 = _text(30)
HUGE = _huge()
JSON = _json()
TIMES = _times()
IDS = _ids()
CLAIM_IDS = st.sampled_from([f"fz-{n}" for n in range(8)]) | IDS
PEOPLE = st.sampled_from(["r-1", "r-2"]) | IDS
EMAILS = st.none() | st.emails()
WHEN = st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC))


@st.composite
def _data(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    claim = draw(CLAIM_IDS)
    who = draw(PEOPLE)
    if kind == "member.upserted":
        return {"member_id": who, "name": draw(TEXT), "email": draw(EMAILS)}
    if kind == "task.upserted":
        return {"task_id": draw(IDS), "title": draw(TEXT)}
    if kind == "claim.submitted":
        return {"claim_id": claim, "task_id": draw(IDS), "member_id": who}
    if kind == "claim.resubmitted":
        return {"claim_id": claim}
    data = {"claim_id": claim, "reviewer_id": who}
    if kind == "claim.rejected":
        data["reason"] = draw(TEXT)
    if kind == "claim.revision_requested":
        data["note"] = draw(TEXT)
    return data


@st.composite
def _event(draw: st.DrawFn) -> dict[str, Any]:
    """A claims envelope that validates (the time in a sane range)."""
    kind = draw(st.sampled_from(TYPES))
    when = draw(WHEN)
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(IDS),
        "source": draw(st.sampled_from(["/fuzz", "/upstream/claims"])),
        "type": kind,
        "time": when.isoformat(),
        "data": draw(_data(kind)),
    }
    if draw(st.booleans()):
        doc["correlationid"] = draw(IDS)
    return doc


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid envelope with fields dropped, added or replaced by anything."""
    doc = draw(_event())
    data = doc["data"]
    for target in draw(st.lists(st.sampled_from(["doc", "data"]), min_size=1, max_size=3)):
        obj = doc if target == "doc" else data
        if not isinstance(obj, dict) or not obj:
            continue
        field = draw(st.sampled_from(sorted(obj)))
        action = draw(st.sampled_from(["drop", "replace", "odd", "time", "add"] * 3 + ["huge"]))
        if action == "drop":
            del obj[field]
        elif action == "replace":
            obj[field] = draw(JSON)
        elif action == "odd":
            obj[field] = draw(TEXT)
        elif action == "huge":
            obj[field] = draw(HUGE)
        elif action == "time":
            doc["time"] = draw(TIMES)
        else:
            obj[draw(TEXT_12)] = draw(JSON)
    return doc


def _encode(doc: Any, ascii_only: bool) -> bytes:
    """JSON bytes; non-ASCII mode writes lone surrogates as (invalid) UTF-8 bytes."""
    return json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def cases(draw: st.DrawFn) -> Case:
    shape = draw(st.sampled_from(["event"] * 3 + ["mutated"] * 4 + ["json", "bytes", "near"]))
    if shape == "bytes":
        value = draw(st.binary(max_size=300))
    elif shape == "near":  # a valid event's bytes with a few of them changed
        raw = bytearray(_encode(draw(_event()), True))
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        value = bytes(raw)
    else:
        doc = draw({"event": _event(), "mutated": _mutated(), "json": JSON}[shape])
        value = _encode(doc, draw(st.booleans()))
    key = draw(
        st.one_of(
            st.none(),
            st.binary(max_size=30),
            TEXT_30.map(lambda t: t.encode("utf-8", "surrogatepass")),
        )
    )
    headers = draw(
        st.lists(
            st.tuples(st.text(string.printable + "\x00é", max_size=12), st.binary(max_size=40)),
            max_size=3,
        )
    )
    return Case(key, value, headers)


def _doc(**changes: Any) -> bytes:
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": "fz-explicit",
        "source": "/fuzz",
        "type": "claim.submitted",
        "time": "2026-01-01T00:00:00Z",
        "data": {"claim_id": "fz-x", "task_id": "t", "member_id": "m"},
    }
    doc.update(changes)
    return json.dumps(doc).encode()


#: Cases every run has, whatever hypothesis draws: the ones each fix was made for.
EXPLICIT = [
    # bigger than what one fetch brings per partition (kafka_max_partition_fetch_bytes)
    Case(b"fz-x", _doc(data={"claim_id": "fz-x", "task_id": "t" * 200_000, "member_id": "m"}), []),
    # a NUL in the key and in a header's name and value, a header that is not UTF-8
    Case(b"fz\x00x", _doc(id="fz-nul-key"), [("a\x00b", b"c\x00d"), ("bin", b"\xff\xfe")]),
    # a NUL inside the payload, escaped as JSON writes it
    Case(
        b"fz-x",
        _doc(id="fz-nul", data={"claim_id": "fz\x00x", "task_id": "t", "member_id": "m"}),
        [],
    ),
    # a time that overflows once converted to UTC
    Case(b"fz-x", _doc(id="fz-time", time="9999-12-31T23:59:59-05:00"), []),
]


def generate(n: int) -> list[Case]:
    """EXPLICIT, then ``n`` cases from one hypothesis run with a fixed seed.

    Only the explicit and generate phases run: the collecting test never fails, so
    there is nothing to shrink, and no example database is read or written.
    """
    found: list[Case] = []

    @seed(SEED)
    @hsettings(
        max_examples=n,
        phases=[Phase.explicit, Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def collect(case: Case) -> None:
        found.append(case)

    for case in EXPLICIT:
        collect = example(case)(collect)

    collect()
    return found


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def kinds_of(batch: list[Case]) -> dict[str, int]:
    """How many cases of each hostile kind the batch holds (each must be there)."""
    return {
        "nul_keys": sum(bool(c.key and b"\x00" in c.key) for c in batch),
        "binary_keys": sum(bool(c.key and not _utf8(c.key)) for c in batch),
        "nul_headers": sum(any("\x00" in k or b"\x00" in v for k, v in c.headers) for c in batch),
        "binary_headers": sum(any(not _utf8(v) for _, v in c.headers) for c in batch),
        "nul_values": sum(b"\\u0000" in c.value or b"\x00" in c.value for c in batch),
        "binary_values": sum(not _utf8(c.value) for c in batch),
        "over_128k": sum(len(c.value) > 128 * 1024 for c in batch),
    }


async def publish(settings: Settings, batch: list[Case]) -> list[tuple[int, int]]:
    """Publish ``batch`` in order; (partition, offset) of each."""
    pub = KafkaPublisher(settings)
    await pub.start()
    topic = settings.topic(CLAIMS_INBOUND_TOPIC)
    try:
        futures = [
            await pub.producer.send(topic, c.value, key=c.key, headers=c.headers) for c in batch
        ]
        return [((m := await f).partition, m.offset) for f in futures]
    finally:
        await pub.stop()


def event_id(value: bytes) -> str | None:
    """The id a worker would take as the idempotency key, if the bytes have one."""
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    return doc.get("id") if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None


async def outcomes(
    engine: AsyncEngine, settings: Settings
) -> tuple[set[str], dict[tuple[int, int], list[tuple[str, str | None]]]]:
    """(inbox ids, origin -> [(error class, error message)] of the dead letters)."""
    async with engine.connect() as conn:
        inbox = {
            r[0]
            for r in await conn.execute(
                sa.text("SELECT message_id FROM processed_messages WHERE consumer = 'claims'")
            )
        }
        letters: dict[tuple[int, int], list[tuple[str, str | None]]] = {}
        for r in await conn.execute(
            sa.text(
                "SELECT original_partition, original_offset, error_class, error_message "
                "FROM dead_letters WHERE original_topic = :t"
            ),
            {"t": settings.topic(CLAIMS_INBOUND_TOPIC)},
        ):
            letters.setdefault((r[0], r[1]), []).append((r[2], r[3]))
    return inbox, letters


async def test_fuzzed_messages_are_applied_or_dead_lettered_and_never_crash_the_worker(
    cluster: Cluster, engine: AsyncEngine, settings: Settings, figures: Callable[..., None]
) -> None:
    batch = generate(size(300, 5_000))
    cluster.start("relay")
    worker = cluster.start("worker")
    pid = worker.popen.pid
    where = await publish(settings, batch)
    ids = [event_id(c.value) for c in batch]

    async def undecided() -> list[int]:
        inbox, letters = await outcomes(engine, settings)
        return [
            i
            for i, origin in enumerate(where)
            if origin not in letters and not (ids[i] is not None and ids[i] in inbox)
        ]

    async def decided() -> bool:
        return not await undecided()

    try:
        await until(decided, timeout=300, what="every fuzzed message decided", cluster=cluster)
    except AssertionError:
        left = await undecided()
        raise AssertionError(
            f"{len(left)} undecided, e.g. {[batch[i] for i in left[:3]]}\n{cluster.report()}"
        ) from None
    inbox, letters = await outcomes(engine, settings)
    dead = [letter for origin in where for letter in letters.get(origin, [])]
    by_class: dict[str, int] = {}
    for error_class, _ in dead:
        by_class[error_class] = by_class.get(error_class, 0) + 1
    kinds = kinds_of(batch)
    figures(
        cases=len(batch),
        distinct=len({(c.key, c.value, tuple(c.headers)) for c in batch}),
        seed=SEED,
        digest=hashlib.sha256(repr(batch).encode()).hexdigest()[:12],
        **kinds,
        applied=sum(1 for i, o in enumerate(where) if o not in letters and ids[i] in inbox),
        **{f"dead_{k}": v for k, v in sorted(by_class.items())},
        worker_restarts=len(cluster.processes) - 2,
    )
    assert all(kinds.values()), f"the batch lacks some kinds of case: {kinds}"
    assert worker.alive and worker.popen.pid == pid, cluster.report()
    assert len(cluster.processes) == 2
    twice = {o: ls for o, ls in letters.items() if len(ls) > 1}
    assert not twice, f"dead-lettered more than once: {list(twice.items())[:3]}"
    no_reason = [(o, ls) for o, ls in letters.items() if not all(c in CLASSES and m for c, m in ls)]
    assert not no_reason, f"dead letters without a reason: {no_reason[:3]}"
