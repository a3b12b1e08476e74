"""Installed workflows. Each package exposes ``WORKFLOW`` in its ``workflow`` module."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.engine.workflow import Workflow

INSTALLED = ("claims", "escrow", "challenges", "litigation", "usage", "notifier")


def installed_workflows() -> list[Workflow]:
    return [
        importlib.import_module(f"service.workflows.{name}.workflow").WORKFLOW for name in INSTALLED
    ]
