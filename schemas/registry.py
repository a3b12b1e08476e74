"""Every event type by name, decoding by discriminated union, JSON Schema export."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import TypeAdapter

from schemas import audit, challenges, claims, escrow, jobs, litigation, notifications, usage
from schemas.envelope import CloudEvent

#: The modules whose CloudEvent subclasses make up the catalogue.
MODULES: tuple[ModuleType, ...] = (
    claims,
    escrow,
    challenges,
    litigation,
    usage,
    audit,
    jobs,
    notifications,
)


def event_type(cls: type[CloudEvent]) -> str:
    """The ``type`` literal a CloudEvent subclass pins, e.g. ``claim.submitted``."""
    default = cls.model_fields["type"].default
    if not isinstance(default, str) or not default:
        raise TypeError(f"{cls.__name__} must pin `type: Literal[...] = <event type>`")
    return default


def _collect(modules: tuple[ModuleType, ...]) -> dict[str, type[CloudEvent]]:
    events: dict[str, type[CloudEvent]] = {}
    for module in modules:
        for value in vars(module).values():
            defined_here = getattr(value, "__module__", None) == module.__name__
            if isinstance(value, type) and issubclass(value, CloudEvent) and defined_here:
                name = event_type(value)
                if name in events:
                    raise TypeError(f"event type {name!r} is defined twice")
                events[name] = value
    return dict(sorted(events.items()))


ALL_EVENTS: dict[str, type[CloudEvent]] = _collect(MODULES)


@cache
def _adapter(union: Any) -> TypeAdapter[Any]:
    return TypeAdapter(union)


def decode(raw: bytes, union: Any) -> CloudEvent:
    """Validate JSON bytes against a discriminated union; raises pydantic.ValidationError."""
    event: CloudEvent = _adapter(union).validate_json(raw)
    return event


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every event, by event type."""
    return {name: cls.model_json_schema() for name, cls in ALL_EVENTS.items()}


def export_json_schemas(directory: Path) -> list[Path]:
    """Write ``<type>.json`` per event and an ``index.json`` listing them."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2) + "\n")
        paths.append(path)
    index = directory / "index.json"
    listing = {name: f"{name}.json" for name in ALL_EVENTS}
    index.write_text(json.dumps({"events": listing}, indent=2) + "\n")
    return [*paths, index]
