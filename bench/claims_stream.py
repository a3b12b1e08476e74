"""A realistic claims stream: many claims in flight at once, each along one review path.

Members and tasks are upserted first; then about a thousand claims are open at any
time, each advancing one event at a time in its own order (submitted → review
started → approved, rejected, sent back for revision and resubmitted, or released
and picked up again), so consecutive messages belong to different claims the way
they would from a busy reviewing team. The generator keeps the state each claim
must end in, so a benchmark can check that every mode did the same work.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MEMBERS = 1000
TASKS = 200
OPEN_CLAIMS = 1000

#: (weight, events after claim.submitted); reviewer "r2" is a second reviewer.
PATHS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (40, ("claim.review_started", "claim.approved")),
    (20, ("claim.review_started", "claim.rejected")),
    (
        20,
        (
            "claim.review_started",
            "claim.revision_requested",
            "claim.resubmitted",
            "claim.review_started",
            "claim.approved",
        ),
    ),
    (
        20,
        (
            "claim.review_started",
            "claim.review_released",
            "claim.review_started/r2",
            "claim.approved/r2",
        ),
    ),
)
FINAL = {
    "claim.submitted": "submitted",
    "claim.review_started": "under_review",
    "claim.approved": "approved",
    "claim.rejected": "rejected",
    "claim.revision_requested": "revision_requested",
    "claim.resubmitted": "submitted",
    "claim.review_released": "submitted",
}


@dataclass
class Event:
    """One message: its key and its CloudEvent document without ``time`` (set when sent)."""

    key: str
    doc: dict[str, Any]

    @property
    def lifecycle(self) -> bool:
        return str(self.doc["type"]).startswith("claim.")

    def encode(self, at: datetime) -> bytes:
        return json.dumps({**self.doc, "time": at.isoformat()}).encode()


@dataclass
class ClaimsStream:
    """Deterministic for a seed; ``take(n)`` continues where the last call stopped."""

    seed: int = 8
    expected: dict[str, str] = field(default_factory=dict)
    lifecycle: int = 0
    total: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._events = self._generate()

    def take(self, n: int) -> list[Event]:
        out = [next(self._events) for _ in range(n)]
        self.total += n
        self.lifecycle += sum(e.lifecycle for e in out)
        return out

    def statuses(self) -> Counter[str]:
        """How many claims must end in each status after everything taken so far."""
        return Counter(self.expected.values())

    def _id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _doc(self, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": self._id(),
            "source": "/bench",
            "type": type_,
            "data": data,
        }

    def _generate(self) -> Iterator[Event]:
        for m in range(MEMBERS):
            data = {"member_id": f"m{m}", "name": f"Member {m}", "email": f"m{m}@example.org"}
            yield Event(f"m{m}", self._doc("member.upserted", data))
        for t in range(TASKS):
            yield Event(
                f"t{t}", self._doc("task.upserted", {"task_id": f"t{t}", "title": f"Task {t}"})
            )
        weights = [w for w, _ in PATHS]
        open_claims: list[tuple[str, list[str]]] = []
        serial = 0
        while True:
            while len(open_claims) < OPEN_CLAIMS:
                serial += 1
                claim = f"c{self.seed}-{serial}"
                path = list(self._rng.choices([p for _, p in PATHS], weights)[0])
                data = {
                    "claim_id": claim,
                    "task_id": f"t{self._rng.randrange(TASKS)}",
                    "member_id": f"m{self._rng.randrange(MEMBERS)}",
                }
                self.expected[claim] = FINAL["claim.submitted"]
                yield Event(claim, self._doc("claim.submitted", data))
                open_claims.append((claim, path))
            i = self._rng.randrange(len(open_claims))
            claim, path = open_claims[i]
            yield self._step(claim, path.pop(0))
            if not path:
                open_claims[i] = open_claims[-1]
                open_claims.pop()

    def _step(self, claim: str, step: str) -> Event:
        type_, _, reviewer = step.partition("/")
        data: dict[str, Any] = {"claim_id": claim}
        if type_ != "claim.resubmitted":
            data["reviewer_id"] = reviewer or "r1"
        if type_ == "claim.rejected":
            data["reason"] = "the evidence does not show the task done"
        elif type_ == "claim.revision_requested":
            data["note"] = "add a photo of the result"
        self.expected[claim] = FINAL[type_]
        return Event(claim, self._doc(type_, data))


def now() -> datetime:
    return datetime.now(UTC)
