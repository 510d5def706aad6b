"""The ``clearhouse serve`` command: the REST API and the web dashboard over one data directory,
and optionally the venue's FIX session.

The serving process is the CCP's node: it replays the ledger, verifies it in full (unless told
not to), and cuts a block for every accepted write. ``--dashboard-login`` adds a route that logs
in with a pasted key seed, for browsers without Ed25519 in WebCrypto; it is refused unless the
server listens on a loopback address. ``--fix-port`` also accepts FIX sessions on that loopback
port, in the same process and on the same node: the exchange (``EXCHANGE``, whose key is under
``DATA/keys``) logs on and reports locked-in trades in Trade Capture Reports, which are
submitted and signed as the exchange's, and acknowledged with the ledger's result per trade.
Imports the API package, the FIX interface, uvicorn and typer only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import uvicorn

    from clearhouse.interfaces.fix import FixIntake

#: where the FIX acceptor listens: anyone who can connect trades as the venue, so loopback only
FIX_HOST = "127.0.0.1"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _run(server: uvicorn.Server, fix: tuple[int, str, Callable[[FixIntake], dict[str, str]]] | None) -> None:
    """uvicorn, and the FIX acceptor (port, venue CompID, trade handler) beside it on the same
    event loop; the handler runs in a worker thread, under the service's lock."""
    from clearhouse.interfaces.fix import SessionConfig, serve_fix

    fix_server = None
    if fix is not None:
        fix_port, venue, on_trades = fix

        async def in_thread(intake: FixIntake) -> dict[str, str]:
            return await asyncio.to_thread(on_trades, intake)

        fix_server = await serve_fix(FIX_HOST, fix_port, in_thread, config=SessionConfig(target_comp_id=venue))
    try:
        await server.serve()
    finally:
        if fix_server is not None:
            fix_server.close()


def serve(
    data: Annotated[Path, typer.Option("--data", help="Data directory (ledger.sqlite, keys/).")] = Path(
        "clearhouse-data"
    ),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    dashboard_login: Annotated[
        bool, typer.Option("--dashboard-login", help="Allow the dashboard's seed login (loopback only).")
    ] = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Verify the whole ledger first.")] = True,
    fix_port: Annotated[
        int | None,
        typer.Option("--fix-port", help="Also accept the exchange's FIX session on this port (127.0.0.1 only)."),
    ] = None,
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json) and the web dashboard (at /) as the CCP's node."""
    import uvicorn

    from clearhouse.core.errors import ClearhouseError
    from clearhouse.interfaces.api.app import create_app
    from clearhouse.interfaces.api.service import LedgerService
    from clearhouse.interfaces.console import err
    from clearhouse.interfaces.fix import SessionConfig

    if dashboard_login and not _loopback(host):
        err.print("[bold red]error:[/] --dashboard-login is allowed only on a loopback address")
        raise typer.Exit(2)
    try:
        service = LedgerService(data, verify=verify)
    except ClearhouseError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    try:
        fix = None
        if fix_port is not None:
            try:
                venue, on_trades = service.fix_session_handler()
            except ClearhouseError as exc:
                err.print(f"[bold red]error:[/] {exc}")
                raise typer.Exit(2) from exc
            fix = (fix_port, venue, on_trades)
        v = service.verification
        err.print(f"ledger at height {service.node.height}, business date {service.business_date}, "
                  f"verification: {v.status}{f' ({v.reason})' if v.reason else ''}")
        err.print(f"dashboard at http://{host}:{port}/  API documentation at http://{host}:{port}/docs")
        if fix is not None:
            err.print(f"FIX session for {fix[1]} at {FIX_HOST}:{fix_port} "
                      f"(TargetCompID {SessionConfig().sender_comp_id})")
        config = uvicorn.Config(create_app(service, dashboard_login=dashboard_login), host=host, port=port,
                                log_level="warning")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn shut down, then re-raised it
            asyncio.run(_run(uvicorn.Server(config), fix))
    except OSError as exc:  # the FIX port is taken
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    finally:
        service.close()


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve)
