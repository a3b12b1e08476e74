"""A known stream of claim events and the oracle computed from it.

Every claim follows one of the review paths; the events of different claims are
interleaved at random, the events of one claim keep their order (they share a key).
Bad entries can be mixed in: *malformed* ones (not an event at all, or an event
that fails validation) must be dead-lettered as ``non_retryable``; *failing* ones
(a valid ``claim.submitted`` of a claim of its own, from the source the workers are
told always fails) must go through every retry tier and be dead-lettered as
``exhausted``. The oracle is independent of the code under test: a path's final
status and length are written down here, not computed by the workflow's rules.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from schemas.claims import (
    ClaimApproved,
    ClaimRejected,
    ClaimResubmitted,
    ClaimReviewReleased,
    ClaimReviewStarted,
    ClaimRevisionRequested,
    ClaimSubmitted,
)
from schemas.envelope import CloudEvent, make

SOURCE = "/faults/upstream"
FAIL_SOURCE = "/faults/fail"

Kind = Literal["valid", "malformed", "failing"]
EXPECTED_CLASS: dict[Kind, str] = {"malformed": "non_retryable", "failing": "exhausted"}

#: path name -> (event classes in order, final status)
PATHS: dict[str, tuple[tuple[type[CloudEvent], ...], str]] = {
    "approve": ((ClaimSubmitted, ClaimReviewStarted, ClaimApproved), "approved"),
    "reject": ((ClaimSubmitted, ClaimReviewStarted, ClaimRejected), "rejected"),
    "revise": (
        (
            ClaimSubmitted,
            ClaimReviewStarted,
            ClaimRevisionRequested,
            ClaimResubmitted,
            ClaimReviewStarted,
            ClaimApproved,
        ),
        "approved",
    ),
    "release": ((ClaimSubmitted, ClaimReviewStarted, ClaimReviewReleased), "submitted"),
}


@dataclass(frozen=True)
class Entry:
    key: str
    value: bytes
    kind: Kind
    event_id: str | None = None


@dataclass
class Stream:
    entries: list[Entry]
    #: claim id -> (final status, number of events applied to it)
    expected: dict[str, tuple[str, int]]
    #: event id -> claim id, for every valid event
    valid: dict[str, str] = field(default_factory=dict)

    @property
    def bad(self) -> list[Entry]:
        return [e for e in self.entries if e.kind != "valid"]

    def __len__(self) -> int:
        return len(self.entries)


def _data(cls: type[CloudEvent], claim: str, reviewer: str) -> dict[str, str]:
    if cls is ClaimSubmitted:
        return {"claim_id": claim, "task_id": f"task-{claim}", "member_id": f"m-{claim}"}
    if cls is ClaimResubmitted:
        return {"claim_id": claim}
    extra = {ClaimRejected: {"reason": "no evidence"}, ClaimRevisionRequested: {"note": "photo"}}
    return {"claim_id": claim, "reviewer_id": reviewer, **extra.get(cls, {})}


def _malformed(rng: random.Random, n: int) -> bytes:
    """One of the ways a producer gets it wrong; unique bytes so a dead letter is traceable."""
    shapes = [
        f"not json {n}".encode(),
        json.dumps({"specversion": "1.0", "id": f"bad-{n}", "type": "claim.submitted"}).encode(),
        json.dumps(
            {
                "specversion": "1.0",
                "id": f"bad-{n}",
                "source": SOURCE,
                "type": "claim.teleported",
                "time": "2026-01-01T00:00:00Z",
                "data": {},
            }
        ).encode(),
        json.dumps(
            {
                "specversion": "1.0",
                "id": f"bad-{n}",
                "source": SOURCE,
                "type": "claim.approved",
                "time": "2026-01-01T00:00:00Z",
                "data": {"claim_id": ["not", "a", "string"], "reviewer_id": n},
            }
        ).encode(),
    ]
    return rng.choice(shapes)


def claim_stream(
    events: int,
    *,
    seed: int = 0,
    malformed: float = 0.0,
    failing: float = 0.0,
    prefix: str = "c",
) -> Stream:
    """About ``events`` valid events, plus the given fractions of bad ones, interleaved."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    queues: list[list[Entry]] = []
    expected: dict[str, tuple[str, int]] = {}
    valid: dict[str, str] = {}
    total = 0
    n = 0
    while total < events:
        n += 1
        claim = f"{prefix}-{n}"
        classes, final = PATHS[rng.choice(sorted(PATHS))]
        reviewer = f"r-{rng.randrange(50)}"
        queue = []
        for step, cls in enumerate(classes):
            event = make(
                cls,
                start + timedelta(seconds=n, milliseconds=step),
                source=SOURCE,
                **_data(cls, claim, reviewer),
            )
            queue.append(Entry(claim, event.to_json(), "valid", event.id))
            valid[event.id] = claim
        queues.append(queue)
        expected[claim] = (final, len(classes))
        total += len(classes)
    bad: list[Entry] = []
    for i in range(round(total * malformed)):
        key = f"{prefix}-{rng.randrange(1, n + 1)}"  # a real claim's key: must not block it
        bad.append(Entry(key, _malformed(rng, i), "malformed"))
    for i in range(round(total * failing)):
        claim = f"{prefix}-fail-{i}"
        event = make(
            ClaimSubmitted,
            start,
            source=FAIL_SOURCE,
            claim_id=claim,
            task_id="task-x",
            member_id="m-x",
        )
        bad.append(Entry(claim, event.to_json(), "failing", event.id))
    queues.extend([b] for b in bad)
    entries: list[Entry] = []
    while queues:  # a random merge that keeps each queue's order
        i = rng.randrange(len(queues))
        entries.append(queues[i].pop(0))
        if not queues[i]:
            queues[i] = queues[-1]
            queues.pop()
    return Stream(entries, expected, valid)


@dataclass
class Tally:
    """A cheap oracle for a stream too long to check event by event (see ``claim_chunks``):
    how many claims, how many valid events, and how many claims end in each status."""

    claims: int = 0
    events: int = 0
    by_status: Counter[str] = field(default_factory=Counter)

    def add(self, stream: Stream) -> None:
        self.claims += len(stream.expected)
        self.events += len(stream.valid)
        self.by_status.update(status for status, _ in stream.expected.values())


def claim_chunks(
    events: int, *, chunk: int = 50_000, seed: int = 0, prefix: str = "c"
) -> Iterator[Stream]:
    """``claim_stream`` of about ``events`` valid events, made ``chunk`` events at a time.

    Each chunk is a stream of claims of its own (claim ids ``{prefix}{k}-{n}``), so
    per-key order holds when the chunks are published one after another, and memory
    holds one chunk however long the stream is (a million events at once would cost
    the test process several hundred MB)."""
    made, k = 0, 0
    while made < events:
        part = claim_stream(min(chunk, events - made), seed=seed + k, prefix=f"{prefix}{k}")
        made += len(part.valid)
        k += 1
        yield part
