"""Shared CLI plumbing: settings, errors that name the fix, async entry."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from service.config import Settings, load_settings
from service.errors import ConfigError

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def need(getter: Callable[[], T]) -> T:
    """Call a ``Settings.require_*`` getter; a missing setting exits with the fix."""
    try:
        return getter()
    except ConfigError as exc:
        fail(str(exc))


def settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc))


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        fail(str(exc))


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def parse_params(pairs: list[str], extra: list[str]) -> dict[str, str]:
    """``--param k=v`` pairs plus free ``--some-name value`` options, as job parameters."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--param takes key=value, got {pair!r}")
        params[key.replace("-", "_")] = value
    it = iter(extra)
    for token in it:
        if not token.startswith("--"):
            fail(f"unexpected argument {token!r}; job parameters look like --name value")
        name, sep, value = token[2:].partition("=")
        if not sep:
            value = next(it, "")
            if not value or value.startswith("--"):
                fail(f"--{name} needs a value")
        params[name.replace("-", "_")] = value
    return params
