"""The ``clearhouse serve`` command: the REST API and the web dashboard over one data directory.

The serving process is the CCP's node: it replays the ledger, verifies it in full (unless told
not to), and cuts a block for every accepted write. ``--dashboard-login`` adds a route that logs
in with a pasted key seed, for browsers without Ed25519 in WebCrypto; it is refused unless the
server listens on a loopback address. Imports the API package, uvicorn and typer only.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json) and the web dashboard (at /) as the CCP's node."""
    import uvicorn

    from clearhouse.core.errors import ClearhouseError
    from clearhouse.interfaces.api.app import create_app
    from clearhouse.interfaces.api.service import LedgerService
    from clearhouse.interfaces.console import err

    if dashboard_login and not _loopback(host):
        err.print("[bold red]error:[/] --dashboard-login is allowed only on a loopback address")
        raise typer.Exit(2)
    try:
        service = LedgerService(data, verify=verify)
    except ClearhouseError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    v = service.verification
    err.print(f"ledger at height {service.node.height}, business date {service.business_date}, "
              f"verification: {v.status}{f' ({v.reason})' if v.reason else ''}")
    err.print(f"dashboard at http://{host}:{port}/  API documentation at http://{host}:{port}/docs")
    try:
        uvicorn.run(create_app(service, dashboard_login=dashboard_login), host=host, port=port,
                    log_level="warning")
    finally:
        service.close()


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve)
