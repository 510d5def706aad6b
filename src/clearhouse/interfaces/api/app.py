"""The FastAPI application: routes, authentication, role checks, error bodies, and the dashboard.

Every route but the public ones (login, health, the OpenAPI document and the dashboard's static
files) needs a bearer token; the middleware answers 401 before anything else is looked at, and
each route then checks the caller's role (403). Roles come from the ledger:

- member: submits trades it is party to (as JSON, FIX or ISO 20022 sese.023), reads its own
  positions, obligations, instructions, fails, proofs, semt.002 statement, sese.025
  confirmations and journalled messages; a venue (the exchange) submits trades between any
  members;
- ccp: the operator, runs cut-off, settlement and the next business day, reads everything;
- regulator: reads everything, writes nothing;
- oracle: publishes price and rate observations (the ledger's ``observation`` kind);
- every authenticated participant reads the day, the blocks, the participant list and prices.

Imports fastapi, plotly (for its bundled plotly.min.js) and the API's own modules only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import plotly
from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from clearhouse.interfaces.api import models as M
from clearhouse.interfaces.api.auth import (
    OVERSIGHT,
    TRADE_SUBMITTERS,
    Authenticator,
    Principal,
    require_reader_of,
    require_role,
)
from clearhouse.interfaces.api.errors import ApiError, forbidden, not_authenticated
from clearhouse.interfaces.api.service import LedgerService
from clearhouse.state.kinds import Role

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
PUBLIC_PATHS = frozenset({
    "/", "/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
    "/auth/methods", "/auth/challenge", "/auth/token", "/auth/dashboard-login",
    "/static/plotly.min.js",
})
PUBLIC_PREFIXES = ("/web/",)

bearer = HTTPBearer(auto_error=False, description="token from POST /auth/token")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": M.ErrorBody} for code in codes}


READ = _errors(401, 403, 404, 422, 503)
LIST = _errors(401, 422, 503)
WRITE = _errors(400, 401, 403, 409, 413, 422, 503)
COMMAND = _errors(401, 403, 409, 422, 503)
XML_DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: {"description": "the XML document", "content": {"application/xml": {"schema": {"type": "string"}}}}}


def _caller(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None
) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise not_authenticated("send Authorization: Bearer <token> (see POST /auth/challenge)")
    return principal


Caller = Annotated[Principal, Depends(_caller)]


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(status: int, error: str, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def create_app(
    service: LedgerService,
    authenticator: Authenticator | None = None,
    dashboard_login: bool = False,
) -> FastAPI:
    """The API over one node; ``dashboard_login`` adds the loopback-only seed login route."""
    auth = authenticator or Authenticator(service.participant)
    app = FastAPI(
        title="clearhouse",
        version="1",
        description="Post-trade clearing and settlement on a verifiable shared ledger: trade "
        "submission, the CCP's cut-off and settlement, positions, proofs and the ledger.",
    )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return _error(422, "invalid_request", jsonable_encoder(errors))

    @app.middleware("http")
    async def _authenticate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if service.halted is not None and path != "/health":
            return _error(503, "node_halted", f"the node halted: {service.halted}")
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return await call_next(request)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "not_authenticated",
                          "send Authorization: Bearer <token> (see POST /auth/challenge)",
                          {"WWW-Authenticate": "Bearer"})
        try:
            request.state.principal = auth.principal(token.strip())
            request.state.token = token.strip()
        except ApiError as exc:
            return _error(exc.status, exc.error, exc.detail, exc.headers)
        return await call_next(request)

    # ------------------------------------------------------------ public

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/web/")

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    app.mount("/web", StaticFiles(directory=WEB_DIR, html=True), name="web")

    @app.get("/health", response_model=M.Health, tags=["public"])
    def health() -> dict[str, Any]:
        """Whether the node runs, its height and business date (no login needed)."""
        return service.health()

    @app.get("/auth/methods", response_model=M.AuthMethods, tags=["auth"])
    def methods() -> dict[str, Any]:
        """Which login routes this server offers."""
        return {"challenge": True, "dashboard_login": dashboard_login}

    @app.post("/auth/challenge", response_model=M.ChallengeResponse, responses=_errors(401, 422, 503),
              tags=["auth"])
    def challenge(body: M.ChallengeRequest) -> dict[str, Any]:
        """A single-use nonce; sign its UTF-8 bytes with the participant's registered key."""
        nonce = auth.challenge(body.participant_id)
        return {"participant_id": body.participant_id, "nonce": nonce, "expires_in": auth.challenge_ttl_s}

    def _token_body(token: str, p: Principal) -> dict[str, Any]:
        return {"access_token": token, "token_type": "bearer", "expires_in": auth.expires_in(p),
                "participant_id": p.participant_id, "role": str(p.role)}

    @app.post("/auth/token", response_model=M.TokenResponse, responses=_errors(401, 422), tags=["auth"])
    def token(body: M.TokenRequest) -> dict[str, Any]:
        """Trade a signed nonce for a short-lived bearer token."""
        return _token_body(*auth.token(body.participant_id, body.nonce, body.signature))

    if dashboard_login:

        @app.post("/auth/dashboard-login", response_model=M.TokenResponse,
                  responses=_errors(401, 403, 422), tags=["auth"])
        def seed_login(body: M.DashboardLoginRequest, request: Request) -> dict[str, Any]:
            """Log in with the key seed itself; only on a loopback server started with --dashboard-login."""
            if not _is_loopback(request.client.host if request.client else None):
                raise forbidden("the seed login answers loopback clients only")
            return _token_body(*auth.login_with_seed(body.participant_id, bytes.fromhex(body.seed_hex)))

    # ------------------------------------------------------------ any participant

    @app.get("/auth/me", response_model=M.Me, responses=LIST, tags=["auth"])
    def me(p: Caller) -> dict[str, Any]:
        who = service.participant(p.participant_id)
        return {"participant_id": p.participant_id, "name": who.name if who else p.participant_id,
                "role": str(p.role), "expires_in": auth.expires_in(p)}

    @app.post("/auth/logout", response_model=M.LoggedOut, responses=LIST, tags=["auth"])
    def logout(p: Caller, request: Request) -> dict[str, Any]:
        """Revoke the bearer token this request carries."""
        auth.revoke(request.state.token)
        return {"participant_id": p.participant_id, "revoked": True}

    @app.get("/participants", response_model=M.ParticipantList, responses=LIST, tags=["reference"])
    def participants(p: Caller) -> dict[str, Any]:
        return {"participants": service.participants()}

    @app.get("/day", response_model=M.DayView, responses=LIST, tags=["market"])
    def day(p: Caller) -> dict[str, Any]:
        """The business day at a glance: trades, netting, settlement, ledger height, verification."""
        return service.day()

    @app.get("/stats/daily", response_model=M.DailyStats, responses=LIST, tags=["market"])
    def daily(p: Caller) -> dict[str, Any]:
        """The same figures for every business date of the ledger (the dashboard's charts)."""
        return {"days": service.daily()}

    @app.get("/blocks", response_model=M.BlockList, responses=LIST, tags=["ledger"])
    def blocks(
        p: Caller,
        before: Annotated[int | None, Query(ge=0, description="only blocks below this height")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> dict[str, Any]:
        """Block headers, newest first."""
        return service.blocks(before, limit)

    @app.get("/blocks/{height}", response_model=M.BlockDetail, responses=_errors(401, 404, 422, 503),
             tags=["ledger"])
    def block(p: Caller, height: int) -> dict[str, Any]:
        """One block's header, sequencer signature and its submissions' receipts."""
        return service.block(height)

    @app.get("/oracle/observations", response_model=M.ObservationList, responses=LIST, tags=["oracle"])
    def observations(
        p: Caller,
        index: Annotated[str | None, Query(max_length=64, description="a rate index or security id")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Observations the oracles published on the ledger, newest fixing first."""
        return {"observations": service.observations(index, limit)}

    @app.get("/messages", response_model=M.MessageLog, responses=LIST, tags=["trades"])
    def messages(
        p: Caller,
        business_date: Annotated[dt.date | None, Query(description="the business date; today's by default")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Trade submissions received on a business date, newest first, with the door each came
        through (REST, FIX, FIX session, ISO 20022) and how it ended: a participant's own; all of
        them for the CCP and the regulator."""
        return service.messages(business_date, None if p.role in OVERSIGHT else p.participant_id, limit)

    # ------------------------------------------------------------ one participant's data

    @app.get("/participants/{participant_id}/positions", response_model=M.Positions, responses=READ,
             tags=["participant"])
    def positions(p: Caller, participant_id: str) -> dict[str, Any]:
        """Securities, cash and open (unsettled or failing) net positions at the head."""
        require_reader_of(p, participant_id)
        return service.positions(participant_id)

    @app.get("/participants/{participant_id}/obligations", response_model=M.Obligations,
             responses=READ, tags=["participant"])
    def obligations(p: Caller, participant_id: str) -> dict[str, Any]:
        """Net obligations from every cut-off per (settlement date, security), and net cash."""
        require_reader_of(p, participant_id)
        return service.obligations(participant_id)

    @app.get("/participants/{participant_id}/instructions", response_model=M.Instructions,
             responses=READ, tags=["participant"])
    def instructions(p: Caller, participant_id: str) -> dict[str, Any]:
        """Settlement instructions of every cycle, settled or failed."""
        require_reader_of(p, participant_id)
        return service.instructions(participant_id)

    @app.get("/participants/{participant_id}/fails", response_model=M.Fails, responses=READ,
             tags=["participant"])
    def fails(p: Caller, participant_id: str) -> dict[str, Any]:
        """Instructions that failed, with the reason and when they first fell due."""
        require_reader_of(p, participant_id)
        return service.instructions(participant_id, failed_only=True)

    @app.get("/participants/{participant_id}/semt002", response_class=Response,
             responses={**XML_DOCUMENT, **READ}, tags=["participant"])
    def semt002(p: Caller, participant_id: str) -> Response:
        """The statement of holdings (ISO 20022 semt.002) at the head, dated the business date."""
        require_reader_of(p, participant_id)
        return Response(service.semt002(participant_id), media_type="application/xml")

    @app.get("/participants/{participant_id}/sese025", response_model=M.Confirmations, responses=READ,
             tags=["participant"])
    def sese025(
        p: Caller,
        participant_id: str,
        settlement_date: Annotated[dt.date | None, Query(description="one settlement cycle only")] = None,
    ) -> dict[str, Any]:
        """A settlement confirmation (ISO 20022 sese.025) per instruction that settled, in full or part."""
        require_reader_of(p, participant_id)
        return service.sese025(participant_id, settlement_date)

    @app.get("/participants/{participant_id}/proof/{asset}", response_model=M.HoldingProof,
             responses=READ, tags=["participant"])
    def proof(
        p: Caller,
        participant_id: str,
        asset: Annotated[str, PathParam(description="security id, or currency with table=cash")],
        table: Literal["securities", "cash"] = "securities",
    ) -> dict[str, Any]:
        """Merkle proof of a holding (or cash balance) up to the state root of the head block."""
        require_reader_of(p, participant_id)
        return service.proof(participant_id, table, asset)

    # ------------------------------------------------------------ writes

    @app.post("/trades", response_model=M.TradeSubmissionResponse, responses=WRITE, tags=["trades"])
    def trades(p: Caller, body: M.SignedSubmission) -> dict[str, Any]:
        """Submit a signed trade batch; one block is cut and each trade's result returned."""
        require_role(p, TRADE_SUBMITTERS, "submit trades")
        return service.submit_trades(p.participant_id, body.submission_id, body.payload,
                                     body.encoding, body.signature)

    @app.post("/fix/trade-capture", response_model=M.FixSubmissionResponse, responses=WRITE,
              tags=["trades"])
    def fix_trade_capture(p: Caller, body: M.SignedMessage) -> dict[str, Any]:
        """Submit FIX Trade Capture Reports (35=AE, tag=value or FIXML) as one signed trade batch;
        one block, each trade's result and a TradeCaptureReportAck (35=AR) per report."""
        require_role(p, TRADE_SUBMITTERS, "submit trades")
        return service.submit_fix(p.participant_id, body.submission_id, body.message, body.payload_sha256,
                                  body.signature)

    @app.post("/iso20022/sese023", response_model=M.Sese023SubmissionResponse, responses=WRITE,
              tags=["trades"])
    def iso20022_sese023(p: Caller, body: M.SignedMessage) -> dict[str, Any]:
        """Submit ISO 20022 settlement instructions (sese.023) as one signed trade batch; one block,
        each trade's result and a status advice (sese.024) per instruction."""
        require_role(p, TRADE_SUBMITTERS, "submit trades")
        return service.submit_sese023(p.participant_id, body.submission_id, body.message, body.payload_sha256,
                                      body.signature)

    @app.post("/operator/cutoff", response_model=M.CommandResponse, responses=COMMAND, tags=["operator"])
    def cutoff(p: Caller) -> dict[str, Any]:
        """Novate and net every trade accepted since the last cut-off (once per business day)."""
        require_role(p, frozenset({Role.ccp}), "run the cut-off")
        return service.command("cutoff")

    @app.post("/operator/settle", response_model=M.CommandResponse, responses=COMMAND, tags=["operator"])
    def settle(p: Caller) -> dict[str, Any]:
        """Settle every due net position as one DvP batch (once per business day)."""
        require_role(p, frozenset({Role.ccp}), "run settlement")
        return service.command("settle")

    @app.post("/operator/next-day", response_model=M.NextDayResponse, responses=COMMAND,
              tags=["operator"])
    def next_day(p: Caller, body: M.NextDayRequest | None = None) -> dict[str, Any]:
        """Open the next business day (or a later one named in the body) with an empty block."""
        require_role(p, frozenset({Role.ccp}), "open the next business day")
        return service.next_day(body.business_date if body else None)

    @app.post("/oracle/observations", response_model=M.ObservationsResponse, responses=WRITE,
              tags=["oracle"])
    def publish(p: Caller, body: M.SignedSubmission) -> dict[str, Any]:
        """Publish (or correct) observations: a signed ``observation`` submission, one block."""
        require_role(p, frozenset({Role.oracle}), "publish price observations")
        return service.publish_observations(p.participant_id, body.submission_id, body.payload,
                                            body.encoding, body.signature)

    return app
