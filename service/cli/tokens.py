"""`jobstream tokens`: API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.common import console, fail, need, run, settings

app = typer.Typer(help="Create and revoke API tokens.", no_args_is_help=True)


@app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help="admin or viewer")],
    name: Annotated[str, typer.Option(help="who or what holds the token")] = "cli",
) -> None:
    """Create a token; it is printed once and only its hash is stored."""
    from service.app import runtime
    from service.tokens import create_token

    if role not in ("admin", "viewer"):
        fail(f"--role must be admin or viewer, got {role!r}")
    s = settings()
    need(s.require_database_url)

    async def main() -> str:
        async with runtime(s) as rt:
            return await create_token(rt.engine, name, role)  # type: ignore[arg-type]

    token = run(main())
    console.print(f"{role} token for {name} (shown once, store it now):")
    print(token)


@app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="token name")]) -> None:
    """Revoke every active token with this name."""
    from service.app import runtime
    from service.tokens import revoke_token

    s = settings()
    need(s.require_database_url)

    async def main() -> int:
        async with runtime(s) as rt:
            return await revoke_token(rt.engine, name)

    count = run(main())
    if not count:
        fail(f"no active token named {name!r}", 1)
    console.print(f"revoked {count} token(s) named {name}")
